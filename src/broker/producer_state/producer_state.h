// Idempotent-producer state of one partition (KIP-98):
// per producer id, the current epoch and the last 5 appended batches, so a
// retried batch is answered with its original offset instead of appended
// twice, and a gap in sequence numbers is refused.
//
// Not thread-safe: the owning Partition guards it with its append mutex, and
// check() + record() happen under that one lock together with the append.
//
//   auto c = table.check(pid, epoch, first_seq, last_seq);
//   if (c.verdict == SeqVerdict::kDuplicate) answer(c.duplicate_base_offset);
//   else if (c.verdict == SeqVerdict::kAppend) { append(); table.record(...); }
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace herald::broker {

inline constexpr size_t kProducerWindow = 5;

struct ProducerBatch {
  int32_t first_seq;
  int32_t last_seq;
  int64_t base_offset;
  int64_t last_offset;
};

struct ProducerEntry {
  int16_t epoch = -1;
  std::deque<ProducerBatch> batches;  // oldest first, at most kProducerWindow
  int64_t last_append_ms = 0;
};

enum class SeqVerdict : uint8_t {
  kAppend,         // new batch in sequence (or first batch we know of)
  kDuplicate,      // one of the last 5 batches again: answer with its offset
  kOutOfOrder,     // OUT_OF_ORDER_SEQUENCE_NUMBER
  kInvalidEpoch,   // INVALID_PRODUCER_EPOCH (fenced by a newer epoch)
};

struct SeqCheck {
  SeqVerdict verdict;
  int64_t duplicate_base_offset = -1;
};

class ProducerStateTable {
 public:
  SeqCheck check(int64_t producer_id, int16_t epoch, int32_t first_seq, int32_t last_seq) const;
  void record(int64_t producer_id, int16_t epoch, int32_t first_seq, int32_t last_seq, int64_t base_offset,
              int64_t last_offset, int64_t now_ms);
  // Drops producers idle longer than `expiration_ms`; the log start does not matter.
  void expire(int64_t now_ms, int64_t expiration_ms);
  size_t size() const { return producers_.size(); }
  // The highest producer id in the table, or -1.
  int64_t max_producer_id() const;
  // The base offset of each producer's newest batch, ascending: compaction
  // must keep these batches (empty if need be) so that a restart that rebuilds
  // this table from the log still knows every producer's last sequence.
  std::vector<int64_t> last_batch_offsets() const;

  // Snapshot written at clean shutdown and by maintenance sweeps; `upto` is the log end it covers.
  // Format (docs/storage-format.md section 8): version u8 = 1, upto i64, count u32,
  // entries {pid i64, epoch i16, last_append_ms i64, n u8, n x {first i32, last i32, base i64, last_off i64}},
  // crc32c u32 of everything before it.
  Bytes encode_snapshot(int64_t upto) const;
  // Returns the offset the snapshot covers up to; kCorruption if the bytes do not check out.
  Result<int64_t> decode_snapshot(ByteSpan bytes);

 private:
  std::unordered_map<int64_t, ProducerEntry> producers_;
};

}  // namespace herald::broker
