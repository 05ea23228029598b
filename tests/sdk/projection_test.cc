// Replica behaviour in one process against an embedded broker, on SQLite and
// PostgreSQL: tombstones, plain records, deduplication, catch-up after
// downtime, database offsets over broker offsets, broker commits for lag,
// wait_until, status, the stop-on-poison policy and typed (on_json) handlers
// whose payloads the decoder thread converts.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "replica_harness.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk/replica/replica.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A key/value projection: "kv.set" {"v": "..."} upserts, tombstones delete,
// plain (non-CloudEvents) records upsert their raw value.
void install_kv(ReplicaHandlers& h, std::atomic<int>* plain = nullptr) {
  h.on("kv.set", [](const Event& ev, Tx& tx) {
    auto v = nlohmann::json::parse(ev.payload).at("v").get<std::string>();
    auto r = tx.exec("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                     {ev.aggregate_id, v});
    if (!r) throw std::runtime_error(r.error().to_string());
  });
  h.otherwise([plain](const Event& ev, Tx& tx) {
    if (ev.tombstone) {
      auto r = tx.exec("DELETE FROM kv WHERE k = ?", {ev.aggregate_id});
      if (!r) throw std::runtime_error(r.error().to_string());
      return;
    }
    if (ev.type.empty()) {  // a plain Kafka record
      if (plain) (*plain)++;
      auto r = tx.exec("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                       {ev.aggregate_id, ev.payload});
      if (!r) throw std::runtime_error(r.error().to_string());
      return;
    }
    throw std::runtime_error("unexpected ce_type " + ev.type);
  });
}

Result<void> create_kv(Store& s) {
  return s.run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)"));
    return ok();
  });
}

std::map<std::string, std::string> kv_of_db(Store& s) {
  std::map<std::string, std::string> out;
  auto r = s.run([&](Tx& tx) -> Result<void> {
    out.clear();
    HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT k, v FROM kv"));
    for (auto& row : rows) out[row.text(0)] = row.text(1);
    return ok();
  });
  EXPECT_TRUE(r) << r.error().to_string();
  return out;
}

EncodedEvent kv_set(const std::string& k, const std::string& v) {
  return *encode(Event::json("kv.set", "/sdk-test", k, {{"v", v}}));
}
EncodedEvent kv_delete(const std::string& k) { return *encode(Event::make_tombstone(k, "kv.deleted", "/sdk-test")); }

using Running = RunningReplica;

ReplicaConfig config(const std::string& brokers, const std::string& group, const std::string& topic) {
  return test_config(brokers, group, topic);
}

class Projection : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = GroupBroker::start();
    brokers_ = broker_->brokers();
    ts_ = open_test_store(GetParam(), dir_.path(), "projection");
    ASSERT_TRUE(create_kv(*ts_.store));
    auto p = kafka::SyncProducer::create(brokers_, {{"log_level", "3"}});
    ASSERT_TRUE(p) << p.error().to_string();
    producer_ = std::move(*p);
  }
  // Produces and returns the offset.
  int64_t send(const std::string& topic, const EncodedEvent& e, int32_t partition = 0) {
    std::optional<std::string_view> value;
    if (e.value) value = *e.value;
    auto r = producer_->send(topic, partition, std::string_view(e.key), value, e.headers);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : -1;
  }
  Store& store() { return *ts_.store; }
  // A second connection to the test database that gives up on a lock after 50 ms (SQLite).
  Result<std::unique_ptr<Store>> impatient_store() {
    StoreOptions opts;
    opts.busy_timeout = milliseconds(50);
    return Store::open(ts_.url, opts);
  }
  // A fold replica that would dead-letter a blamed event at once, retrying fast.
  ReplicaConfig outage_config(const std::string& group) {
    auto cfg = config(brokers_, group, "fold");
    cfg.max_retries = 0;
    cfg.retry_backoff = milliseconds(20);
    cfg.max_retry_backoff = milliseconds(100);
    return cfg;
  }
  // A replica with the fold handlers (install_fold) on `s`, the test store by default.
  RunningReplica fold_replica(ReplicaConfig cfg, Store* s = nullptr) {
    ReplicaHandlers h;
    install_fold(h);
    return RunningReplica(std::move(cfg), s ? *s : store(), std::move(h));
  }
  // Topic "fold" (one partition) and the fold table; 3 events of "k" (amount 1, offsets 0..2)
  // applied by a fold replica with `cfg`, which then stops. Returns that replica's stats.
  ReplicaStats three_events_applied(const ReplicaConfig& cfg) {
    EXPECT_TRUE(make_topic(brokers_, "fold", 1));
    EXPECT_TRUE(create_fold_table(store()));
    int64_t last = 0;
    for (int i = 0; i < 3; ++i) last = send("fold", fold_event("k", 1));
    auto r = fold_replica(cfg);
    EXPECT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
    return r->stats();
  }

  TempDir dir_;
  std::unique_ptr<GroupBroker> broker_;
  std::string brokers_;
  TestStore ts_;
  std::unique_ptr<kafka::SyncProducer> producer_;
};

