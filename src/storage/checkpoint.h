// checkpoint.h: the per-log checkpoint file and the compaction swap marker.
// Byte layout: docs/storage-format.md sections 5 and 6.
//
// The checkpoint (file "checkpoint" in the partition directory) records what a
// restart needs so that it does not scan the log:
//   clean            the log was closed cleanly: trust log_end and the active segment's index
//   log_start_offset raised by retention and DeleteRecords; persisted before segments are deleted
//   recovery_point   base offset of the first segment whose data or index may be unsynced;
//                    after a crash, recovery scans from that segment on ...
//   recovery_position ... starting at this byte of it, if its index files describe exactly
//                    that prefix (the flusher persists the active segment's index every 64 MiB)
//   cleaner_offset   first offset compaction has not cleaned yet
// It is replaced atomically (tmp + fdatasync + rename + fsync dir).
//
//   Checkpoint c{...};
//   HERALD_TRY(write_checkpoint(fs, dir, c));
//   HERALD_ASSIGN_OR_RETURN(std::optional<Checkpoint> got, read_checkpoint(fs, dir));  // nullopt: none or corrupt
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "storage/file.h"

namespace herald::storage {

inline constexpr uint8_t kCheckpointVersion = 1;
inline constexpr size_t kCheckpointSize = 68;
inline constexpr const char* kCheckpointName = "checkpoint";
inline constexpr const char* kSwapMarkerName = "compaction.swap";

struct Checkpoint {
  bool clean = false;
  int64_t log_start_offset = 0;
  int64_t log_end_offset = 0;
  int64_t recovery_point = 0;
  int64_t active_base = 0;     // base offset of the active segment at the time of writing
  uint64_t active_size = 0;    // its size in bytes (checked on a clean start)
  int64_t cleaner_offset = 0;  // compaction: offsets below this were cleaned at least once
  uint64_t recovery_position = 0;  // synced, indexed prefix of the recovery-point segment

  bool operator==(const Checkpoint&) const = default;
};

Bytes encode_checkpoint(const Checkpoint& c);
// kTruncated / kCorruption (magic, version, CRC) on bad input.
Result<Checkpoint> decode_checkpoint(ByteSpan b);

Result<void> write_checkpoint(FileSystem& fs, const std::filesystem::path& dir, const Checkpoint& c);
// nullopt if the file is missing or does not decode (logged); I/O errors are returned.
Result<std::optional<Checkpoint>> read_checkpoint(FileSystem& fs, const std::filesystem::path& dir);

// One entry of the compaction swap marker: the segment at `base` is replaced
// by its ".cleaned" files, which also hold what the `absorbed` segments (the
// next ones in the log) held; those are deleted.
struct SwapEntry {
  int64_t base = 0;
  uint64_t log_size = 0;  // of the replacement .log (0 in version 1): open() checks it before deleting
  std::vector<int64_t> absorbed;
  bool operator==(const SwapEntry&) const = default;
};

// The compaction swap marker: the replacements that are committed. Decodes
// version 1 (no absorbed segments) too.
Bytes encode_swap_marker(const std::vector<SwapEntry>& entries);
Result<std::vector<SwapEntry>> decode_swap_marker(ByteSpan b);

}  // namespace herald::storage
