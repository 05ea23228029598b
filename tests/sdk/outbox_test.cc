// Outbox + OutboxRelay against the embedded broker, on SQLite (Sqlite/*) and
// PostgreSQL (Postgres/*).
#include "sdk/outbox/outbox.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "common/clock.h"
#include "sdk/outbox/relay.h"
#include "sdk_test_util.h"
#include "snippets.h"

namespace herald::sdk {
namespace {

using namespace std::chrono_literals;
using testing::create_topic;
using testing::PgDatabase;
using testing::read_topic;
using testing::Record;
using testing::TempDir;
using testing::TestBroker;

// Per aggregate, the versions in `recs` are 1, 2, 3, ... in log order (no gap,
// no reordering). Returns the last version of each aggregate.
std::map<std::string, int64_t> expect_commit_order(const std::vector<Record>& recs) {
  std::map<std::string, int64_t> last;
  for (const Record& rec : recs) {
    auto ev = rec.event();
    EXPECT_TRUE(ev) << ev.error().to_string();
    if (!ev || !ev->aggregate_version) continue;
    EXPECT_EQ(*ev->aggregate_version, last[ev->aggregate_id] + 1)
        << "aggregate " << ev->aggregate_id << " out of order";
    last[ev->aggregate_id] = *ev->aggregate_version;
  }
  return last;
}

class OutboxTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = TestBroker::start();
    if (GetParam() == "postgres") {
      pg_ = PgDatabase::create("outbox");
      url_ = pg_->url();
    } else {
      url_ = "sqlite:" + (dir_.path() / "svc.db").string();
    }
    store_ = open();
    ASSERT_TRUE(store_->run([](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec_script(
          "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)"));
      return ok();
    }));
  }
  void TearDown() override {
    store_.reset();
    broker_.reset();
  }

  std::unique_ptr<Store> open() {
    auto s = Store::open(url_);
    EXPECT_TRUE(s) << s.error().to_string();
    return s ? std::move(*s) : nullptr;
  }
  RelayOptions relay_options() {
    RelayOptions o;
    o.brokers = broker_->brokers();
    o.batch_size = 100;
    return o;
  }
  std::unique_ptr<OutboxRelay> make_relay(Store& store, RelayOptions o) {
    auto r = OutboxRelay::create(store, std::move(o));
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(*r) : nullptr;
  }
  // One business change + its event, in one transaction. Returns the ce_id.
  std::string deposit(Outbox& outbox, const std::string& account, int amount, int seq,
                      bool commit = true) {
    std::string id;
    auto tx = store_->begin();
    EXPECT_TRUE(tx);
    EXPECT_TRUE((*tx)->exec("INSERT INTO accounts (id, balance) VALUES (?, ?) ON CONFLICT (id) "
                            "DO UPDATE SET balance = accounts.balance + excluded.balance",
                            {account, amount}));
    auto ev = Event::json("accounts.deposited", "", account, {{"amount", amount}, {"seq", seq}});
    ev.aggregate_version = seq;
    auto r = outbox.add(**tx, std::move(ev));
    EXPECT_TRUE(r) << r.error().to_string();
    if (r) id = *r;
    if (commit) {
      EXPECT_TRUE((*tx)->commit());
    } else {
      (*tx)->rollback();
    }
    return id;
  }
  // One event of aggregate `account` with version `seq` and `pad` bytes of padding.
  // A relay that sends each row in a request of its own (so that a refused row
  // has later ones in flight behind it), run for `rounds` publish rounds.
  std::unique_ptr<OutboxRelay> run_one_row_per_request(int rounds) {
    auto opts = relay_options();
    opts.kafka_config = {{"batch.num.messages", "1"}};
    opts.error_backoff = 100ms;
    auto relay = make_relay(*store_, opts);
    for (int i = 0; i < rounds; ++i) {
      (void)relay->publish_once();
      std::this_thread::sleep_for(150ms);
    }
    return relay;
  }
  void add_event(Outbox& outbox, const std::string& account, int seq, size_t pad = 0) {
    ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
      auto ev = Event::json("accounts.deposited", "", account,
                            {{"seq", seq}, {"pad", std::string(pad, 'x')}});
      ev.aggregate_version = seq;
      HERALD_TRY(outbox.add(tx, std::move(ev)));
      return ok();
    }));
  }
  int64_t pending() { return outbox_pending(*store_).value(); }

  TempDir dir_;
  std::unique_ptr<TestBroker> broker_;
  std::unique_ptr<PgDatabase> pg_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_P(OutboxTest, PublishesExactlyTheCommittedEventsInOrderWithCloudEventsHeaders) {
  Outbox outbox({.topic = "accounts", .source = "/bank"});
  auto relay = make_relay(*store_, relay_options());
  ASSERT_TRUE(relay->start());
  std::set<std::string> committed, rolled_back;
  std::map<std::string, int> seq;
  for (int i = 0; i < 300; ++i) {
    std::string account = "acct-" + std::to_string(i % 7);
    bool commit = i % 10 != 3;
    int s = commit ? ++seq[account] : -1;
    std::string id = deposit(outbox, account, i, s, commit);
    (commit ? committed : rolled_back).insert(id);
  }
  auto recs = read_topic(broker_->brokers(), "accounts", committed.size(), 60s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  ASSERT_EQ(recs->size(), committed.size());
  std::map<std::string, int64_t> last;
  std::set<std::string> seen;
  for (const Record& rec : *recs) {
    auto ev = rec.event();
    ASSERT_TRUE(ev) << ev.error().to_string();
    EXPECT_EQ(ev->type, "accounts.deposited");
    EXPECT_EQ(ev->source, "/bank");
    EXPECT_EQ(ev->content_type, "application/json");
    EXPECT_GT(ev->time_ms, 0);
    EXPECT_EQ(rec.key, ev->aggregate_id);
    EXPECT_TRUE(committed.count(ev->id)) << "event " << ev->id << " was not committed";
    EXPECT_TRUE(seen.insert(ev->id).second) << "duplicate " << ev->id;
    // Per aggregate: versions 1, 2, 3, ... in log order.
    ASSERT_TRUE(ev->aggregate_version);
    EXPECT_EQ(*ev->aggregate_version, last[ev->aggregate_id] + 1) << ev->aggregate_id;
    last[ev->aggregate_id] = *ev->aggregate_version;
    EXPECT_EQ(ev->json_payload().value()["seq"], *ev->aggregate_version);
  }
  // Published rows are deleted.
  for (int i = 0; i < 100 && pending() > 0; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pending(), 0);
  relay->stop();
  auto st = relay->stats();
  EXPECT_EQ(st.published, committed.size());
  EXPECT_TRUE(st.has_lease);
  EXPECT_EQ(st.failed_deliveries, 0u);
}

TEST_P(OutboxTest, IdleRelayWakesOnCommitWithoutPolling) {
  Outbox outbox({.topic = "wake", .source = "/bank"});
  auto opts = relay_options();
  opts.idle_wait = 60s;  // PostgreSQL: only NOTIFY can wake it in time
  opts.min_poll = 60s;   // SQLite: only the in-process wake-up can
  opts.max_poll = 60s;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  std::this_thread::sleep_for(500ms);  // let it go idle
  for (int round = 1; round <= 3; ++round) {
    int64_t t0 = mono_ns();
    deposit(outbox, "a", 1, round);
    auto recs = read_topic(broker_->brokers(), "wake", static_cast<size_t>(round), 20s);
    ASSERT_TRUE(recs) << recs.error().to_string();
    double ms = static_cast<double>(mono_ns() - t0) / 1e6;
    EXPECT_LT(ms, 10000) << "round " << round;
    std::cout << "commit -> readable in " << ms << " ms\n";
  }
  if (store_->dialect() != Dialect::kPostgres) return;
  // The server ends the relay's LISTEN session: it listens again at once, not after idle_wait.
  auto tx = store_->begin({});
  ASSERT_TRUE(tx) << tx.error().to_string();
  auto killed = (*tx)->query_one(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
      "WHERE datname = current_database() AND query ILIKE 'listen %'");  // this test's database only
  ASSERT_TRUE(killed && *killed) << (killed ? "no row" : killed.error().to_string());
  ASSERT_EQ((*killed)->int64(0), 1);
  (*tx)->rollback();
  std::this_thread::sleep_for(500ms);
  int64_t t0 = mono_ns();
  deposit(outbox, "a", 1, 4);
  auto recs = read_topic(broker_->brokers(), "wake", 4, 20s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_LT(static_cast<double>(mono_ns() - t0) / 1e6, 10000) << "after the LISTEN session was ended";
}

TEST_P(OutboxTest, RawPayloadsTombstonesAndExplicitTopics) {
  Outbox outbox({.topic = "", .source = "/blobs"});
  ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
    Event raw;
    raw.type = "blob.put";
    raw.aggregate_id = "b1";
    raw.payload = std::string("\x00\xffraw", 5);
    raw.content_type = "application/octet-stream";
    HERALD_TRY(outbox.add(tx, "blobs", raw));
    HERALD_TRY(outbox.add(tx, "blobs", Event::make_tombstone("b1", "blob.deleted")));
    HERALD_TRY(outbox.add(tx, "blob-audit", Event::json("audit", "", "b1", {{"op", "del"}})));
    return ok();
  }));
  EXPECT_EQ(outbox.add(*store_->begin().value(), Event::json("x", "/s", "k", nullptr)).error().code,
            Errc::kInvalidArgument);
  auto relay = make_relay(*store_, relay_options());
  ASSERT_TRUE(relay->drain(60s));
  auto blobs = read_topic(broker_->brokers(), "blobs", 2, 30s);
  ASSERT_TRUE(blobs) << blobs.error().to_string();
  ASSERT_EQ(blobs->size(), 2u);
  EXPECT_EQ((*blobs)[0].value, std::string("\x00\xffraw", 5));
  EXPECT_EQ((*blobs)[0].event()->content_type, "application/octet-stream");
  EXPECT_FALSE((*blobs)[1].value.has_value());
  auto tomb = (*blobs)[1].event();
  ASSERT_TRUE(tomb);
  EXPECT_TRUE(tomb->tombstone);
  EXPECT_EQ(tomb->type, "blob.deleted");
  EXPECT_EQ(tomb->source, "/blobs");
  auto audit = read_topic(broker_->brokers(), "blob-audit", 1, 30s);
  ASSERT_TRUE(audit);
  EXPECT_EQ(audit->size(), 1u);
  EXPECT_EQ(pending(), 0);
}