TEST_P(Projection, TombstonesDeleteRowsAndPlainRecordsReachOtherwise) {
  ASSERT_TRUE(make_topic(brokers_, "users", 1));
  send("users", kv_set("u1", "a"));
  send("users", kv_set("u2", "b"));
  send("users", kv_set("u3", "c"));
  send("users", kv_delete("u2"));
  send("users", kv_set("u1", "a2"));
  EncodedEvent plain;
  plain.key = "u4";
  plain.value = "raw";
  int64_t last = send("users", plain);
  std::atomic<int> plain_seen{0};
  ReplicaHandlers h;
  install_kv(h, &plain_seen);
  Running r(config(brokers_, "kv", "users"), store(), std::move(h));
  auto done = r->wait_until("users", 0, last, seconds(30));
  ASSERT_TRUE(done && *done);
  EXPECT_EQ(kv_of_db(store()), (std::map<std::string, std::string>{{"u1", "a2"}, {"u3", "c"}, {"u4", "raw"}}));
  EXPECT_EQ(plain_seen.load(), 1);
  EXPECT_EQ(r->stats().applied, 6);
}

TEST_P(Projection, HandlersSeeWhereEachEventWasRead) {
  ASSERT_TRUE(make_topic(brokers_, "pos", 2));
  std::vector<EventPosition> want;
  for (int i = 0; i < 3; ++i) {
    int32_t partition = i % 2;
    want.push_back({"pos", partition, send("pos", kv_set("k" + std::to_string(i), "v"), partition)});
  }
  EncodedEvent plain;
  plain.key = "raw";
  plain.value = "x";
  want.push_back({"pos", 1, send("pos", plain, 1)});
  auto seen = std::make_shared<std::vector<EventPosition>>();
  auto mu = std::make_shared<std::mutex>();
  auto record = [seen, mu](const Event& ev, Tx&) {
    std::lock_guard lock(*mu);
    seen->push_back(ev.position.value_or(EventPosition{}));
  };
  ReplicaHandlers h;
  h.on("kv.set", record);
  h.otherwise(record);
  Running r(config(brokers_, "pos", "pos"), store(), std::move(h));
  for (const auto& p : want) {
    auto done = r->wait_until("pos", p.partition, p.offset, seconds(30));
    ASSERT_TRUE(done && *done);
  }
  std::lock_guard lock(*mu);
  auto by_place = [](const EventPosition& a, const EventPosition& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  };
  std::sort(seen->begin(), seen->end(), by_place);
  std::sort(want.begin(), want.end(), by_place);
  EXPECT_EQ(*seen, want);
}

TEST_P(Projection, DuplicateCeIdsAreDroppedEvenWithinOneBatch) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto e = fold_event("k", 7);
  send("fold", e);
  send("fold", e);
  send("fold", fold_event("k", 1));
  int64_t last = send("fold", e);
  auto r = fold_replica(config(brokers_, "dedup", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  auto f = fold_of_db(store());
  ASSERT_TRUE(f);
  EXPECT_EQ((*f)["k"], (FoldRow{2, 8}));
  EXPECT_EQ(r->stats().duplicates, 2);
}

TEST_P(Projection, DuplicateOfAnEventAppliedInAnEarlierTransactionIsDropped) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto e = fold_event("k", 5);
  int64_t first = send("fold", e);
  auto r = fold_replica(config(brokers_, "late-dup", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, first, seconds(30)));
  // The same ce_id again (an outbox relay re-publishing after a crash), in a
  // batch with new events around it.
  send("fold", fold_event("k", 1));
  send("fold", e);
  int64_t last = send("fold", fold_event("k", 2));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{3, 8}));
  EXPECT_EQ(r->stats().duplicates, 1);
  EXPECT_EQ(r->stats().applied, 3);
}

TEST_P(Projection, DuplicateArrivingAfterARestartIsDroppedByWhatTheDatabaseRecorded) {
  // Both forms of ce_id: a UUIDv7 (recorded per ~4 s bucket, which the new
  // instance loads from herald_processed_ids) and any other string (one row
  // in herald_processed).
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto v7 = fold_event("k", 5);
  auto ev = Event::json("fold.add", "/sdk-test", "k", {{"amount", 7}});
  ev.id = "order-17";
  auto custom = encode(ev);
  ASSERT_TRUE(custom);
  send("fold", v7);
  int64_t first = send("fold", *custom);
  {
    auto r = fold_replica(config(brokers_, "restart-dup", "fold"));
    ASSERT_TRUE(*r->wait_until("fold", 0, first, seconds(30)));
  }
  send("fold", v7);
  send("fold", *custom);
  int64_t last = send("fold", fold_event("k", 1));
  auto r = fold_replica(config(brokers_, "restart-dup", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{3, 13}));
  EXPECT_EQ(r->stats().duplicates, 2);
  EXPECT_EQ(r->stats().applied, 1);
}

