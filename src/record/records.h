// The records inside a v2 batch: decoding them from (possibly compressed)
// untrusted bytes. Layout: https://kafka.apache.org/documentation/#record.
//
// Views in a decoded Record point into the batch (uncompressed batches) or into
// the caller's `scratch` buffer (compressed batches), so both must outlive the
// records. Nothing here checks the CRC: call check_integrity() or
// validate_produce_batch() first when the bytes come from outside.
//
//   Bytes scratch;
//   HERALD_ASSIGN_OR_RETURN(auto records, record::decode_records(batch, scratch));
//   for (const auto& r : records) use(header.base_offset + r.offset_delta, r.key, r.value);
//
//   // Without building a vector:
//   HERALD_TRY(record::for_each_record(batch, scratch, [&](const record::Record& r) -> Result<void> {
//     if (!r.key) return Error{Errc::kInvalidArgument, "compacted topic needs keys"};
//     return ok();
//   }));
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"
#include "record/compression.h"

namespace herald::record {

struct RecordHeader {
  std::string_view key;  // UTF-8 by contract; not validated
  std::optional<ByteSpan> value;
};

struct Record {
  int64_t timestamp_delta = 0;  // record timestamp - batch base_timestamp
  int32_t offset_delta = 0;     // record offset - batch base_offset
  std::optional<ByteSpan> key;  // nullopt = null key
  std::optional<ByteSpan> value;  // nullopt = null value (tombstone)
  std::vector<RecordHeader> headers;
};

// Pulls records one by one out of the records area of a batch. Borrowing: the
// batch and scratch must outlive the reader and every Record it yields.
class RecordReader {
 public:
  // Parses the header of `batch` (exactly one whole batch: batch_length + 12 ==
  // batch.size()) and decompresses the records area into `scratch` if needed.
  // Errors: those of parse_header; kTruncated/kCorruption on a size mismatch;
  // kCorruption for magic != 2, a negative records count, or bad compressed
  // data (including output over `max_decompressed_bytes`); kUnsupported for an
  // unknown codec id.
  static Result<RecordReader> open(ByteSpan batch, Bytes& scratch,
                                   size_t max_decompressed_bytes = kDefaultMaxDecompressedBytes);

  const BatchHeader& header() const { return header_; }
  // Records not yet read, per the header's records_count.
  int32_t remaining() const { return remaining_; }
  // Bytes of the (decompressed) records area not yet read.
  size_t bytes_left() const { return in_.remaining(); }

  // Reads the next record into `out` (its vectors are reused). Returns false
  // after the last record, once it has checked that no bytes are left over.
  // Errors (kCorruption): a varint that is malformed or runs past its record,
  // a record length that disagrees with its fields, a negative length other
  // than -1 for key/value, a negative header-key length, fewer records than
  // records_count, or bytes left after records_count records.
  Result<bool> next(Record& out);

 private:
  RecordReader(BatchHeader header, ByteSpan area)
      : header_(header), in_(area), remaining_(header.records_count) {}

  BatchHeader header_;
  Reader in_;
  int32_t remaining_;
  int32_t index_ = 0;
};

// Decodes every record of `batch`. Errors: those of RecordReader::open and next.
Result<std::vector<Record>> decode_records(ByteSpan batch, Bytes& scratch,
                                           size_t max_decompressed_bytes = kDefaultMaxDecompressedBytes);

// Calls `fn(const Record&) -> Result<void>` for each record; stops at the first
// error (from decoding or from fn) and returns it. The Record passed is reused
// between calls: copy what you keep.
template <class Fn>
Result<void> for_each_record(ByteSpan batch, Bytes& scratch, Fn&& fn,
                             size_t max_decompressed_bytes = kDefaultMaxDecompressedBytes) {
  HERALD_ASSIGN_OR_RETURN(RecordReader reader, RecordReader::open(batch, scratch, max_decompressed_bytes));
  Record r;
  for (;;) {
    HERALD_ASSIGN_OR_RETURN(bool more, reader.next(r));
    if (!more) return ok();
    HERALD_TRY(fn(static_cast<const Record&>(r)));
  }
}

// The smallest and largest record timestamp of a batch (base_timestamp +
// timestamp_delta); records without one (-1, NO_TIMESTAMP) count for the
// largest only, as in Kafka. -1 when there is none.
struct RecordTimestamps {
  int64_t min = -1;
  int64_t max = -1;
};

// Record-level produce checks (§3.26 rule 10) on top of validate_produce_batch:
// every record decodes and offset deltas are exactly 0, 1, 2, ... Returns the
// records' timestamps; the decoding error; kCorruption naming the first
// out-of-sequence record or a timestamp that overflows; with `keys_required`
// (compacted topics), kInvalidArgument for a record without a key.
Result<RecordTimestamps> check_produce_records(ByteSpan batch, Bytes& scratch, bool keys_required = false,
                                               size_t max_decompressed_bytes = kDefaultMaxDecompressedBytes);

}  // namespace herald::record
