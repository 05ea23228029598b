#include "record/batch.h"

#include <gtest/gtest.h>

#include <limits>

#include "record/builder.h"
#include "test_util.h"

namespace herald::record {
namespace {

using testing::make_batch;
using testing::patch;

BatchHeader sample_header() {
  BatchHeader h;
  h.base_offset = 0x0102030405060708;
  h.batch_length = 49;
  h.partition_leader_epoch = 17;
  h.magic = kMagicV2;
  h.crc = 0xdeadbeef;
  h.attributes = 0x0013;
  h.last_offset_delta = 4;
  h.base_timestamp = 1700000000000;
  h.max_timestamp = 1700000000123;
  h.producer_id = 99;
  h.producer_epoch = 3;
  h.base_sequence = 42;
  h.records_count = 5;
  return h;
}

// ---------------------------------------------------------------- parse_header

TEST(ParseHeader, DecodesEveryFieldWrittenByWriteHeader) {
  Bytes buf(kBatchHeaderSize);
  write_header(sample_header(), buf);
  auto h = parse_header(buf);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(*h, sample_header());
}

TEST(ParseHeader, FieldsSitAtTheDocumentedOffsets) {
  Bytes buf(kBatchHeaderSize);
  write_header(sample_header(), buf);
  EXPECT_EQ(load_be64(buf.data() + 0), 0x0102030405060708u);
  EXPECT_EQ(load_be32(buf.data() + 8), 49u);
  EXPECT_EQ(load_be32(buf.data() + 12), 17u);
  EXPECT_EQ(buf[16], 2);
  EXPECT_EQ(load_be32(buf.data() + 17), 0xdeadbeefu);
  EXPECT_EQ(load_be16(buf.data() + 21), 0x0013u);
  EXPECT_EQ(load_be32(buf.data() + 23), 4u);
  EXPECT_EQ(load_be64(buf.data() + 27), 1700000000000u);
  EXPECT_EQ(load_be64(buf.data() + 35), 1700000000123u);
  EXPECT_EQ(load_be64(buf.data() + 43), 99u);
  EXPECT_EQ(load_be16(buf.data() + 51), 3u);
  EXPECT_EQ(load_be32(buf.data() + 53), 42u);
  EXPECT_EQ(load_be32(buf.data() + 57), 5u);
}

TEST(ParseHeader, FewerThan61BytesIsTruncated) {
  Bytes buf(kBatchHeaderSize);
  write_header(sample_header(), buf);
  auto h = parse_header(ByteSpan(buf).first(60));
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kTruncated);
}

TEST(ParseHeader, EmptyInputIsTruncated) {
  auto h = parse_header({});
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kTruncated);
}

TEST(ParseHeader, BatchLengthBelow49IsCorruption) {
  BatchHeader s = sample_header();
  s.batch_length = 48;
  Bytes buf(kBatchHeaderSize);
  write_header(s, buf);
  auto h = parse_header(buf);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
}

TEST(ParseHeader, NegativeBatchLengthIsCorruption) {
  BatchHeader s = sample_header();
  s.batch_length = -1;
  Bytes buf(kBatchHeaderSize);
  write_header(s, buf);
  auto h = parse_header(buf);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
}

// base_offset is outside the CRC: a damaged one whose last offset would overflow int64 is
// corruption (found under UBSan: recovery computed base_offset + last_offset_delta).
TEST(ParseHeader, OffsetsWhoseLastOffsetOverflowsAreCorruption) {
  for (auto [base, delta] : {std::pair<int64_t, int32_t>{INT64_MAX, 2}, {INT64_MAX - 1, 2}, {INT64_MIN, -1}}) {
    BatchHeader s = sample_header();
    s.base_offset = base;
    s.last_offset_delta = delta;
    Bytes buf(kBatchHeaderSize);
    write_header(s, buf);
    auto h = parse_header(buf);
    ASSERT_FALSE(h.has_value()) << base << " + " << delta;
    EXPECT_EQ(h.error().code, Errc::kCorruption);
  }
  BatchHeader s = sample_header();
  s.base_offset = INT64_MAX - 2;
  s.last_offset_delta = 2;
  Bytes buf(kBatchHeaderSize);
  write_header(s, buf);
  ASSERT_TRUE(parse_header(buf).has_value());
}

