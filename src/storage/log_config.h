// Per-log configuration: the storage half of Kafka's topic configs.
//
//   LogConfig c;                       // defaults = Kafka's, retention forever
//   c.segment_bytes = 64 << 20;
//   c.flush_policy = FlushPolicy::kAlways;
//   auto log = PartitionLog::open(dir, c, &flusher);
//
// A LogConfig is plain data. PartitionLog::set_config swaps it atomically; a
// change of segment_* applies from the next append, retention_* and
// compaction settings from the next apply_retention / compact call.
#pragma once

#include <cstdint>

namespace herald::storage {

enum class FlushPolicy : uint8_t {
  kAlways,    // durable only after fdatasync; the flusher group-commits
  kInterval,  // the flusher syncs every flush_interval_ms; appends count as acked when written
};

struct LogConfig {
  int64_t segment_bytes = 1073741824;      // roll when the active segment would exceed this
  int64_t segment_ms = 604800000;          // roll when the active segment's first batch is older
  int64_t retention_ms = -1;               // -1 = forever
  int64_t retention_bytes = -1;            // -1 = unlimited
  bool compact = false;                    // cleanup.policy contains "compact"
  bool delete_retention = true;            // cleanup.policy contains "delete" (retention applies)
  int64_t delete_retention_ms = 86400000;  // tombstones kept this long after compaction reaches them
  int64_t min_compaction_lag_ms = 0;
  // A compaction pass runs once the dirty (not yet compacted) bytes are at
  // least this share of the compactable log, or once a dirty segment's first
  // batch is older than max_compaction_lag_ms (which also caps segment_ms).
  double min_cleanable_dirty_ratio = 0.5;
  int64_t max_compaction_lag_ms = INT64_MAX;
  FlushPolicy flush_policy = FlushPolicy::kAlways;
  int64_t flush_interval_ms = 1000;        // kInterval only
  int32_t index_interval_bytes = 4096;
};

}  // namespace herald::storage
