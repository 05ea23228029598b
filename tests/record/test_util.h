// Helpers shared by the record tests: small batches built with BatchBuilder,
// raw batches around hand-written record bytes, and header patching that keeps
// the CRC valid so that exactly one check fails.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/crc32c.h"
#include "record/batch.h"
#include "record/builder.h"

namespace herald::record::testing {

inline constexpr int64_t kTs = 1700000000000;

inline ByteSpan sv(std::string_view s) { return as_bytes(s); }
inline std::string str(ByteSpan b) { return std::string(as_string_view(b)); }

// Parameterized-test suffix: the codec's name.
inline std::string codec_test_name(const ::testing::TestParamInfo<Compression>& p) {
  return compression_name(p.param);
}

// A batch of `n` records "key-i" -> "value-i", timestamps kTs + i.
inline Bytes make_batch(int n, Compression c = Compression::kNone) {
  BatchBuilder b(c);
  for (int i = 0; i < n; ++i) {
    std::string k = "key-" + std::to_string(i);
    std::string v = "value-" + std::to_string(i);
    EXPECT_TRUE(b.add(sv(k), sv(v), kTs + i).has_value());
  }
  auto r = b.build();
  EXPECT_TRUE(r.has_value());
  return std::move(r).value();
}

// Header + `area` (taken as the records area, compressed or not) with a valid CRC.
inline Bytes raw_batch(ByteSpan area, int32_t records_count, int32_t last_offset_delta,
                       int16_t attributes = 0) {
  BatchHeader h;
  h.batch_length = static_cast<int32_t>(kBatchHeaderSize - kBatchLengthOverhead + area.size());
  h.magic = kMagicV2;
  h.attributes = attributes;
  h.last_offset_delta = last_offset_delta;
  h.base_timestamp = kTs;
  h.max_timestamp = kTs;
  h.records_count = records_count;
  Bytes out(kBatchHeaderSize);
  write_header(h, out);
  out.insert(out.end(), area.begin(), area.end());
  store_be32(out.data() + kCrcOffset, compute_crc(out));
  return out;
}

// Applies `fn` to the parsed header, writes it back and fixes the CRC.
template <class Fn>
void patch(Bytes& batch, Fn fn) {
  auto h = parse_header(batch);
  ASSERT_TRUE(h.has_value());
  fn(*h);
  write_header(*h, batch);
  store_be32(batch.data() + kCrcOffset, compute_crc(batch));
}

}  // namespace herald::record::testing