TEST(ParseHeader, DoesNotCheckMagicCrcOrThatTheBatchIsPresent) {
  BatchHeader s = sample_header();
  s.magic = 1;
  s.batch_length = 1000;
  Bytes buf(kBatchHeaderSize);
  write_header(s, buf);
  EXPECT_TRUE(parse_header(buf).has_value());
}

// ---------------------------------------------------------------- accessors

TEST(BatchHeaderAccessors, SizeBytesIsBatchLengthPlus12) {
  EXPECT_EQ(sample_header().size_bytes(), 61u);
}

TEST(BatchHeaderAccessors, LastOffsetIsBaseOffsetPlusDelta) {
  EXPECT_EQ(sample_header().last_offset(), 0x0102030405060708 + 4);
}

TEST(BatchHeaderAccessors, AttributeBitsDecode) {
  BatchHeader h;
  h.attributes = 0;
  EXPECT_EQ(h.compression(), Compression::kNone);
  EXPECT_EQ(h.timestamp_type(), TimestampType::kCreateTime);
  EXPECT_FALSE(h.is_transactional());
  EXPECT_FALSE(h.is_control());
  EXPECT_FALSE(h.has_delete_horizon());
  h.attributes = 0x7c;  // zstd | log append | transactional | control | delete horizon
  EXPECT_EQ(h.compression(), Compression::kZstd);
  EXPECT_EQ(h.timestamp_type(), TimestampType::kLogAppendTime);
  EXPECT_TRUE(h.is_transactional());
  EXPECT_TRUE(h.is_control());
  EXPECT_TRUE(h.has_delete_horizon());
  for (int c = 0; c < 8; ++c) {
    h.attributes = static_cast<int16_t>(c);
    EXPECT_EQ(static_cast<int>(h.compression()), c);
    EXPECT_EQ(is_known_compression(h.compression()), c <= 4);
  }
}

TEST(BatchHeaderAccessors, LastSequenceAddsLastOffsetDelta) {
  BatchHeader h;
  h.base_sequence = 10;
  h.last_offset_delta = 4;
  EXPECT_EQ(h.last_sequence(), 14);
}

TEST(BatchHeaderAccessors, LastSequenceWrapsPastInt32MaxToZero) {
  BatchHeader h;
  h.base_sequence = std::numeric_limits<int32_t>::max();
  h.last_offset_delta = 0;
  EXPECT_EQ(h.last_sequence(), std::numeric_limits<int32_t>::max());
  h.last_offset_delta = 1;
  EXPECT_EQ(h.last_sequence(), 0);
  h.base_sequence = std::numeric_limits<int32_t>::max() - 1;
  h.last_offset_delta = 3;
  EXPECT_EQ(h.last_sequence(), 1);
}

TEST(BatchHeaderAccessors, LastSequenceOfNonIdempotentBatchIsMinusOne) {
  BatchHeader h;
  h.base_sequence = -1;
  h.last_offset_delta = 5;
  EXPECT_EQ(h.last_sequence(), -1);
}

TEST(CompressionName, NamesEveryCodecAndUnknownIds) {
  EXPECT_EQ(compression_name(Compression::kNone), "none");
  EXPECT_EQ(compression_name(Compression::kGzip), "gzip");
  EXPECT_EQ(compression_name(Compression::kSnappy), "snappy");
  EXPECT_EQ(compression_name(Compression::kLz4), "lz4");
  EXPECT_EQ(compression_name(Compression::kZstd), "zstd");
  EXPECT_EQ(compression_name(static_cast<Compression>(6)), "unknown(6)");
}

// ---------------------------------------------------------------- check_integrity

TEST(CheckIntegrity, AcceptsABuiltBatch) {
  Bytes b = make_batch(3);
  auto h = check_integrity(b);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->records_count, 3);
  EXPECT_EQ(h->size_bytes(), b.size());
}

TEST(CheckIntegrity, SkippingTheCrcStillChecksLengthAndMagic) {
  Bytes b = make_batch(3);
  b.back() ^= 0x01;  // payload byte: only the CRC notices
  EXPECT_EQ(check_integrity(b).error().code, Errc::kCorruption);
  EXPECT_TRUE(check_integrity(b, Crc::kSkip).has_value());
  b.push_back(0);
  EXPECT_EQ(check_integrity(b, Crc::kSkip).error().code, Errc::kCorruption);
  b.pop_back();
  EXPECT_EQ(check_integrity(ByteSpan(b).first(b.size() - 1), Crc::kSkip).error().code, Errc::kTruncated);
  b[16] = 1;  // magic
  EXPECT_EQ(check_integrity(b, Crc::kSkip).error().code, Errc::kCorruption);
}