TEST_P(OutboxTest, KeepsPerAggregateOrderAcrossPartitions) {
  ASSERT_TRUE(testing::create_topic(broker_->brokers(), "parts", 4));
  Outbox outbox({.topic = "parts", .source = "/bank"});
  std::map<std::string, int> seq;
  for (int i = 0; i < 400; ++i) {
    std::string account = "acct-" + std::to_string((i * 7) % 23);
    deposit(outbox, account, 1, ++seq[account]);
  }
  auto opts = relay_options();
  opts.batch_size = 37;  // many rounds
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->drain(60s));
  auto recs = read_topic(broker_->brokers(), "parts", 400, 30s);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 400u);
  std::map<std::string, int64_t> last;
  std::map<std::string, int32_t> partition_of;
  std::set<int32_t> partitions;
  for (const Record& rec : *recs) {
    auto ev = rec.event().value();
    EXPECT_EQ(*ev.aggregate_version, last[ev.aggregate_id] + 1);
    last[ev.aggregate_id] = *ev.aggregate_version;
    auto [it, fresh] = partition_of.emplace(ev.aggregate_id, rec.partition);
    EXPECT_EQ(it->second, rec.partition) << "aggregate split across partitions";
    partitions.insert(rec.partition);
  }
  EXPECT_GT(partitions.size(), 1u);
}

