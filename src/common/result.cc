#include "common/result.h"

#include <cstdio>
#include <cstdlib>

namespace herald {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kCorruption: return "corruption";
    case Errc::kIoError: return "io error";
    case Errc::kNoSpace: return "no space";
    case Errc::kNotFound: return "not found";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kTruncated: return "truncated";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kOutOfRange: return "out of range";
    case Errc::kAlreadyExists: return "already exists";
    case Errc::kClosed: return "closed";
    case Errc::kExhausted: return "resources exhausted";
  }
  return "unknown";
}

namespace detail {
void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "HERALD_CHECK failed at %s:%d: %s: %s\n", file, line, cond, msg.c_str());
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

}  // namespace herald
