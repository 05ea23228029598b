// TestBroker: the embedded broker, in its own file so that tests without a
// broker (store, envelope) do not link the broker.
#include <gtest/gtest.h>

#include "broker/broker.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {

std::unique_ptr<TestBroker> TestBroker::start(int partitions, bool auto_create_topics) {
  broker::BrokerConfig cfg;
  cfg.listen_port = 0;
  cfg.ephemeral = true;
  cfg.default_partitions = partitions;
  cfg.auto_create_topics = auto_create_topics;
  auto b = broker::Broker::start(cfg);
  if (!b) {
    ADD_FAILURE() << "broker start: " << b.error().to_string();
    std::abort();
  }
  auto tb = std::unique_ptr<TestBroker>(new TestBroker());
  tb->broker_ = std::move(*b);
  return tb;
}

TestBroker::~TestBroker() { stop(); }
uint16_t TestBroker::port() const { return broker_->port(); }
std::string TestBroker::brokers() const { return "127.0.0.1:" + std::to_string(port()); }
void TestBroker::stop() {
  if (broker_) broker_->stop();
}

}  // namespace herald::sdk::testing