TEST_P(OutboxTest, OnlyTheLeaseHolderPublishesAndAStandbyTakesOver) {
  Outbox outbox({.topic = "lease", .source = "/bank"});
  auto store2 = open();  // as another process would
  auto opts = relay_options();
  opts.standby_retry = 100ms;
  auto first = make_relay(*store_, opts);
  ASSERT_TRUE(first->start());
  for (int i = 0; i < 50 && !first->stats().has_lease; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(first->stats().has_lease);
  auto second = make_relay(*store2, opts);
  ASSERT_TRUE(second->start());
  for (int i = 1; i <= 20; ++i) deposit(outbox, "a", 1, i);
  ASSERT_TRUE(read_topic(broker_->brokers(), "lease", 20, 30s));
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(second->stats().has_lease);
  EXPECT_EQ(second->stats().published, 0u);
  EXPECT_EQ(first->stats().published, 20u);
  first.reset();  // releases the lease
  for (int i = 21; i <= 40; ++i) deposit(outbox, "a", 1, i);
  auto recs = read_topic(broker_->brokers(), "lease", 40, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 40u);
  // The counter moves after the DELETE, which follows the acknowledgement.
  for (int i = 0; i < 200 && second->stats().published < 20; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(second->stats().has_lease);
  EXPECT_EQ(second->stats().published, 20u);
  int64_t v = 0;
  for (const Record& r : *recs) EXPECT_EQ(*r.event()->aggregate_version, ++v);
}

TEST_P(OutboxTest, UndeliveredRowsStayInTheOutboxUntilABrokerAcknowledges) {
  Outbox outbox({.topic = "later", .source = "/bank"});
  for (int i = 1; i <= 10; ++i) deposit(outbox, "a", 1, i);
  auto dead = relay_options();
  dead.brokers = "127.0.0.1:1";  // nothing listens there
  dead.delivery_timeout = 1500ms;
  auto relay = make_relay(*store_, dead);
  // A round waits 1 s for its reports; the row fails after delivery_timeout.
  Result<size_t> r = size_t{0};
  for (int i = 0; i < 100 && relay->stats().failed_deliveries == 0; ++i) {
    r = relay->publish_once();
    EXPECT_TRUE(!r || *r == 0u);
    if (r) std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(r);
  // A fresh producer sends an aggregate's first row alone: a2..a10 wait.
  EXPECT_EQ(relay->stats().failed_deliveries, 1u);
  EXPECT_EQ(relay->stats().published, 0u);
  EXPECT_EQ(pending(), 10);
  relay.reset();
  auto good = make_relay(*store_, relay_options());
  ASSERT_TRUE(good->drain(60s));
  auto recs = read_topic(broker_->brokers(), "later", 10, 30s);
  ASSERT_TRUE(recs);
  EXPECT_EQ(recs->size(), 10u);
  EXPECT_EQ(pending(), 0);
}

// A row the producer refuses outright (bigger than its message.max.bytes):
// the later rows of its aggregate are not produced in that round either.
// (The first round of a fresh relay sends a1 and b1 alone; a2 is refused in
// the second.)
TEST_P(OutboxTest, ARowTheProducerRefusesHoldsBackTheRestOfItsAggregate) {
  Outbox outbox({.topic = "big", .source = "/bank"});
  add_event(outbox, "a", 1);
  add_event(outbox, "a", 2, 5000);  // > message.max.bytes below
  add_event(outbox, "a", 3);
  add_event(outbox, "b", 1);
  add_event(outbox, "a", 4);
  add_event(outbox, "b", 2);
  auto opts = relay_options();
  opts.kafka_config = {{"message.max.bytes", "2000"}};
  auto relay = make_relay(*store_, opts);
  (void)relay->publish_once();
  (void)relay->publish_once();
  auto recs = read_topic(broker_->brokers(), "big", 3, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  auto last = expect_commit_order(*recs);
  EXPECT_EQ(last["a"], 1);
  EXPECT_EQ(last["b"], 2);
  EXPECT_EQ(pending(), 3);  // a2 (refused), a3 and a4 (held behind it)
  relay.reset();
  // A relay that can send a2 publishes the rest of "a", in order.
  auto good = make_relay(*store_, relay_options());
  ASSERT_TRUE(good->drain(60s));
  recs = read_topic(broker_->brokers(), "big", 6, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 6u);
  last = expect_commit_order(*recs);
  EXPECT_EQ(last["a"], 4);
  EXPECT_EQ(pending(), 0);
}

// The broker refuses a2 (over the topic's max.message.bytes) while a3 and a4
// are already in flight in requests of their own: none of them may land
// after a1 without a2 (the producer runs with enable.gapless.guarantee; a1
// went out in a round of its own, so the producer has state in the
// partition).
TEST_P(OutboxTest, ARowTheBrokerRefusesDoesNotLetTheLaterRowsOfItsAggregateThrough) {
  ASSERT_TRUE(testing::create_topic(broker_->brokers(), "strict", 1,
                                    {{"max.message.bytes", "3000"}}));
  Outbox outbox({.topic = "strict", .source = "/bank"});
  add_event(outbox, "a", 1);
  add_event(outbox, "a", 2, 4000);
  add_event(outbox, "a", 3);
  add_event(outbox, "a", 4);
  auto relay = run_one_row_per_request(4);
  auto recs = read_topic(broker_->brokers(), "strict", 1, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  auto last = expect_commit_order(*recs);
  EXPECT_EQ(last["a"], 1);
  EXPECT_EQ(recs->size(), 1u);
  EXPECT_EQ(pending(), 3);
  EXPECT_GE(relay->stats().failed_deliveries, 1u);
}

// A broker refuses a whole request's batch for a partition (here: larger than the topic's
// max.message.bytes), and every row in it gets the error. The rows of other aggregates that shared
// the request with the guilty one are retried each in a request of their own, and flow again;
// only the guilty aggregate stays held.
TEST_P(OutboxTest, ARowTheBrokerRefusesHoldsBackOnlyItsOwnAggregateNotTheOthersInItsRequest) {
  ASSERT_TRUE(testing::create_topic(broker_->brokers(), "shared", 1, {{"max.message.bytes", "3000"}}));
  Outbox outbox({.topic = "shared", .source = "/bank"});
  const std::vector<std::string> others = {"b", "c", "d"};
  add_event(outbox, "a", 1);
  for (const auto& k : others) add_event(outbox, k, 1);
  add_event(outbox, "a", 2, 4000);  // goes in one request with b2, c2, d2
  for (int seq = 2; seq <= 6; ++seq) {
    for (const auto& k : others) add_event(outbox, k, seq);
  }
  auto opts = relay_options();
  opts.error_backoff = 100ms;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  auto recs = read_topic(broker_->brokers(), "shared", 1 + 3 * 6, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string() << "; published " << relay->stats().published;
  relay->stop();
  auto last = expect_commit_order(*recs);
  EXPECT_EQ(last["a"], 1);
  for (const auto& k : others) EXPECT_EQ(last[k], 6) << k;
  EXPECT_EQ(pending(), 1);  // a2
  EXPECT_GE(relay->stats().failed_deliveries, 1u);
}

// The same refusal as the first record a fresh producer sends to the
// partition (relay start, `--once`, a producer recreated after a fatal
// error): the broker keeps no sequence state for that producer and would
// accept a2..a4 in flight behind a1, so they would overtake it. Until a row
// of an aggregate is acknowledged, the relay sends only its first row.
// Whether a2 is in flight when a1's refusal arrives depends on timing (it
// usually is): three fresh relays.
TEST_P(OutboxTest, ARowRefusedAsAFreshProducersFirstRecordDoesNotLetItsAggregateThrough) {
  for (int run = 0; run < 3; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    std::string topic = "fresh-" + std::to_string(run);
    ASSERT_TRUE(testing::create_topic(broker_->brokers(), topic, 1,
                                      {{"max.message.bytes", "3000"}}));
    Outbox outbox({.topic = topic, .source = "/bank"});
    add_event(outbox, "a", 1, 4000);
    add_event(outbox, "a", 2);
    add_event(outbox, "a", 3);
    add_event(outbox, "a", 4);
    auto relay = run_one_row_per_request(3);
    auto size = testing::topic_size(broker_->brokers(), topic);
    ASSERT_TRUE(size) << size.error().to_string();
    EXPECT_EQ(*size, 0) << "a later row of \"a\" went out before a1";
    EXPECT_EQ(pending(), 4);
    EXPECT_GE(relay->stats().failed_deliveries, 1u);
    // Fixed by hand (a smaller payload): the aggregate goes out, in order.
    ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec("UPDATE herald_outbox SET payload = ? WHERE id = (SELECT min(id) "
                         "FROM herald_outbox WHERE aggregate_id = ?)",
                         {Param::blob(R"({"seq":1,"pad":""})"), "a"}));
      return ok();
    }));
    ASSERT_TRUE(relay->drain(60s));
    auto recs = read_topic(broker_->brokers(), topic, 4, 30s);
    ASSERT_TRUE(recs) << recs.error().to_string();
    EXPECT_EQ(recs->size(), 4u);
    auto last = expect_commit_order(*recs);
    EXPECT_EQ(last["a"], 4);
    EXPECT_EQ(pending(), 0);
  }
}

// An aggregate established on one topic is not on another: there the producer has no sequence state
// yet, so a refused first row would let the rows in flight behind it through. The relay sends only
// the first row of the aggregate on the new topic until one is acknowledged there.
TEST_P(OutboxTest, AnAggregateEstablishedOnOneTopicGoesOneRowAtATimeOnAnother) {
  for (int run = 0; run < 3; ++run) {
    SCOPED_TRACE("run " + std::to_string(run));
    const std::string plain = "plain-" + std::to_string(run), strict = "strict-" + std::to_string(run);
    ASSERT_TRUE(testing::create_topic(broker_->brokers(), plain, 1, {}));
    ASSERT_TRUE(testing::create_topic(broker_->brokers(), strict, 1, {{"max.message.bytes", "3000"}}));
    auto opts = relay_options();
    opts.kafka_config = {{"batch.num.messages", "1"}};
    opts.error_backoff = 100ms;
    auto relay = make_relay(*store_, opts);
    Outbox on_plain({.topic = plain, .source = "/bank"});
    add_event(on_plain, "a", 1);
    ASSERT_TRUE(relay->drain(60s));  // "a" is established on `plain`
    Outbox on_strict({.topic = strict, .source = "/bank"});
    add_event(on_strict, "a", 2, 4000);
    add_event(on_strict, "a", 3);
    add_event(on_strict, "a", 4);
    for (int i = 0; i < 3; ++i) {
      (void)relay->publish_once();
      std::this_thread::sleep_for(150ms);
    }
    auto size = testing::topic_size(broker_->brokers(), strict);
    ASSERT_TRUE(size) << size.error().to_string();
    EXPECT_EQ(*size, 0) << "a later row of \"a\" went out before the refused one";
    EXPECT_EQ(pending(), 3);
    ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec("DELETE FROM herald_outbox WHERE aggregate_id = ?", {"a"}));
      return ok();
    }));
  }
}

