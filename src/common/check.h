// HERALD_CHECK: invariants whose breach would lose or corrupt data. They abort
// in release builds too (like redpanda's vassert); plain assert() is only for
// cheap debug-only checks.
//
//   HERALD_CHECK(offset >= next_offset_, "offset went backwards: {} < {}", offset, next_offset_);
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>

namespace herald::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace herald::detail

#define HERALD_CHECK(cond, ...)                                                            \
  do {                                                                                     \
    if (!(cond)) [[unlikely]] {                                                            \
      ::herald::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__)); \
    }                                                                                      \
  } while (0)
