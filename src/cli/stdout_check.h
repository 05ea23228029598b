// The exit status of a command whose output went to stdout: a write that
// failed (a full disk, a closed file) makes it 1 with a message, so that
// `herald topic list > file` never loses output silently. `consume` reports
// its own write errors as it goes; this catches every other command.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace herald::cli {

inline int checked_stdout_status(int rc) {
  errno = 0;
  if (std::fflush(stdout) == 0 && std::ferror(stdout) == 0) return rc;
  if (rc != 0) return rc;  // failed already, and said why
  const int err = errno;
  std::fprintf(stderr, "herald: writing to stdout failed: %s\n", err != 0 ? std::strerror(err) : "write error");
  return 1;
}

}  // namespace herald::cli