// A row whose headers column does not decode (written by another program, or edited by hand) is
// held like a row the broker refuses: the rest of the outbox flows.
TEST_P(OutboxTest, ARowWithUnreadableHeadersIsHeldWhileTheRestFlows) {
  ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("INSERT INTO herald_outbox (aggregate_id, topic, msg_key, headers, payload, ce_id, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       {"broken", "accounts", Param::blob("broken"), "not json", Param::blob("{}"), "x", 0}));
    return ok();
  }));
  Outbox outbox({.topic = "accounts", .source = "/bank"});
  deposit(outbox, "a", 10, 1);
  deposit(outbox, "b", 20, 1);
  auto relay = make_relay(*store_, relay_options());
  auto n = relay->publish_once();
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(pending(), 1);
  EXPECT_EQ(relay->stats().failed_deliveries, 1u);
  auto recs = read_topic(broker_->brokers(), "accounts", 2, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 2u);
}

// A round that publishes some rows and fails others returns the count
// published; the failed row's aggregate is held (skipped) for error_backoff,
// then retried, with the wait doubling while it keeps failing.
TEST_P(OutboxTest, AFailingRowIsHeldWithBackoffWhileTheRestFlows) {
  Outbox outbox({.topic = "partial", .source = "/bank"});
  add_event(outbox, "bad", 1, 5000);
  add_event(outbox, "bad", 2);
  for (int i = 1; i <= 10; ++i) add_event(outbox, "good", i);
  auto opts = relay_options();
  opts.kafka_config = {{"message.max.bytes", "2000"}};
  opts.error_backoff = 500ms;
  auto relay = make_relay(*store_, opts);
  auto r = relay->publish_once();  // a fresh relay: good/1 alone
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 1u);
  auto st = relay->stats();
  EXPECT_EQ(st.published, 1u);
  EXPECT_EQ(st.failed_deliveries, 1u);
  EXPECT_NE(st.last_error.find("1 of 2 deliveries"), std::string::npos) << st.last_error;
  r = relay->publish_once();  // "bad" is held: good/2..10
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 9u);
  add_event(outbox, "good", 11);
  r = relay->publish_once();  // "bad" is held: only good/11
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 1u);
  r = relay->publish_once();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(relay->stats().failed_deliveries, 1u);
  // > error_backoff: retried, fails again (nothing else to publish: an error).
  std::this_thread::sleep_for(600ms);
  r = relay->publish_once();
  EXPECT_FALSE(r);
  EXPECT_EQ(relay->stats().failed_deliveries, 2u);
  std::this_thread::sleep_for(600ms);  // < 2 * error_backoff: still held
  r = relay->publish_once();
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, 0u);
  EXPECT_EQ(relay->stats().failed_deliveries, 2u);
  std::this_thread::sleep_for(600ms);
  r = relay->publish_once();
  EXPECT_FALSE(r);
  EXPECT_EQ(relay->stats().failed_deliveries, 3u);
  EXPECT_EQ(pending(), 2);
  auto recs = read_topic(broker_->brokers(), "partial", 11, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 11u);
  expect_commit_order(*recs);
}