TEST(CheckIntegrity, TruncatedHeaderIsTruncated) {
  Bytes b = make_batch(1);
  auto h = check_integrity(ByteSpan(b).first(30));
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kTruncated);
}

TEST(CheckIntegrity, MissingTailIsTruncated) {
  Bytes b = make_batch(3);
  auto h = check_integrity(ByteSpan(b).first(b.size() - 1));
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kTruncated);
  EXPECT_NE(h.error().message.find("length"), std::string::npos) << h.error().message;
}

TEST(CheckIntegrity, TrailingBytesAreCorruption) {
  Bytes b = make_batch(3);
  b.push_back(0);
  auto h = check_integrity(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
}

TEST(CheckIntegrity, BatchLengthBelowMinimumIsCorruption) {
  Bytes b = make_batch(1);
  store_be32(b.data() + kBatchLengthOffset, 10);
  auto h = check_integrity(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
}

TEST(CheckIntegrity, BadMagicIsCorruption) {
  Bytes b = make_batch(1);
  b[kMagicOffset] = 1;
  auto h = check_integrity(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
  EXPECT_NE(h.error().message.find("magic"), std::string::npos) << h.error().message;
}

TEST(CheckIntegrity, CrcMismatchIsCorruption) {
  Bytes b = make_batch(2);
  b.back() ^= 0x01;
  auto h = check_integrity(b);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, Errc::kCorruption);
  EXPECT_NE(h.error().message.find("crc"), std::string::npos) << h.error().message;
}

TEST(CheckIntegrity, AnyFlippedBitFromTheCrcFieldOnIsDetected) {
  const Bytes good = make_batch(2);
  for (size_t i = kCrcOffset; i < good.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes b = good;
      b[i] = static_cast<uint8_t>(b[i] ^ (1u << bit));
      EXPECT_FALSE(check_integrity(b).has_value()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(CheckIntegrity, BaseOffsetAndLeaderEpochAreOutsideTheCrc) {
  Bytes b = make_batch(2);
  set_base_offset(b, 123456789);
  set_partition_leader_epoch(b, 77);
  auto h = check_integrity(b);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->base_offset, 123456789);
  EXPECT_EQ(h->partition_leader_epoch, 77);
}

// ---------------------------------------------------------------- validate_produce_batch

Validated validate(const Bytes& b) { return validate_produce_batch(b); }

TEST(ValidateProduceBatch, AcceptsAClientBatch) {
  auto v = validate(make_batch(3));
  EXPECT_EQ(v.error, BatchError::kNone) << v.message;
  EXPECT_TRUE(v.message.empty());
  EXPECT_EQ(v.header.records_count, 3);
}

TEST(ValidateProduceBatch, AcceptsAnIdempotentBatch) {
  BatchBuilder bb;
  bb.set_producer(7, 0, 0);
  ASSERT_TRUE(bb.add(testing::sv("k"), testing::sv("v"), testing::kTs).has_value());
  auto v = validate(*bb.build());
  EXPECT_EQ(v.error, BatchError::kNone) << v.message;
}

TEST(ValidateProduceBatch, TruncatedHeaderIsCorruptMessage) {
  Bytes b = make_batch(1);
  b.resize(40);
  EXPECT_EQ(validate(b).error, BatchError::kCorruptMessage);
}

TEST(ValidateProduceBatch, BadBatchLengthIsCorruptMessage) {
  Bytes b = make_batch(1);
  store_be32(b.data() + kBatchLengthOffset, 3);
  EXPECT_EQ(validate(b).error, BatchError::kCorruptMessage);
}

TEST(ValidateProduceBatch, MissingTailIsCorruptMessage) {
  Bytes b = make_batch(2);
  b.pop_back();
  EXPECT_EQ(validate(b).error, BatchError::kCorruptMessage);
}

TEST(ValidateProduceBatch, TrailingBytesAreCorruptMessage) {
  Bytes b = make_batch(2);
  Bytes second = make_batch(1);
  b.insert(b.end(), second.begin(), second.end());  // two batches: Produce allows one
  EXPECT_EQ(validate(b).error, BatchError::kCorruptMessage);
}

TEST(ValidateProduceBatch, BadMagicIsInvalidRecord) {
  Bytes b = make_batch(1);
  b[kMagicOffset] = 1;
  auto v = validate(b);
  EXPECT_EQ(v.error, BatchError::kInvalidRecord);
  EXPECT_NE(v.message.find("magic"), std::string::npos);
}

TEST(ValidateProduceBatch, CrcMismatchIsCorruptMessage) {
  Bytes b = make_batch(1);
  b[kBatchHeaderSize + 2] ^= 0x40;
  auto v = validate(b);
  EXPECT_EQ(v.error, BatchError::kCorruptMessage);
  EXPECT_NE(v.message.find("crc"), std::string::npos);
}

TEST(ValidateProduceBatch, ZeroRecordsIsInvalidRecord) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.records_count = 0; h.last_offset_delta = -1; });
  EXPECT_EQ(validate(b).error, BatchError::kInvalidRecord);
}

TEST(ValidateProduceBatch, NegativeRecordsCountIsInvalidRecord) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.records_count = -5; h.last_offset_delta = -6; });
  EXPECT_EQ(validate(b).error, BatchError::kInvalidRecord);
}

