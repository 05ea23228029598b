// Parked events: the database side of ordered dead letters.
//
// In ordered mode a Replica keeps per-key order across a poison event: the
// poisoned event goes to the dead-letter topic AND becomes the head of a
// chain for its key in table herald_parked; every later event of that key is
// appended to the chain instead of being applied, while other keys flow on.
// The chain is applied, head first and in original offset order, when a
// replay of its head arrives (dlq::replay re-publishes it) or when
// replay_parked() marks it runnable in the database.
//
//   herald_parked(
//     group_id TEXT, topic TEXT, partition_id INTEGER, record_offset BIGINT,
//     record_key BYTEA NOT NULL,     -- chains are per (group, topic, partition, key)
//     payload BYTEA,                 -- NULL = tombstone
//     headers TEXT NOT NULL,         -- headers_to_json()
//     record_timestamp BIGINT,       -- source record timestamp (ms)
//     state INTEGER NOT NULL,        -- see ParkedState
//     error TEXT, attempts INTEGER, parked_at BIGINT,
//     PRIMARY KEY (group_id, topic, partition_id, record_offset))
//
// A chain's first row (lowest offset) decides what happens to it:
//   first row state   meaning                               replica does
//   ----------------  ------------------------------------  ---------------------
//   kDead             head failed, is in the DLQ            waits for a replay
//   kWaiting          earlier head applied or skipped       applies the chain now
//   kReplay           replay_parked() asked for it          applies the chain now
// Rows behind the first are always kWaiting.
//
// Usage (tools; the replica calls the Tx-level functions itself):
//   HERALD_ASSIGN_OR_RETURN(auto rows, dlq::list_parked(*store, "billing"));
//   HERALD_ASSIGN_OR_RETURN(auto n, dlq::replay_parked(*store, "billing", "users", "user-42"));
#pragma once

#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sdk/envelope.h"
#include "sdk/store/store.h"

namespace herald::sdk::dlq {

enum class ParkedState : int { kWaiting = 0, kDead = 1, kReplay = 2 };

struct ParkedEvent {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::optional<std::string> value;
  Headers headers;
  int64_t timestamp_ms = -1;
  ParkedState state = ParkedState::kWaiting;
  std::string error;
  int attempts = 0;
  int64_t parked_at_ms = 0;
};

// Creates herald_parked (idempotent; Replica::create runs it).
const std::vector<Migration>& parked_migrations();

// ---- inside a transaction (used by the replica) ----

Result<void> park(Tx& tx, const ParkedEvent& e);
// The first `limit` rows of the chain of (group, topic, partition, key), first row first. Order
// is per partition, as in Kafka: a key with parked events in two partitions has a chain in each.
Result<std::vector<ParkedEvent>> load_chain(Tx& tx, std::string_view group, std::string_view topic,
                                            int32_t partition, std::string_view key, int64_t limit);
// Keys with a chain in (group, topic, partition), each with the offset of its chain's first row
// (only those two columns are read: a chain may hold many large events).
Result<std::map<std::string, int64_t>> parked_heads(Tx& tx, std::string_view group, std::string_view topic,
                                                    int32_t partition);
struct ChainId {
  std::string topic;
  int32_t partition = 0;
  std::string key;
};
// Chains of `group` whose first row is not kDead (to be applied now).
Result<std::vector<ChainId>> runnable_chains(Tx& tx, std::string_view group);
// Returns how many rows went (0: another transaction deleted it first).
Result<int64_t> delete_parked(Tx& tx, std::string_view group, std::string_view topic, int32_t partition,
                              int64_t offset);
Result<void> set_parked_state(Tx& tx, std::string_view group, std::string_view topic, int32_t partition,
                              int64_t offset, ParkedState state, std::string_view error = {}, int attempts = 0);

// ---- tools ----

// Every parked event of `group` (of `topic` when non-empty), by topic, key, offset.
Result<std::vector<ParkedEvent>> list_parked(Store& store, std::string_view group, std::string_view topic = {});
// Marks dead heads kReplay (of `key` when set, else every chain of topic /
// group) so the replica applies those chains; returns how many chains.
Result<int64_t> replay_parked(Store& store, std::string_view group, std::string_view topic = {},
                              std::optional<std::string> key = std::nullopt);
// Drops the dead heads of (group, topic, key) for good (one per partition the key is parked in);
// the rest of each chain is applied next (its new first row is kWaiting). Returns how many went.
Result<int64_t> skip_parked(Store& store, std::string_view group, std::string_view topic, std::string_view key);
// The same for the dead head at (topic, partition, offset) only, the source of
// one dead letter: 1, or 0 when no chain starts with it (any more).
Result<int64_t> skip_parked_at(Store& store, std::string_view group, std::string_view topic, int32_t partition,
                               int64_t offset);

}  // namespace herald::sdk::dlq
