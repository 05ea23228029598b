// The code shown in docs/sdk.md, as functions the tests can run.
#pragma once

#include <string>

#include "common/result.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::snippets {

// Creates a users table, starts a relay, changes one e-mail through the
// outbox and stops the relay.
Result<void> outbox_example(const std::string& db_url, const std::string& brokers);

// Events: a typed payload, encoding for a plain producer, typed handlers.
Result<void> envelope_example();

// A replica of "users" into a user_emails table, read-your-writes.
Result<void> replica_example(sdk::Store& store, const std::string& brokers);
// Dead-letter settings.
sdk::ReplicaConfig poison_config();

// Settings for an Apache Kafka / Redpanda cluster instead of Herald.
Result<void> kafka_cluster_example(const std::string& db_url);

}  // namespace herald::snippets
