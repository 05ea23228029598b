// Ordered dead letters (issue 5): with a poisoned event for key K, later
// events of K are parked in order (table herald_parked) while events of other
// keys are applied; after the fix, replay applies K's events in their
// original order. Both replay paths are exercised: re-publishing the dead
// letter (`dlq replay --topic`) and marking the chain in the database
// (`dlq replay --store`), plus a second poison inside the chain and a replica
// restart in between. SQLite and PostgreSQL.
#include <filesystem>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "replica_harness.h"
#include "sdk/dlq/dead_letter.h"
#include "sdk/dlq/dlq_command.h"
#include "sdk/dlq/parked.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// "seq.add" {"n": N}, and plain records (no CloudEvents headers) with the
// same payload: appends (key, N) to table applied, in application order.
// Fails for (key, N) in `poisoned`, with an error text that is not UTF-8 (as
// a JSON parser's error quoting the payload's bytes would be), and for an
// event that does not know its position.
struct SeqHandler {
  std::mutex mu;
  std::set<std::pair<std::string, int>> poisoned;
  std::function<void(const std::string& key, int n)> probe;  // called before each apply, when set

  void install(ReplicaHandlers& h) {
    auto apply = [this](const Event& ev, Tx& tx) {
      int n = nlohmann::json::parse(ev.payload).at("n").get<int>();
      if (!ev.position) throw std::runtime_error("event without a position");
      if (probe) probe(ev.aggregate_id, n);
      {
        std::lock_guard lk(mu);
        if (poisoned.count({ev.aggregate_id, n})) {
          throw std::runtime_error("poisoned " + ev.aggregate_id + "#" + std::to_string(n) + " \xff\xfe");
        }
      }
      auto r = tx.exec("INSERT INTO applied (k, n) VALUES (?, ?)", {ev.aggregate_id, n});
      if (!r) throw std::runtime_error(r.error().to_string());
    };
    h.on("seq.add", apply);
    h.otherwise(apply);
  }
  void set_poisoned(std::set<std::pair<std::string, int>> p) {
    std::lock_guard lk(mu);
    poisoned = std::move(p);
  }
};

EncodedEvent seq(const std::string& key, int n) { return *encode(Event::json("seq.add", "/sdk-test", key, {{"n", n}})); }

int run_cli(const std::vector<std::string>& args, std::string* out_text = nullptr) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = open_memstream(&buf, &len);
  int rc = dlq::run_dlq_command(args, out, stderr);
  std::fclose(out);
  std::string text(buf, len);
  std::free(buf);
  std::printf("$ herald dlq");
  for (auto& a : args) std::printf(" %s", a.c_str());
  std::printf("\n%s", text.c_str());
  if (out_text) *out_text = text;
  return rc;
}

class OrderedDeadLetters : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = GroupBroker::start();
    brokers_ = broker_->brokers();
    ts_ = open_test_store(GetParam(), dir_.path(), "dlq_ordered");
    const bool pg = ts_.store->dialect() == Dialect::kPostgres;
    ASSERT_TRUE(ts_.store->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec_script(pg ? "CREATE TABLE applied (seq BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, n INTEGER NOT NULL)"
                                   : "CREATE TABLE applied (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL, "
                                     "n INTEGER NOT NULL)"));
      return ok();
    }));
    auto p = kafka::SyncProducer::create(brokers_, {{"log_level", "3"}});
    ASSERT_TRUE(p);
    producer_ = std::move(*p);
  }
  int64_t send(const EncodedEvent& e) {
    auto r = producer_->send(topic_, 0, std::string_view(e.key), std::string_view(*e.value), e.headers);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : -1;
  }
  // A plain Kafka record: no headers.
  int64_t send_plain(const std::string& key, int n, int32_t partition = 0) {
    const std::string value = nlohmann::json{{"n", n}}.dump();
    auto r = producer_->send(topic_, partition, std::string_view(key), std::string_view(value), {});
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : -1;
  }
  // key -> the n's applied, in application order.
  std::map<std::string, std::vector<int>> applied() {
    std::map<std::string, std::vector<int>> out;
    auto r = ts_.store->run([&](Tx& tx) -> Result<void> {
      out.clear();
      HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT k, n FROM applied ORDER BY seq"));
      for (auto& row : rows) out[row.text(0)].push_back(static_cast<int>(row.int64(1)));
      return ok();
    });
    EXPECT_TRUE(r);
    return out;
  }
  std::vector<std::pair<int64_t, dlq::ParkedState>> parked() {
    auto rows = dlq::list_parked(*ts_.store, group_, topic_);
    EXPECT_TRUE(rows);
    std::vector<std::pair<int64_t, dlq::ParkedState>> out;
    for (auto& e : *rows) out.emplace_back(e.offset, e.state);
    return out;
  }
  ReplicaConfig cfg() {
    auto c = test_config(brokers_, group_, topic_);
    c.ordered = true;
    c.max_retries = 1;
    c.parked_scan_interval = milliseconds(100);
    return c;
  }

  const std::string topic_ = "accounts";
  const std::string group_ = "statements";
  TempDir dir_;
  std::unique_ptr<GroupBroker> broker_;
  std::string brokers_;
  TestStore ts_;
  std::unique_ptr<kafka::SyncProducer> producer_;
};