// batch_size rows or more that keep failing at the head of the outbox do not
// stop the rows behind them.
TEST_P(OutboxTest, RowsThatKeepFailingAtTheHeadDoNotBlockTheOutbox) {
  Outbox outbox({.topic = "flow", .source = "/bank"});
  for (int i = 0; i < 5; ++i) add_event(outbox, "bad-" + std::to_string(i), 1, 5000);
  std::map<std::string, int> seq;
  for (int i = 0; i < 20; ++i) {
    std::string account = "good-" + std::to_string(i % 3);
    add_event(outbox, account, ++seq[account]);
  }
  auto opts = relay_options();
  opts.batch_size = 5;
  opts.kafka_config = {{"message.max.bytes", "2000"}};
  opts.error_backoff = 100ms;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  auto recs = read_topic(broker_->brokers(), "flow", 20, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 20u);
  expect_commit_order(*recs);
  for (int i = 0; i < 100 && pending() > 5; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pending(), 5);
  relay->stop();
  auto st = relay->stats();
  EXPECT_EQ(st.published, 20u);
  EXPECT_GE(st.failed_deliveries, 5u);
  EXPECT_FALSE(st.last_error.empty());
}

// More failing aggregates than a batch and than any fixed number of holds
// (11,500 rows whose headers do not decode, each its own aggregate) do not
// stop the rows behind them either.
TEST_P(OutboxTest, ElevenThousandFailingAggregatesDoNotBlockTheOutbox) {
  constexpr int kBroken = 11500;
  ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
    for (int i = 0; i < kBroken; ++i) {
      HERALD_TRY(tx.exec("INSERT INTO herald_outbox (aggregate_id, topic, msg_key, headers, payload, ce_id, "
                         "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         {"broken-" + std::to_string(i), "flow", Param::blob("k"), "not json", Param::blob("{}"),
                          "x" + std::to_string(i), 0}));
    }
    return ok();
  }));
  Outbox outbox({.topic = "flow", .source = "/bank"});
  for (int i = 1; i <= 5; ++i) add_event(outbox, "good-" + std::to_string(i), 1);
  auto opts = relay_options();
  opts.error_backoff = 50ms;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  auto recs = read_topic(broker_->brokers(), "flow", 5, 60s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 5u);
  for (int i = 0; i < 200 && pending() > kBroken; ++i) std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pending(), kBroken);
  relay->stop();
  EXPECT_EQ(relay->stats().published, 5u);
  EXPECT_GE(relay->stats().failed_deliveries, static_cast<uint64_t>(kBroken));
}

