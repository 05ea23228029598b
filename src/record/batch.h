// Kafka record batch v2 (magic 2): the 61-byte header, integrity and produce
// validation, splitting a `records` buffer, and the broker's in-place rewrites.
//
// The same bytes travel on the wire and sit on disk, so Herald parses the
// header, checks length and CRC, and stores the batch as it came (layout:
// https://kafka.apache.org/documentation/#recordbatch; validation rules below). Every function here
// works on borrowed bytes and never allocates for the happy path.
//
// Usage (a Produce handler):
//
//   auto v = record::validate_produce_batch(partition_records);
//   if (v.error != record::BatchError::kNone) return map_to_kafka_error(v.error, v.message);
//   Bytes batch(partition_records.begin(), partition_records.end());
//   record::set_base_offset(batch, next_offset);             // CRC unaffected
//   record::set_partition_leader_epoch(batch, leader_epoch);  // CRC unaffected
//
// Usage (storage recovery):
//
//   auto h = record::check_integrity(bytes_of_one_batch);
//   if (!h) truncate_here(h.error().message);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace herald::record {

inline constexpr size_t kBatchHeaderSize = 61;      // bytes of the v2 batch header
inline constexpr size_t kBatchLengthOverhead = 12;  // base_offset + batch_length fields
inline constexpr int8_t kMagicV2 = 2;

// Smallest legal batch_length: the header after the batch_length field.
inline constexpr int32_t kMinBatchLength = static_cast<int32_t>(kBatchHeaderSize - kBatchLengthOverhead);

// Byte offsets of the header fields inside a batch.
inline constexpr size_t kBaseOffsetOffset = 0;
inline constexpr size_t kBatchLengthOffset = 8;
inline constexpr size_t kPartitionLeaderEpochOffset = 12;
inline constexpr size_t kMagicOffset = 16;
inline constexpr size_t kCrcOffset = 17;
inline constexpr size_t kAttributesOffset = 21;  // the CRC covers [kAttributesOffset, end)
inline constexpr size_t kLastOffsetDeltaOffset = 23;
inline constexpr size_t kBaseTimestampOffset = 27;
inline constexpr size_t kMaxTimestampOffset = 35;
inline constexpr size_t kProducerIdOffset = 43;
inline constexpr size_t kProducerEpochOffset = 51;
inline constexpr size_t kBaseSequenceOffset = 53;
inline constexpr size_t kRecordsCountOffset = 57;

// Attribute bits.
inline constexpr int16_t kCompressionMask = 0x07;     // bits 0-2
inline constexpr int16_t kTimestampTypeBit = 0x08;    // bit 3: LogAppendTime
inline constexpr int16_t kTransactionalBit = 0x10;    // bit 4
inline constexpr int16_t kControlBit = 0x20;          // bit 5
inline constexpr int16_t kDeleteHorizonBit = 0x40;    // bit 6 (KIP-534)
inline constexpr int16_t kReservedAttributeMask = static_cast<int16_t>(0xff80);  // bits 7-15

enum class Compression : uint8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };
enum class TimestampType : uint8_t { kCreateTime = 0, kLogAppendTime = 1 };

// True for the five codecs Kafka defines (attribute values 5-7 are not).
constexpr bool is_known_compression(Compression c) { return static_cast<uint8_t>(c) <= 4; }
// "none", "gzip", "snappy", "lz4", "zstd" or "unknown(N)".
std::string compression_name(Compression c);

// The decoded 61-byte header. Plain data; a default-constructed header is not a
// valid batch (batch_length 0).
struct BatchHeader {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t partition_leader_epoch = 0;
  int8_t magic = 0;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t records_count = 0;

  // Bytes of the whole batch: batch_length + 12. Only meaningful once
  // parse_header accepted the header (batch_length >= 49).
  size_t size_bytes() const;
  // Offset of the last record: base_offset + last_offset_delta.
  int64_t last_offset() const;
  // Bits 0-2. May be an unknown value (5-7): check is_known_compression().
  Compression compression() const;
  TimestampType timestamp_type() const;
  bool is_transactional() const;
  bool is_control() const;
  bool has_delete_horizon() const;
  // Sequence of the last record: base_sequence + last_offset_delta, wrapping
  // past INT32_MAX to 0 (Kafka DefaultRecordBatch.incrementSequence). -1 when
  // base_sequence is -1 (not idempotent).
  int32_t last_sequence() const;

