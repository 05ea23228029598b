#include "record/builder.h"

#include <gtest/gtest.h>

#include <limits>

#include "record/records.h"
#include "test_util.h"

namespace herald::record {
namespace {

using testing::kTs;
using testing::str;
using testing::sv;

BatchHeader header_of(const Bytes& b) {
  auto h = check_integrity(b);
  EXPECT_TRUE(h.has_value()) << h.error().to_string();
  return h ? *h : BatchHeader{};
}

TEST(BatchBuilder, BuildsABatchThatPassesProduceValidation) {
  BatchBuilder b;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs + i).has_value());
  Bytes batch = *b.build();
  auto v = validate_produce_batch(batch);
  EXPECT_EQ(v.error, BatchError::kNone) << v.message;
  EXPECT_EQ(v.header.records_count, 3);
  EXPECT_EQ(v.header.last_offset_delta, 2);
  Bytes scratch;
  EXPECT_TRUE(check_produce_records(batch, scratch).has_value());
}

TEST(BatchBuilder, DefaultsAreANonIdempotentCreateTimeBatch) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs).has_value());
  BatchHeader h = header_of(*b.build());
  EXPECT_EQ(h.base_offset, 0);
  EXPECT_EQ(h.partition_leader_epoch, -1);
  EXPECT_EQ(h.magic, kMagicV2);
  EXPECT_EQ(h.attributes, 0);
  EXPECT_EQ(h.producer_id, -1);
  EXPECT_EQ(h.producer_epoch, -1);
  EXPECT_EQ(h.base_sequence, -1);
  EXPECT_EQ(h.timestamp_type(), TimestampType::kCreateTime);
}

TEST(BatchBuilder, BaseTimestampIsTheFirstRecordsAndMaxTimestampTheLargest) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs + 10).has_value());
  ASSERT_TRUE(b.add(sv("b"), sv("2"), kTs + 50).has_value());
  ASSERT_TRUE(b.add(sv("c"), sv("3"), kTs).has_value());
  Bytes batch = *b.build();
  BatchHeader h = header_of(batch);
  EXPECT_EQ(h.base_timestamp, kTs + 10);
  EXPECT_EQ(h.max_timestamp, kTs + 50);
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ((*r)[2].timestamp_delta, -10);
}

TEST(BatchBuilder, WritesProducerBaseOffsetAndLeaderEpoch) {
  BatchBuilder b;
  b.set_producer(4242, 7, 100).set_base_offset(5000).set_partition_leader_epoch(3);
  ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs).has_value());
  ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs).has_value());
  BatchHeader h = header_of(*b.build());
  EXPECT_EQ(h.producer_id, 4242);
  EXPECT_EQ(h.producer_epoch, 7);
  EXPECT_EQ(h.base_sequence, 100);
  EXPECT_EQ(h.last_sequence(), 101);
  EXPECT_EQ(h.base_offset, 5000);
  EXPECT_EQ(h.last_offset(), 5001);
  EXPECT_EQ(h.partition_leader_epoch, 3);
}

class BuilderCodec : public ::testing::TestWithParam<Compression> {};

TEST_P(BuilderCodec, SetsTheCompressionBitsAndRoundTrips) {
  BatchBuilder b(GetParam());
  std::string big(10000, 'z');
  ASSERT_TRUE(b.add(sv("k1"), sv(big), kTs, {{"hk", sv("hv")}}).has_value());
  ASSERT_TRUE(b.add(std::nullopt, std::nullopt, kTs + 1).has_value());
  Bytes batch = *b.build();
  BatchHeader h = header_of(batch);
  EXPECT_EQ(h.compression(), GetParam());
  if (GetParam() != Compression::kNone) {
    EXPECT_LT(batch.size(), b.uncompressed_size());
  }
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ(str(*(*r)[0].value), big);
  EXPECT_EQ((*r)[0].headers[0].key, "hk");
  EXPECT_FALSE((*r)[1].key.has_value());
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, BuilderCodec,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kSnappy,
                                           Compression::kLz4, Compression::kZstd),
                         testing::codec_test_name);

TEST(BatchBuilder, UncompressedSizeIsTheBuiltSizeWithoutCompression) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("key"), sv("value"), kTs, {{"h", sv("x")}}).has_value());
  EXPECT_EQ(b.uncompressed_size(), b.build()->size());
}

TEST(BatchBuilder, KeepsExplicitOffsetDeltasAndASettableLastOffsetDelta) {
  BatchBuilder b(Compression::kGzip);
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs, {}, 1).has_value());
  ASSERT_TRUE(b.add(sv("b"), sv("2"), kTs, {}, 4).has_value());
  b.set_last_offset_delta(9);
  Bytes batch = *b.build();
  BatchHeader h = header_of(batch);
  EXPECT_EQ(h.records_count, 2);
  EXPECT_EQ(h.last_offset_delta, 9);
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ((*r)[0].offset_delta, 1);
  EXPECT_EQ((*r)[1].offset_delta, 4);
}

TEST(BatchBuilder, AutomaticOffsetDeltaFollowsAnExplicitOne) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs, {}, 5).has_value());
  ASSERT_TRUE(b.add(sv("b"), sv("2"), kTs).has_value());
  EXPECT_EQ(header_of(*b.build()).last_offset_delta, 6);
}

TEST(BatchBuilder, RejectsAnOffsetDeltaThatDoesNotIncrease) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs, {}, 3).has_value());
  auto r = b.add(sv("b"), sv("2"), kTs, {}, 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(b.record_count(), 1);
}