// A row whose delivery takes delivery_timeout to fail (its topic does not
// exist and is not created) holds up only its own aggregate: the rows of the
// others, committed after it, are published while it is still in flight.
TEST_P(OutboxTest, ARowWaitingForItsDeliveryTimeoutDoesNotHoldUpTheOthers) {
  auto strict = TestBroker::start(1, /*auto_create_topics=*/false);
  ASSERT_TRUE(create_topic(strict->brokers(), "good", 1));
  Outbox missing({.topic = "missing", .source = "/bank"});
  Outbox good({.topic = "good", .source = "/bank"});
  add_event(missing, "lost", 1);
  auto opts = relay_options();
  opts.brokers = strict->brokers();
  opts.delivery_timeout = 25s;
  opts.idle_wait = 1s;  // PostgreSQL: the safety-net rescan
  opts.max_poll = 1s;   // SQLite: the longest wait between scans
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  std::map<std::string, int> seq;
  for (int i = 0; i < 20; ++i) {
    std::string account = "acct-" + std::to_string(i % 4);
    add_event(good, account, ++seq[account]);
    std::this_thread::sleep_for(50ms);
  }
  auto recs = read_topic(strict->brokers(), "good", 20, 15s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 20u);
  expect_commit_order(*recs);
  for (int i = 0; i < 100 && pending() > 1; ++i) std::this_thread::sleep_for(50ms);  // acknowledged, then deleted
  EXPECT_EQ(pending(), 1);
  EXPECT_EQ(relay->stats().failed_deliveries, 0u);  // "lost" is still in flight
  // Meanwhile the table is not scanned on a timer of its own: only for a commit, a report, a
  // hold coming due, or idle_wait / max_poll (1 s here).
  const uint64_t scans = relay->stats().scans;
  std::this_thread::sleep_for(3s);
  EXPECT_LE(relay->stats().scans - scans, 5u) << "scans in 3 s with a row in flight and nothing new";
  relay->stop();
  EXPECT_EQ(pending(), 1);
}