TEST(ValidateProduceBatch, LastOffsetDeltaNotCountMinusOneIsInvalidRecord) {
  Bytes b = make_batch(3);
  patch(b, [](BatchHeader& h) { h.last_offset_delta = 3; });
  auto v = validate(b);
  EXPECT_EQ(v.error, BatchError::kInvalidRecord);
  EXPECT_NE(v.message.find("last offset delta"), std::string::npos);
}

TEST(ValidateProduceBatch, LastOffsetDeltaAtInt32MaxDoesNotOverflow) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.last_offset_delta = std::numeric_limits<int32_t>::max(); });
  EXPECT_EQ(validate(b).error, BatchError::kInvalidRecord);
}

TEST(ValidateProduceBatch, ControlBatchIsInvalidRecord) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.attributes |= kControlBit; });
  auto v = validate(b);
  EXPECT_EQ(v.error, BatchError::kInvalidRecord);
  EXPECT_NE(v.message.find("control"), std::string::npos);
}

TEST(ValidateProduceBatch, ProducerIdWithoutBaseSequenceIsInvalidRecord) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.producer_id = 5; h.base_sequence = -1; });
  EXPECT_EQ(validate(b).error, BatchError::kInvalidRecord);
}

TEST(ValidateProduceBatch, ReservedAttributeBitsAreInvalidRecord) {
  for (int bit = 7; bit < 16; ++bit) {
    Bytes b = make_batch(1);
    patch(b, [bit](BatchHeader& h) { h.attributes = static_cast<int16_t>(h.attributes | (1 << bit)); });
    EXPECT_EQ(validate(b).error, BatchError::kInvalidRecord) << "bit " << bit;
  }
}

TEST(ValidateProduceBatch, UnknownCompressionIsUnsupportedCompression) {
  for (int id = 5; id < 8; ++id) {
    Bytes b = make_batch(1);
    patch(b, [id](BatchHeader& h) { h.attributes = static_cast<int16_t>(id); });
    EXPECT_EQ(validate(b).error, BatchError::kUnsupportedCompression) << "id " << id;
  }
}

TEST(ValidateProduceBatch, LeavesTimestampTypeAndTransactionsToTheBroker) {
  Bytes b = make_batch(1);
  patch(b, [](BatchHeader& h) { h.attributes |= kTimestampTypeBit | kTransactionalBit; });
  EXPECT_EQ(validate(b).error, BatchError::kNone);
}

TEST(ValidateProduceBatch, DoesNotLookInsideTheRecords) {
  Bytes area = {0x01};  // not a record
  EXPECT_EQ(validate(testing::raw_batch(area, 1, 0)).error, BatchError::kNone);
}

// ---------------------------------------------------------------- split_batches

TEST(SplitBatches, EmptyBufferGivesNoBatches) {
  auto r = split_batches({});
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->empty());
}

