#include "record/batch.h"

#include <fmt/format.h>

#include <limits>

#include "common/check.h"
#include "common/crc32c.h"

namespace herald::record {

std::string compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kSnappy: return "snappy";
    case Compression::kLz4: return "lz4";
    case Compression::kZstd: return "zstd";
  }
  return fmt::format("unknown({})", static_cast<int>(c));
}

const char* batch_error_name(BatchError e) {
  switch (e) {
    case BatchError::kNone: return "none";
    case BatchError::kCorruptMessage: return "corrupt message";
    case BatchError::kInvalidRecord: return "invalid record";
    case BatchError::kUnsupportedCompression: return "unsupported compression";
  }
  return "unknown";
}

size_t BatchHeader::size_bytes() const {
  return static_cast<size_t>(static_cast<int64_t>(batch_length) +
                             static_cast<int64_t>(kBatchLengthOverhead));
}

int64_t BatchHeader::last_offset() const { return base_offset + last_offset_delta; }

Compression BatchHeader::compression() const {
  return static_cast<Compression>(attributes & kCompressionMask);
}

TimestampType BatchHeader::timestamp_type() const {
  return (attributes & kTimestampTypeBit) != 0 ? TimestampType::kLogAppendTime
                                               : TimestampType::kCreateTime;
}

bool BatchHeader::is_transactional() const { return (attributes & kTransactionalBit) != 0; }
bool BatchHeader::is_control() const { return (attributes & kControlBit) != 0; }
bool BatchHeader::has_delete_horizon() const { return (attributes & kDeleteHorizonBit) != 0; }

int32_t BatchHeader::last_sequence() const {
  if (base_sequence == -1) return -1;
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  int64_t s = static_cast<int64_t>(base_sequence) + last_offset_delta;
  if (s > kMax) s -= kMax + 1;
  return static_cast<int32_t>(s);
}

Result<BatchHeader> parse_header(ByteSpan bytes) {
  if (bytes.size() < kBatchHeaderSize) {
    return Error{Errc::kTruncated,
                 fmt::format("batch header: {} bytes, need {}", bytes.size(), kBatchHeaderSize)};
  }
  const uint8_t* p = bytes.data();
  BatchHeader h;
  h.base_offset = static_cast<int64_t>(load_be64(p + kBaseOffsetOffset));
  h.batch_length = static_cast<int32_t>(load_be32(p + kBatchLengthOffset));
  h.partition_leader_epoch = static_cast<int32_t>(load_be32(p + kPartitionLeaderEpochOffset));
  h.magic = static_cast<int8_t>(p[kMagicOffset]);
  h.crc = load_be32(p + kCrcOffset);
  h.attributes = static_cast<int16_t>(load_be16(p + kAttributesOffset));
  h.last_offset_delta = static_cast<int32_t>(load_be32(p + kLastOffsetDeltaOffset));
  h.base_timestamp = static_cast<int64_t>(load_be64(p + kBaseTimestampOffset));
  h.max_timestamp = static_cast<int64_t>(load_be64(p + kMaxTimestampOffset));
  h.producer_id = static_cast<int64_t>(load_be64(p + kProducerIdOffset));
  h.producer_epoch = static_cast<int16_t>(load_be16(p + kProducerEpochOffset));
  h.base_sequence = static_cast<int32_t>(load_be32(p + kBaseSequenceOffset));
  h.records_count = static_cast<int32_t>(load_be32(p + kRecordsCountOffset));
  if (h.batch_length < kMinBatchLength) {
    return Error{Errc::kCorruption,
                 fmt::format("batch length {} below minimum {}", h.batch_length, kMinBatchLength)};
  }
  // base_offset is outside the CRC: a damaged one must not make last_offset() overflow.
  if ((h.last_offset_delta > 0 && h.base_offset > INT64_MAX - h.last_offset_delta) ||
      (h.last_offset_delta < 0 && h.base_offset < INT64_MIN - h.last_offset_delta)) {
    return Error{Errc::kCorruption,
                 fmt::format("batch offsets {} + {} out of range", h.base_offset, h.last_offset_delta)};
  }
  return h;
}