TEST_P(Projection, CatchesUpAfterDowntimeFromStoredOffsets) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 3));
  ASSERT_TRUE(create_fold_table(store()));
  EventProducer prod(brokers_);
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(prod.send("fold", fold_event("k" + std::to_string(i % 7), i)));
  ASSERT_TRUE(prod.flush());
  auto ends = end_offsets(brokers_, "fold");
  {
    auto r = fold_replica(config(brokers_, "catchup", "fold"));
    ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30)));
    EXPECT_EQ(*stored_offsets(store(), "catchup", "fold"), *ends);
    EXPECT_EQ(r->stats().applied, 300);
  }
  // Down: the log moves on.
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(prod.send("fold", fold_event("k" + std::to_string(i % 5), 1000 + i)));
  ASSERT_TRUE(prod.flush());
  ends = end_offsets(brokers_, "fold");
  auto r = fold_replica(config(brokers_, "catchup", "fold"));
  ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30)));
  EXPECT_EQ(*stored_offsets(store(), "catchup", "fold"), *ends);
  EXPECT_EQ(r->stats().applied, 200) << "a restarted replica must apply only what it missed";
  EXPECT_EQ(r->stats().duplicates, 0) << "the record before each stored offset, read again to check it, is not an event";
  auto expected = fold_of_log(brokers_, "fold", 500, seconds(30));
  ASSERT_TRUE(expected);
  EXPECT_EQ(*fold_of_db(store()), expected->fold);
}

TEST_P(Projection, DatabaseOffsetsWinOverBrokerOffsets) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) last = send("fold", fold_event("k", 1));
  // The database says 15 events are applied; the broker says none are.
  ASSERT_TRUE(store().run([](Tx& tx) -> Result<void> {
    HERALD_TRY(save_offset(tx, "winner", "fold", 0, 15));
    HERALD_TRY(tx.exec("INSERT INTO fold (k, cnt, total) VALUES ('k', 15, 15)"));
    return ok();
  }));
  auto r = fold_replica(config(brokers_, "winner", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_EQ(r->stats().applied, 5);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{20, 20}));
}

TEST_P(Projection, CommitsToTheBrokerSoGroupLagIsReal) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 2));
  ASSERT_TRUE(create_fold_table(store()));
  EventProducer prod(brokers_);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(prod.send("fold", fold_event("k" + std::to_string(i % 9), 1)));
  ASSERT_TRUE(prod.flush());
  auto r = fold_replica(config(brokers_, "lag", "fold"));
  ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30)));
  auto stored = *stored_offsets(store(), "lag", "fold");
  // What `herald group describe lag` reads: the group's committed offsets.
  auto committed = [&]() -> std::map<int32_t, int64_t> {
    auto conf = kafka::make_conf({{"bootstrap.servers", brokers_}, {"group.id", "lag"}, {"log_level", "3"}});
    auto c = kafka::make_handle(RD_KAFKA_CONSUMER, std::move(*conf));
    auto list = kafka::make_list();
    for (int p = 0; p < 2; ++p) rd_kafka_topic_partition_list_add(list.get(), "fold", p);
    std::map<int32_t, int64_t> out;
    if (rd_kafka_committed(c->get(), list.get(), 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < list->cnt; ++i) out[list->elems[i].partition] = list->elems[i].offset;
    }
    rd_kafka_consumer_close(c->get());
    return out;
  };
  EXPECT_TRUE(eventually([&] { return committed() == stored; }, seconds(10)));
  auto st = r->status();
  ASSERT_EQ(st.size(), 2u);
  for (auto& p : st) {
    EXPECT_EQ(p.lag, 0);
    EXPECT_TRUE(p.caught_up);
    EXPECT_EQ(p.position, stored[p.partition]);
  }
}

TEST_P(Projection, WaitUntilSeesAppliedOffsetsAndTimesOutOnFutureOnes) {
  ASSERT_TRUE(make_topic(brokers_, "users", 1));
  ReplicaHandlers h;
  install_kv(h);
  Running r(config(brokers_, "ryw", "users"), store(), std::move(h));
  ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30)));
  auto off = send("users", kv_set("u9", "x"));
  auto got = r->wait_until("users", 0, off, seconds(20));
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(kv_of_db(store())["u9"], "x");  // read-your-writes
  auto later = r->wait_until("users", 0, off + 100, milliseconds(300));
  ASSERT_TRUE(later);
  EXPECT_FALSE(*later);
}

TEST_P(Projection, PerEventTransactionsWhenBatchIsOne) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  int64_t last = 0;
  for (int i = 0; i < 25; ++i) last = send("fold", fold_event("k", 2));
  auto cfg = config(brokers_, "single", "fold");
  cfg.max_batch_events = 1;
  auto r = fold_replica(cfg);
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_EQ(r->stats().transactions, 25);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{25, 50}));
}