TEST(SplitBatches, SplitsBatchesBackToBack) {
  Bytes a = make_batch(1), b = make_batch(5), c = make_batch(2, Compression::kGzip);
  Bytes all;
  for (const Bytes* x : {&a, &b, &c}) all.insert(all.end(), x->begin(), x->end());
  auto r = split_batches(all);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].data(), all.data());
  EXPECT_EQ((*r)[0].size(), a.size());
  EXPECT_EQ((*r)[1].size(), b.size());
  EXPECT_EQ((*r)[2].size(), c.size());
  for (auto s : *r) EXPECT_TRUE(check_integrity(s).has_value());
}

TEST(SplitBatches, PartialLastBatchIsTruncated) {
  Bytes all = make_batch(1);
  Bytes b = make_batch(2);
  all.insert(all.end(), b.begin(), b.end() - 1);
  auto r = split_batches(all);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kTruncated);
}

TEST(SplitBatches, TailShorterThanTheLengthFieldIsTruncated) {
  Bytes all = make_batch(1);
  all.resize(all.size() + 11, 0);
  auto r = split_batches(all);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kTruncated);
}

TEST(SplitBatches, BatchLengthBelowMinimumIsCorruption) {
  Bytes all = make_batch(1);
  Bytes b = make_batch(1);
  store_be32(b.data() + kBatchLengthOffset, static_cast<uint32_t>(-7));
  all.insert(all.end(), b.begin(), b.end());
  auto r = split_batches(all);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kCorruption);
}

// ---------------------------------------------------------------- rewrites

TEST(Rewrites, ComputeCrcMatchesTheStoredCrc) {
  Bytes b = make_batch(4);
  EXPECT_EQ(compute_crc(b), load_be32(b.data() + kCrcOffset));
}

TEST(Rewrites, SetBaseOffsetWritesBytes0To7Only) {
  Bytes b = make_batch(2);
  Bytes before = b;
  set_base_offset(b, 0x1122334455667788);
  EXPECT_EQ(load_be64(b.data()), 0x1122334455667788u);
  EXPECT_TRUE(std::equal(b.begin() + 8, b.end(), before.begin() + 8));
}

TEST(Rewrites, SetPartitionLeaderEpochWritesBytes12To15Only) {
  Bytes b = make_batch(2);
  Bytes before = b;
  set_partition_leader_epoch(b, 9);
  EXPECT_EQ(load_be32(b.data() + 12), 9u);
  EXPECT_TRUE(std::equal(b.begin(), b.begin() + 12, before.begin()));
  EXPECT_TRUE(std::equal(b.begin() + 16, b.end(), before.begin() + 16));
}

TEST(Rewrites, SetLogAppendTimeSetsBit3AndMaxTimestampAndFixesCrc) {
  Bytes b = make_batch(2, Compression::kLz4);
  set_log_append_time(b, 1800000000000);
  auto h = check_integrity(b);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->timestamp_type(), TimestampType::kLogAppendTime);
  EXPECT_EQ(h->max_timestamp, 1800000000000);
  EXPECT_EQ(h->compression(), Compression::kLz4);
  EXPECT_EQ(h->base_timestamp, testing::kTs);
}

TEST(Rewrites, SetMaxTimestampFixesCrcAndKeepsCreateTime) {
  Bytes b = make_batch(2);
  set_max_timestamp(b, testing::kTs + 50);
  auto h = check_integrity(b);
  ASSERT_TRUE(h.has_value()) << h.error().to_string();
  EXPECT_EQ(h->max_timestamp, testing::kTs + 50);
  EXPECT_EQ(h->timestamp_type(), TimestampType::kCreateTime);
}

TEST(RewritesDeathTest, RewritingFewerThan61BytesAborts) {
  Bytes b(60);
  EXPECT_DEATH(set_base_offset(b, 1), "set_base_offset");
}

TEST(BatchErrorName, NamesEveryError) {
  EXPECT_STREQ(batch_error_name(BatchError::kNone), "none");
  EXPECT_STREQ(batch_error_name(BatchError::kCorruptMessage), "corrupt message");
  EXPECT_STREQ(batch_error_name(BatchError::kInvalidRecord), "invalid record");
  EXPECT_STREQ(batch_error_name(BatchError::kUnsupportedCompression), "unsupported compression");
}

}  // namespace
}  // namespace herald::record