void write_header(const BatchHeader& h, MutableByteSpan out) {
  HERALD_CHECK(out.size() >= kBatchHeaderSize, "write_header: {} bytes", out.size());
  uint8_t* p = out.data();
  store_be64(p + kBaseOffsetOffset, static_cast<uint64_t>(h.base_offset));
  store_be32(p + kBatchLengthOffset, static_cast<uint32_t>(h.batch_length));
  store_be32(p + kPartitionLeaderEpochOffset, static_cast<uint32_t>(h.partition_leader_epoch));
  p[kMagicOffset] = static_cast<uint8_t>(h.magic);
  store_be32(p + kCrcOffset, h.crc);
  store_be16(p + kAttributesOffset, static_cast<uint16_t>(h.attributes));
  store_be32(p + kLastOffsetDeltaOffset, static_cast<uint32_t>(h.last_offset_delta));
  store_be64(p + kBaseTimestampOffset, static_cast<uint64_t>(h.base_timestamp));
  store_be64(p + kMaxTimestampOffset, static_cast<uint64_t>(h.max_timestamp));
  store_be64(p + kProducerIdOffset, static_cast<uint64_t>(h.producer_id));
  store_be16(p + kProducerEpochOffset, static_cast<uint16_t>(h.producer_epoch));
  store_be32(p + kBaseSequenceOffset, static_cast<uint32_t>(h.base_sequence));
  store_be32(p + kRecordsCountOffset, static_cast<uint32_t>(h.records_count));
}

uint32_t compute_crc(ByteSpan batch) {
  HERALD_CHECK(batch.size() >= kAttributesOffset, "compute_crc: {} bytes", batch.size());
  return crc32c::value(batch.subspan(kAttributesOffset));
}

Result<BatchHeader> check_integrity(ByteSpan bytes, Crc crc_check) {
  HERALD_ASSIGN_OR_RETURN(BatchHeader h, parse_header(bytes));
  if (h.size_bytes() > bytes.size()) {
    return Error{Errc::kTruncated, fmt::format("batch at offset {}: length says {} bytes, {} present",
                                               h.base_offset, h.size_bytes(), bytes.size())};
  }
  if (h.size_bytes() < bytes.size()) {
    return Error{Errc::kCorruption,
                 fmt::format("batch at offset {}: length says {} bytes, {} present (trailing bytes)",
                             h.base_offset, h.size_bytes(), bytes.size())};
  }
  if (h.magic != kMagicV2) {
    return Error{Errc::kCorruption,
                 fmt::format("batch at offset {}: magic {}, expected 2", h.base_offset, h.magic)};
  }
  if (crc_check == Crc::kSkip) return h;
  if (uint32_t crc = compute_crc(bytes); crc != h.crc) {
    return Error{Errc::kCorruption,
                 fmt::format("batch at offset {}: crc mismatch (stored {:#010x}, computed {:#010x})",
                             h.base_offset, h.crc, crc)};
  }
  return h;
}

