// The wire primitives: classic vs compact strings/bytes/arrays, nullability,
// varint limits, array-count guards, tagged sections.
#include "protocol/wire.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/error_code.h"

namespace herald::protocol {
namespace {

TEST(WireString, ClassicIsI16LengthAndNullIsMinusOne) {
  Writer w;
  wire::write_string(w, "ab", false);
  wire::write_nullable_string(w, std::nullopt, false);
  wire::write_string(w, "", false);
  EXPECT_EQ(w.buffer(), (Bytes{0, 2, 'a', 'b', 0xff, 0xff, 0, 0}));
  Reader r(w.buffer());
  std::string s;
  std::optional<std::string> n = "x";
  ASSERT_TRUE(wire::read_string(r, false, s, "t"));
  EXPECT_EQ(s, "ab");
  ASSERT_TRUE(wire::read_nullable_string(r, false, true, n, "t"));
  EXPECT_FALSE(n.has_value());
  ASSERT_TRUE(wire::read_nullable_string(r, false, true, n, "t"));
  EXPECT_EQ(n, "");
  EXPECT_TRUE(r.empty());
}

TEST(WireString, CompactIsUvarintLengthPlusOneAndNullIsZero) {
  Writer w;
  wire::write_string(w, "ab", true);
  wire::write_nullable_string(w, std::nullopt, true);
  wire::write_string(w, "", true);
  EXPECT_EQ(w.buffer(), (Bytes{3, 'a', 'b', 0, 1}));
  Reader r(w.buffer());
  std::optional<std::string> a, b, c;
  ASSERT_TRUE(wire::read_nullable_string(r, true, true, a, "t"));
  ASSERT_TRUE(wire::read_nullable_string(r, true, true, b, "t"));
  ASSERT_TRUE(wire::read_nullable_string(r, true, true, c, "t"));
  EXPECT_EQ(a, "ab");
  EXPECT_FALSE(b.has_value());
  EXPECT_EQ(c, "");
}

TEST(WireString, LongCompactLengthUsesMultiByteVarint) {
  std::string big(200, 'z');
  Writer w;
  wire::write_string(w, big, true);
  EXPECT_EQ(w.buffer()[0], 0x80 | (201 & 0x7f));
  EXPECT_EQ(w.buffer()[1], 201 >> 7);
  Reader r(w.buffer());
  std::string s;
  ASSERT_TRUE(wire::read_string(r, true, s, "t"));
  EXPECT_EQ(s, big);
}

TEST(WireString, NullWhereNotNullableIsCorruption) {
  const Bytes classic = {0xff, 0xff};
  Reader r1(classic);
  std::string s;
  auto e1 = wire::read_string(r1, false, s, "Msg.Field");
  ASSERT_FALSE(e1);
  EXPECT_EQ(e1.error().code, Errc::kCorruption);
  EXPECT_EQ(e1.error().message.rfind("Msg.Field", 0), 0u);
  const Bytes compact = {0};
  Reader r2(compact);
  std::optional<std::string> o;
  auto e2 = wire::read_nullable_string(r2, true, /*nullable=*/false, o, "t");
  ASSERT_FALSE(e2);
  EXPECT_EQ(e2.error().code, Errc::kCorruption);
}

TEST(WireString, NegativeClassicLengthBelowMinusOneIsCorruption) {
  const Bytes b = {0xff, 0xfe, 'a'};
  Reader r(b);
  std::string s;
  auto e = wire::read_string(r, false, s, "t");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kCorruption);
}

TEST(WireString, LengthPastTheEndIsTruncated) {
  const Bytes b = {0, 5, 'a', 'b'};
  Reader r(b);
  std::string s;
  auto e = wire::read_string(r, false, s, "t");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kTruncated);
}

TEST(WireString, CompactLongerThan32767IsCorruption) {
  Writer w;
  w.put_uvarint(0x8000 + 1);
  w.put_bytes(Bytes(0x8000, 'a'));
  Reader r(w.buffer());
  std::string s;
  auto e = wire::read_string(r, true, s, "t");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kCorruption);
}

TEST(WireString, EncoderCutsOverlongStrings) {
  Writer w;
  wire::write_string(w, std::string(40000, 'q'), false);
  EXPECT_EQ(w.size(), 2 + wire::kMaxStringLength);
  Reader r(w.buffer());
  std::string s;
  ASSERT_TRUE(wire::read_string(r, false, s, "t"));
  EXPECT_EQ(s.size(), wire::kMaxStringLength);
}