// Order is per aggregate within a topic: a row that keeps failing (its topic
// does not exist and is not created) holds back its aggregate's later rows of
// that topic only, not the same aggregate's rows of another topic; and a row
// without an aggregate id holds back nothing (such events have no order).
TEST_P(OutboxTest, ARowThatKeepsFailingHoldsBackItsAggregateOnItsTopicOnly) {
  auto strict = TestBroker::start(1, /*auto_create_topics=*/false);
  ASSERT_TRUE(create_topic(strict->brokers(), "good", 1));
  Outbox missing({.topic = "missing", .source = "/bank"});
  Outbox good({.topic = "good", .source = "/bank"});
  add_event(missing, "acct-1", 1);
  add_event(missing, "", 1);
  std::map<std::string, int> seq;
  for (int i = 0; i < 10; ++i) {
    std::string account = i % 5 == 4 ? "" : "acct-" + std::to_string(i % 2);
    add_event(good, account, ++seq[account]);
  }
  auto opts = relay_options();
  opts.brokers = strict->brokers();
  opts.delivery_timeout = 1s;
  opts.error_backoff = 100ms;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  auto recs = read_topic(strict->brokers(), "good", 10, 15s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  EXPECT_EQ(recs->size(), 10u) << "acct-1's and the keyless rows of 'good' must not wait for those of 'missing'";
  for (int i = 0; i < 200 && (pending() > 2 || relay->stats().failed_deliveries == 0); ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(pending(), 2);
  EXPECT_GT(relay->stats().failed_deliveries, 0u) << "the row of 'missing' fails after delivery_timeout";
  relay->stop();
}

// No broker: stop() returns promptly; rows stay. Warming up the metadata of new
// topics stops at the first failure and on stop() (not 5 s per topic).
TEST_P(OutboxTest, StopReturnsPromptlyWithSeveralNewTopicsAndNoBroker) {
  Outbox outbox({.topic = "", .source = "/bank"});
  ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
    for (int i = 1; i <= 4; ++i) {
      HERALD_TRY(outbox.add(tx, "t" + std::to_string(i), Event::json("x", "", "a", {{"i", i}})));
    }
    return ok();
  }));
  auto dead = relay_options();
  dead.brokers = "127.0.0.1:1";
  dead.delivery_timeout = 60s;
  auto relay = make_relay(*store_, dead);
  ASSERT_TRUE(relay->start());
  std::this_thread::sleep_for(300ms);
  int64_t t0 = mono_ns();
  relay->stop();
  EXPECT_LT(mono_ns() - t0, 3'000'000'000);
  EXPECT_EQ(pending(), 4);
}

