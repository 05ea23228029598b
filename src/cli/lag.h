// Consumer-group lag arithmetic for `herald group describe`: lag per
// partition in records, and the catch-up estimate from two samples of the
// committed offsets and log-end offsets taken a moment apart. Pure functions,
// so they are unit-tested without a broker (tests/cli/lag_test.cc).
//
// Usage:
//   LagSample a = ..., b = ...;                // b taken `dt` seconds after a
//   CatchUp eta = estimate_catch_up(a, b, dt);
//   if (eta.seconds) fmt::print("caught up in ~{}\n", format_duration(*eta.seconds));
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace herald::cli {

using TopicPartition = std::pair<std::string, int32_t>;

struct PartitionPosition {
  int64_t committed = -1;  // -1: the group has no committed offset here
  int64_t log_end = 0;     // high watermark
};

// One observation of a group's positions.
using LagSample = std::map<TopicPartition, PartitionPosition>;

// Records between the committed offset and the log end; nullopt without a commit.
std::optional<int64_t> partition_lag(const PartitionPosition& p);

// Sum of the lag over partitions that have a committed offset.
int64_t total_lag(const LagSample& s);

struct CatchUp {
  enum class Status {
    kCaughtUp,        // no lag in the second sample
    kCatchingUp,      // `seconds` holds the estimate
    kNoProgress,      // nothing was committed between the samples
    kFallingBehind,   // records arrive at least as fast as they are consumed
  };
  Status status = Status::kNoProgress;
  std::optional<double> seconds;  // kCatchingUp only
  double consume_rate = 0;        // records/s committed between the samples
  double produce_rate = 0;        // records/s appended between the samples
  int64_t lag = 0;                // total lag in the second sample
};

// Linear estimate: lag / (consume_rate - produce_rate). Only partitions with a
// committed offset in both samples count towards the consume rate.
CatchUp estimate_catch_up(const LagSample& first, const LagSample& second, double dt_seconds);

// "0s", "850ms", "4.2s", "42s", "3m05s", "2h10m", "3d04h".
std::string format_duration(double seconds);

}  // namespace herald::cli