TEST(WireBytes, ClassicAndCompactAndNull) {
  Writer w;
  wire::write_bytes(w, Bytes{9, 8}, false);
  wire::write_nullable_bytes(w, std::nullopt, false);
  wire::write_bytes(w, Bytes{7}, true);
  wire::write_nullable_bytes(w, std::nullopt, true);
  EXPECT_EQ(w.buffer(), (Bytes{0, 0, 0, 2, 9, 8, 0xff, 0xff, 0xff, 0xff, 2, 7, 0}));
  Reader r(w.buffer());
  Bytes a;
  std::optional<Bytes> b, c, d;
  ASSERT_TRUE(wire::read_bytes(r, false, a, "t"));
  ASSERT_TRUE(wire::read_nullable_bytes(r, false, true, b, "t"));
  ASSERT_TRUE(wire::read_nullable_bytes(r, true, true, c, "t"));
  ASSERT_TRUE(wire::read_nullable_bytes(r, true, true, d, "t"));
  EXPECT_EQ(a, (Bytes{9, 8}));
  EXPECT_FALSE(b.has_value());
  EXPECT_EQ(c, (Bytes{7}));
  EXPECT_FALSE(d.has_value());
}

TEST(WireRecords, DecodeViewsTheInputWithoutCopying) {
  const Bytes frame = {0, 0, 0, 3, 1, 2, 3, 0xff, 0xff, 0xff, 0xff};
  Reader r(frame);
  Records rec;
  ASSERT_TRUE(wire::read_records(r, false, true, rec, "t"));
  EXPECT_FALSE(rec.is_null);
  EXPECT_EQ(rec.bytes().data(), frame.data() + 4);
  EXPECT_EQ(rec.size(), 3u);
  Records null_rec = Records::empty();
  ASSERT_TRUE(wire::read_records(r, false, true, null_rec, "t"));
  EXPECT_TRUE(null_rec.is_null);
  Writer w;
  wire::write_records(w, rec, false);
  wire::write_records(w, null_rec, false);
  EXPECT_EQ(w.buffer(), frame);
}

TEST(WireRecords, OwnedCopiesCompareByContent) {
  Records a = Records::copy_of(Bytes{1, 2});
  Records b = Records::view_of(a.bytes());
  Records c = a;  // shares the owner
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_EQ(c.owned.get(), a.owned.get());
  EXPECT_FALSE(a == Records());
  EXPECT_FALSE(Records::empty() == Records());
  Writer w;
  wire::write_records(w, a, true);
  wire::write_records(w, Records::empty(), true);
  EXPECT_EQ(w.buffer(), (Bytes{3, 1, 2, 1}));
}

TEST(WireArray, CountLargerThanRemainingBytesFailsBeforeAllocating) {
  const Bytes classic = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  Reader r(classic);
  int64_t n = 0;
  auto e = wire::read_array_length(r, false, 4, n, "Msg.Array");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kCorruption);
  const Bytes compact = {0xff, 0xff, 0xff, 0xff, 0x0f};
  Reader r2(compact);
  ASSERT_FALSE(wire::read_array_length(r2, true, 1, n, "t"));
}

TEST(WireArray, CountIsCheckedAgainstTheMinimumElementSize) {
  const Bytes b = {0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};  // two int32 need 8 bytes, 7 remain
  Reader r(b);
  int64_t n = 0;
  EXPECT_FALSE(wire::read_array_length(r, false, 4, n, "t"));
  Reader r2(b);
  ASSERT_TRUE(wire::read_array_length(r2, false, 2, n, "t"));
  EXPECT_EQ(n, 2);
}

TEST(WireArray, NullAndEmpty) {
  Writer w;
  wire::write_null_array(w, false);
  wire::write_array_length(w, 0, false);
  wire::write_null_array(w, true);
  wire::write_array_length(w, 0, true);
  EXPECT_EQ(w.buffer(), (Bytes{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1}));
  Reader r(w.buffer());
  int64_t n = 5;
  ASSERT_TRUE(wire::read_array_length(r, false, 1, n, "t"));
  EXPECT_EQ(n, -1);
  ASSERT_TRUE(wire::read_array_length(r, false, 1, n, "t"));
  EXPECT_EQ(n, 0);
  ASSERT_TRUE(wire::read_array_length(r, true, 1, n, "t"));
  EXPECT_EQ(n, -1);
  ASSERT_TRUE(wire::read_array_length(r, true, 1, n, "t"));
  EXPECT_EQ(n, 0);
}