TEST_P(OrderedDeadLetters, LaterEventsOfAPoisonedKeyWaitAndReplayAppliesThemInOrder) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"K", 2}, {"K", 4}});
  using V = std::vector<int>;

  // K1 A1 K2* B1 K3 A2 K4* B2 K5
  send(seq("K", 1));
  send(seq("A", 1));
  int64_t k2 = send(seq("K", 2));
  send(seq("B", 1));
  int64_t k3 = send(seq("K", 3));
  send(seq("A", 2));
  int64_t k4 = send(seq("K", 4));
  send(seq("B", 2));
  int64_t k5 = send(seq("K", 5));
  {
    ReplicaHandlers h;
    handler.install(h);
    RunningReplica r(cfg(), *ts_.store, std::move(h));
    ASSERT_TRUE(*r->wait_until(topic_, 0, k5, seconds(30)));
    auto a = applied();
    EXPECT_EQ(a["K"], V({1}));
    EXPECT_EQ(a["A"], V({1, 2})) << "other keys flow on";
    EXPECT_EQ(a["B"], V({1, 2}));
    using S = dlq::ParkedState;
    EXPECT_EQ(parked(), (std::vector<std::pair<int64_t, S>>{
                            {k2, S::kDead}, {k3, S::kWaiting}, {k4, S::kWaiting}, {k5, S::kWaiting}}));
    EXPECT_EQ(r->stats().dead_lettered, 1);
    EXPECT_EQ(r->stats().parked, 3);
    std::string out;
    ASSERT_EQ(run_cli({"parked", "--store", ts_.url, "--group", group_}, &out), 0);
    EXPECT_NE(out.find("4 parked event(s)"), std::string::npos);
    // A --store that is not the replica's database is an error, and creates nothing.
    if (ts_.store->dialect() == Dialect::kSqlite) {
      const std::string typo = ts_.url + ".typo";
      EXPECT_NE(run_cli({"parked", "--store", typo, "--group", group_}, &out), 0);
      EXPECT_FALSE(std::filesystem::exists(typo.substr(typo.find(':') + 1))) << typo;
    }

    // Fix K#2 only; replay the dead letter through the topic. K2 and K3 apply,
    // then K4 (still broken) becomes the chain's dead head and K5 waits.
    handler.set_poisoned({{"K", 4}});
    ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
    ASSERT_TRUE(eventually([&] { return applied()["K"] == V({1, 2, 3}); }, seconds(20))) << "K: " << applied()["K"].size();
    // K4 is retried (max_retries 1) before it is dead: wait for that, not only for the chain's length.
    const std::vector<std::pair<int64_t, S>> k4_dead{{k4, S::kDead}, {k5, S::kWaiting}};
    EXPECT_TRUE(eventually([&] { return parked() == k4_dead; }, seconds(10))) << parked().size() << " parked";
    EXPECT_TRUE(eventually([&] { return r->stats().dead_lettered == 2; }, seconds(10)));
  }
  // A new replica process would see the same: the chain lives in the database.
  int64_t k6 = send(seq("K", 6));
  int64_t a3 = send(seq("A", 3));
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, a3, seconds(30)));
  EXPECT_EQ(applied()["K"], V({1, 2, 3}));
  EXPECT_EQ(applied()["A"], V({1, 2, 3}));
  EXPECT_EQ(parked().back().first, k6);

  // Fix K#4; replay in the database this time.
  handler.set_poisoned({});
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  EXPECT_NE(out.find("1 parked key(s)"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return applied()["K"] == V({1, 2, 3, 4, 5, 6}); }, seconds(20)));
  EXPECT_TRUE(parked().empty());

  // K is free again: its next event applies at once.
  int64_t k7 = send(seq("K", 7));
  ASSERT_TRUE(*r->wait_until(topic_, 0, k7, seconds(20)));
  EXPECT_EQ(applied()["K"], V({1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(applied()["B"], V({1, 2}));
}

TEST_P(OrderedDeadLetters, SkippingADeadHeadReleasesTheRestOfTheChain) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"Q", 1}});
  send(seq("Q", 1));
  send(seq("Q", 2));
  int64_t last = send(seq("Q", 3));
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  EXPECT_TRUE(applied()["Q"].empty());
  std::string out;
  ASSERT_EQ(run_cli({"skip", "--store", ts_.url, "--group", group_, "--topic", topic_, "--key", "Q"}, &out), 0);
  ASSERT_TRUE(eventually([&] { return applied()["Q"] == std::vector<int>({2, 3}); }, seconds(20)));
  EXPECT_TRUE(parked().empty());
  // The letter stays pending in the dead-letter topic (its cursor cannot pass one letter). A later
  // replay of the topic's letters re-publishes it; the replica drops it instead of applying Q1
  // after Q3.
  handler.set_poisoned({});
  const int64_t duplicates = r->stats().duplicates;
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
  EXPECT_NE(out.find("replayed 1 "), std::string::npos);
  ASSERT_TRUE(*r->wait_until(topic_, 0, last + 1, seconds(20)));
  EXPECT_EQ(applied()["Q"], std::vector<int>({2, 3}));
  EXPECT_EQ(r->stats().duplicates, duplicates + 1);
}