TEST_P(Projection, StopPolicyStopsAtThePoisonEventAndKeepsItUnapplied) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  send("fold", fold_event("k", 1));
  send("fold", fold_event("k", 2));
  int64_t bad = send("fold", *encode(Event::json("fold.add", "/sdk-test", "k", {{"amount", "not a number"}})));
  send("fold", fold_event("k", 3));
  ReplicaHandlers h;
  install_fold(h);
  auto cfg = config(brokers_, "stopper", "fold");
  cfg.on_poison = PoisonPolicy::kStop;
  cfg.max_retries = 1;
  auto rep = Replica::create(cfg, store(), std::move(h));
  ASSERT_TRUE(rep);
  auto res = (*rep)->run();
  ASSERT_FALSE(res);
  EXPECT_NE(res.error().message.find("@" + std::to_string(bad)), std::string::npos) << res.error().message;
  EXPECT_EQ((*stored_offsets(store(), "stopper", "fold"))[0], bad);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{2, 3}));
}

TEST_P(Projection, EndOfPartitionCommitsAPartialBatch) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  int64_t last = 0;
  for (int i = 0; i < 50; ++i) last = send("fold", fold_event("k", 1));
  auto cfg = config(brokers_, "clean", "fold");
  cfg.max_batch_events = 10000;
  cfg.max_batch_delay = seconds(60);  // only the end of the partition flushes
  {
    auto r = fold_replica(cfg);
    ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  }
  EXPECT_EQ((*stored_offsets(store(), "clean", "fold"))[0], last + 1);
}

// While alive, the database refuses the replica: SQLite, `store` (another
// connection) holds the write lock; PostgreSQL, the database's connections are
// terminated and it takes no new ones.
class Outage {
 public:
  Outage(const std::string& url, bool pg, Store& store) : pg_(pg), db_(url.substr(url.rfind('/') + 1)) {
    if (pg_) {
      EXPECT_TRUE(pg_exec(*pg_base_url(), "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS false"));
      EXPECT_TRUE(pg_exec(*pg_base_url(),
                          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_ + "'"));
    } else {
      auto tx = store.begin();  // BEGIN IMMEDIATE: the write lock, until rollback
      EXPECT_TRUE(tx) << tx.error().to_string();
      if (tx) lock_ = std::move(*tx);
    }
  }
  ~Outage() { end(); }
  void end() {
    if (ended_) return;
    ended_ = true;
    if (pg_) {
      EXPECT_TRUE(pg_exec(*pg_base_url(), "ALTER DATABASE " + db_ + " ALLOW_CONNECTIONS true"));
    } else if (lock_) {
      lock_->rollback();
    }
  }

 private:
  bool pg_;
  std::string db_;
  std::unique_ptr<Tx> lock_;
  bool ended_ = false;
};

// The database refuses the replica for a while: SQLite, another connection
// holds the write lock far beyond the replica's busy_timeout; PostgreSQL, the
// replica's connections are terminated and the database takes no new ones.
// That is no fault of the events: nothing is dead-lettered (max_retries = 0
// would send a blamed event there at once), the replica does not stop, and
// every event is applied exactly once when the database is back.
TEST_P(Projection, DatabaseOutageIsWaitedOutNotDeadLettered) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto replica_store = impatient_store();
  ASSERT_TRUE(replica_store) << replica_store.error().to_string();
  auto cfg = outage_config("outage");
  auto r = fold_replica(cfg, replica_store->get());
  int64_t last = send("fold", fold_event("k", 1));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));

  Outage outage(ts_.url, GetParam() == "postgres", store());
  for (int i = 0; i < 20; ++i) last = send("fold", fold_event("k", 1));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(r->running());
  EXPECT_FALSE(*r->wait_until("fold", 0, last, milliseconds(1)));
  outage.end();
  for (int i = 0; i < 20; ++i) last = send("fold", fold_event("k", 1));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_TRUE(r->running());
  EXPECT_GT(r->stats().transient_errors, 0);
  EXPECT_EQ(r->stats().dead_lettered, 0);
  EXPECT_EQ(r->stats().retries, 0);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{41, 41}));
}

