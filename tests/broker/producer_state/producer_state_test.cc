// ProducerStateTable: the idempotent producer's sequence window per producer id.
#include "broker/producer_state/producer_state.h"

#include <gtest/gtest.h>

namespace herald::broker {
namespace {

// A log start that passes some of a producer's batches leaves its window whole: a retry of one of them
// is still a duplicate (Kafka drops a producer only once its last batch is below the log start).
TEST(ProducerStateTable, ALogStartInsideAProducersBatchesKeepsItsWindow) {
  ProducerStateTable t;
  const int64_t now = 1000;
  for (int i = 0; i < 3; ++i) t.record(7, 0, i * 10, i * 10 + 9, i * 10, i * 10 + 9, now);
  t.expire(now, 60000, 15);  // DeleteRecords or retention up to offset 15
  ASSERT_EQ(t.size(), 1u);
  const SeqCheck retry = t.check(7, 0, 0, 9);
  EXPECT_EQ(retry.verdict, SeqVerdict::kDuplicate);
  EXPECT_EQ(retry.duplicate_base_offset, 0);
  EXPECT_EQ(t.check(7, 0, 30, 39).verdict, SeqVerdict::kAppend);
  EXPECT_EQ(t.last_batch_offsets(), std::vector<int64_t>{20});
  t.expire(now, 60000, 30);  // past its last batch: forgotten
  EXPECT_EQ(t.size(), 0u);
}

TEST(ProducerStateTable, IdleProducersExpire) {
  ProducerStateTable t;
  t.record(7, 0, 0, 9, 0, 9, 1000);
  t.record(8, 0, 0, 9, 10, 19, 5000);
  t.expire(6001, 2000, 0);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.last_batch_offsets(), std::vector<int64_t>{10});
}

}  // namespace
}  // namespace herald::broker