// A plain `dlq skip` of an ordered letter would leave the key's later events
// parked for good: it is refused, nothing moves; with --store it drops the
// parked head as well, and the key's events flow again.
TEST_P(OrderedDeadLetters, SkippingOrderedLettersNeedsTheStoreAndDropsTheirHeads) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"Q", 1}});
  send(seq("Q", 1));
  int64_t last = send(seq("Q", 2));
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  ASSERT_EQ(parked().size(), 2u);
  std::string out;
  EXPECT_NE(run_cli({"skip", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
  EXPECT_NE(out.find("1 dead letter(s) pending"), std::string::npos) << "a refused skip moved the cursor";
  EXPECT_EQ(parked().size(), 2u);
  ASSERT_EQ(run_cli({"skip", "--brokers", brokers_, "--topic", topic_, "--group", group_, "--store", ts_.url}, &out),
            0);
  EXPECT_NE(out.find("skipped 1 dead letter(s)"), std::string::npos);
  EXPECT_NE(out.find("1 parked head(s) dropped"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return applied()["Q"] == std::vector<int>({2}); }, seconds(20)));
  last = send(seq("Q", 3));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(20)));
  EXPECT_EQ(applied()["Q"], std::vector<int>({2, 3}));
  EXPECT_TRUE(parked().empty());
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
  EXPECT_NE(out.find("0 dead letter(s) pending"), std::string::npos);
}

TEST_P(OrderedDeadLetters, PlainRecordsOfAPoisonedKeyReplayInOrder) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"P", 1}});
  send_plain("P", 1);
  send_plain("P", 2);
  int64_t last = send_plain("O", 1);
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  EXPECT_EQ(applied()["O"], std::vector<int>({1}));
  ASSERT_EQ(parked().size(), 2u);
  handler.set_poisoned({});
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  ASSERT_TRUE(eventually([&] { return applied()["P"] == std::vector<int>({1, 2}); }, seconds(20)))
      << "P: " << applied()["P"].size() << ", dead-lettered " << r->stats().dead_lettered;
  EXPECT_TRUE(parked().empty());
  EXPECT_EQ(r->stats().dead_lettered, 1);
  // The letter, still pending in the topic, replayed later: dropped (a plain record has no ce_id
  // that deduplication could catch), not applied a second time.
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic_, "--group", group_}, &out), 0);
  EXPECT_NE(out.find("replayed 1 "), std::string::npos);
  ASSERT_TRUE(*r->wait_until(topic_, 0, last + 1, seconds(20)));
  EXPECT_EQ(applied()["P"], std::vector<int>({1, 2}));
}

