// ISO-8601 and --from parsing for the CLI (src/cli/datetime.h).
#include "cli/datetime.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace herald::cli {
namespace {

constexpr int64_t kNewYear2024 = 1704067200000;  // 2024-01-01T00:00:00Z

int64_t parse(const char* s) {
  auto r = parse_datetime(s);
  EXPECT_TRUE(r) << s << ": " << (r ? "" : r.error().message);
  return r ? *r : -1;
}

TEST(DatetimeTest, UtcWithZ) {
  EXPECT_EQ(parse("2024-01-01T00:00:00Z"), kNewYear2024);
  EXPECT_EQ(parse("2024-01-01t00:00:00z"), kNewYear2024);
  EXPECT_EQ(parse("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse("2024-02-29T12:34:56Z"), 1709210096000);
}

TEST(DatetimeTest, FractionsAreMilliseconds) {
  EXPECT_EQ(parse("2024-01-01T00:00:00.5Z"), kNewYear2024 + 500);
  EXPECT_EQ(parse("2024-01-01T00:00:00.123Z"), kNewYear2024 + 123);
  EXPECT_EQ(parse("2024-01-01T00:00:00.123999Z"), kNewYear2024 + 123);
  EXPECT_EQ(parse("2024-01-01T00:00:00,250Z"), kNewYear2024 + 250);
}

TEST(DatetimeTest, ZoneOffsets) {
  EXPECT_EQ(parse("2024-01-01T02:00:00+02:00"), kNewYear2024);
  EXPECT_EQ(parse("2024-01-01T02:00:00+0200"), kNewYear2024);
  EXPECT_EQ(parse("2024-01-01T02:00:00+02"), kNewYear2024);
  EXPECT_EQ(parse("2023-12-31T19:30:00-04:30"), kNewYear2024);
}

TEST(DatetimeTest, MinutesOnlyAndSpaceSeparator) {
  EXPECT_EQ(parse("2024-01-01T00:01Z"), kNewYear2024 + 60000);
  EXPECT_EQ(parse("2024-01-01 00:01:00Z"), kNewYear2024 + 60000);
}

TEST(DatetimeTest, EpochMillis) {
  EXPECT_EQ(parse("@0"), 0);
  EXPECT_EQ(parse("@1704067200123"), kNewYear2024 + 123);
  EXPECT_FALSE(parse_datetime("@"));
  EXPECT_FALSE(parse_datetime("@-5"));
  EXPECT_FALSE(parse_datetime("@12x"));
}

TEST(DatetimeTest, NoZoneIsLocalTime) {
  setenv("TZ", "America/New_York", 1);
  tzset();
  EXPECT_EQ(parse("2024-01-01T00:00:00"), kNewYear2024 + 5 * 3600000);  // EST = UTC-5
  EXPECT_EQ(parse("2024-07-01"), 1719806400000);                       // EDT = UTC-4
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(parse("2024-01-01"), kNewYear2024);
  unsetenv("TZ");
  tzset();
}

TEST(DatetimeTest, RejectsMalformedInput) {
  for (const char* bad : {"", "yesterday", "2024", "2024-1-01", "2024-01-01T", "2024-01-01T1:00", "2024-13-01",
                          "2024-02-30", "2023-02-29", "2024-01-01T24:00:00Z", "2024-01-01T00:60Z",
                          "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00+5", "2024-01-01T00:00:00Zjunk",
                          "2024-01-01T00:00:00+25:00"}) {
    auto r = parse_datetime(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("ISO-8601"), std::string::npos) << r.error().message;
    }
  }
}

TEST(DatetimeTest, FormatTimestampIsIsoUtcWithMillis) {
  EXPECT_EQ(format_timestamp(kNewYear2024 + 7), "2024-01-01T00:00:00.007Z");
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(parse(format_timestamp(1709210096042).c_str()), 1709210096042);
}

TEST(StartPositionTest, Keywords) {
  EXPECT_EQ(parse_start_position("earliest")->kind, StartPosition::Kind::kEarliest);
  EXPECT_EQ(parse_start_position("beginning")->kind, StartPosition::Kind::kEarliest);
  EXPECT_EQ(parse_start_position("latest")->kind, StartPosition::Kind::kLatest);
  EXPECT_EQ(parse_start_position("end")->kind, StartPosition::Kind::kLatest);
}

TEST(StartPositionTest, OffsetsTailsAndTimes) {
  auto off = parse_start_position("42");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->kind, StartPosition::Kind::kOffset);
  EXPECT_EQ(off->value, 42);
  auto tail = parse_start_position("-10");
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->kind, StartPosition::Kind::kTail);
  EXPECT_EQ(tail->value, 10);
  auto ts = parse_start_position("2024-01-01T00:00:00Z");
  ASSERT_TRUE(ts);
  EXPECT_EQ(ts->kind, StartPosition::Kind::kTimestamp);
  EXPECT_EQ(ts->value, kNewYear2024);
  auto ms = parse_start_position("@5");
  ASSERT_TRUE(ms);
  EXPECT_EQ(ms->kind, StartPosition::Kind::kTimestamp);
  EXPECT_EQ(ms->value, 5);
}

TEST(StartPositionTest, RejectsOthersWithTheGrammar) {
  for (const char* bad : {"", "first", "-", "--3", "99999999999999999999", "1.5"}) {
    auto r = parse_start_position(bad);
    EXPECT_FALSE(r) << bad;
  }
  auto r = parse_start_position("soon");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("earliest, latest"), std::string::npos);
}

}  // namespace
}  // namespace herald::cli
