// Batches written by real clients (testdata/gen_golden.py): we must split,
// check, validate and decode them, and build kafka-python's bytes exactly.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "record/batch.h"
#include "record/builder.h"
#include "record/records.h"
#include "test_util.h"

namespace herald::record {
namespace {

using testing::str;
using testing::sv;

constexpr int64_t kBaseTs = 1700000000000;

Bytes read_golden(const std::string& name) {
  std::ifstream in(std::string(HERALD_RECORD_TESTDATA) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Golden {
  std::string file;
  Compression codec;
  bool idempotent;
};

std::string golden_test_name(const ::testing::TestParamInfo<Golden>& p) {
  return p.param.file.substr(0, p.param.file.size() - 4);  // drop ".bin"
}

class GoldenBatch : public ::testing::TestWithParam<Golden> {};

TEST_P(GoldenBatch, SplitsIntoOneBatchThatPassesIntegrityAndProduceValidation) {
  Bytes data = read_golden(GetParam().file);
  auto batches = split_batches(data);
  ASSERT_TRUE(batches.has_value()) << batches.error().to_string();
  ASSERT_EQ(batches->size(), 1u);
  auto h = check_integrity((*batches)[0]);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->compression(), GetParam().codec);
  EXPECT_EQ(h->records_count, 4);
  EXPECT_EQ(h->last_offset_delta, 3);
  EXPECT_EQ(h->base_timestamp, kBaseTs);
  EXPECT_EQ(h->max_timestamp, kBaseTs + 3);
  EXPECT_EQ(h->producer_id >= 0, GetParam().idempotent);
  auto v = validate_produce_batch((*batches)[0]);
  EXPECT_EQ(v.error, BatchError::kNone) << v.message;
  EXPECT_EQ(compute_crc((*batches)[0]), h->crc);
}

TEST_P(GoldenBatch, DecodesTheFourRecordsTheGeneratorWrote) {
  Bytes data = read_golden(GetParam().file);
  Bytes scratch;
  auto records = decode_records(data, scratch);
  ASSERT_TRUE(records.has_value()) << records.error().to_string();
  ASSERT_EQ(records->size(), 4u);
  for (int i = 0; i < 3; ++i) {
    const Record& r = (*records)[static_cast<size_t>(i)];
    std::string value;
    for (int j = 0; j < 5; ++j) value += "value-" + std::to_string(i);
    EXPECT_EQ(r.offset_delta, i);
    EXPECT_EQ(r.timestamp_delta, i);
    EXPECT_EQ(str(*r.key), "key-" + std::to_string(i));
    EXPECT_EQ(str(*r.value), value);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].key, "h");
    EXPECT_EQ(str(*r.headers[0].value), "v-" + std::to_string(i));
  }
  const Record& last = (*records)[3];
  EXPECT_EQ(last.offset_delta, 3);
  EXPECT_FALSE(last.key.has_value());
  EXPECT_FALSE(last.value.has_value());
  EXPECT_TRUE(last.headers.empty());
  EXPECT_TRUE(check_produce_records(data, scratch).has_value());
}

TEST_P(GoldenBatch, ReencodingWithOurCodecDecodesToTheSameRecords) {
  Bytes data = read_golden(GetParam().file);
  Bytes scratch;
  auto records = decode_records(data, scratch);
  ASSERT_TRUE(records.has_value());
  BatchHeader h = *parse_header(data);
  BatchBuilder b(h.compression());
  b.set_producer(h.producer_id, h.producer_epoch, h.base_sequence);
  for (const Record& r : *records) ASSERT_TRUE(b.add(r, h.base_timestamp).has_value());
  Bytes ours = *b.build();
  Bytes scratch2;
  auto again = decode_records(ours, scratch2);
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  ASSERT_EQ(again->size(), records->size());
  for (size_t i = 0; i < records->size(); ++i) {
    EXPECT_EQ((*again)[i].key.has_value(), (*records)[i].key.has_value());
    if ((*again)[i].value) {
      EXPECT_EQ(str(*(*again)[i].value), str(*(*records)[i].value));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Clients, GoldenBatch,
    ::testing::Values(Golden{"kafka_python_none.bin", Compression::kNone, false},
                      Golden{"kafka_python_gzip.bin", Compression::kGzip, true},
                      Golden{"librdkafka_none.bin", Compression::kNone, true},
                      Golden{"librdkafka_gzip.bin", Compression::kGzip, true},
                      Golden{"librdkafka_snappy.bin", Compression::kSnappy, true},
                      Golden{"librdkafka_lz4.bin", Compression::kLz4, true},
                      Golden{"librdkafka_zstd.bin", Compression::kZstd, true}),
    golden_test_name);

TEST(GoldenBatch, BuilderReproducesKafkaPythonUncompressedBytesExactly) {
  BatchBuilder b;
  b.set_partition_leader_epoch(0);  // kafka-python writes 0, we default to -1
  for (int i = 0; i < 3; ++i) {
    std::string key = "key-" + std::to_string(i);
    std::string value;
    for (int j = 0; j < 5; ++j) value += "value-" + std::to_string(i);
    std::string hv = "v-" + std::to_string(i);
    ASSERT_TRUE(b.add(sv(key), sv(value), kBaseTs + i, {{"h", sv(hv)}}).has_value());
  }
  ASSERT_TRUE(b.add(std::nullopt, std::nullopt, kBaseTs + 3).has_value());
  EXPECT_EQ(*b.build(), read_golden("kafka_python_none.bin"));
}

TEST(GoldenBatch, KafkaPythonAndLibrdkafkaAgreeOnUncompressedRecords) {
  Bytes a = read_golden("kafka_python_none.bin");
  Bytes b = read_golden("librdkafka_none.bin");
  ASSERT_EQ(a.size(), b.size());
  EXPECT_TRUE(std::equal(a.begin() + kBatchHeaderSize, a.end(), b.begin() + kBatchHeaderSize));
}

}  // namespace
}  // namespace herald::record
