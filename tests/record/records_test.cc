#include "record/records.h"

#include <gtest/gtest.h>

#include <limits>

#include "record/builder.h"
#include "record/compression.h"
#include "test_util.h"

namespace herald::record {
namespace {

using testing::kTs;
using testing::make_batch;
using testing::raw_batch;
using testing::str;
using testing::sv;

// A well-formed record body: attributes 0, deltas, key "k", value "val", no headers.
Bytes good_body(int32_t offset_delta = 0) {
  Writer w;
  w.put_i8(0);
  w.put_varint64(0);
  w.put_varint32(offset_delta);
  w.put_varint32(1);
  w.put_bytes(std::string_view("k"));
  w.put_varint32(3);
  w.put_bytes(std::string_view("val"));
  w.put_varint32(0);
  return w.take();
}

// varint(length of body) + body, appended to area.
void append_record(Bytes& area, const Bytes& body) {
  Writer w;
  w.put_varint32(static_cast<int32_t>(body.size()));
  area.insert(area.end(), w.buffer().begin(), w.buffer().end());
  area.insert(area.end(), body.begin(), body.end());
}

Bytes area_of(const Bytes& body) {
  Bytes area;
  append_record(area, body);
  return area;
}

Error decode_error(const Bytes& batch) {
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  EXPECT_FALSE(r.has_value());
  return r ? Error{Errc::kClosed, "unexpected success"} : r.error();
}

// ---------------------------------------------------------------- happy paths

TEST(DecodeRecords, DecodesKeysValuesHeadersAndDeltas) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("k0"), sv("v0"), kTs, {{"h1", sv("x")}, {"h2", std::nullopt}}).has_value());
  ASSERT_TRUE(b.add(sv("k1"), sv("v1"), kTs + 7).has_value());
  Bytes batch = *b.build();
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->size(), 2u);
  const Record& a = (*r)[0];
  EXPECT_EQ(a.offset_delta, 0);
  EXPECT_EQ(a.timestamp_delta, 0);
  EXPECT_EQ(str(*a.key), "k0");
  EXPECT_EQ(str(*a.value), "v0");
  ASSERT_EQ(a.headers.size(), 2u);
  EXPECT_EQ(a.headers[0].key, "h1");
  EXPECT_EQ(str(*a.headers[0].value), "x");
  EXPECT_EQ(a.headers[1].key, "h2");
  EXPECT_FALSE(a.headers[1].value.has_value());
  const Record& c = (*r)[1];
  EXPECT_EQ(c.offset_delta, 1);
  EXPECT_EQ(c.timestamp_delta, 7);
  EXPECT_TRUE(c.headers.empty());
}

TEST(DecodeRecords, NullKeyAndValueAreNulloptAndEmptyOnesAreNot) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(std::nullopt, std::nullopt, kTs).has_value());
  ASSERT_TRUE(b.add(sv(""), sv(""), kTs).has_value());
  Bytes batch = *b.build();
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_FALSE((*r)[0].key.has_value());
  EXPECT_FALSE((*r)[0].value.has_value());
  ASSERT_TRUE((*r)[1].key.has_value());
  ASSERT_TRUE((*r)[1].value.has_value());
  EXPECT_TRUE((*r)[1].key->empty());
  EXPECT_TRUE((*r)[1].value->empty());
}

TEST(DecodeRecords, ViewsPointIntoTheBatchWhenUncompressed) {
  Bytes batch = make_batch(2);
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value());
  EXPECT_GE((*r)[0].key->data(), batch.data());
  EXPECT_LT((*r)[1].value->data(), batch.data() + batch.size());
  EXPECT_TRUE(scratch.empty());
}

TEST(DecodeRecords, ViewsPointIntoScratchWhenCompressed) {
  Bytes batch = make_batch(2, Compression::kZstd);
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_GE((*r)[0].key->data(), scratch.data());
  EXPECT_LT((*r)[1].value->data(), scratch.data() + scratch.size());
}

class DecodeRecordsCodec : public ::testing::TestWithParam<Compression> {};