// The same outage while the group rebalances: the replica reads the offsets of
// its new assignment from its database, which is down; it waits (consuming
// nothing), does not stop, and goes on from the stored offsets once the
// database is back. (The outage that matters is PostgreSQL's: SQLite's
// write lock does not block those reads.)
TEST_P(Projection, AnOutageDuringARebalanceIsWaitedOut) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 2));
  ASSERT_TRUE(create_fold_table(store()));
  auto replica_store = impatient_store();
  ASSERT_TRUE(replica_store) << replica_store.error().to_string();
  auto cfg = outage_config("rebalance-outage");
  auto r = fold_replica(cfg, replica_store->get());
  int64_t last[2] = {0, 0};
  for (int32_t p : {0, 1}) last[p] = send("fold", fold_event("k", 1), p);
  for (int32_t p : {0, 1}) ASSERT_TRUE(*r->wait_until("fold", p, last[p], seconds(30)));
  const int64_t rebalances = r->stats().rebalances;
  {
    Outage outage(ts_.url, GetParam() == "postgres", store());
    // A second instance of the group (with a database of its own) joins: the first is assigned anew.
    TempDir other_dir;
    auto other_store = Store::open("sqlite:" + (other_dir.path() / "other.db").string());
    ASSERT_TRUE(other_store) << other_store.error().to_string();
    ASSERT_TRUE(create_fold_table(**other_store));
    auto other = fold_replica(cfg, other_store->get());
    ASSERT_TRUE(eventually([&] { return other->stats().rebalances > 0; }, seconds(30)));
    for (int i = 0; i < 10; ++i) {
      for (int32_t p : {0, 1}) last[p] = send("fold", fold_event("k", 1), p);
    }
    std::this_thread::sleep_for(milliseconds(1500));
    EXPECT_TRUE(r->running());
    outage.end();
  }  // the second instance leaves: the first takes both partitions
  for (int32_t p : {0, 1}) last[p] = send("fold", fold_event("k", 1), p);
  for (int32_t p : {0, 1}) {
    ASSERT_TRUE(*r->wait_until("fold", p, last[p], seconds(30))) << "running: " << r->running();
  }
  EXPECT_TRUE(r->running());
  EXPECT_GT(r->stats().rebalances, rebalances);
  EXPECT_EQ(r->stats().dead_lettered, 0);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{24, 24}));
}

// Events removed from the log (retention, here DeleteRecords) while the
// replica was down, before it read them: it goes on from the log start and
// reports how many it lost (stats().removed_unread, and an error log line).
TEST_P(Projection, EventsRemovedBeforeTheReplicaReadThemAreReported) {
  auto cfg = config(brokers_, "late", "fold");
  EXPECT_EQ(three_events_applied(cfg).removed_unread, 0);
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) last = send("fold", fold_event("k", 10));  // offsets 3..7
  ASSERT_TRUE(delete_records(brokers_, "fold", 0, 6));                   // 3, 4 and 5 are gone
  auto r = fold_replica(cfg);
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_EQ(r->stats().removed_unread, 3);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{5, 23}));
}

// The same while the replica runs: its handler holds the first event while
// DeleteRecords removes records the consumer has not fetched yet (a
// one-record fetch queue). librdkafka's offset reset goes on from the new log
// start; the replica counts and logs what was skipped instead of losing it
// silently.
TEST_P(Projection, EventsRemovedWhileTheReplicaRunsAreReported) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  auto cfg = config(brokers_, "running-late", "fold");
  cfg.max_batch_events = 1;
  cfg.kafka = {{"queued.min.messages", "1"}, {"queued.max.messages.kbytes", "1"},
               {"max.partition.fetch.bytes", "1"}};
  std::atomic<bool> open{false}, entered{false};
  std::atomic<int64_t> applied{0};
  ReplicaHandlers h;
  h.on("fold.add", [&](const Event&, Tx&) {
    entered = true;
    while (!open.load()) std::this_thread::sleep_for(milliseconds(5));
    applied++;
  });
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) last = send("fold", fold_event("k", 1));
  RunningReplica r(cfg, store(), std::move(h));
  ASSERT_TRUE(eventually([&] { return entered.load(); }, seconds(20)));
  std::this_thread::sleep_for(milliseconds(300));  // the fetcher stops at its one-record queue
  ASSERT_TRUE(delete_records(brokers_, "fold", 0, 15));
  open = true;
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_GT(r->stats().removed_unread, 0);
  EXPECT_EQ(applied.load() + r->stats().removed_unread, 20) << "applied " << applied.load();
}

// Two instances with the cooperative-sticky assignor: the first gives up a
// partition in an incremental revoke (which deadlocked the replica on its own
// mutex) and both partitions' events are applied.
TEST_P(Projection, CooperativeRebalanceHandsOverAPartition) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 2));
  ASSERT_TRUE(create_fold_table(store()));
  auto cfg = config(brokers_, "coop", "fold");
  cfg.kafka.emplace_back("partition.assignment.strategy", "cooperative-sticky");
  auto first = fold_replica(cfg);
  int64_t last0 = send("fold", fold_event("a", 1), 0), last1 = send("fold", fold_event("b", 1), 1);
  ASSERT_TRUE(*first->wait_until("fold", 0, last0, seconds(30)));
  ASSERT_TRUE(*first->wait_until("fold", 1, last1, seconds(30)));
  auto second = fold_replica(cfg);
  ASSERT_TRUE(eventually([&] { return second->stats().rebalances > 0 && first->stats().rebalances > 1; }, seconds(30)));
  last0 = send("fold", fold_event("a", 10), 0);
  last1 = send("fold", fold_event("b", 10), 1);
  ASSERT_TRUE(*first->wait_until("fold", 0, last0, seconds(30)));
  ASSERT_TRUE(*first->wait_until("fold", 1, last1, seconds(30)));
  EXPECT_TRUE(eventually([&] { return first->ready() && second->ready(); }, seconds(30)));
  auto fold = *fold_of_db(store());
  EXPECT_EQ(fold["a"], (FoldRow{2, 11}));
  EXPECT_EQ(fold["b"], (FoldRow{2, 11}));
}

