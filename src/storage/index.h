// index.h: the sparse offset index (.index) and time index (.timeindex) of
// one segment, in memory and as files. Byte layout: docs/storage-format.md
// sections 3 and 4.
//
// An entry is taken every ~index_interval_bytes of log (Kafka's
// index.interval.bytes, redpanda segment_index.h):
//   offset entry (relative offset of a batch's base offset, file position of that batch)
//   time entry   (largest batch max_timestamp seen BEFORE that batch, relative offset of that batch)
// so "every batch before the entry's batch has max_timestamp <= entry.timestamp".
//
//   SegmentIndex idx(base);
//   idx.on_batch(header, position, 4096);      // for every batch, in file order
//   uint64_t pos = idx.lookup(offset);         // start scanning here for `offset`
//   int64_t from = idx.lookup_time(ts);        // first offset that can hold a record >= ts
//
// Both files carry the segment's summary (next offset, size, max timestamp),
// so a clean start needs no scan: a closed segment's metadata comes from its
// index header, and the header's log_size says whether the index still
// describes the .log. SegmentIndex is plain data, not thread-safe; Segment
// guards it with a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"

namespace herald::storage {

inline constexpr uint8_t kIndexVersion = 1;
inline constexpr size_t kIndexHeaderSize = 72;
inline constexpr size_t kOffsetEntrySize = 8;
inline constexpr size_t kTimeEntrySize = 12;

// What a clean start needs to know about a segment without reading its log.
struct SegmentSummary {
  int64_t base_offset = 0;
  int64_t next_offset = 0;           // last offset of the last batch + 1; base_offset when empty
  uint64_t log_size = 0;             // bytes of .log this summary and the entries describe
  int64_t max_timestamp = -1;        // largest batch max_timestamp; -1 when empty
  int64_t max_timestamp_batch = -1;  // base offset of the first batch with max_timestamp
  int64_t first_timestamp = -1;      // max_timestamp of the first batch (segment.ms)
  int64_t cleaned_at_ms = -1;        // first compaction of this segment (tombstone clock); -1 never
  bool has_tombstones = false;       // compaction kept tombstones here (header flags bit 0)

  bool operator==(const SegmentSummary&) const = default;
};

struct OffsetEntry {
  uint32_t relative_offset;  // batch base offset - segment base offset
  uint32_t position;         // byte position of that batch in .log
  bool operator==(const OffsetEntry&) const = default;
};

struct TimeEntry {
  int64_t timestamp;         // max_timestamp of every batch before the one at relative_offset
  uint32_t relative_offset;  // a batch base offset that also has an OffsetEntry
  bool operator==(const TimeEntry&) const = default;
};

class SegmentIndex {
 public:
  explicit SegmentIndex(int64_t base_offset);

  // Records one batch at `position` (batches must come in file order). Takes
  // an entry when >= interval bytes were added since the last one.
  void on_batch(const record::BatchHeader& h, uint64_t position, int32_t interval);

  // Byte position of the last indexed batch whose base offset <= offset (0 if none).
  uint64_t lookup(int64_t offset) const;
  // An offset at or before the first record with timestamp >= ts: the batch of
  // the last time entry whose timestamp < ts, or the segment base.
  int64_t lookup_time(int64_t ts) const;

  const SegmentSummary& summary() const { return summary_; }
  SegmentSummary& mutable_summary() { return summary_; }
  const std::vector<OffsetEntry>& offsets() const { return offsets_; }
  const std::vector<TimeEntry>& times() const { return times_; }
  // Heap and object bytes this index holds.
  size_t memory_bytes() const {
    return sizeof(*this) + offsets_.capacity() * sizeof(OffsetEntry) + times_.capacity() * sizeof(TimeEntry);
  }

  Bytes encode_offset_index() const;
  Bytes encode_time_index() const;
  // Decodes both files and checks magic, version, CRC, base offset and that
  // both headers agree. kCorruption/kTruncated on any mismatch.
  static Result<SegmentIndex> decode(ByteSpan offset_file, ByteSpan time_file, int64_t base_offset);

 private:
  SegmentSummary summary_;
  std::vector<OffsetEntry> offsets_;
  std::vector<TimeEntry> times_;
  uint64_t bytes_since_entry_ = 0;
  int64_t running_max_ts_ = -1;
};

}  // namespace herald::storage
