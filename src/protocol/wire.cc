#include "protocol/wire.h"

#include <string>

namespace herald::protocol::wire {

Error truncated(const char* where) { return Error{Errc::kTruncated, std::string(where) + ": truncated"}; }
Error corrupt(const char* where, std::string_view what) {
  return Error{Errc::kCorruption, std::string(where) + ": " + std::string(what)};
}
Error null_not_allowed(const char* where) { return corrupt(where, "null in a version where it is not nullable"); }
Error unsupported_version(const char* message, int16_t version) {
  return Error{Errc::kUnsupported, std::string(message) + ": version " + std::to_string(version) + " not supported"};
}

Result<void> read_uvarint32(Reader& r, uint32_t& v, const char* where) {
  if (r.get_uvarint32(v)) return {};
  // Failing with 5+ bytes left means the varint itself is bad, not short.
  if (r.remaining() >= 5) return corrupt(where, "bad varint");
  return truncated(where);
}

Result<void> read_string_length(Reader& r, bool flex, int64_t& len, const char* where) {
  if (flex) {
    uint32_t n = 0;
    HERALD_TRY(read_uvarint32(r, n, where));
    len = int64_t{n} - 1;
  } else {
    int16_t n = 0;
    if (!r.get_i16(n)) return truncated(where);
    if (n < -1) return corrupt(where, "negative string length");
    len = n;
  }
  if (len > static_cast<int64_t>(kMaxStringLength)) return corrupt(where, "string longer than 32767 bytes");
  if (len > 0 && static_cast<uint64_t>(len) > r.remaining()) return truncated(where);
  return {};
}
Result<void> read_string(Reader& r, bool flex, std::string& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_string_length(r, flex, len, where));
  if (len < 0) return null_not_allowed(where);
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.assign(as_string_view(s));
  return {};
}
Result<void> read_nullable_string(Reader& r, bool flex, bool nullable, std::optional<std::string>& out,
                                         const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_string_length(r, flex, len, where));
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.reset();
    return {};
  }
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.emplace(as_string_view(s));
  return {};
}

Result<void> read_bytes_length(Reader& r, bool flex, int64_t& len, const char* where) {
  if (flex) {
    uint32_t n = 0;
    HERALD_TRY(read_uvarint32(r, n, where));
    len = int64_t{n} - 1;
  } else {
    int32_t n = 0;
    if (!r.get_i32(n)) return truncated(where);
    if (n < -1) return corrupt(where, "negative bytes length");
    len = n;
  }
  if (len > 0 && static_cast<uint64_t>(len) > r.remaining()) return truncated(where);
  return {};
}
Result<void> read_bytes(Reader& r, bool flex, Bytes& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  if (len < 0) return null_not_allowed(where);
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.assign(s.begin(), s.end());
  return {};
}
Result<void> read_nullable_bytes(Reader& r, bool flex, bool nullable, std::optional<Bytes>& out,
                                        const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.reset();
    return {};
  }
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.emplace(s.begin(), s.end());
  return {};
}
Result<void> read_records(Reader& r, bool flex, bool nullable, Records& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  out.owned.reset();
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.is_null = true;
    out.view = {};
    return {};
  }
  out.is_null = false;
  r.get_span(static_cast<size_t>(len), out.view);
  return {};
}

Result<void> read_array_length(Reader& r, bool flex, size_t min_element_size, int64_t& n,
                                      const char* where) {
  if (flex) {
    uint32_t u = 0;
    HERALD_TRY(read_uvarint32(r, u, where));
    n = int64_t{u} - 1;
  } else {
    int32_t i = 0;
    if (!r.get_i32(i)) return truncated(where);
    if (i < -1) return corrupt(where, "negative array length");
    n = i;
  }
  if (n > 0 && static_cast<uint64_t>(n) > r.remaining() / min_element_size) {
    return corrupt(where, "array count " + std::to_string(n) + " exceeds the remaining " +
                              std::to_string(r.remaining()) + " bytes");
  }
  return {};
}

namespace {
thread_local DecodeBudget* current_budget = nullptr;
}  // namespace

DecodeBudget::DecodeBudget(size_t bytes) : left_(bytes), outer_(current_budget) { current_budget = this; }
DecodeBudget::~DecodeBudget() { current_budget = outer_; }

Result<void> charge_decode(size_t bytes, const char* where) {
  DecodeBudget* b = current_budget;
  if (b == nullptr) return {};
  if (bytes > b->left_) {
    return corrupt(where, "decoding needs more than " + std::to_string(b->left_) +
                              " more bytes of memory, the most a request of this size may take");
  }
  b->left_ -= bytes;
  return {};
}

Result<void> read_tagged_field(Reader& r, uint32_t& tag, ByteSpan& body, const char* where) {
  uint32_t size = 0;
  HERALD_TRY(read_uvarint32(r, tag, where));
  HERALD_TRY(read_uvarint32(r, size, where));
  if (!r.get_span(size, body)) return truncated(where);
  return {};
}
Result<void> skip_tagged_fields(Reader& r, const char* where) {
  uint32_t count = 0;
  HERALD_TRY(read_uvarint32(r, count, where));
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t tag = 0;
    ByteSpan body;
    HERALD_TRY(read_tagged_field(r, tag, body, where));
  }
  return {};
}

}  // namespace herald::protocol::wire
