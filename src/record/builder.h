// BatchBuilder: writes a v2 record batch from
// records, for tests, the CLI producer, compaction and the group
// coordinator's __consumer_offsets writes.
//
// The builder copies each record as it is added, so the spans passed to add()
// need only live for that call. Single-threaded; reusable after reset().
//
//   record::BatchBuilder b(record::Compression::kLz4);
//   b.set_producer(producer_id, epoch, base_sequence);
//   HERALD_TRY(b.add(as_bytes("key"), as_bytes("value"), now_ms()));
//   HERALD_TRY(b.add(std::nullopt, as_bytes("v2"), now_ms(), {{"trace", as_bytes("abc")}}));
//   HERALD_ASSIGN_OR_RETURN(Bytes batch, b.build());   // CRC and max timestamp filled in
//
// Compaction keeps the original offset deltas and may drop records:
//
//   record::BatchBuilder b(original.compression());
//   b.set_base_offset(original.base_offset);
//   for (kept record r) HERALD_TRY(b.add(r.key, r.value, base_ts + r.timestamp_delta, r.headers, r.offset_delta));
//   b.set_last_offset_delta(original.last_offset_delta);
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"
#include "record/records.h"

namespace herald::record {

class BatchBuilder {
 public:
  explicit BatchBuilder(Compression compression = Compression::kNone);

  // Header fields. Defaults: base_offset 0, partition_leader_epoch -1, not
  // idempotent (producer id/epoch/base sequence -1), not transactional, not
  // control, CreateTime.
  BatchBuilder& set_base_offset(int64_t base_offset);
  BatchBuilder& set_partition_leader_epoch(int32_t epoch);
  BatchBuilder& set_producer(int64_t producer_id, int16_t producer_epoch, int32_t base_sequence);
  BatchBuilder& set_transactional(bool on);
  BatchBuilder& set_control(bool on);
  // LogAppendTime: attribute bit 3 set and max_timestamp := ts_ms.
  BatchBuilder& set_log_append_time(int64_t ts_ms);
  // For a batch without records: its max_timestamp (default -1). Kafka's
  // compaction keeps the max timestamp of a batch it empties, so that the
  // segment still ages by it under retention.ms.
  BatchBuilder& set_empty_max_timestamp(int64_t ts_ms);
  // Overrides last_offset_delta (default: the last record's offset delta, or 0
  // when there are no records). Must be >= the last record's offset delta,
  // checked by build().
  BatchBuilder& set_last_offset_delta(int32_t delta);

  // Appends a record with absolute timestamp `timestamp_ms`. base_timestamp is
  // the first record's timestamp. offset_delta defaults to the previous one + 1
  // (0 for the first record). Errors (kInvalidArgument, builder unchanged): an
  // explicit offset_delta that is negative or not above the previous one, or
  // a timestamp delta/field size that cannot be encoded.
  Result<void> add(std::optional<ByteSpan> key, std::optional<ByteSpan> value, int64_t timestamp_ms,
                   const std::vector<RecordHeader>& headers = {},
                   std::optional<int32_t> offset_delta = std::nullopt);
  // Appends a decoded record as-is (same offset delta), re-basing its timestamp
  // from `base_timestamp` (the batch it came from).
  Result<void> add(const Record& r, int64_t base_timestamp);

  int32_t record_count() const { return count_; }
  bool empty() const { return count_ == 0; }
  // Batch size if uncompressed (header + records so far).
  size_t uncompressed_size() const { return kBatchHeaderSize + records_.size(); }

  // Writes the batch: header, records (compressed as chosen), CRC. Does not
  // reset the builder. With no records the batch has records_count 0, base
  // timestamp -1 and max timestamp -1 or set_empty_max_timestamp's (Kafka's
  // empty batch kept by compaction to retain producer state). Errors: kInvalidArgument if last_offset_delta is below the
  // last record's offset delta or the batch would exceed INT32_MAX bytes;
  // compression errors.
  Result<Bytes> build() const;

  // Forgets the records; keeps compression and header settings.
  void reset();

 private:
  Compression compression_;
  int64_t base_offset_ = 0;
  int32_t partition_leader_epoch_ = -1;
  int64_t producer_id_ = -1;
  int16_t producer_epoch_ = -1;
  int32_t base_sequence_ = -1;
  bool transactional_ = false;
  bool control_ = false;
  std::optional<int64_t> log_append_time_;
  std::optional<int32_t> last_offset_delta_;
  int64_t empty_max_timestamp_ = -1;

  Bytes records_;  // encoded, uncompressed records area
  Writer body_;    // scratch for one record body
  int32_t count_ = 0;
  int32_t last_delta_ = -1;
  int64_t base_timestamp_ = -1;
  int64_t max_timestamp_ = -1;
};

}  // namespace herald::record