// wait_until with a timeout of "for ever" (milliseconds::max()) waits: the
// deadline used to overflow and it returned false at once.
TEST_P(Projection, WaitUntilForEverWaits) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto r = fold_replica(config(brokers_, "forever", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, send("fold", fold_event("k", 1)), seconds(30)));
  std::thread later([&] {
    std::this_thread::sleep_for(milliseconds(500));
    send("fold", fold_event("k", 1));
  });
  auto waited = r->wait_until("fold", 0, 1, milliseconds::max());
  later.join();
  ASSERT_TRUE(waited) << waited.error().to_string();
  EXPECT_TRUE(*waited);
}

// PostgreSQL answers that the transaction is read-only (25006), as a primary
// demoted by a failover does, until the replica's connection reaches a
// writable server again: no fault of the events, so nothing is
// dead-lettered, the replica waits and then applies everything once.
TEST_P(Projection, AReadOnlyDatabaseIsWaitedOutNotDeadLettered) {
  if (GetParam() != "postgres") GTEST_SKIP() << "PostgreSQL's read-only transactions";
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto cfg = outage_config("read-only");
  auto r = fold_replica(cfg);
  int64_t last = send("fold", fold_event("k", 1));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  const std::string db = ts_.url.substr(ts_.url.rfind('/') + 1);
  auto reconnect_all = [&] {
    EXPECT_TRUE(pg_exec(*pg_base_url(),
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db + "'"));
  };
  ASSERT_TRUE(pg_exec(*pg_base_url(), "ALTER DATABASE " + db + " SET default_transaction_read_only = on"));
  reconnect_all();
  for (int i = 0; i < 5; ++i) last = send("fold", fold_event("k", 1));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_TRUE(r->running());
  EXPECT_FALSE(*r->wait_until("fold", 0, last, milliseconds(1)));
  EXPECT_EQ(r->stats().dead_lettered, 0);
  ASSERT_TRUE(pg_exec(*pg_base_url(), "ALTER DATABASE " + db + " RESET default_transaction_read_only"));
  reconnect_all();
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30))) << "running: " << r->running();
  EXPECT_TRUE(r->running());
  EXPECT_EQ(r->stats().dead_lettered, 0);
  EXPECT_GT(r->stats().transient_errors, 0);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{6, 6}));
}

// The same outage while a poison event's handler is being retried: the retry
// waits for the database (no attempt is counted, nothing is dead-lettered,
// the replica does not stop) and then applies the event.
TEST_P(Projection, AnOutageDuringAPoisonEventsRetriesIsWaitedOutToo) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  auto replica_store = impatient_store();
  ASSERT_TRUE(replica_store) << replica_store.error().to_string();
  std::atomic<int> failed{0};
  ReplicaHandlers h;
  h.on("fold.add", [&](const Event& ev, Tx& tx) {
    const int64_t amount = nlohmann::json::parse(ev.payload).at("amount").get<int64_t>();
    if (amount == 7 && failed.fetch_add(1) == 0) throw std::runtime_error("flaky, once");
    fold_add(tx, ev.aggregate_id, amount);
  });
  auto cfg = config(brokers_, "poison-outage", "fold");
  cfg.max_retries = 2;
  cfg.retry_backoff = milliseconds(300);
  cfg.max_retry_backoff = milliseconds(300);
  Running r(cfg, **replica_store, std::move(h));
  send("fold", fold_event("k", 1));
  send("fold", fold_event("k", 7));
  int64_t last = send("fold", fold_event("k", 1));
  ASSERT_TRUE(eventually([&] { return failed.load() > 0; }, seconds(30)));
  {
    Outage outage(ts_.url, GetParam() == "postgres", store());  // within the first retry's 300 ms backoff
    std::this_thread::sleep_for(milliseconds(1500));
    EXPECT_TRUE(r->running());
  }
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30))) << "running: " << r->running();
  EXPECT_TRUE(r->running());
  EXPECT_GT(r->stats().transient_errors, 0);
  EXPECT_EQ(r->stats().dead_lettered, 0);
  EXPECT_EQ(r->stats().retries, 1);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{3, 9}));
}

