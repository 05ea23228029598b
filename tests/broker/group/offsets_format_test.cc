// The __consumer_offsets record layout (Kafka's) and the group partitioner.
#include "broker/group/offsets_format.h"

#include <gtest/gtest.h>

namespace herald::broker::group {
namespace {

TEST(OffsetsFormat, JavaStringHashMatchesJava) {
  // Values from java.lang.String.hashCode().
  EXPECT_EQ(java_string_hash(""), 0);
  EXPECT_EQ(java_string_hash("a"), 97);
  EXPECT_EQ(java_string_hash("abc"), 96354);
  EXPECT_EQ(java_string_hash("billing"), -109829509);
  EXPECT_EQ(java_string_hash("console-consumer-12345"), 158455506);
  EXPECT_EQ(java_string_hash("\xc3\xa9t\xc3\xa9"), 227742);          // "été": UTF-16 units e9 74 e9
  EXPECT_EQ(java_string_hash("\xf0\x9f\x98\x80"), 1772899);          // U+1F600: surrogate pair d83d de00
  EXPECT_EQ(java_string_hash("\xff"), 65533) << "malformed UTF-8 hashes as U+FFFD";
}

TEST(OffsetsFormat, PartitionForIsAbsHashModuloPartitions) {
  EXPECT_EQ(partition_for("billing", 50), 109829509 % 50);
  EXPECT_EQ(partition_for("abc", 50), 96354 % 50);
  EXPECT_EQ(partition_for("polygenelubricants", 50), 0) << "hashCode is INT32_MIN: Kafka's abs gives 0";
  for (int i = 0; i < 100; ++i) {
    int32_t p = partition_for("group-" + std::to_string(i), 7);
    EXPECT_GE(p, 0);
    EXPECT_LT(p, 7);
  }
}

TEST(OffsetsFormat, OffsetKeyIsVersion1) {
  Bytes k = encode_offset_key(OffsetKey{"g", "t", 3}).value();
  EXPECT_EQ(k, (Bytes{0, 1, 0, 1, 'g', 0, 1, 't', 0, 0, 0, 3}));
  auto d = decode_key(k);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<OffsetKey>(*d), (OffsetKey{"g", "t", 3}));
  k[1] = 0;  // version 0 has the same layout
  EXPECT_EQ(std::get<OffsetKey>(*decode_key(k)), (OffsetKey{"g", "t", 3}));
}

TEST(OffsetsFormat, GroupKeyIsVersion2) {
  Bytes k = encode_group_key(GroupKey{"grp"}).value();
  EXPECT_EQ(k, (Bytes{0, 2, 0, 3, 'g', 'r', 'p'}));
  EXPECT_EQ(std::get<GroupKey>(*decode_key(k)).group, "grp");
}

TEST(OffsetsFormat, OffsetValueIsVersion3) {
  OffsetValue v{1234, 7, "md", 1700000000000};
  Bytes b = encode_offset_value(v).value();
  Bytes want{0, 3, 0, 0, 0, 0, 0, 0, 0x04, 0xd2, 0, 0, 0, 7, 0, 2, 'm', 'd'};
  Writer ts(8);
  ts.put_i64(1700000000000);
  want.insert(want.end(), ts.buffer().begin(), ts.buffer().end());
  EXPECT_EQ(b, want);
  auto d = decode_offset_value(b);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, v);
}

TEST(OffsetsFormat, OlderOffsetValueVersionsDecode) {
  Writer v1(64);  // offset, metadata, commit ts, expire ts
  v1.put_i16(1);
  v1.put_i64(55);
  v1.put_i16(1);
  v1.put_bytes(std::string_view("x"));
  v1.put_i64(1000);
  v1.put_i64(2000);
  auto d1 = decode_offset_value(v1.buffer());
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->offset, 55);
  EXPECT_EQ(d1->leader_epoch, -1);
  EXPECT_EQ(d1->metadata, "x");
  EXPECT_EQ(d1->commit_timestamp, 1000);
  Writer v0(64);
  v0.put_i16(0);
  v0.put_i64(9);
  v0.put_i16(0);
  v0.put_i64(5);
  auto d0 = decode_offset_value(v0.buffer());
  ASSERT_TRUE(d0);
  EXPECT_EQ(d0->offset, 9);
  EXPECT_EQ(d0->commit_timestamp, 5);
}

