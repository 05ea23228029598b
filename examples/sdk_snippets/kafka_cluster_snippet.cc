// Snippets for docs/sdk.md, section "Switch to a Kafka cluster". See outbox_snippet.cc.
#include "sdk/outbox/relay.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"
#include "snippets.h"

namespace herald::snippets {

using namespace herald::sdk;

Result<void> kafka_cluster_example(const std::string& db_url) {
  HERALD_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::open(db_url));
  // [START kafka_cluster]
  // Same code, other bootstrap servers; security settings are plain librdkafka ones.
  const std::vector<std::pair<std::string, std::string>> cluster = {
      {"security.protocol", "SASL_SSL"},
      {"sasl.mechanisms", "SCRAM-SHA-512"},
      {"sasl.username", "users-service"},
      {"sasl.password", "change-me"},
  };

  RelayOptions relay_options;
  relay_options.brokers = "kafka-1.internal:9093,kafka-2.internal:9093,kafka-3.internal:9093";
  relay_options.kafka_config = cluster;

  ReplicaConfig replica_config;
  replica_config.brokers = relay_options.brokers;
  replica_config.group_id = "billing";
  replica_config.topics = {"users"};
  replica_config.kafka = cluster;
  replica_config.dlq_producer = cluster;
  // [END kafka_cluster]
  HERALD_ASSIGN_OR_RETURN(auto relay, OutboxRelay::create(*store, relay_options));
  (void)relay;
  return ok();
}

}  // namespace herald::snippets