// The guide's code (docs/sdk.md, examples/sdk_snippets) runs as written.
// On PostgreSQL add() locks the aggregate until commit, to publish its events in commit order.
// Events without an aggregate have no order: concurrent transactions adding them must not wait for
// each other (one lock shared by all of them made a service with such events one writer at a time).
TEST_P(OutboxTest, TransactionsAddingEventsWithoutAnAggregateDoNotWaitForEachOther) {
  Outbox outbox({.topic = "audit", .source = "/test"});
  auto first = store_->begin();
  ASSERT_TRUE(first) << first.error().to_string();
  ASSERT_TRUE(outbox.add(**first, Event::json("audit.seen", "", "", {{"n", 1}})));
  std::atomic<bool> done{false};
  std::thread other([&] {
    auto r = store_->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(outbox.add(tx, Event::json("audit.seen", "", "", {{"n", 2}})));
      return ok();
    });
    EXPECT_TRUE(r) << r.error().to_string();
    done = true;
  });
  if (GetParam() == "postgres") {
    for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(10ms);
    EXPECT_TRUE(done) << "the second transaction waited for the first";
  }
  ASSERT_TRUE((*first)->commit());  // SQLite: writers are serialized, the other one goes now
  other.join();
  EXPECT_EQ(*outbox_pending(*store_), 2);
}

// With notify off, a commit sends no NOTIFY (so commits of concurrent writers do not queue for
// PostgreSQL's notification lock); the relay finds the rows at its rescan, every idle_wait.
TEST_P(OutboxTest, WithNotifyOffACommitDoesNotNotifyAndTheRelayFindsItsRowsAtItsRescan) {
  if (GetParam() != "postgres") GTEST_SKIP() << "SQLite has no NOTIFY";
  auto listener = store_->listen(kOutboxChannel);
  ASSERT_TRUE(listener) << listener.error().to_string();
  Outbox quiet({.topic = "quiet", .source = "/bank", .notify = false});
  Outbox loud({.topic = "quiet", .source = "/bank"});
  add_event(quiet, "a", 1);
  add_event(quiet, "", 1);  // no aggregate: no lock either
  auto heard = (*listener)->wait(300ms);
  ASSERT_TRUE(heard) << heard.error().to_string();
  EXPECT_FALSE(*heard) << "a commit with notify off notified";
  add_event(loud, "a", 2);
  heard = (*listener)->wait(2s);
  ASSERT_TRUE(heard) << heard.error().to_string();
  EXPECT_TRUE(*heard) << "a commit with notify on did not notify";
  EXPECT_EQ(pending(), 3);
  auto opts = relay_options();
  opts.idle_wait = 50ms;
  auto relay = make_relay(*store_, opts);
  ASSERT_TRUE(relay->start());
  auto recs = read_topic(broker_->brokers(), "quiet", 3, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  add_event(quiet, "a", 3);  // the relay is idle now, waiting on LISTEN: found by its rescan
  recs = read_topic(broker_->brokers(), "quiet", 4, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  relay->stop();
  EXPECT_EQ(expect_commit_order(*recs)["a"], 3);
}

TEST_P(OutboxTest, DocsSnippetRuns) {
  ASSERT_TRUE(snippets::envelope_example());
  auto r = snippets::outbox_example(url_, broker_->brokers());
  ASSERT_TRUE(r) << r.error().to_string();
  auto relay = make_relay(*store_, relay_options());
  ASSERT_TRUE(relay->drain(60s));
  auto recs = read_topic(broker_->brokers(), "users", 1, 30s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  ASSERT_EQ(recs->size(), 1u);
  auto ev = (*recs)[0].event();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->type, "users.email_changed");
  EXPECT_EQ(ev->source, "/users-service");
  EXPECT_EQ(ev->json_payload().value()["email"], "ada@example.com");
  auto tx = store_->begin();
  EXPECT_EQ((*(*tx)->query_one("SELECT email FROM users WHERE id = ?", {"user-42"}))->text(0),
            "ada@example.com");
}

INSTANTIATE_TEST_SUITE_P(Sqlite, OutboxTest, ::testing::Values("sqlite"));
INSTANTIATE_TEST_SUITE_P(Postgres, OutboxTest, ::testing::Values("postgres"));

}  // namespace
}  // namespace herald::sdk