TEST(BatchBuilder, RejectsANegativeOffsetDelta) {
  BatchBuilder b;
  auto r = b.add(sv("a"), sv("1"), kTs, {}, -1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(b.empty());
}

TEST(BatchBuilder, RejectsATimestampDeltaThatOverflows) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("1"), std::numeric_limits<int64_t>::min()).has_value());
  auto r = b.add(sv("b"), sv("2"), std::numeric_limits<int64_t>::max());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

TEST(BatchBuilder, RejectsALastOffsetDeltaBelowTheLastRecord) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs).has_value());
  ASSERT_TRUE(b.add(sv("b"), sv("2"), kTs).has_value());
  b.set_last_offset_delta(0);
  auto r = b.build();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

TEST(BatchBuilder, EmptyBuilderBuildsAnEmptyBatchThatProduceRejects) {
  BatchBuilder b(Compression::kZstd);
  b.set_producer(1, 0, 5).set_last_offset_delta(2);
  Bytes batch = *b.build();
  BatchHeader h = header_of(batch);
  EXPECT_EQ(h.records_count, 0);
  EXPECT_EQ(h.last_offset_delta, 2);
  EXPECT_EQ(h.base_timestamp, -1);
  EXPECT_EQ(h.max_timestamp, -1);
  EXPECT_EQ(h.last_sequence(), 7);
  EXPECT_EQ(batch.size(), kBatchHeaderSize);
  EXPECT_EQ(validate_produce_batch(batch).error, BatchError::kInvalidRecord);
  // Compaction's empty batch keeps the max timestamp of the batch it replaces.
  EXPECT_EQ(header_of(*b.set_empty_max_timestamp(kTs).build()).max_timestamp, kTs);
  EXPECT_EQ(header_of(*b.set_empty_max_timestamp(kTs).build()).base_timestamp, -1);
}

TEST(BatchBuilder, SetsTransactionalAndControlBits) {
  BatchBuilder b;
  b.set_transactional(true).set_control(true);
  ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs).has_value());
  BatchHeader h = header_of(*b.build());
  EXPECT_TRUE(h.is_transactional());
  EXPECT_TRUE(h.is_control());
}

TEST(BatchBuilder, LogAppendTimeSetsBit3AndMaxTimestamp) {
  BatchBuilder b;
  b.set_log_append_time(kTs + 999);
  ASSERT_TRUE(b.add(sv("k"), sv("v"), kTs).has_value());
  BatchHeader h = header_of(*b.build());
  EXPECT_EQ(h.timestamp_type(), TimestampType::kLogAppendTime);
  EXPECT_EQ(h.max_timestamp, kTs + 999);
  EXPECT_EQ(h.base_timestamp, kTs);
}

TEST(BatchBuilder, ResetForgetsRecordsButKeepsSettings) {
  BatchBuilder b(Compression::kLz4);
  b.set_producer(9, 1, 0);
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs, {}, 10).has_value());
  b.reset();
  EXPECT_TRUE(b.empty());
  ASSERT_TRUE(b.add(sv("b"), sv("2"), kTs + 5).has_value());
  BatchHeader h = header_of(*b.build());
  EXPECT_EQ(h.records_count, 1);
  EXPECT_EQ(h.last_offset_delta, 0);
  EXPECT_EQ(h.base_timestamp, kTs + 5);
  EXPECT_EQ(h.producer_id, 9);
  EXPECT_EQ(h.compression(), Compression::kLz4);
}

TEST(BatchBuilder, RebuildingDecodedRecordsReproducesTheBatch) {
  BatchBuilder b;
  b.set_producer(3, 2, 1);
  ASSERT_TRUE(b.add(sv("a"), sv("1"), kTs + 3, {{"x", sv("y")}, {"z", std::nullopt}}).has_value());
  ASSERT_TRUE(b.add(std::nullopt, sv("2"), kTs + 1).has_value());
  ASSERT_TRUE(b.add(sv("c"), std::nullopt, kTs + 8).has_value());
  Bytes original = *b.build();

  Bytes scratch;
  auto records = decode_records(original, scratch);
  ASSERT_TRUE(records.has_value());
  BatchHeader h = header_of(original);
  BatchBuilder again;
  again.set_producer(h.producer_id, h.producer_epoch, h.base_sequence);
  for (const Record& r : *records) ASSERT_TRUE(again.add(r, h.base_timestamp).has_value());
  EXPECT_EQ(*again.build(), original);
}

TEST(BatchBuilder, ValidatesThroughTheCompactionPathWithDroppedRecords) {
  BatchBuilder b;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.add(sv("k" + std::to_string(i)), sv("v"), kTs + i).has_value());
  Bytes original = *b.build();
  Bytes scratch;
  auto records = decode_records(original, scratch);
  ASSERT_TRUE(records.has_value());
  BatchHeader h = header_of(original);
  BatchBuilder compacted;
  compacted.set_base_offset(h.base_offset);
  for (const Record& r : *records) {
    if (r.offset_delta % 2 == 1) {
      ASSERT_TRUE(compacted.add(r, h.base_timestamp).has_value());
    }
  }
  compacted.set_last_offset_delta(h.last_offset_delta);
  Bytes out = *compacted.build();
  BatchHeader ch = header_of(out);
  EXPECT_EQ(ch.records_count, 2);
  EXPECT_EQ(ch.last_offset(), h.last_offset());
  auto kept = decode_records(out, scratch);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(str(*(*kept)[0].key), "k1");
  EXPECT_EQ((*kept)[1].offset_delta, 3);
}

}  // namespace
}  // namespace herald::record