Validated validate_produce_batch(ByteSpan bytes) {
  Validated v;
  auto fail = [&v](BatchError e, std::string msg) {
    v.error = e;
    v.message = std::move(msg);
    return std::move(v);
  };
  auto parsed = parse_header(bytes);
  if (!parsed) return fail(BatchError::kCorruptMessage, parsed.error().message);
  v.header = *parsed;
  const BatchHeader& h = v.header;
  if (h.size_bytes() != bytes.size()) {
    return fail(BatchError::kCorruptMessage,
                fmt::format("batch length says {} bytes, {} present", h.size_bytes(), bytes.size()));
  }
  if (h.magic != kMagicV2) {
    return fail(BatchError::kInvalidRecord, fmt::format("magic {}, expected 2", h.magic));
  }
  if (uint32_t crc = compute_crc(bytes); crc != h.crc) {
    return fail(BatchError::kCorruptMessage,
                fmt::format("crc mismatch (stored {:#010x}, computed {:#010x})", h.crc, crc));
  }
  if ((h.attributes & kReservedAttributeMask) != 0) {
    return fail(BatchError::kInvalidRecord,
                fmt::format("reserved attribute bits set ({:#06x})", static_cast<uint16_t>(h.attributes)));
  }
  if (!is_known_compression(h.compression())) {
    return fail(BatchError::kUnsupportedCompression,
                fmt::format("unknown compression id {}", static_cast<int>(h.compression())));
  }
  if (h.records_count <= 0) {
    return fail(BatchError::kInvalidRecord, fmt::format("records count {}", h.records_count));
  }
  if (static_cast<int64_t>(h.last_offset_delta) + 1 != h.records_count) {
    return fail(BatchError::kInvalidRecord,
                fmt::format("last offset delta {} does not match records count {}",
                            h.last_offset_delta, h.records_count));
  }
  if (h.is_control()) return fail(BatchError::kInvalidRecord, "control batch from a client");
  if (h.producer_id >= 0 && h.base_sequence < 0) {
    return fail(BatchError::kInvalidRecord,
                fmt::format("producer id {} with base sequence {}", h.producer_id, h.base_sequence));
  }
  return v;
}

Result<std::vector<ByteSpan>> split_batches(ByteSpan bytes) {
  std::vector<ByteSpan> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    ByteSpan rest = bytes.subspan(pos);
    if (rest.size() < kBatchLengthOverhead) {
      return Error{Errc::kTruncated,
                   fmt::format("partial batch at byte {}: {} bytes left", pos, rest.size())};
    }
    auto length = static_cast<int32_t>(load_be32(rest.data() + kBatchLengthOffset));
    if (length < kMinBatchLength) {
      return Error{Errc::kCorruption,
                   fmt::format("batch at byte {}: length {} below minimum {}", pos, length, kMinBatchLength)};
    }
    size_t size = static_cast<size_t>(length) + kBatchLengthOverhead;
    if (size > rest.size()) {
      return Error{Errc::kTruncated, fmt::format("partial batch at byte {}: needs {} bytes, {} left",
                                                 pos, size, rest.size())};
    }
    out.push_back(rest.first(size));
    pos += size;
  }
  return out;
}

namespace {
void require_header(MutableByteSpan batch, const char* what) {
  HERALD_CHECK(batch.size() >= kBatchHeaderSize, "{}: batch of {} bytes", what, batch.size());
}
}  // namespace

void set_base_offset(MutableByteSpan batch, int64_t base_offset) {
  require_header(batch, "set_base_offset");
  store_be64(batch.data() + kBaseOffsetOffset, static_cast<uint64_t>(base_offset));
}

void set_partition_leader_epoch(MutableByteSpan batch, int32_t epoch) {
  require_header(batch, "set_partition_leader_epoch");
  store_be32(batch.data() + kPartitionLeaderEpochOffset, static_cast<uint32_t>(epoch));
}

void set_max_timestamp(MutableByteSpan batch, int64_t ts_ms) {
  require_header(batch, "set_max_timestamp");
  store_be64(batch.data() + kMaxTimestampOffset, static_cast<uint64_t>(ts_ms));
  store_be32(batch.data() + kCrcOffset, compute_crc(batch));
}

void set_log_append_time(MutableByteSpan batch, int64_t ts_ms) {
  require_header(batch, "set_log_append_time");
  uint16_t attrs = load_be16(batch.data() + kAttributesOffset);
  store_be16(batch.data() + kAttributesOffset, static_cast<uint16_t>(attrs | kTimestampTypeBit));
  set_max_timestamp(batch, ts_ms);
}

}  // namespace herald::record
