// Bootstrap from a compacted topic (issue 5): a brand-new replica (empty
// database) over a compacted topic holding 100,000 keys with many overwrites
// and deletes converges to exactly the current state per key, and reports
// ready only once it has. Then, after downtime, it catches up from its stored
// offsets (applying only what it missed) and again is ready only when current.
//
// HERALD_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "replica_harness.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using State = std::map<std::string, std::string>;

uint64_t seed_from_env() {
  if (const char* s = std::getenv("HERALD_SEED"); s && *s) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

std::string key_of(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "user-%06d", i);
  return buf;
}

void install_users(ReplicaHandlers& h) {
  h.on("user.upserted", [](const Event& ev, Tx& tx) {
    auto r = tx.exec("INSERT INTO users (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                     {ev.aggregate_id, ev.payload});
    if (!r) throw std::runtime_error(r.error().to_string());
  });
  h.on("user.deleted", [](const Event& ev, Tx& tx) {
    if (!ev.tombstone) throw std::runtime_error("user.deleted must be a tombstone");
    auto r = tx.exec("DELETE FROM users WHERE k = ?", {ev.aggregate_id});
    if (!r) throw std::runtime_error(r.error().to_string());
  });
}

Result<State> state_of_db(Store& s) {
  State out;
  HERALD_TRY(s.run([&](Tx& tx) -> Result<void> {
    out.clear();
    HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT k, v FROM users"));
    for (auto& r : rows) out[r.text(0)] = r.text(1);
    return ok();
  }));
  return out;
}

Result<int64_t> rows_in_db(Store& s) {
  int64_t n = 0;
  HERALD_TRY(s.run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT count(*) FROM users"));
    n = row ? row->int64(0) : 0;
    return ok();
  }));
  return n;
}

class Bootstrap : public ::testing::TestWithParam<std::string> {};

