// Whole-string number parsing with an error that names what was parsed.
//
//   HERALD_ASSIGN_OR_RETURN(int64_t ms, parse_integer<int64_t>("retention.ms", text));
#pragma once

#include <fmt/format.h>

#include <charconv>
#include <string_view>

#include "common/result.h"

namespace herald {

// All of `text` as a decimal integer of type T (a leading '-' for signed T); otherwise, or out of
// T's range, kInvalidArgument "<what>: '<text>' is not an integer".
template <class T>
Result<T> parse_integer(std::string_view what, std::string_view text) {
  T v{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return Error{Errc::kInvalidArgument, fmt::format("{}: '{}' is not an integer", what, text)};
  }
  return v;
}

}  // namespace herald