// Unordered too: a plain record has no ce_id, so its replay is known by the original's place.
// The same letter replayed twice (two `dlq replay` runs at once, or one run again after it
// published and failed before moving its cursor) is applied once.
TEST_P(OrderedDeadLetters, APlainRecordReplayedTwiceIsAppliedOnce) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"P", 1}});
  const int64_t poisoned = send_plain("P", 1);
  int64_t last = send_plain("O", 1);
  ReplicaHandlers h;
  handler.install(h);
  auto c = cfg();
  c.ordered = false;
  RunningReplica r(c, *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  ASSERT_EQ(r->stats().dead_lettered, 1);
  handler.set_poisoned({});
  dlq::Failure f;
  f.topic = topic_;
  f.offset = poisoned;
  f.group = group_;
  const auto headers = dlq::replay_headers({}, f);
  const std::string value = nlohmann::json{{"n", 1}}.dump();
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(producer_->send(topic_, 0, std::string_view("P"), std::string_view(value), headers));
  }
  last = send_plain("O", 2);
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(20)));
  EXPECT_EQ(applied()["P"], std::vector<int>({1}));
  EXPECT_EQ(r->stats().duplicates, 1);
}

// Order is per partition: a key parked in two partitions (records written with explicit
// partitions, or before the topic grew) has one chain in each, replayed each on its own, every
// event applied once.
TEST_P(OrderedDeadLetters, AKeyParkedInTwoPartitionsHasAChainInEach) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 2));
  SeqHandler handler;
  handler.set_poisoned({{"P", 1}, {"P", 3}});
  send_plain("P", 1, 0);
  int64_t last0 = send_plain("P", 2, 0);
  send_plain("P", 3, 1);
  int64_t last1 = send_plain("P", 4, 1);
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last0, seconds(30)));
  ASSERT_TRUE(*r->wait_until(topic_, 1, last1, seconds(30)));
  auto rows = dlq::list_parked(*ts_.store, group_, topic_);
  ASSERT_TRUE(rows);
  std::set<std::tuple<int32_t, int64_t, dlq::ParkedState>> got;
  for (auto& e : *rows) got.emplace(e.partition, e.offset, e.state);
  using S = dlq::ParkedState;
  EXPECT_EQ(got, (std::set<std::tuple<int32_t, int64_t, S>>{
                     {0, 0, S::kDead}, {0, 1, S::kWaiting}, {1, 0, S::kDead}, {1, 1, S::kWaiting}}));
  handler.set_poisoned({});
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  ASSERT_TRUE(eventually([&] { return parked().empty(); }, seconds(20))) << parked().size() << " still parked";
  std::this_thread::sleep_for(milliseconds(300));  // a few more parked scans: nothing applied twice
  std::vector<int> p = applied()["P"];
  std::vector<int> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, std::vector<int>({1, 2, 3, 4}));
  auto before = [&](int a, int b) { return std::find(p.begin(), p.end(), a) < std::find(p.begin(), p.end(), b); };
  EXPECT_TRUE(before(1, 2) && before(3, 4)) << "each partition's chain in its order";
}

// Two instances can drain the same chain (the partition's previous owner has not noticed the
// rebalance yet). Here the "other instance" deletes K#2's parked row, as applying it does, while
// this replica is applying K#1 from the same chain: the replica finds the row gone at its delete,
// rolls back and reloads the chain, so K#2 is not applied a second time. PostgreSQL only: a
// SQLite transaction takes the database's write lock at BEGIN, so two cannot drain at once.
TEST_P(OrderedDeadLetters, ARowTakenByAnotherInstanceMeanwhileIsNotAppliedAgain) {
  if (ts_.store->dialect() != Dialect::kPostgres) GTEST_SKIP() << "one writer at a time";
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  send_plain("K", 1);
  const int64_t k2 = send_plain("K", 2);
  const int64_t last = send_plain("K", 3);
  auto other = Store::open(ts_.url);
  ASSERT_TRUE(other) << other.error().to_string();
  std::atomic<bool> taken{false};
  std::atomic<bool> k1_fixed{false};
  ReplicaHandlers h;
  h.otherwise([&](const Event& ev, Tx& tx) {
    int n = nlohmann::json::parse(ev.payload).at("n").get<int>();
    if (n == 1 && !k1_fixed.load()) throw std::runtime_error("poisoned K#1");
    if (n == 1 && !taken.exchange(true)) {
      auto r = (*other)->run([&](Tx& t) -> Result<void> {
        HERALD_ASSIGN_OR_RETURN(int64_t gone, dlq::delete_parked(t, group_, topic_, 0, k2));
        if (gone != 1) return Error{Errc::kNotFound, "K#2 was not parked"};
        return ok();
      });
      if (!r) throw std::runtime_error(r.error().to_string());
    }
    auto r = tx.exec("INSERT INTO applied (k, n) VALUES (?, ?)", {ev.aggregate_id, n});
    if (!r) throw std::runtime_error(r.error().to_string());
  });
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  ASSERT_EQ(parked().size(), 3u);
  k1_fixed = true;
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  ASSERT_TRUE(eventually([&] { return parked().empty(); }, seconds(20))) << parked().size() << " still parked";
  EXPECT_TRUE(taken.load());
  EXPECT_EQ(applied()["K"], std::vector<int>({1, 3}));
}