TEST_P(Bootstrap, NewReplicaOverCompactedTopicConvergesAndIsReadyOnlyWhenCurrent) {
  const uint64_t seed = seed_from_env();
  std::printf("seed %llu (HERALD_SEED=%llu repeats this run), store %s\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed), GetParam().c_str());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  constexpr int kKeys = 100000;

  TempDir dir;
  GroupBrokerOptions bo;
  bo.maintenance_interval_ms = 250;
  auto broker = GroupBroker::start(bo);
  const std::string brokers = broker->brokers();
  const std::string topic = "users";
  ASSERT_TRUE(make_topic(brokers, topic, 4,
                           {{"cleanup.policy", "compact"}, {"segment.bytes", "1048576"}, {"min.compaction.lag.ms", "0"}}));

  // The history: every key created, then overwritten (some many times),
  // deleted, re-created. `current` is what the topic means.
  State current;
  int64_t produced = 0;
  auto start = std::chrono::steady_clock::now();
  {
    EventProducer prod(brokers, 20, "lz4");
    int version = 0;
    auto upsert = [&](int i) {
      std::string k = key_of(i);
      std::string v = "{\"name\":\"" + k + "\",\"version\":" + std::to_string(++version) + "}";
      auto ev = Event::json("user.upserted", "/users", k, nlohmann::json::parse(v));
      auto enc = encode(ev);
      ASSERT_TRUE(prod.send(topic, *enc));
      current[k] = enc->value.value();
      produced++;
    };
    auto remove = [&](int i) {
      std::string k = key_of(i);
      ASSERT_TRUE(prod.send(topic, *encode(Event::make_tombstone(k, "user.deleted", "/users"))));
      current.erase(k);
      produced++;
    };
    for (int i = 0; i < kKeys; ++i) upsert(i);
    for (int i = 0; i < 60000; ++i) upsert(static_cast<int>(rng() % kKeys));
    for (int i = 0; i < 30000; ++i) upsert(static_cast<int>(rng() % 2000));  // hot keys, many versions
    for (int i = 0; i < 20000; ++i) remove(static_cast<int>(rng() % kKeys));
    for (int i = 0; i < 10000; ++i) upsert(static_cast<int>(rng() % kKeys));
    for (int i = 0; i < 5000; ++i) remove(static_cast<int>(rng() % kKeys));
    ASSERT_TRUE(prod.flush());
  }
  std::printf("produced %lld records in %.1f s; current state: %zu keys\n", static_cast<long long>(produced),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), current.size());

  TestStore ts = open_test_store(GetParam(), dir.path(), "bootstrap");
  ASSERT_TRUE(ts.store->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE users (k TEXT PRIMARY KEY, v TEXT NOT NULL)"));
    return ok();
  }));

  // Let the broker compact (it is a compacted topic); the replica must be
  // right whether or not compaction already ran.
  std::this_thread::sleep_for(seconds(2));

  auto cfg = test_config(brokers, "user-directory", topic);
  cfg.max_batch_events = 1000;
  std::atomic<bool> ready_fired{false};
  std::atomic<bool> ready_state_exact{false};
  ReplicaHandlers h;
  install_users(h);
  auto made = Replica::create(cfg, *ts.store, std::move(h));
  ASSERT_TRUE(made) << made.error().to_string();
  Replica& replica = **made;
  replica.on_ready([&] {
    // On the replica's thread, right after the commit that made it current.
    auto s = state_of_db(*ts.store);
    ready_state_exact.store(s && *s == current);
    ready_fired.store(true);
  });
  EXPECT_FALSE(replica.ready());

  // Watch from outside: whenever ready() says true, the table must be complete.
  std::atomic<bool> watching{true};
  std::atomic<int> samples_not_ready{0}, samples_ready_incomplete{0};
  std::thread watcher([&] {
    while (watching.load()) {
      bool r = replica.ready();
      auto n = rows_in_db(*ts.store);
      if (!r && n && *n < static_cast<int64_t>(current.size())) samples_not_ready++;
      if (r && n && *n != static_cast<int64_t>(current.size())) samples_ready_incomplete++;
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  start = std::chrono::steady_clock::now();
  ASSERT_TRUE(replica.start());
  bool became_ready = eventually([&] { return replica.ready(); }, seconds(100));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  watching.store(false);
  watcher.join();
  ASSERT_TRUE(became_ready) << "not ready after 100 s";
  ASSERT_TRUE(eventually([&] { return ready_fired.load(); }, seconds(10)));  // on_ready runs right after
  auto st = replica.stats();
  std::printf("ready after %.1f s: %lld records applied (%lld produced: compaction removed %lld), %lld transactions; "
              "%d samples not ready while catching up\n",
              secs, static_cast<long long>(st.applied), static_cast<long long>(produced),
              static_cast<long long>(produced - st.applied), static_cast<long long>(st.transactions),
              samples_not_ready.load());
  EXPECT_TRUE(ready_fired.load());
  EXPECT_TRUE(ready_state_exact.load()) << "on_ready ran before the table held the current state";
  EXPECT_EQ(samples_ready_incomplete.load(), 0) << "ready() was true while the table was incomplete";
  EXPECT_GT(samples_not_ready.load(), 0) << "never observed the replica catching up";
  auto db = state_of_db(*ts.store);
  ASSERT_TRUE(db);
  EXPECT_EQ(db->size(), current.size());
  EXPECT_TRUE(*db == current) << "the table is not the current state of the topic";
  for (auto& p : replica.status()) {
    EXPECT_TRUE(p.caught_up);
    EXPECT_EQ(p.lag, 0) << p.topic << "/" << p.partition;
  }
  replica.stop();
  ASSERT_TRUE(replica.join());

  // Downtime: more changes arrive; a restarted replica applies exactly those.
  int64_t more = 0;
  {
    EventProducer prod(brokers, 20);
    for (int i = 0; i < 5000; ++i) {
      std::string k = key_of(static_cast<int>(rng() % kKeys));
      if (rng() % 4 == 0) {
        ASSERT_TRUE(prod.send(topic, *encode(Event::make_tombstone(k, "user.deleted", "/users"))));
        current.erase(k);
      } else {
        auto enc = encode(Event::json("user.upserted", "/users", k, {{"name", k}, {"late", i}}));
        ASSERT_TRUE(prod.send(topic, *enc));
        current[k] = *enc->value;
      }
      more++;
    }
    ASSERT_TRUE(prod.flush());
  }
  ReplicaHandlers h2;
  install_users(h2);
  auto again = Replica::create(cfg, *ts.store, std::move(h2));
  ASSERT_TRUE(again);
  std::atomic<bool> exact_at_ready{false}, fired_again{false};
  std::string diff_at_ready;
  (*again)->on_ready([&] {
    auto s = state_of_db(*ts.store);
    exact_at_ready.store(s && *s == current);
    if (s && *s != current) {
      int missing = 0, extra = 0, differ = 0;
      for (auto& [k, v] : current) {
        auto it = s->find(k);
        if (it == s->end()) missing++;
        else if (it->second != v) differ++;
      }
      for (auto& [k, v] : *s) extra += current.count(k) ? 0 : 1;
      diff_at_ready = "missing " + std::to_string(missing) + ", extra " + std::to_string(extra) + ", differ " +
                      std::to_string(differ) + ", applied " + std::to_string((*again)->stats().applied);
    }
    fired_again.store(true);
  });
  ASSERT_TRUE((*again)->start());
  ASSERT_TRUE(eventually([&] { return (*again)->ready(); }, seconds(60)));
  ASSERT_TRUE(eventually([&] { return fired_again.load(); }, seconds(10)));
  EXPECT_TRUE(exact_at_ready.load()) << diff_at_ready;
  // Exactly what was missed (fewer if compaction already merged some of it).
  EXPECT_LE((*again)->stats().applied, more) << "catch-up must not re-apply what was applied before";
  EXPECT_GT((*again)->stats().applied, more / 2);
  EXPECT_TRUE(*state_of_db(*ts.store) == current);
  (*again)->stop();
  ASSERT_TRUE((*again)->join());
}

// Compaction keeps a segment's last batch even when it loses every record,
// as an empty batch. librdkafka cannot read past an empty batch marked
// compressed (it fails to decompress zero bytes), so Herald writes empty
// batches uncompressed, as Kafka does: a replica over a compacted topic of a
// compressing producer still reaches the end.
TEST(CompactedCompressed, EmptiedBatchesDoNotStopAConsumer) {
  TempDir dir;
  GroupBrokerOptions bo;
  bo.maintenance_interval_ms = 100;
  auto broker = GroupBroker::start(bo);
  const std::string brokers = broker->brokers();
  ASSERT_TRUE(make_topic(brokers, "hot", 1,
                           {{"cleanup.policy", "compact"}, {"segment.bytes", "2048"}, {"min.compaction.lag.ms", "0"},
                            {"min.cleanable.dirty.ratio", "0.01"}}));
  constexpr int kRecords = 400;
  State current;
  {
    EventProducer prod(brokers, 0, "lz4");
    for (int i = 0; i < kRecords; ++i) {
      std::string k = key_of(i % 4);
      auto enc = encode(Event::json("user.upserted", "/users", k, {{"name", k}, {"version", i}}));
      ASSERT_TRUE(prod.send("hot", *enc));
      ASSERT_TRUE(prod.flush());  // one batch per record: whole batches get superseded
      current[k] = *enc->value;
    }
  }
  std::this_thread::sleep_for(milliseconds(1500));  // a few maintenance sweeps compact the closed segments

  TestStore ts = open_test_store("sqlite", dir.path(), "compressed");
  ASSERT_TRUE(ts.store->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE users (k TEXT PRIMARY KEY, v TEXT NOT NULL)"));
    return ok();
  }));
  ReplicaHandlers h;
  install_users(h);
  RunningReplica r(test_config(brokers, "hot-reader", "hot"), *ts.store, std::move(h));
  ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30))) << "the replica never reached the end";
  EXPECT_LT(r->stats().applied, kRecords) << "compaction had not run: the test proves nothing";
  EXPECT_TRUE(*state_of_db(*ts.store) == current);
}

INSTANTIATE_TEST_SUITE_P(Store, Bootstrap, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
