#include "record/builder.h"

#include <fmt/format.h>

#include <limits>

#include "common/crc32c.h"
#include "record/compression.h"

namespace herald::record {
namespace {

constexpr size_t kMaxField = static_cast<size_t>(std::numeric_limits<int32_t>::max());

void put_nullable(Writer& w, const std::optional<ByteSpan>& b) {
  if (!b) {
    w.put_varint32(-1);
    return;
  }
  w.put_varint32(static_cast<int32_t>(b->size()));
  w.put_bytes(*b);
}

}  // namespace

BatchBuilder::BatchBuilder(Compression compression) : compression_(compression) {}

BatchBuilder& BatchBuilder::set_base_offset(int64_t base_offset) {
  base_offset_ = base_offset;
  return *this;
}
BatchBuilder& BatchBuilder::set_partition_leader_epoch(int32_t epoch) {
  partition_leader_epoch_ = epoch;
  return *this;
}
BatchBuilder& BatchBuilder::set_producer(int64_t producer_id, int16_t producer_epoch, int32_t base_sequence) {
  producer_id_ = producer_id;
  producer_epoch_ = producer_epoch;
  base_sequence_ = base_sequence;
  return *this;
}
BatchBuilder& BatchBuilder::set_transactional(bool on) {
  transactional_ = on;
  return *this;
}
BatchBuilder& BatchBuilder::set_control(bool on) {
  control_ = on;
  return *this;
}
BatchBuilder& BatchBuilder::set_log_append_time(int64_t ts_ms) {
  log_append_time_ = ts_ms;
  return *this;
}
BatchBuilder& BatchBuilder::set_empty_max_timestamp(int64_t ts_ms) {
  empty_max_timestamp_ = ts_ms;
  return *this;
}
BatchBuilder& BatchBuilder::set_last_offset_delta(int32_t delta) {
  last_offset_delta_ = delta;
  return *this;
}

Result<void> BatchBuilder::add(std::optional<ByteSpan> key, std::optional<ByteSpan> value,
                               int64_t timestamp_ms, const std::vector<RecordHeader>& headers,
                               std::optional<int32_t> offset_delta) {
  int32_t delta = 0;
  if (offset_delta) {
    delta = *offset_delta;
    if (delta < 0 || delta <= last_delta_) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("offset delta {} after {} (must increase, >= 0)", delta, last_delta_)};
    }
  } else {
    if (last_delta_ == std::numeric_limits<int32_t>::max()) {
      return Error{Errc::kInvalidArgument, "offset delta overflow"};
    }
    delta = last_delta_ + 1;
  }
  int64_t base = count_ == 0 ? timestamp_ms : base_timestamp_;
  int64_t ts_delta = 0;
  if (__builtin_sub_overflow(timestamp_ms, base, &ts_delta)) {
    return Error{Errc::kInvalidArgument, fmt::format("timestamp {} too far from base {}", timestamp_ms, base)};
  }
  if ((key && key->size() > kMaxField) || (value && value->size() > kMaxField) ||
      headers.size() > kMaxField) {
    return Error{Errc::kInvalidArgument, "record field larger than INT32_MAX"};
  }
  for (const auto& h : headers) {
    if (h.key.size() > kMaxField || (h.value && h.value->size() > kMaxField)) {
      return Error{Errc::kInvalidArgument, "header field larger than INT32_MAX"};
    }
  }

  Bytes& body = body_.buffer();
  body.clear();
  body_.put_i8(0);  // record attributes: unused
  body_.put_varint64(ts_delta);
  body_.put_varint32(delta);
  put_nullable(body_, key);
  put_nullable(body_, value);
  body_.put_varint32(static_cast<int32_t>(headers.size()));
  for (const auto& h : headers) {
    body_.put_varint32(static_cast<int32_t>(h.key.size()));
    body_.put_bytes(h.key);
    put_nullable(body_, h.value);
  }
  if (body.size() > kMaxField) return Error{Errc::kInvalidArgument, "record larger than INT32_MAX"};

  Writer rec;
  rec.put_varint32(static_cast<int32_t>(body.size()));
  records_.insert(records_.end(), rec.buffer().begin(), rec.buffer().end());
  records_.insert(records_.end(), body.begin(), body.end());

  if (count_ == 0) {
    base_timestamp_ = timestamp_ms;
    max_timestamp_ = timestamp_ms;
  } else if (timestamp_ms > max_timestamp_) {
    max_timestamp_ = timestamp_ms;
  }
  last_delta_ = delta;
  ++count_;
  return ok();
}

Result<void> BatchBuilder::add(const Record& r, int64_t base_timestamp) {
  int64_t ts = 0;
  if (__builtin_add_overflow(base_timestamp, r.timestamp_delta, &ts)) {
    return Error{Errc::kInvalidArgument, "timestamp overflow"};
  }
  return add(r.key, r.value, ts, r.headers, r.offset_delta);
}

Result<Bytes> BatchBuilder::build() const {
  int32_t last_offset_delta = last_offset_delta_.value_or(count_ == 0 ? 0 : last_delta_);
  if (count_ > 0 && last_offset_delta < last_delta_) {
    return Error{Errc::kInvalidArgument, fmt::format("last offset delta {} below last record's delta {}",
                                                     last_offset_delta, last_delta_)};
  }
  Bytes compressed;
  ByteSpan area = records_;
  if (compression_ != Compression::kNone && count_ > 0) {
    HERALD_ASSIGN_OR_RETURN(compressed, compress(compression_, records_));
    area = compressed;
  }
  if (area.size() > kMaxField - (kBatchHeaderSize - kBatchLengthOverhead)) {
    return Error{Errc::kInvalidArgument, fmt::format("batch records area of {} bytes too large", area.size())};
  }

  BatchHeader h;
  h.base_offset = base_offset_;
  h.batch_length = static_cast<int32_t>(kBatchHeaderSize - kBatchLengthOverhead + area.size());
  h.partition_leader_epoch = partition_leader_epoch_;
  h.magic = kMagicV2;
  // An empty batch (compaction keeps some) is never marked compressed: librdkafka fails to decompress
  // its zero-byte records area and cannot get past it, as Kafka's empty batches are uncompressed.
  int attrs = count_ > 0 ? static_cast<int>(compression_) & kCompressionMask : 0;
  if (transactional_) attrs |= kTransactionalBit;
  if (control_) attrs |= kControlBit;
  if (log_append_time_) attrs |= kTimestampTypeBit;
  h.attributes = static_cast<int16_t>(attrs);
  h.last_offset_delta = last_offset_delta;
  h.base_timestamp = base_timestamp_;
  h.max_timestamp = log_append_time_.value_or(count_ == 0 ? empty_max_timestamp_ : max_timestamp_);
  h.producer_id = producer_id_;
  h.producer_epoch = producer_epoch_;
  h.base_sequence = base_sequence_;
  h.records_count = count_;

  Bytes out(kBatchHeaderSize + area.size());
  write_header(h, out);
  std::copy(area.begin(), area.end(), out.begin() + static_cast<std::ptrdiff_t>(kBatchHeaderSize));
  store_be32(out.data() + kCrcOffset, compute_crc(out));
  return out;
}

void BatchBuilder::reset() {
  records_.clear();
  count_ = 0;
  last_delta_ = -1;
  base_timestamp_ = -1;
  max_timestamp_ = -1;
}

}  // namespace herald::record
