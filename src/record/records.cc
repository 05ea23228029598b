#include "record/records.h"

#include <fmt/format.h>

#include <algorithm>

namespace herald::record {
namespace {

// Smallest encoded record body: attributes, timestamp delta, offset delta, key
// length, value length, header count — one byte each.
constexpr size_t kMinRecordBodySize = 6;

Error bad(int32_t index, std::string_view what) {
  return Error{Errc::kCorruption, fmt::format("record {}: {}", index, what)};
}

// Reads a varint length prefix: -1 means null; other negatives and lengths past
// the end of `in` are errors.
Result<std::optional<ByteSpan>> get_nullable_bytes(Reader& in, int32_t index, std::string_view field) {
  int32_t len = 0;
  if (!in.get_varint32(len)) return bad(index, fmt::format("bad {} length varint", field));
  if (len == -1) return std::optional<ByteSpan>();
  ByteSpan span;
  if (len < 0 || !in.get_span(static_cast<size_t>(len), span)) {
    return bad(index, fmt::format("{} length {} with {} bytes left", field, len, in.remaining()));
  }
  return std::optional<ByteSpan>(span);
}

}  // namespace

Result<RecordReader> RecordReader::open(ByteSpan batch, Bytes& scratch, size_t max_decompressed_bytes) {
  HERALD_ASSIGN_OR_RETURN(BatchHeader h, parse_header(batch));
  if (h.size_bytes() > batch.size()) {
    return Error{Errc::kTruncated,
                 fmt::format("batch length says {} bytes, {} present", h.size_bytes(), batch.size())};
  }
  if (h.size_bytes() < batch.size()) {
    return Error{Errc::kCorruption,
                 fmt::format("batch length says {} bytes, {} present", h.size_bytes(), batch.size())};
  }
  if (h.magic != kMagicV2) return Error{Errc::kCorruption, fmt::format("magic {}, expected 2", h.magic)};
  if (h.records_count < 0) return Error{Errc::kCorruption, fmt::format("records count {}", h.records_count)};
  ByteSpan area = batch.subspan(kBatchHeaderSize);
  Compression codec = h.compression();
  if (!is_known_compression(codec)) {
    return Error{Errc::kUnsupported, fmt::format("unknown compression id {}", static_cast<int>(codec))};
  }
  if (codec != Compression::kNone && !area.empty()) {  // an empty batch (count 0) has no blob
    HERALD_TRY(decompress_into(codec, area, scratch, max_decompressed_bytes));
    area = scratch;
  }
  return RecordReader(h, area);
}

Result<bool> RecordReader::next(Record& out) {
  if (remaining_ == 0) {
    if (!in_.empty()) {
      return Error{Errc::kCorruption, fmt::format("{} bytes after the last of {} records",
                                                  in_.remaining(), header_.records_count)};
    }
    return false;
  }
  const int32_t i = index_;
  int32_t length = 0;
  if (!in_.get_varint32(length)) {
    return in_.empty() ? bad(i, fmt::format("missing: batch says {} records", header_.records_count))
                       : bad(i, "bad length varint");
  }
  ByteSpan body;
  if (length < 0 || static_cast<size_t>(length) < kMinRecordBodySize ||
      !in_.get_span(static_cast<size_t>(length), body)) {
    return bad(i, fmt::format("length {} with {} bytes left", length, in_.remaining()));
  }
  Reader r(body);
  int8_t attributes = 0;
  if (!r.get_i8(attributes)) return bad(i, "missing attributes");  // unused in v2, any value accepted
  if (!r.get_varint64(out.timestamp_delta)) return bad(i, "bad timestamp delta varint");
  if (!r.get_varint32(out.offset_delta)) return bad(i, "bad offset delta varint");
  HERALD_ASSIGN_OR_RETURN(out.key, get_nullable_bytes(r, i, "key"));
  HERALD_ASSIGN_OR_RETURN(out.value, get_nullable_bytes(r, i, "value"));
  int32_t header_count = 0;
  if (!r.get_varint32(header_count)) return bad(i, "bad header count varint");
  // Each header takes at least 2 bytes: a count beyond that cannot fit.
  if (header_count < 0 || static_cast<size_t>(header_count) > r.remaining() / 2) {
    return bad(i, fmt::format("header count {} with {} bytes left", header_count, r.remaining()));
  }
  out.headers.clear();
  out.headers.reserve(static_cast<size_t>(header_count));
  for (int32_t h = 0; h < header_count; ++h) {
    int32_t key_len = 0;
    ByteSpan key;
    if (!r.get_varint32(key_len)) return bad(i, fmt::format("header {}: bad key length varint", h));
    if (key_len < 0 || !r.get_span(static_cast<size_t>(key_len), key)) {
      return bad(i, fmt::format("header {}: key length {} with {} bytes left", h, key_len, r.remaining()));
    }
    HERALD_ASSIGN_OR_RETURN(auto value, get_nullable_bytes(r, i, fmt::format("header {} value", h)));
    out.headers.push_back(RecordHeader{as_string_view(key), value});
  }
  if (!r.empty()) return bad(i, fmt::format("length {} leaves {} unread bytes", length, r.remaining()));
  --remaining_;
  ++index_;
  return true;
}

Result<std::vector<Record>> decode_records(ByteSpan batch, Bytes& scratch, size_t max_decompressed_bytes) {
  HERALD_ASSIGN_OR_RETURN(RecordReader reader, RecordReader::open(batch, scratch, max_decompressed_bytes));
  std::vector<Record> records;
  // records_count is untrusted: reserve no more than the bytes could hold.
  records.reserve(std::min(static_cast<size_t>(reader.remaining()),
                           reader.bytes_left() / (kMinRecordBodySize + 1)));
  for (;;) {
    Record r;
    HERALD_ASSIGN_OR_RETURN(bool more, reader.next(r));
    if (!more) break;
    records.push_back(std::move(r));
  }
  return records;
}

Result<RecordTimestamps> check_produce_records(ByteSpan batch, Bytes& scratch, bool keys_required,
                                               size_t max_decompressed_bytes) {
  HERALD_ASSIGN_OR_RETURN(BatchHeader h, parse_header(batch));
  int32_t expected = 0;
  RecordTimestamps ts;
  HERALD_TRY(for_each_record(
      batch, scratch,
      [&](const Record& r) -> Result<void> {
        if (r.offset_delta != expected) {
          return Error{Errc::kCorruption,
                       fmt::format("record {}: offset delta {}, expected {}", expected, r.offset_delta, expected)};
        }
        if (keys_required && !r.key) {
          return Error{Errc::kInvalidArgument, fmt::format("record {} has no key (compacted topics need one)", expected)};
        }
        int64_t t = 0;
        if (__builtin_add_overflow(h.base_timestamp, r.timestamp_delta, &t)) {
          return Error{Errc::kCorruption, fmt::format("record {}: timestamp overflows", expected)};
        }
        ts.max = std::max(ts.max, t);
        if (t != -1 && (ts.min == -1 || t < ts.min)) ts.min = t;
        ++expected;
        return ok();
      },
      max_decompressed_bytes));
  return ts;
}

}  // namespace herald::record
