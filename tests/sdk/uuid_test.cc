#include "sdk/uuid.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "common/clock.h"

namespace herald::sdk {
namespace {

TEST(UuidV7, HasVersion7AndVariant10) {
  for (int i = 0; i < 1000; ++i) {
    Uuid u = new_uuid_v7_bytes();
    EXPECT_EQ(uuid_version(u), 7);
    EXPECT_EQ(u[8] & 0xC0, 0x80);
  }
}

TEST(UuidV7, CanonicalFormRoundTrips) {
  std::string s = new_uuid_v7();
  ASSERT_EQ(s.size(), 36u);
  EXPECT_EQ(s[8], '-');
  EXPECT_EQ(s[13], '-');
  EXPECT_EQ(s[14], '7');
  EXPECT_EQ(s[18], '-');
  EXPECT_EQ(s[23], '-');
  auto u = parse_uuid(s);
  ASSERT_TRUE(u);
  EXPECT_EQ(format_uuid(*u), s);
}

TEST(UuidV7, TimestampIsNow) {
  int64_t before = now_ms();
  std::string s = new_uuid_v7();
  int64_t after = now_ms();
  auto ms = uuid_v7_unix_ms(s);
  ASSERT_TRUE(ms);
  // The generator may borrow a millisecond or two under load.
  EXPECT_GE(*ms, before);
  EXPECT_LE(*ms, after + 5);
}

TEST(UuidV7, KnownLayout) {
  // RFC 9562 appendix A.6 test vector: 2022-02-22 14:22:22 UTC = 0x017F22E279B0.
  Uuid u = make_uuid_v7(0x017F22E279B0, 0xCC3, 0x18C4DC0C0C07398FULL);
  EXPECT_EQ(format_uuid(u), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
  EXPECT_EQ(*uuid_v7_unix_ms("017f22e2-79b0-7cc3-98c4-dc0c0c07398f"), 0x017F22E279B0);
}

TEST(UuidV7, StrictlyIncreasingWithinAProcess) {
  std::string prev = new_uuid_v7();
  for (int i = 0; i < 100000; ++i) {
    std::string next = new_uuid_v7();
    ASSERT_LT(prev, next) << "at " << i;
    prev = std::move(next);
  }
}

TEST(UuidV7, UniqueAcrossThreads) {
  std::vector<std::vector<std::string>> per(4);
  std::vector<std::thread> ts;
  for (auto& v : per) {
    ts.emplace_back([&v] {
      for (int i = 0; i < 20000; ++i) v.push_back(new_uuid_v7());
    });
  }
  for (auto& t : ts) t.join();
  std::set<std::string> all;
  for (auto& v : per) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 80000u);
}

TEST(UuidV7, ParseRejectsMalformed) {
  EXPECT_FALSE(parse_uuid(""));
  EXPECT_FALSE(parse_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398"));
  EXPECT_FALSE(parse_uuid("017f22e2x79b0-7cc3-98c4-dc0c0c07398f"));
  EXPECT_FALSE(parse_uuid("017f22e2-79b0-7cc3-98c4-dc0c0c07398g"));
  EXPECT_TRUE(parse_uuid("017F22E2-79B0-7CC3-98C4-DC0C0C07398F"));
  // A version 4 uuid is a uuid but not a v7.
  EXPECT_FALSE(uuid_v7_unix_ms("550e8400-e29b-41d4-a716-446655440000"));
}

}  // namespace
}  // namespace herald::sdk