// An event whose CloudEvents headers do not decode is dead-lettered at once;
// in ordered mode it holds its key back like any other dead letter (the key
// is the record key), and an undecodable event of a parked key waits behind
// it. `dlq skip --store` releases the key.
TEST_P(OrderedDeadLetters, AnUndecodableEventHoldsItsKeyBack) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  auto broken = [](const std::string& key, int n) {
    EncodedEvent e = seq(key, n);
    for (auto& h : e.headers) {
      if (h.name == "ce_time") h.value = "not-a-time";
    }
    return e;
  };
  const int64_t head = send(broken("M", 1));
  send(seq("M", 2));
  send(broken("M", 3));
  send(seq("M", 4));
  int64_t last = send(seq("L", 1));
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  EXPECT_EQ(applied()["L"], std::vector<int>({1}));
  EXPECT_TRUE(applied()["M"].empty());
  const auto rows = parked();
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], std::make_pair(head, dlq::ParkedState::kDead));
  EXPECT_EQ(r->stats().dead_lettered, 1);
  // Skipping the head applies M2, then M3 fails to decode and becomes the new dead head.
  std::string out;
  ASSERT_EQ(run_cli({"skip", "--store", ts_.url, "--group", group_, "--topic", topic_, "--key", "M"}, &out), 0);
  ASSERT_TRUE(eventually([&] { return r->stats().dead_lettered == 2; }, seconds(20)));
  EXPECT_EQ(applied()["M"], std::vector<int>({2}));
  ASSERT_EQ(parked().size(), 2u);
  ASSERT_EQ(run_cli({"skip", "--store", ts_.url, "--group", group_, "--topic", topic_, "--key", "M"}, &out), 0);
  ASSERT_TRUE(eventually([&] { return applied()["M"] == std::vector<int>({2, 4}); }, seconds(20)));
  EXPECT_TRUE(parked().empty());
}

// SQLite has one writer at a time: a replica retrying a parked event must not
// keep its transaction open while it waits between attempts.
TEST_P(OrderedDeadLetters, RetryingAParkedEventLetsOtherWritersIn) {
  if (ts_.store->dialect() != Dialect::kSqlite) GTEST_SKIP() << "PostgreSQL writers do not block each other here";
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"R", 1}});
  send(seq("R", 1));
  int64_t last = send(seq("R", 2));
  auto c = cfg();
  c.retry_backoff = milliseconds(1500);
  c.max_retry_backoff = milliseconds(1500);
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(c, *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  ASSERT_EQ(r->stats().dead_lettered, 1);
  // Still broken: the replay retries it once (1.5 s apart) and dead-letters it again.
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  auto other = Store::open(ts_.url);
  ASSERT_TRUE(other) << other.error().to_string();
  auto slowest = std::chrono::steady_clock::duration::zero();
  int writes = 0;
  const auto until = std::chrono::steady_clock::now() + seconds(20);
  while (r->stats().dead_lettered < 2 && std::chrono::steady_clock::now() < until) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE((*other)->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec("INSERT INTO applied (k, n) VALUES ('other', ?)", {writes}));
      return ok();
    }));
    slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    ++writes;
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(r->stats().dead_lettered, 2);
  EXPECT_GE(r->stats().retries, 2);
  EXPECT_LT(slowest, milliseconds(1000)) << writes << " writes; the slowest waited for the replica's backoff";
}

