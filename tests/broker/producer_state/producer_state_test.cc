// ProducerStateTable: the idempotent producer's sequence window per producer id.
#include "broker/producer_state/producer_state.h"

#include <gtest/gtest.h>

namespace herald::broker {
namespace {

TEST(ProducerStateTable, IdleProducersExpire) {
  ProducerStateTable t;
  t.record(7, 0, 0, 9, 0, 9, 1000);
  t.record(8, 0, 0, 9, 10, 19, 5000);
  t.expire(6001, 2000);
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.last_batch_offsets(), std::vector<int64_t>{10});
}

}  // namespace
}  // namespace herald::broker
