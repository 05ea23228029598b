// The code shown in docs/sdk.md, as functions the tests can run.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "sdk/replica/replica.h"
#include "sdk/saga/saga.h"
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

// docs/sagas.md: an order saga over payments and inventory (started, with one
// order begun), and the payments participant's handlers.
Result<std::unique_ptr<sdk::SagaOrchestrator>> saga_orchestrator_example(sdk::Store& store,
                                                                         const std::string& brokers);
Result<void> saga_participant_example(sdk::Store& store, sdk::ReplicaHandlers& handlers);

// Settings for an Apache Kafka / Redpanda cluster instead of Herald.
Result<void> kafka_cluster_example(const std::string& db_url);

}  // namespace herald::snippets