TEST_P(DecodeRecordsCodec, DecodesACompressedBatch) {
  Bytes batch = make_batch(50, GetParam());
  ASSERT_EQ(parse_header(batch)->compression(), GetParam());
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ(r->size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(str(*(*r)[static_cast<size_t>(i)].key), "key-" + std::to_string(i));
    EXPECT_EQ(str(*(*r)[static_cast<size_t>(i)].value), "value-" + std::to_string(i));
    EXPECT_EQ((*r)[static_cast<size_t>(i)].offset_delta, i);
  }
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, DecodeRecordsCodec,
                         ::testing::Values(Compression::kNone, Compression::kGzip, Compression::kSnappy,
                                           Compression::kLz4, Compression::kZstd),
                         testing::codec_test_name);

TEST(DecodeRecords, EmptyBatchDecodesToNoRecords) {
  BatchBuilder b(Compression::kGzip);
  b.set_last_offset_delta(4);
  Bytes batch = *b.build();
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_TRUE(r->empty());
}

TEST(DecodeRecords, IgnoresRecordAttributes) {
  Bytes body = good_body();
  body[0] = 0x7f;
  Bytes scratch;
  EXPECT_TRUE(decode_records(raw_batch(area_of(body), 1, 0), scratch).has_value());
}

TEST(DecodeRecords, NegativeTimestampDeltaDecodes) {
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("a"), sv("b"), kTs).has_value());
  ASSERT_TRUE(b.add(sv("a"), sv("b"), kTs - 1000).has_value());
  Bytes batch = *b.build();
  Bytes scratch;
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ((*r)[1].timestamp_delta, -1000);
}

// ---------------------------------------------------------------- batch-level errors

TEST(DecodeRecords, TruncatedHeaderIsTruncated) {
  Bytes b = make_batch(1);
  b.resize(50);
  EXPECT_EQ(decode_error(b).code, Errc::kTruncated);
}

TEST(DecodeRecords, BatchShorterThanItsLengthIsTruncated) {
  Bytes b = make_batch(1);
  b.pop_back();
  EXPECT_EQ(decode_error(b).code, Errc::kTruncated);
}

TEST(DecodeRecords, BatchLongerThanItsLengthIsCorruption) {
  Bytes b = make_batch(1);
  b.push_back(0);
  EXPECT_EQ(decode_error(b).code, Errc::kCorruption);
}

TEST(DecodeRecords, BadMagicIsCorruption) {
  Bytes b = make_batch(1);
  b[kMagicOffset] = 0;
  EXPECT_EQ(decode_error(b).code, Errc::kCorruption);
}

TEST(DecodeRecords, UnknownCompressionIsUnsupported) {
  Bytes b = raw_batch(area_of(good_body()), 1, 0, /*attributes=*/5);
  EXPECT_EQ(decode_error(b).code, Errc::kUnsupported);
}

