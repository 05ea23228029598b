#include "protocol/format.h"

#include <gtest/gtest.h>

#include "protocol/messages.h"

namespace herald::protocol {
namespace {

TEST(Format, MessagesRenderForLogs) {
  ProduceRequest m;
  m.acks = -1;
  m.timeout_ms = 1500;
  auto& t = m.topic_data.emplace_back();
  t.name = "orders";
  t.partition_data.push_back({3, Records::copy_of(Bytes(70))});
  EXPECT_EQ(fmt::format("{}", m),
            "ProduceRequest{transactional_id=null, acks=-1, timeout_ms=1500, "
            "topic_data=[{name=\"orders\", partition_data=[{index=3, records=<70 bytes of records>}]}]}");
}

TEST(Format, LongListsAreCut) {
  MetadataResponse m;
  m.topics.emplace_back().partitions.emplace_back().replica_nodes.assign(20, 1);
  const std::string s = to_string(m);
  EXPECT_NE(s.find(", ... (4 more)]"), std::string::npos) << s;
  EXPECT_NE(s.find("topic_id=00000000000000000000000000000000"), std::string::npos) << s;
  EXPECT_NE(s.find("cluster_id=null"), std::string::npos) << s;
}

}  // namespace
}  // namespace herald::protocol