// A handler that handles a failed statement itself (ignores a duplicate key).
// SQLite: the transaction goes on and the event counts as applied. PostgreSQL:
// the failed statement aborted the transaction, so the event goes the poison
// way (retried, then dead-lettered with the statement's error) and the replica
// goes on, where it used to stop for good on its own offsets statement.
TEST_P(Projection, AHandlerThatGoesOnAfterAFailedStatementIsAPoisonEventOnPostgres) {
  ASSERT_TRUE(make_topic(brokers_, "uniq", 1));
  ASSERT_TRUE(store().run([](Tx& tx) -> Result<void> { return tx.exec_script("CREATE TABLE uniq (k TEXT PRIMARY KEY)"); }));
  ReplicaHandlers h;
  h.on("fold.add", [](const Event& ev, Tx& tx) {
    auto res = tx.exec("INSERT INTO uniq (k) VALUES (?)", {ev.aggregate_id});
    if (!res && res.error().code != Errc::kAlreadyExists) throw std::runtime_error(res.error().to_string());
  });
  auto cfg = config(brokers_, "uniq", "uniq");
  cfg.max_retries = 1;
  cfg.retry_backoff = milliseconds(20);
  Running r(cfg, store(), std::move(h));
  send("uniq", fold_event("u", 1));
  send("uniq", fold_event("u", 2));  // the duplicate key
  const int64_t last = send("uniq", fold_event("v", 1));
  ASSERT_TRUE(*r->wait_until("uniq", 0, last, seconds(30))) << "running: " << r->running();
  EXPECT_TRUE(r->running());
  const bool pg = GetParam() == "postgres";
  EXPECT_EQ(r->stats().dead_lettered, pg ? 1 : 0);
  EXPECT_EQ(r->stats().applied, pg ? 2 : 3);
  int64_t rows = 0;
  ASSERT_TRUE(store().run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT COUNT(*) FROM uniq"));
    rows = row->int64(0);
    return ok();
  }));
  EXPECT_EQ(rows, 2);
}

// A stored offset past the end of the log (the topic was deleted and created
// again, or restored from an older copy): the replica logs it and reads the
// log from its start again instead of skipping every record below the old
// position and reporting itself caught up. Events it applied before are
// dropped by ce_id.
TEST_P(Projection, AStoredOffsetPastTheEndOfTheLogRewindsToTheStart) {
  auto cfg = config(brokers_, "rewind", "fold");
  three_events_applied(cfg);
  ASSERT_TRUE(store().run([](Tx& tx) -> Result<void> { return save_offset(tx, "rewind", "fold", 0, 50); }));
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) last = send("fold", fold_event("k", 10));
  auto r = fold_replica(cfg);
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_TRUE(eventually([&] { return r->ready(); }, seconds(10)));
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{6, 33}));
  EXPECT_EQ(r->stats().duplicates, 3);
  EXPECT_EQ((*stored_offsets(store(), "rewind", "fold"))[0], last + 1);
}

// The topic deleted and created again while the replica was down, and its
// new log grown past the stored offset: the record before that offset is
// another one, so the replica reads the new log from its start instead of
// skipping its first records.
TEST_P(Projection, ATopicRecreatedPastTheStoredOffsetIsReadFromItsStart) {
  auto cfg = config(brokers_, "recreated", "fold");
  three_events_applied(cfg);
  ASSERT_TRUE(delete_topic(brokers_, "fold"));
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) last = send("fold", fold_event("k", 10));
  ASSERT_EQ(last, 4);
  auto r = fold_replica(cfg);
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  EXPECT_TRUE(eventually([&] { return r->ready(); }, seconds(10)));
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{8, 53}));
  EXPECT_EQ(r->stats().applied, 5);
  EXPECT_EQ((*stored_offsets(store(), "recreated", "fold"))[0], 5);
}

// The same with the new log exactly as long as the old one (its high watermark is the stored
// offset): the replica must not report ready before it has read the record before that offset
// again and found another log. It did, and on_ready ran twice.
TEST_P(Projection, ATopicRecreatedAsLongAsTheStoredOffsetIsNotReadyBeforeItsEventsAreApplied) {
  auto cfg = config(brokers_, "recreated-same", "fold");
  three_events_applied(cfg);
  ASSERT_TRUE(delete_topic(brokers_, "fold"));
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  for (int i = 0; i < 3; ++i) send("fold", fold_event("k", 10));
  ReplicaHandlers h;
  install_fold(h);
  auto c = Replica::create(cfg, store(), std::move(h));
  ASSERT_TRUE(c) << c.error().to_string();
  auto& r = **c;
  std::atomic<int> readies{0};
  r.on_ready([&] { ++readies; });
  ASSERT_TRUE(r.start());
  EXPECT_TRUE(eventually([&] { return r.ready() && r.stats().applied == 3; }, seconds(30)));
  r.stop();
  EXPECT_EQ(readies.load(), 1) << "ready before the new log's events were applied";
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{6, 33}));
}

