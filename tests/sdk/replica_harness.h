// Test harness for the consuming side of the SDK (replica, dead letters,
// projections): an embedded broker tuned for consumer groups, topic
// creation, an event producer, the "fold" projection used by the crash and
// rebalance tests, and child processes that can be SIGKILLed.
//
//   auto broker = GroupBroker::start();
//   ASSERT_TRUE(make_topic(broker->brokers(), "fold", 4));
//   EventProducer prod(broker->brokers());
//   prod.send("fold", fold_event("k1", 5));
//   auto store = open_store(kind, dir);            // SQLite file or fresh PG database
//   ReplicaHandlers h; install_fold(h);            // fold(k, cnt, total)
//
// The fold: per key, the number of events and the sum of their "amount".
// Its expected value is computed from the log itself, deduplicated by ce_id
// (fold_of_log), and compared with the database (fold_of_db).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/result.h"
#include "sdk/envelope.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::broker {
class Broker;
}

namespace herald::sdk::testing {

struct GroupBrokerOptions {
  int partitions = 1;                      // of auto-created topics
  int64_t maintenance_interval_ms = 30000; // retention/compaction sweep
  std::filesystem::path data_dir;          // empty = ephemeral
  uint16_t port = 0;                       // 0 = ephemeral
};

// An embedded broker with no initial rebalance delay and a 500 ms minimum
// session timeout, so group tests do not wait on Kafka's production defaults.
class GroupBroker {
 public:
  static std::unique_ptr<GroupBroker> start(GroupBrokerOptions o = {});
  ~GroupBroker();
  std::string brokers() const;
  void stop();

 private:
  std::unique_ptr<broker::Broker> broker_;
};

// Creates a topic (succeeds if it exists). `configs`: topic configs such as
// {"cleanup.policy", "compact"}.
Result<void> make_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::vector<std::pair<std::string, std::string>>& configs = {});
Result<void> delete_topic(const std::string& brokers, const std::string& topic);
// DeleteRecords: moves the log start of topic/partition up to `before`.
Result<void> delete_records(const std::string& brokers, const std::string& topic, int32_t partition,
                            int64_t before);

// An asynchronous idempotent producer; flush() waits for every delivery.
class EventProducer {
 public:
  // `compression`: librdkafka's compression.type (none, gzip, snappy, lz4, zstd).
  explicit EventProducer(const std::string& brokers, int linger_ms = 5, const std::string& compression = "none");
  ~EventProducer();
  // Sends one record (partition -1 = by key). Blocks briefly when the local queue is full.
  Result<void> send(const std::string& topic, const EncodedEvent& rec, int32_t partition = -1);
  // Waits until every record sent so far is acknowledged; kIoError when any failed.
  Result<void> flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  int64_t delivered() const;

  struct State;

 private:
  std::unique_ptr<State> s_;
};

// A "fold.add" event for `key` with payload {"amount": amount}; a fresh ce_id.
EncodedEvent fold_event(const std::string& key, int64_t amount);

struct FoldRow {
  int64_t count = 0;
  int64_t total = 0;
  bool operator==(const FoldRow&) const = default;
};
using Fold = std::map<std::string, FoldRow>;

// Creates table fold(k, cnt, total) if needed.
Result<void> create_fold_table(Store& store);
// Registers the fold handler for "fold.add" on `h`.
void install_fold(ReplicaHandlers& h);
// The fold of one "fold.add" event inside a handler: adds 1 to cnt and amount
// to total of row `key`; throws on a database error (the handler's contract).
void fold_add(Tx& tx, const std::string& key, int64_t amount);
// The fold in the database.
Result<Fold> fold_of_db(Store& store);

struct LogFold {
  Fold fold;
  int64_t records = 0;     // records in the topic
  int64_t duplicates = 0;  // records whose ce_id appeared before
  std::map<int32_t, int64_t> ends;  // partition -> high watermark
};
// Reads every record of `topic` (at least min_count) and folds them, once per ce_id.
Result<LogFold> fold_of_log(const std::string& brokers, const std::string& topic, size_t min_count,
                            std::chrono::milliseconds timeout);

// herald_offsets of (group, topic): partition -> next_offset.
Result<std::map<int32_t, int64_t>> stored_offsets(Store& store, const std::string& group, const std::string& topic);
// partition -> high watermark.
Result<std::map<int32_t, int64_t>> end_offsets(const std::string& brokers, const std::string& topic);

// Opens a store: kind "sqlite" (a file in `dir`) or "postgres" (a fresh
// database on the fixture cluster, kept alive by `pg_keepalive`).
struct TestStore {
  std::string url;
  std::unique_ptr<Store> store;
  std::shared_ptr<void> keepalive;  // the PostgreSQL database, dropped when the last copy goes
};
TestStore open_test_store(const std::string& kind, const std::filesystem::path& dir, const std::string& name);

// A child process (fork + exec) whose stdout/stderr go to `log`.
class Child {
 public:
  static std::unique_ptr<Child> spawn(const std::string& exe, const std::vector<std::string>& args,
                                      const std::filesystem::path& log);
  ~Child();  // SIGKILLs it if still running
  pid_t pid() const { return pid_; }
  void kill(int sig);
  // Waits for exit; returns the wait status, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool alive();

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// Path of the replica helper executable (env HERALD_SDK_REPLICA_HELPER).
std::string helper_path();

// Last lines of a file, for failure messages.
std::string tail_file(const std::filesystem::path& p, size_t lines = 40);

// Reads the helper's stats file (JSON); nullopt when absent or partial.
struct HelperStats {
  int64_t applied = 0;
  int64_t duplicates = 0;
  int64_t transactions = 0;
  bool ready = false;
  std::vector<std::pair<std::string, int32_t>> partitions;
};
std::optional<HelperStats> read_helper_stats(const std::filesystem::path& p);

// A started replica, stopped (and its run() result checked) at scope exit.
class RunningReplica {
 public:
  RunningReplica(ReplicaConfig cfg, Store& store, ReplicaHandlers h);
  ~RunningReplica();
  Replica* operator->() { return r_.get(); }
  Replica& get() { return *r_; }

 private:
  std::unique_ptr<Replica> r_;
};

// A replica config for tests: short batch delay, fast retries and broker commits, quiet librdkafka.
ReplicaConfig test_config(const std::string& brokers, const std::string& group, const std::string& topic);

// Names "sqlite"/"postgres" parameters in INSTANTIATE_TEST_SUITE_P.
std::string store_param_name(const ::testing::TestParamInfo<std::string>& info);

// Polls `pred` every 50 ms until it is true or `timeout` passes.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

}  // namespace herald::sdk::testing