// A long chain drains max_batch_events per transaction instead of holding the
// store's write lock for its whole length: while the replica applies the
// chain's sixth event, another connection already sees the first four. An
// event that still fails in a later transaction becomes the new dead head.
TEST_P(OrderedDeadLetters, ALongChainDrainsInTransactionsOfMaxBatchEvents) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  auto other = Store::open(ts_.url);
  ASSERT_TRUE(other) << other.error().to_string();
  SeqHandler handler;
  handler.set_poisoned({{"L", 1}});
  std::atomic<int64_t> seen_at_sixth{-1};
  handler.probe = [&](const std::string& key, int n) {
    if (key != "L" || n != 6) return;
    auto r = (*other)->run([&](Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT COUNT(*) FROM applied WHERE k = 'L'"));
      seen_at_sixth = rows.at(0).int64(0);
      return ok();
    }, 1, TxOptions{.read_only = true});
    if (!r) throw std::runtime_error(r.error().to_string());
  };
  int64_t last = -1;
  for (int n = 1; n <= 10; ++n) last = send(seq("L", n));
  auto c = cfg();
  c.max_batch_events = 4;
  ReplicaHandlers h;
  handler.install(h);
  RunningReplica r(c, *ts_.store, std::move(h));
  ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
  ASSERT_EQ(parked().size(), 10u);
  handler.set_poisoned({{"L", 9}});
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--store", ts_.url, "--group", group_, "--topic", topic_}, &out), 0);
  ASSERT_TRUE(eventually([&] { return parked().size() == 2 && r->stats().dead_lettered == 2; }, seconds(20)));
  EXPECT_EQ(applied()["L"], std::vector<int>({1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(seen_at_sixth.load(), 4) << "L1-L4 committed before L5-L8 were applied";
  using S = dlq::ParkedState;
  EXPECT_EQ(parked(), (std::vector<std::pair<int64_t, S>>{{last - 1, S::kDead}, {last, S::kWaiting}}));
}

// A replayed chain that a stop (or crash) left half applied is runnable in the database: the next
// start drains it, and reports ready (and runs on_ready) only after that, not at its assignment.
TEST_P(OrderedDeadLetters, AStartWithARunnableChainIsReadyOnlyOnceTheChainIsApplied) {
  ASSERT_TRUE(make_topic(brokers_, topic_, 1));
  SeqHandler handler;
  handler.set_poisoned({{"L", 1}});
  int64_t head = -1, last = -1;
  for (int n = 1; n <= 10; ++n) {
    last = send(seq("L", n));
    if (n == 1) head = last;
  }
  {
    ReplicaHandlers h;
    handler.install(h);
    RunningReplica r(cfg(), *ts_.store, std::move(h));
    ASSERT_TRUE(*r->wait_until(topic_, 0, last, seconds(30)));
    ASSERT_EQ(parked().size(), 10u);
  }
  // What a replay's arrival does before the chain is applied (Replica::Impl::replay_chain). And no
  // fingerprint of the last record (as stored before herald_offsets_last_record_v1): the partition
  // is caught up at its assignment, without reading anything first.
  ASSERT_TRUE(ts_.store->run([&](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("UPDATE herald_offsets SET last_record = NULL"));
    return dlq::set_parked_state(tx, group_, topic_, 0, head, dlq::ParkedState::kReplay);
  }));
  handler.set_poisoned({});
  std::atomic<int> applied_calls{0};
  handler.probe = [&](const std::string&, int) { ++applied_calls; };
  std::atomic<int> at_ready{-1};
  ReplicaHandlers h;
  handler.install(h);
  auto c = Replica::create(cfg(), *ts_.store, std::move(h));
  ASSERT_TRUE(c) << c.error().to_string();
  auto& r = **c;
  r.on_ready([&] {
    if (at_ready < 0) at_ready = applied_calls.load();
  });
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(eventually([&] { return r.ready(); }, seconds(30)));
  r.stop();
  EXPECT_TRUE(r.join());
  EXPECT_EQ(at_ready.load(), 10) << "ready before the runnable chain was applied";
  EXPECT_EQ(applied()["L"], std::vector<int>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_TRUE(parked().empty());
}

INSTANTIATE_TEST_SUITE_P(Store, OrderedDeadLetters, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