// The same while the replica runs, its fetch at the old position finding the
// new log shorter (a new topic starts empty): librdkafka goes on from the new
// log's start, below what the replica read, and those records are applied,
// not dropped as read before. (A new log already grown past the position
// when the replica fetches again cannot be told apart: docs/sdk.md.)
TEST_P(Projection, ATopicRecreatedWhileTheReplicaRunsIsReadFromItsStart) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) last = send("fold", fold_event("k", 1));
  auto r = fold_replica(config(brokers_, "recreated-live", "fold"));
  ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
  ASSERT_TRUE(delete_topic(brokers_, "fold"));
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  std::this_thread::sleep_for(milliseconds(1500));  // the fetch retried after its 500 ms backoff: out of range
  for (int i = 0; i < 5; ++i) last = send("fold", fold_event("k", 10));
  EXPECT_TRUE(eventually([&] { return (*fold_of_db(store()))["k"] == FoldRow{8, 53}; }, seconds(30)))
      << "fold " << (*fold_of_db(store()))["k"].count << " events";
  EXPECT_TRUE(eventually([&] { return (*stored_offsets(store(), "recreated-live", "fold"))[0] == 5; }, seconds(10)));
  EXPECT_EQ(r->stats().applied, 8);
}

// A handler that commits the transaction it is given would store its effects without the offset,
// and the events would be applied again: the commit is refused with an error, and each event is
// applied once, with its offset.
TEST_P(Projection, AHandlerCannotCommitTheReplicasTransaction) {
  ASSERT_TRUE(make_topic(brokers_, "fold", 1));
  ASSERT_TRUE(create_fold_table(store()));
  int64_t last = 0;
  for (int i = 0; i < 3; ++i) last = send("fold", fold_event("k", 1));
  std::atomic<int> refused{0};
  ReplicaHandlers h;
  h.on("fold.add", [&](const Event& ev, Tx& tx) {
    fold_add(tx, ev.aggregate_id, nlohmann::json::parse(ev.payload).at("amount").get<int64_t>());
    auto r = tx.commit();
    if (!r && r.error().code == Errc::kInvalidArgument) ++refused;
  });
  {
    RunningReplica r(config(brokers_, "committer", "fold"), store(), std::move(h));
    ASSERT_TRUE(*r->wait_until("fold", 0, last, seconds(30)));
    EXPECT_EQ(r->stats().applied, 3);
  }
  EXPECT_EQ(refused.load(), 3);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{3, 3}));
  EXPECT_EQ((*stored_offsets(store(), "committer", "fold"))[0], 3);
}

// A typed payload whose conversion records the thread it ran on.
struct TypedAmount {
  int64_t amount = 0;
};
std::mutex g_conversion_mu;
std::set<std::thread::id> g_conversion_threads;
void from_json(const nlohmann::json& j, TypedAmount& a) {
  {
    std::lock_guard lk(g_conversion_mu);
    g_conversion_threads.insert(std::this_thread::get_id());
  }
  a.amount = j.at("amount").get<int64_t>();
}

TEST_P(Projection, TypedHandlersGetPayloadsParsedAheadAndBadOnesAreRetriedThenDeadLettered) {
  ASSERT_TRUE(make_topic(brokers_, "typed", 1));
  ASSERT_TRUE(create_fold_table(store()));
  {
    std::lock_guard lk(g_conversion_mu);
    g_conversion_threads.clear();
  }
  int64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    if (i == 50) {
      EncodedEvent bad = fold_event("k", 1000);
      bad.value = "not json";  // fails in the conversion, on whichever thread runs it
      send("typed", bad);
    }
    last = send("typed", fold_event("k", 2));
  }
  std::mutex mu;
  std::set<std::thread::id> handler_threads;
  ReplicaHandlers h;
  h.on_json<TypedAmount>("fold.add", [&](const TypedAmount& a, const Event& ev, Tx& tx) {
    {
      std::lock_guard lk(mu);
      handler_threads.insert(std::this_thread::get_id());
    }
    fold_add(tx, ev.aggregate_id, a.amount);
  });
  auto cfg = config(brokers_, "typed", "typed");
  cfg.max_batch_events = 16;  // full batches are decoded on the decoder thread
  cfg.max_retries = 2;
  Running r(cfg, store(), std::move(h));
  ASSERT_TRUE(*r->wait_until("typed", 0, last, seconds(30)));
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{100, 200}));
  EXPECT_EQ(r->stats().dead_lettered, 1);
  EXPECT_EQ(r->stats().retries, 2);
  std::lock_guard lk(mu);
  ASSERT_EQ(handler_threads.size(), 1u);
  std::lock_guard lk2(g_conversion_mu);
  const auto handler_thread = *handler_threads.begin();
  EXPECT_TRUE(std::any_of(g_conversion_threads.begin(), g_conversion_threads.end(),
                          [&](std::thread::id t) { return t != handler_thread; }))
      << "every payload was converted on the handlers' thread";
}

INSTANTIATE_TEST_SUITE_P(Store, Projection, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
