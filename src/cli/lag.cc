#include "cli/lag.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace herald::cli {

std::optional<int64_t> partition_lag(const PartitionPosition& p) {
  if (p.committed < 0) return std::nullopt;
  return std::max<int64_t>(0, p.log_end - p.committed);
}

int64_t total_lag(const LagSample& s) {
  int64_t total = 0;
  for (const auto& [tp, pos] : s) total += partition_lag(pos).value_or(0);
  return total;
}

CatchUp estimate_catch_up(const LagSample& first, const LagSample& second, double dt_seconds) {
  CatchUp out;
  out.lag = total_lag(second);
  int64_t consumed = 0;
  int64_t produced = 0;
  for (const auto& [tp, b] : second) {
    auto it = first.find(tp);
    if (it == first.end()) continue;
    const auto& a = it->second;
    if (a.committed >= 0 && b.committed >= 0) consumed += std::max<int64_t>(0, b.committed - a.committed);
    produced += std::max<int64_t>(0, b.log_end - a.log_end);
  }
  if (dt_seconds > 0) {
    out.consume_rate = static_cast<double>(consumed) / dt_seconds;
    out.produce_rate = static_cast<double>(produced) / dt_seconds;
  }
  if (out.lag == 0) {
    out.status = CatchUp::Status::kCaughtUp;
  } else if (consumed == 0 || dt_seconds <= 0) {
    out.status = CatchUp::Status::kNoProgress;
  } else if (out.consume_rate <= out.produce_rate) {
    out.status = CatchUp::Status::kFallingBehind;
  } else {
    out.status = CatchUp::Status::kCatchingUp;
    out.seconds = static_cast<double>(out.lag) / (out.consume_rate - out.produce_rate);
  }
  return out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds)) return "n/a";
  if (seconds <= 0) return "0s";
  if (seconds < 1) return fmt::format("{}ms", static_cast<int64_t>(std::llround(seconds * 1000)));
  if (seconds < 10) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace herald::cli