TEST(OffsetsFormat, GroupValueRoundTrips) {
  GroupValue v;
  v.protocol_type = "consumer";
  v.generation = 12;
  v.protocol = "range";
  v.leader = "m1";
  v.current_state_timestamp = 99;
  v.members.push_back(StoredMember{"m1", "inst", "cli", "/127.0.0.1", 300000, 45000, Bytes{1, 2}, Bytes{3}});
  v.members.push_back(StoredMember{"m2", std::nullopt, "cli2", "/10.0.0.1", 1, 2, Bytes{}, Bytes{}});
  Bytes b = encode_group_value(v).value();
  EXPECT_EQ(load_be16(b.data()), 3);
  auto d = decode_group_value(b);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(*d, v);
  GroupValue empty;
  empty.protocol_type = "consumer";
  empty.generation = 3;
  auto de = decode_group_value(encode_group_value(empty).value());
  ASSERT_TRUE(de);
  EXPECT_EQ(*de, empty);
}

TEST(OffsetsFormat, TruncatedOrUnknownRecordsAreErrorsNotCrashes) {
  Bytes k = encode_offset_key(OffsetKey{"group", "topic", 1}).value();
  for (size_t n = 0; n < k.size(); ++n) {
    EXPECT_FALSE(decode_key(ByteSpan(k.data(), n))) << n;
  }
  Bytes v = encode_offset_value(OffsetValue{1, 2, "meta", 3}).value();
  for (size_t n = 0; n < v.size(); ++n) EXPECT_FALSE(decode_offset_value(ByteSpan(v.data(), n))) << n;
  GroupValue gv;
  gv.members.push_back(StoredMember{"m", std::nullopt, "c", "h", 1, 2, Bytes{1}, Bytes{2}});
  Bytes g = encode_group_value(gv).value();
  for (size_t n = 0; n < g.size(); ++n) EXPECT_FALSE(decode_group_value(ByteSpan(g.data(), n))) << n;
  EXPECT_EQ(decode_key(Bytes{0, 9, 0, 0}).error().code, Errc::kUnsupported);
  EXPECT_EQ(decode_offset_value(Bytes{0, 4, 0}).error().code, Errc::kUnsupported);
  Bytes huge{0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
  EXPECT_FALSE(decode_group_value(huge)) << "an absurd member count is rejected before allocating";
}

// Kafka's strings in these records have an i16 length: a longer one cannot be
// written (it used to be, with a negative length, and the decoder then dropped
// the whole group record on replay).
TEST(OffsetsFormat, StringsOver32767BytesAreRefusedNotWrittenCorrupt) {
  const std::string longest(32767, 'x');
  const std::string too_long(32768, 'x');
  GroupValue gv;
  gv.protocol_type = "consumer";
  gv.generation = 1;
  gv.members.push_back(StoredMember{longest, longest, longest, "/127.0.0.1", 1, 2, Bytes{}, Bytes{}});
  auto fits = encode_group_value(gv);
  ASSERT_TRUE(fits) << fits.error().to_string();
  auto back = decode_group_value(*fits);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(*back, gv);

  for (int field = 0; field < 5; ++field) {
    GroupValue bad = gv;
    StoredMember& m = bad.members[0];
    switch (field) {
      case 0: m.member_id = too_long; break;
      case 1: m.group_instance_id = too_long; break;
      case 2: m.client_id = too_long; break;
      case 3: bad.protocol = too_long; break;
      case 4: bad.leader = too_long; break;
    }
    auto r = encode_group_value(bad);
    ASSERT_FALSE(r) << "field " << field;
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  }
  EXPECT_FALSE(encode_offset_value(OffsetValue{1, 2, too_long, 3}));
  EXPECT_TRUE(encode_offset_value(OffsetValue{1, 2, longest, 3}));
  EXPECT_FALSE(encode_offset_key(OffsetKey{too_long, "t", 0}));
  EXPECT_FALSE(encode_group_key(GroupKey{too_long}));
}

TEST(OffsetsFormat, SubscriptionTopics) {
  Writer w(32);
  w.put_i16(1);
  w.put_i32(2);
  w.put_i16(1);
  w.put_bytes(std::string_view("a"));
  w.put_i16(2);
  w.put_bytes(std::string_view("bc"));
  w.put_i32(-1);
  auto t = decode_subscription_topics(w.buffer());
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::vector<std::string>{"a", "bc"}));
  EXPECT_FALSE(decode_subscription_topics(Bytes{0, 0, 0, 0, 0, 5}));
}

}  // namespace
}  // namespace herald::broker::group
