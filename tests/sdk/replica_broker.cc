// GroupBroker (replica_harness.h): the embedded broker for the replica tests.
// Kept apart so that sdk_replica_helper does not link the broker.
#include <gtest/gtest.h>

#include "broker/broker.h"
#include "replica_harness.h"

namespace herald::sdk::testing {

// ---------------------------------------------------------------- broker

std::unique_ptr<GroupBroker> GroupBroker::start(GroupBrokerOptions o) {
  broker::BrokerConfig cfg;
  cfg.listen_port = o.port;
  if (o.data_dir.empty()) {
    cfg.ephemeral = true;
  } else {
    cfg.data_dir = o.data_dir;
  }
  cfg.default_partitions = o.partitions;
  cfg.group_initial_rebalance_delay_ms = 0;
  cfg.group_min_session_timeout_ms = 500;
  cfg.maintenance_interval_ms = o.maintenance_interval_ms;
  auto b = broker::Broker::start(cfg);
  if (!b) {
    ADD_FAILURE() << "broker start: " << b.error().to_string();
    std::abort();
  }
  auto gb = std::unique_ptr<GroupBroker>(new GroupBroker());
  gb->broker_ = std::move(*b);
  return gb;
}

GroupBroker::~GroupBroker() { stop(); }
std::string GroupBroker::brokers() const { return "127.0.0.1:" + std::to_string(broker_->port()); }
void GroupBroker::stop() {
  if (broker_) broker_->stop();
}

}  // namespace herald::sdk::testing