TEST(DecodeRecords, NegativeRecordsCountIsCorruption) {
  EXPECT_EQ(decode_error(raw_batch(area_of(good_body()), -1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, FewerRecordsThanCountIsCorruption) {
  Error e = decode_error(raw_batch(area_of(good_body()), 2, 1));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("record 1"), std::string::npos) << e.message;
}

TEST(DecodeRecords, HugeRecordsCountFailsWithoutAHugeAllocation) {
  Error e = decode_error(raw_batch(area_of(good_body()), std::numeric_limits<int32_t>::max(), 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
}

TEST(DecodeRecords, BytesAfterTheLastRecordAreCorruption) {
  Bytes area = area_of(good_body());
  append_record(area, good_body(1));
  Error e = decode_error(raw_batch(area, 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("after the last"), std::string::npos) << e.message;
}

TEST(DecodeRecords, CorruptCompressedAreaIsCorruption) {
  Bytes junk = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(decode_error(raw_batch(junk, 1, 0, static_cast<int16_t>(Compression::kGzip))).code,
            Errc::kCorruption);
}

TEST(DecodeRecords, CompressedAreaOverTheCapIsCorruption) {
  Bytes big(1 << 20, 'x');
  BatchBuilder b(Compression::kZstd);
  ASSERT_TRUE(b.add(sv("k"), ByteSpan(big), kTs).has_value());
  Bytes batch = *b.build();
  Bytes scratch;
  auto r = decode_records(batch, scratch, /*max_decompressed_bytes=*/64 * 1024);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kCorruption);
  EXPECT_NE(r.error().message.find("exceeds cap"), std::string::npos) << r.error().message;
}

TEST(DecodeRecords, UncompressedAreaIsNotSubjectToTheCap) {
  Bytes big(1 << 16, 'x');
  BatchBuilder b;
  ASSERT_TRUE(b.add(sv("k"), ByteSpan(big), kTs).has_value());
  Bytes batch = *b.build();
  Bytes scratch;
  EXPECT_TRUE(decode_records(batch, scratch, 1024).has_value());
}

// ---------------------------------------------------------------- record-level errors

TEST(DecodeRecords, RecordLengthPastTheEndIsCorruption) {
  Bytes body = good_body();
  Bytes area;
  Writer w;
  w.put_varint32(static_cast<int32_t>(body.size() + 1));
  area = w.take();
  area.insert(area.end(), body.begin(), body.end());
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, NegativeRecordLengthIsCorruption) {
  Writer w;
  w.put_varint32(-3);
  Bytes area = w.take();
  Bytes body = good_body();
  area.insert(area.end(), body.begin(), body.end());
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, RecordLengthTooSmallForAnyRecordIsCorruption) {
  Bytes area = {0x02, 0x00};  // length 1: attributes only
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, RecordLengthLongerThanItsFieldsIsCorruption) {
  Bytes body = good_body();
  body.push_back(0);  // an unread byte inside the record
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("unread"), std::string::npos) << e.message;
}

TEST(DecodeRecords, RecordLengthShorterThanItsFieldsIsCorruption) {
  Bytes body = good_body();
  Bytes area;
  Writer w;
  w.put_varint32(static_cast<int32_t>(body.size() - 1));
  area = w.take();
  area.insert(area.end(), body.begin(), body.end());
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, UnterminatedLengthVarintIsCorruption) {
  Bytes area = {0xff, 0xff, 0xff};
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, OverlongLengthVarintIsCorruption) {
  Bytes area = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};  // six bytes: over the 5-byte varint limit
  Bytes body = good_body();
  area.insert(area.end(), body.begin(), body.end());
  EXPECT_EQ(decode_error(raw_batch(area, 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, BadTimestampDeltaVarintIsCorruption) {
  Bytes body = {0x00};
  body.insert(body.end(), 11, 0xff);  // 11 continuation bytes: no varlong ends
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("timestamp"), std::string::npos) << e.message;
}

TEST(DecodeRecords, BadOffsetDeltaVarintIsCorruption) {
  Bytes body = {0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("offset delta"), std::string::npos) << e.message;
}

TEST(DecodeRecords, KeyLengthPastTheRecordIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, /*key len 50*/ 100, 'k', /*value*/ 0x01, /*headers*/ 0x00};
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("key length"), std::string::npos) << e.message;
}

TEST(DecodeRecords, KeyLengthBelowMinusOneIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, /*key len -2*/ 0x03, /*value*/ 0x01, /*headers*/ 0x00};
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, ValueLengthPastTheRecordIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, /*key null*/ 0x01, /*value len 3*/ 0x06, 'v', /*headers*/ 0x00};
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("value length"), std::string::npos) << e.message;
}

TEST(DecodeRecords, ValueLengthBelowMinusOneIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, /*value len -5*/ 0x09, 0x00};
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, MissingHeaderCountIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, 0x80};  // header count varint never ends
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, NegativeHeaderCountIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, /*-1*/ 0x01};
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, HeaderCountBeyondTheRecordIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, /*count*/ 0xfe, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01};
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("header count"), std::string::npos) << e.message;
}

TEST(DecodeRecords, NegativeHeaderKeyLengthIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, /*count 1*/ 0x02, /*key len -1*/ 0x01, /*value*/ 0x01};
  Error e = decode_error(raw_batch(area_of(body), 1, 0));
  EXPECT_EQ(e.code, Errc::kCorruption);
  EXPECT_NE(e.message.find("header 0"), std::string::npos) << e.message;
}

