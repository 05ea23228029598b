// Lag arithmetic and the catch-up estimate of `herald group describe` (src/cli/lag.h).
#include "cli/lag.h"

#include <gtest/gtest.h>

namespace herald::cli {
namespace {

TEST(LagTest, PartitionLagIsLogEndMinusCommitted) {
  EXPECT_EQ(partition_lag({10, 15}), 5);
  EXPECT_EQ(partition_lag({15, 15}), 0);
  EXPECT_EQ(partition_lag({0, 0}), 0);
}

TEST(LagTest, NoCommittedOffsetMeansUnknownLag) { EXPECT_FALSE(partition_lag({-1, 15})); }

TEST(LagTest, CommittedPastLogEndIsZeroNotNegative) { EXPECT_EQ(partition_lag({20, 15}), 0); }

TEST(LagTest, TotalSkipsPartitionsWithoutCommit) {
  LagSample s{{{"t", 0}, {10, 15}}, {{"t", 1}, {-1, 100}}, {{"u", 0}, {3, 4}}};
  EXPECT_EQ(total_lag(s), 6);
}

TEST(CatchUpTest, CatchingUpGivesLagOverNetRate) {
  LagSample a{{{"t", 0}, {100, 1000}}, {{"t", 1}, {100, 1000}}};
  LagSample b{{{"t", 0}, {150, 1010}}, {{"t", 1}, {150, 1010}}};  // +100 consumed, +20 produced in 2 s
  auto e = estimate_catch_up(a, b, 2.0);
  EXPECT_EQ(e.status, CatchUp::Status::kCatchingUp);
  EXPECT_DOUBLE_EQ(e.consume_rate, 50);
  EXPECT_DOUBLE_EQ(e.produce_rate, 10);
  EXPECT_EQ(e.lag, 1720);
  ASSERT_TRUE(e.seconds);
  EXPECT_DOUBLE_EQ(*e.seconds, 1720.0 / 40.0);
}

TEST(CatchUpTest, NoCommitsBetweenSamplesIsNoProgress) {
  LagSample a{{{"t", 0}, {100, 1000}}};
  auto e = estimate_catch_up(a, a, 1.0);
  EXPECT_EQ(e.status, CatchUp::Status::kNoProgress);
  EXPECT_FALSE(e.seconds);
}

TEST(CatchUpTest, ProducersFasterThanConsumersIsFallingBehind) {
  LagSample a{{{"t", 0}, {100, 1000}}};
  LagSample b{{{"t", 0}, {110, 1050}}};
  auto e = estimate_catch_up(a, b, 1.0);
  EXPECT_EQ(e.status, CatchUp::Status::kFallingBehind);
  EXPECT_FALSE(e.seconds);
}

TEST(CatchUpTest, NoLagIsCaughtUp) {
  LagSample a{{{"t", 0}, {900, 1000}}};
  LagSample b{{{"t", 0}, {1000, 1000}}};
  EXPECT_EQ(estimate_catch_up(a, b, 1.0).status, CatchUp::Status::kCaughtUp);
}

TEST(CatchUpTest, FirstCommitDuringSampleDoesNotCountAsConsumption) {
  LagSample a{{{"t", 0}, {-1, 1000}}};
  LagSample b{{{"t", 0}, {500, 1000}}};
  EXPECT_EQ(estimate_catch_up(a, b, 1.0).status, CatchUp::Status::kNoProgress);
}

TEST(DurationTest, HumanUnits) {
  EXPECT_EQ(format_duration(0.25), "250ms");
  EXPECT_EQ(format_duration(3.21), "3.2s");
  EXPECT_EQ(format_duration(42), "42s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(7800), "2h10m");
  EXPECT_EQ(format_duration(3 * 86400 + 4 * 3600 + 5), "3d04h");
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(-5), "0s");
}

}  // namespace
}  // namespace herald::cli
