#include "common/bytes.h"

#include <gtest/gtest.h>

#include <limits>

namespace herald {
namespace {

TEST(Bytes, FixedWidthRoundTrip) {
  Writer w;
  w.put_i8(-3);
  w.put_i16(-2);
  w.put_i32(std::numeric_limits<int32_t>::min());
  w.put_i64(0x0102030405060708);
  w.put_f64(1.5);
  Reader r(w.buffer());
  int8_t a;
  int16_t b;
  int32_t c;
  int64_t d;
  double e;
  ASSERT_TRUE(r.get_i8(a) && r.get_i16(b) && r.get_i32(c) && r.get_i64(d) && r.get_f64(e));
  EXPECT_EQ(a, -3);
  EXPECT_EQ(b, -2);
  EXPECT_EQ(c, std::numeric_limits<int32_t>::min());
  EXPECT_EQ(d, 0x0102030405060708);
  EXPECT_EQ(e, 1.5);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(w.buffer()[7], 0x01);  // big-endian
}

TEST(Bytes, ShortReadFailsWithoutMoving) {
  Bytes b{1, 2, 3};
  Reader r(b);
  int32_t v;
  EXPECT_FALSE(r.get_i32(v));
  EXPECT_EQ(r.position(), 0u);
}

TEST(Bytes, VarintsRoundTripAndZigzag) {
  for (int64_t v : {0L, 1L, -1L, 63L, -64L, 64L, 300L, -300L, std::numeric_limits<int64_t>::max(),
                    std::numeric_limits<int64_t>::min()}) {
    Writer w;
    w.put_varint64(v);
    EXPECT_EQ(w.size(), varint_size(v));
    Reader r(w.buffer());
    int64_t got;
    ASSERT_TRUE(r.get_varint64(got));
    EXPECT_EQ(got, v);
  }
  EXPECT_EQ(zigzag_encode32(-1), 1u);
  EXPECT_EQ(zigzag_encode32(1), 2u);
  EXPECT_EQ(zigzag_decode32(3), -2);
}

TEST(Bytes, OverlongVarintIsRejected) {
  Bytes b(6, 0x80);
  Reader r(b);
  uint32_t v;
  EXPECT_FALSE(r.get_uvarint32(v));
  Bytes t{0x80};  // truncated
  Reader r2(t);
  EXPECT_FALSE(r2.get_uvarint32(v));
}

}  // namespace
}  // namespace herald
