// Checks shared by the CLI's flags.
//
//   cmd->add_option("--timeout", seconds)->check(duration_check(kMaxSeconds));
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace herald::cli {

// The longest duration a flag takes, in seconds: far beyond any sensible wait, and small
// enough for milliseconds in an int.
inline constexpr double kMaxSeconds = 1'000'000;

// A duration flag: a finite number in (0, max], or [0, max] with `zero_ok` (so nan, inf and
// values that overflow once turned into milliseconds are refused before they are used).
inline CLI::Validator duration_check(double max, bool zero_ok = false) {
  return CLI::Validator(
      [max, zero_ok](std::string& text) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(text, v) || !std::isfinite(v) || v < 0 || (v == 0 && !zero_ok) || v > max) {
          return fmt::format("'{}' is not a number in {}0, {}]", text, zero_ok ? "[" : "(", max);
        }
        return {};
      },
      "");
}

// A whole number in [min, max] (CLI11's PositiveNumber and NonNegativeNumber would name a bound of
// 309 digits in their message).
inline CLI::Validator integer_check(int64_t min, int64_t max = std::numeric_limits<int32_t>::max()) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        int64_t v = 0;
        if (!CLI::detail::lexical_cast(text, v) || v < min || v > max) {
          return fmt::format("'{}' is not a whole number in [{}, {}]", text, min, max);
        }
        return {};
      },
      "");
}

}  // namespace herald::cli