TEST(DecodeRecords, HeaderKeyPastTheRecordIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, 0x02, /*key len 4*/ 0x08, 'a', 0x01};
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, HeaderValuePastTheRecordIsCorruption) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x02, 'a', /*value len 2*/ 0x04, 'x'};
  EXPECT_EQ(decode_error(raw_batch(area_of(body), 1, 0)).code, Errc::kCorruption);
}

TEST(DecodeRecords, HeaderWithNullValueDecodes) {
  Bytes body = {0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x02, 'a', /*null*/ 0x01};
  Bytes scratch;
  Bytes batch = raw_batch(area_of(body), 1, 0);
  auto r = decode_records(batch, scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  ASSERT_EQ((*r)[0].headers.size(), 1u);
  EXPECT_EQ((*r)[0].headers[0].key, "a");
  EXPECT_FALSE((*r)[0].headers[0].value.has_value());
}

// ---------------------------------------------------------------- RecordReader / for_each_record

TEST(RecordReader, NextKeepsReturningFalseAfterTheLastRecord) {
  Bytes batch = make_batch(1);
  Bytes scratch;
  auto reader = RecordReader::open(batch, scratch);
  ASSERT_TRUE(reader.has_value());
  Record r;
  EXPECT_TRUE(*reader->next(r));
  EXPECT_EQ(reader->remaining(), 0);
  EXPECT_FALSE(*reader->next(r));
  EXPECT_FALSE(*reader->next(r));
}

TEST(ForEachRecord, VisitsEveryRecordInOrder) {
  Bytes batch = make_batch(5, Compression::kSnappy);
  Bytes scratch;
  int32_t seen = 0;
  auto r = for_each_record(batch, scratch, [&](const Record& rec) -> Result<void> {
    EXPECT_EQ(rec.offset_delta, seen++);
    return ok();
  });
  EXPECT_TRUE(r.has_value());
  EXPECT_EQ(seen, 5);
}

TEST(ForEachRecord, StopsAtTheFirstCallbackError) {
  Bytes batch = make_batch(5);
  Bytes scratch;
  int calls = 0;
  auto r = for_each_record(batch, scratch, [&](const Record&) -> Result<void> {
    if (++calls == 2) return Error{Errc::kInvalidArgument, "stop"};
    return ok();
  });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "stop");
  EXPECT_EQ(calls, 2);
}

TEST(ForEachRecord, ReportsADecodingError) {
  Bytes scratch;
  auto r = for_each_record(raw_batch(area_of(good_body()), 2, 1), scratch,
                           [](const Record&) -> Result<void> { return ok(); });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kCorruption);
}

// ---------------------------------------------------------------- check_produce_records

TEST(CheckProduceRecords, AcceptsSequentialOffsetDeltas) {
  Bytes batch = make_batch(4, Compression::kLz4);
  Bytes scratch;
  EXPECT_TRUE(check_produce_records(batch, scratch).has_value());
}

TEST(CheckProduceRecords, ReturnsTheRecordsOwnSmallestAndLargestTimestamp) {
  BatchBuilder b;
  for (int64_t ts : {kTs + 5, kTs - 3, int64_t{-1}, kTs + 9, kTs}) ASSERT_TRUE(b.add(std::nullopt, std::nullopt, ts));
  Bytes scratch;
  auto r = check_produce_records(*b.build(), scratch);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->min, kTs - 3);  // -1 (no timestamp) is not a time
  EXPECT_EQ(r->max, kTs + 9);
}

TEST(CheckProduceRecords, RejectsAGapInOffsetDeltas) {
  Bytes area = area_of(good_body(0));
  append_record(area, good_body(2));
  Bytes scratch;
  auto r = check_produce_records(raw_batch(area, 2, 1), scratch);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("offset delta 2, expected 1"), std::string::npos) << r.error().message;
}

TEST(CheckProduceRecords, RejectsAFirstDeltaOtherThanZero) {
  Bytes scratch;
  EXPECT_FALSE(check_produce_records(raw_batch(area_of(good_body(1)), 1, 0), scratch).has_value());
}

}  // namespace
}  // namespace herald::record
