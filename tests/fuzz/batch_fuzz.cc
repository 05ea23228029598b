// libFuzzer target for the record batch parser: check_integrity,
// validate_produce_batch, split_batches, decode_records and the codecs, on
// arbitrary bytes. Invariants checked beyond "no crash / no sanitizer report":
//   - a batch that passes check_integrity still does after set_log_append_time;
//   - records that decode re-encode (BatchBuilder) and decode to equal records.
// Build and run by hand (from the repo root):
//   clang++-14 -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
//     -Isrc src/record/*.cc src/common/crc32c.cc src/common/result.cc tests/fuzz/batch_fuzz.cc \
//     -lz -llz4 -lzstd -lsnappy -lfmt -o /tmp/batch_fuzz
//   mkdir -p /tmp/batch_work && /tmp/batch_fuzz -max_total_time=120 -max_len=8192 /tmp/batch_work tests/fuzz/corpus/batch
// Seeds: golden client batches (tests/record/testdata) and small built batches;
// first byte of a seed_codec_* file picks the codec for the raw decompress path.
// The g++ test fuzz_corpus_batch (tests/fuzz/CMakeLists.txt) replays every stored input.
#include <cstdint>
#include <cstdlib>

#include "record/batch.h"
#include "record/builder.h"
#include "record/compression.h"
#include "record/records.h"

namespace {

using namespace herald;
using namespace herald::record;

constexpr size_t kCap = size_t{1} << 20;  // keep zip bombs cheap under the fuzzer

void require(bool cond) {
  if (!cond) std::abort();
}

bool same(const std::optional<ByteSpan>& a, const std::optional<ByteSpan>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || std::equal(a->begin(), a->end(), b->begin(), b->end());
}

void check_roundtrip(const BatchHeader& h, const std::vector<Record>& records) {
  BatchBuilder builder(h.compression());
  for (const Record& r : records) {
    if (!builder.add(r, h.base_timestamp)) return;  // e.g. deltas not increasing: not re-encodable
  }
  auto built = builder.build();
  if (!built) return;
  require(check_integrity(*built).has_value());
  Bytes scratch;
  auto again = decode_records(*built, scratch, SIZE_MAX);
  require(again.has_value());
  require(again->size() == records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& a = records[i];
    const Record& b = (*again)[i];
    require(a.offset_delta == b.offset_delta);
    require(same(a.key, b.key) && same(a.value, b.value));
    require(a.headers.size() == b.headers.size());
    for (size_t j = 0; j < a.headers.size(); ++j) {
      require(a.headers[j].key == b.headers[j].key);
      require(same(a.headers[j].value, b.headers[j].value));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteSpan in(data, size);

  auto integrity = check_integrity(in);
  Validated v = validate_produce_batch(in);
  if (v.error == BatchError::kNone) require(integrity.has_value());

  if (integrity) {
    Bytes copy(in.begin(), in.end());
    set_base_offset(copy, 42);
    set_partition_leader_epoch(copy, 7);
    set_log_append_time(copy, 1700000000000);
    require(check_integrity(copy).has_value());
  }

  if (auto batches = split_batches(in)) {
    for (ByteSpan b : *batches) (void)check_integrity(b);
  }

  // decode_records does not need a valid CRC, so the fuzzer reaches the record
  // parser without forging checksums.
  Bytes scratch;
  if (auto records = decode_records(in, scratch, kCap)) {
    check_roundtrip(*parse_header(in), *records);
  }

  // The codecs straight on the input: first byte picks the codec.
  if (size > 0) {
    auto codec = static_cast<Compression>(data[0] % 5);
    (void)decompress(codec, in.subspan(1), kCap);
  }
  return 0;
}