TEST(WireVarint, OverlongVarintIsCorruptionShortIsTruncated) {
  const Bytes overlong = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  Reader r(overlong);
  uint32_t v = 0;
  auto e = wire::read_uvarint32(r, v, "t");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kCorruption);
  const Bytes too_big = {0xff, 0xff, 0xff, 0xff, 0x1f};  // > 32 bits
  Reader r2(too_big);
  EXPECT_FALSE(wire::read_uvarint32(r2, v, "t"));
  const Bytes shrt = {0x80, 0x80};
  Reader r3(shrt);
  auto e3 = wire::read_uvarint32(r3, v, "t");
  ASSERT_FALSE(e3);
  EXPECT_EQ(e3.error().code, Errc::kTruncated);
}

TEST(WireTagged, UnknownTagsAreSkipped) {
  Writer w;
  w.put_uvarint(2);
  Writer f1;
  f1.put_i32(7);
  wire::write_tagged_field(w, 5, f1);
  Writer f2;
  wire::write_string(f2, "hello", true);
  wire::write_tagged_field(w, 300, f2);
  w.put_u8(0x42);
  Reader r(w.buffer());
  ASSERT_TRUE(wire::skip_tagged_fields(r, "t"));
  uint8_t after = 0;
  ASSERT_TRUE(r.get_u8(after));
  EXPECT_EQ(after, 0x42);
}

TEST(WireTagged, SizePastTheEndIsTruncated) {
  const Bytes b = {1, 0, 10, 1, 2};
  Reader r(b);
  auto e = wire::skip_tagged_fields(r, "t");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, Errc::kTruncated);
}

TEST(WireFixed, BoolReadsAnyNonZeroAsTrue) {
  const Bytes b = {0, 1, 2};
  Reader r(b);
  bool x = true;
  ASSERT_TRUE(wire::read(r, x, "t"));
  EXPECT_FALSE(x);
  ASSERT_TRUE(wire::read(r, x, "t"));
  EXPECT_TRUE(x);
  ASSERT_TRUE(wire::read(r, x, "t"));
  EXPECT_TRUE(x);
  EXPECT_FALSE(wire::read(r, x, "t"));
}

TEST(WireFixed, UuidIsSixteenRawBytes) {
  Bytes b(16);
  for (size_t i = 0; i < 16; ++i) b[i] = static_cast<uint8_t>(i + 1);
  Reader r(b);
  Uuid u{};
  EXPECT_TRUE(is_zero(u));
  ASSERT_TRUE(wire::read(r, u, "t"));
  EXPECT_EQ(u[0], 1);
  EXPECT_EQ(u[15], 16);
  EXPECT_FALSE(is_zero(u));
  Reader short_r(ByteSpan(b).first(15));
  EXPECT_FALSE(wire::read(short_r, u, "t"));
}

TEST(ErrorCodes, NamesAndRetriability) {
  EXPECT_STREQ(error_name(ErrorCode::kNone), "NONE");
  EXPECT_STREQ(error_name(ErrorCode::kUnknownTopicOrPartition), "UNKNOWN_TOPIC_OR_PARTITION");
  EXPECT_STREQ(error_name(ErrorCode::kUnknownServerError), "UNKNOWN_SERVER_ERROR");
  EXPECT_STREQ(error_name(ErrorCode::kMismatchedEndpointType), "MISMATCHED_ENDPOINT_TYPE");
  EXPECT_STREQ(error_name(static_cast<ErrorCode>(999)), "UNKNOWN");
  EXPECT_EQ(to_wire(ErrorCode::kMemberIdRequired), 79);
  EXPECT_TRUE(is_retriable(ErrorCode::kNotCoordinator));
  EXPECT_TRUE(is_retriable(ErrorCode::kUnknownTopicId));
  EXPECT_FALSE(is_retriable(ErrorCode::kInvalidRequest));
  EXPECT_FALSE(is_retriable(ErrorCode::kNone));
}

}  // namespace
}  // namespace herald::protocol