  bool operator==(const BatchHeader&) const = default;
};

// Decodes the 61-byte header at the start of `bytes`.
// Errors: kTruncated if fewer than 61 bytes, kCorruption if batch_length < 49.
// Does not check the magic, the CRC, or that the whole batch is present.
Result<BatchHeader> parse_header(ByteSpan bytes);

// Writes `h` as 61 header bytes to out[0..61). Writes h.crc as given (callers
// building a batch call compute_crc afterwards). Requires out.size() >= 61.
void write_header(const BatchHeader& h, MutableByteSpan out);

// Integrity of one stored batch (what storage recovery checks), in this order:
//   fewer than 61 bytes / batch_length+12 > bytes.size()  -> kTruncated
//   batch_length < 49 / batch_length+12 < bytes.size()    -> kCorruption
//   magic != 2                                            -> kCorruption
//   CRC-32C over [21, end) != stored crc                  -> kCorruption
// The message names the failed check. Returns the parsed header on success.
// Crc::kSkip leaves out the CRC, for bytes whose CRC the caller has verified.
enum class Crc { kCheck, kSkip };
Result<BatchHeader> check_integrity(ByteSpan bytes, Crc crc = Crc::kCheck);

// Which Kafka error a rejected produce batch maps to.
enum class BatchError : uint8_t {
  kNone,
  kCorruptMessage,          // CORRUPT_MESSAGE (2): length or CRC
  kInvalidRecord,           // INVALID_RECORD (87): everything else
  kUnsupportedCompression,  // UNSUPPORTED_COMPRESSION_TYPE (76): codec id 5-7
};
const char* batch_error_name(BatchError e);

struct Validated {
  BatchHeader header;  // meaningful when the header at least parsed
  BatchError error = BatchError::kNone;
  std::string message;  // empty when error == kNone
};

// What a produce batch must pass (LogValidator rules 1-6 of §3.26; the broker
// does timestamps, size limits and compaction keys). Checks, in order:
//   header parses, batch_length+12 == bytes.size()         (kCorruptMessage)
//   magic == 2                                             (kInvalidRecord)
//   CRC matches                                            (kCorruptMessage)
//   attribute bits 7-15 are zero                           (kInvalidRecord)
//   compression id is 0-4                                  (kUnsupportedCompression)
//   records_count > 0, last_offset_delta + 1 == count      (kInvalidRecord)
//   not a control batch                                    (kInvalidRecord)
//   producer_id >= 0 implies base_sequence >= 0            (kInvalidRecord)
// Does not look inside the records (see records.h for that).
Validated validate_produce_batch(ByteSpan bytes);

// Splits a buffer of whole batches back to back (a Produce `records` field or a
// range read from a segment) into one span per batch; spans point into `bytes`.
// An empty buffer gives an empty vector. Errors: kTruncated if the buffer ends
// inside a batch, kCorruption if a batch_length is below 49. Checks neither magic
// nor CRC.
Result<std::vector<ByteSpan>> split_batches(ByteSpan bytes);

// CRC-32C of bytes [21, end) of a batch (the value the crc field must hold).
// Requires batch.size() >= 21.
uint32_t compute_crc(ByteSpan batch);

// In-place rewrites. Each requires batch.size() >= 61 (aborts otherwise).
void set_base_offset(MutableByteSpan batch, int64_t base_offset);        // bytes 0..7, CRC unaffected
void set_partition_leader_epoch(MutableByteSpan batch, int32_t epoch);  // bytes 12..15, CRC unaffected
// Sets attribute bit 3 (LogAppendTime) and max_timestamp := ts_ms, then
// recomputes the CRC over the whole span.
void set_log_append_time(MutableByteSpan batch, int64_t ts_ms);
// Sets max_timestamp and recomputes the CRC (CreateTime max correction).
void set_max_timestamp(MutableByteSpan batch, int64_t ts_ms);

}  // namespace herald::record
