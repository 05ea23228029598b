// Snippets for docs/sdk.md, sections "Build a replica" and "Handle poison
// events". See outbox_snippet.cc.
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sdk/replica/replica.h"
#include "sdk/store/store.h"
#include "snippets.h"

namespace herald::snippets {

using namespace herald::sdk;

namespace {
struct EmailChanged {
  std::string email;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EmailChanged, email)
}  // namespace

Result<void> replica_example(Store& store, const std::string& brokers) {
  // [START replica_handlers]
  ReplicaHandlers handlers;
  handlers.on_json<EmailChanged>(
      "users.email_changed", [](const EmailChanged& e, const Event& ev, Tx& tx) {
        auto r = tx.exec("INSERT INTO user_emails (user_id, email) VALUES (?, ?) "
                         "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email",
                         {ev.aggregate_id, e.email});
        if (!r) throw std::runtime_error(r.error().to_string());  // retried, then dead-lettered
      });
  handlers.otherwise([](const Event& ev, Tx& tx) {
    if (ev.tombstone) {  // compacted topics: a null value deletes the key
      auto r = tx.exec("DELETE FROM user_emails WHERE user_id = ?", {ev.aggregate_id});
      if (!r) throw std::runtime_error(r.error().to_string());
    }
  });
  // [END replica_handlers]

  // [START replica_start]
  ReplicaConfig config;
  config.brokers = brokers;
  config.group_id = "billing";  // also the key of its rows in herald_offsets
  config.topics = {"users"};
  HERALD_ASSIGN_OR_RETURN(auto replica, Replica::create(config, store, std::move(handlers)));
  HERALD_TRY(replica->start());
  // Report "ready" only once the local copy has caught up with the log:
  bool ready = replica->ready();
  // [END replica_start]
  (void)ready;

  // [START replica_read_your_writes]
  // The producer tells the caller where its event landed (topic, partition,
  // offset); wait until this replica has passed it before answering.
  HERALD_ASSIGN_OR_RETURN(bool passed,
                          replica->wait_until("users", 0, 41, std::chrono::seconds(5)));
  // [END replica_read_your_writes]
  (void)passed;
  replica->stop();
  return replica->join();
}

ReplicaConfig poison_config() {
  // [START poison_config]
  ReplicaConfig config;
  config.group_id = "billing";
  config.topics = {"users"};
  config.max_retries = 5;                                 // 1 + 5 attempts...
  config.retry_backoff = std::chrono::milliseconds(200);  // ...200 ms, 400 ms, ... apart
  config.on_poison = PoisonPolicy::kDeadLetter;           // then to "users.dlq" (or kStop)
  config.ordered = true;  // later events of the same key wait behind a dead letter
  // [END poison_config]
  return config;
}

}  // namespace herald::snippets
