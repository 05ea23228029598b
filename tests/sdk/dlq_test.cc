// Dead letters (issue 5): a poison event is retried with backoff, then lands
// in `<topic>.dlq` with headers describing the failure and the original
// headers; the replica keeps going; `herald dlq replay` brings it
// back after the fix and the replica applies it exactly once. The dlq commands
// run through the real `herald dlq` (herald execs herald-sdk). SQLite and
// PostgreSQL.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <mutex>
#include <thread>

#include "replica_harness.h"
#include "sdk/dlq/dead_letter.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// fold.add events whose payload says {"poison": true} fail until `fixed`.
struct PoisonFold {
  std::atomic<bool> fixed{false};
  std::mutex mu;
  std::map<std::string, int> attempts;  // ce_id -> handler runs

  void install(ReplicaHandlers& h) {
    h.on("fold.add", [this](const Event& ev, Tx& tx) {
      auto j = nlohmann::json::parse(ev.payload);
      {
        std::lock_guard lk(mu);
        attempts[ev.id]++;
      }
      if (j.value("poison", false) && !fixed.load()) {
        throw std::runtime_error("cannot fold " + ev.aggregate_id + ": poisoned payload");
      }
      fold_add(tx, ev.aggregate_id, j.at("amount").get<int64_t>());
    });
  }
  int attempts_of(const std::string& id) {
    std::lock_guard lk(mu);
    return attempts[id];
  }
};

EncodedEvent poison_event(const std::string& key, int64_t amount) {
  auto ev = Event::json("fold.add", "/sdk-test", key, {{"amount", amount}, {"poison", true}});
  ev.extensions.push_back({"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
  return *encode(ev);
}

const std::string* header(const Headers& h, std::string_view name) {
  for (const auto& x : h) {
    if (x.name == name) return &x.value;
  }
  return nullptr;
}

// Runs the real `herald dlq ...` (herald execs herald-sdk) and returns its exit status.
int run_cli(const std::vector<std::string>& args, std::string* out_text = nullptr) {
  std::string cmd = "'" HERALD_CLI "' dlq";
  for (const auto& a : args) cmd += " '" + a + "'";  // the tests' arguments hold no quote
  std::printf("$ herald dlq");
  for (auto& a : args) std::printf(" %s", a.c_str());
  std::printf("\n");
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  int status = ::pclose(p);
  std::printf("%s", text.c_str());
  if (out_text) *out_text = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class DeadLetters : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = GroupBroker::start();
    brokers_ = broker_->brokers();
    ts_ = open_test_store(GetParam(), dir_.path(), "dlq");
    ASSERT_TRUE(create_fold_table(*ts_.store));
    auto p = kafka::SyncProducer::create(brokers_, {{"log_level", "3"}});
    ASSERT_TRUE(p);
    producer_ = std::move(*p);
  }
  int64_t send(const std::string& topic, const EncodedEvent& e, int32_t partition) {
    std::optional<std::string_view> value;
    if (e.value) value = *e.value;
    auto r = producer_->send(topic, partition, std::string_view(e.key), value, e.headers);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : -1;
  }
  Store& store() { return *ts_.store; }
  // A replica of `group` over `topic`, whose dead-letter topic (created with `dlq_configs`) refuses
  // the poison event send_poison() writes ahead of one good event: it keeps running without moving
  // past the poison event, and goes on once the dead-letter topic is deleted (the replica creates it
  // again, with the defaults) and takes the letter.
  void expect_waits_for_the_dlq(const std::string& topic, const std::string& group,
                                const std::vector<std::pair<std::string, std::string>>& dlq_configs,
                                const std::function<void(const std::string&)>& send_poison) {
    ASSERT_TRUE(make_topic(brokers_, topic, 1));
    ASSERT_TRUE(make_topic(brokers_, topic + ".dlq", 1, dlq_configs));
    PoisonFold handler;
    ReplicaHandlers h;
    handler.install(h);
    auto cfg = test_config(brokers_, group, topic);
    cfg.max_retries = 0;
    cfg.retry_backoff = milliseconds(20);
    cfg.max_retry_backoff = milliseconds(200);
    send_poison(topic);
    int64_t last = send(topic, fold_event("x", 1), 0);
    RunningReplica r(cfg, store(), std::move(h));
    std::this_thread::sleep_for(milliseconds(2000));
    EXPECT_TRUE(r->running()) << "the replica stopped on a letter its dead-letter topic refuses";
    EXPECT_FALSE(*r->wait_until(topic, 0, last, milliseconds(1))) << "the replica moved past an event it could not "
                                                                     "dead-letter";
    EXPECT_EQ(r->stats().dead_lettered, 0);
    ASSERT_TRUE(delete_topic(brokers_, topic + ".dlq"));
    ASSERT_TRUE(*r->wait_until(topic, 0, last, seconds(30))) << "running: " << r->running();
    EXPECT_EQ(r->stats().dead_lettered, 1);
    EXPECT_EQ((*fold_of_db(store()))["x"], (FoldRow{1, 1}));
    auto letters = read_topic(brokers_, topic + ".dlq", 1, seconds(20));
    ASSERT_TRUE(letters) << letters.error().to_string();
    EXPECT_EQ(letters->size(), 1u);
  }

  TempDir dir_;
  std::unique_ptr<GroupBroker> broker_;
  std::string brokers_;
  TestStore ts_;
  std::unique_ptr<kafka::SyncProducer> producer_;
};

TEST_P(DeadLetters, PoisonEventLandsInTheDlqWithItsStoryAndReplayBringsItBack) {
  const std::string topic = "payments";
  ASSERT_TRUE(make_topic(brokers_, topic, 2));
  PoisonFold handler;
  ReplicaHandlers h;
  handler.install(h);
  auto cfg = test_config(brokers_, "ledger", topic);
  cfg.max_retries = 2;
  cfg.retry_backoff = milliseconds(20);

  // Before: 10 good events on each partition, a poison event in the middle of partition 1.
  Fold expected;
  EncodedEvent poison = poison_event("acct-7", 1000);
  int64_t poison_offset = -1;
  const int64_t t0 = std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (int i = 0; i < 20; ++i) {
    std::string key = "acct-" + std::to_string(i % 4);
    send(topic, fold_event(key, i), i % 2);
    expected[key].count++;
    expected[key].total += i;
    if (i == 9) poison_offset = send(topic, poison, 1);
  }

  RunningReplica r(cfg, store(), std::move(h));
  ASSERT_TRUE(eventually([&] { return r->ready(); }, seconds(30)));
  EXPECT_EQ(*fold_of_db(store()), expected) << "every good event is applied; the poison one is not";

  // The dead letter: same key, value and headers, plus the failure's story.
  auto letters = read_topic(brokers_, topic + ".dlq", 1, seconds(20));
  ASSERT_TRUE(letters) << letters.error().to_string();
  ASSERT_EQ(letters->size(), 1u);
  const Record& dl = letters->front();
  EXPECT_EQ(dl.key, poison.key);
  EXPECT_EQ(dl.value, poison.value);
  for (const auto& orig : poison.headers) {
    const std::string* v = header(dl.headers, orig.name);
    ASSERT_NE(v, nullptr) << "original header " << orig.name << " missing";
    EXPECT_EQ(*v, orig.value) << orig.name;
  }
  EXPECT_EQ(*header(dl.headers, dlq::kHeaderTopic), topic);
  EXPECT_EQ(*header(dl.headers, dlq::kHeaderPartition), "1");
  EXPECT_EQ(*header(dl.headers, dlq::kHeaderOffset), std::to_string(poison_offset));
  EXPECT_EQ(*header(dl.headers, dlq::kHeaderGroup), "ledger");
  EXPECT_NE(header(dl.headers, dlq::kHeaderError)->find("poisoned payload"), std::string::npos);
  EXPECT_EQ(*header(dl.headers, dlq::kHeaderAttempts), "3");  // 1 + max_retries
  auto failed_at = parse_rfc3339(*header(dl.headers, dlq::kHeaderFailedAt));
  ASSERT_TRUE(failed_at);
  EXPECT_GE(*failed_at, t0);
  auto parsed = dlq::parse_dead_letter(dl.key, dl.value, dl.headers);
  ASSERT_TRUE(parsed) << parsed.error().to_string();
  EXPECT_EQ(parsed->failure.offset, poison_offset);
  EXPECT_EQ(parsed->headers, poison.headers);
  auto poison_id = decode(poison.key, *poison.value, poison.headers)->id;
  EXPECT_EQ(handler.attempts_of(poison_id), 3);
  EXPECT_EQ(r->stats().dead_lettered, 1);
  EXPECT_EQ(r->stats().retries, 2);

  // The replica keeps going.
  int64_t after = send(topic, fold_event("acct-1", 5), 1);
  expected["acct-1"].count++;
  expected["acct-1"].total += 5;
  ASSERT_TRUE(*r->wait_until(topic, 1, after, seconds(20)));
  EXPECT_EQ(*fold_of_db(store()), expected);

  // The tools see one pending letter.
  std::string out;
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("1 dead letter(s) pending"), std::string::npos);
  EXPECT_NE(out.find("poisoned payload"), std::string::npos);
  // The connection options every client command takes.
  ASSERT_EQ(run_cli({"list", "-b", brokers_, "--topic", topic, "-X", "client.id=dlq-tool", "--timeout", "2.5"}, &out),
            0);
  EXPECT_NE(out.find("1 dead letter(s) pending"), std::string::npos);
  EXPECT_NE(run_cli({"list", "-b", brokers_, "--topic", topic, "-X", "client.id"}, &out), 0);

  // --key selects a parked key of an ordered replica (--store): without --store it is refused,
  // not ignored (a skip of "one key" would pass over every pending letter).
  EXPECT_NE(run_cli({"skip", "--brokers", brokers_, "--topic", topic, "--group", "ledger", "--key", "acct-9"}, &out), 0);
  EXPECT_NE(run_cli({"replay", "--brokers", brokers_, "--topic", topic, "--key", "acct-9"}, &out), 0);
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("1 dead letter(s) pending"), std::string::npos);

  // Fix, replay: applied once, in the right place.
  handler.fixed.store(true);
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic, "--group", "ledger"}, &out), 0);
  EXPECT_NE(out.find("replayed 1 dead letter(s)"), std::string::npos);
  expected["acct-7"].count++;
  expected["acct-7"].total += 1000;
  ASSERT_TRUE(eventually([&] { return *fold_of_db(store()) == expected; }, seconds(20)))
      << "the replayed event was not applied";

  // Nothing is pending any more; a second replay republishes nothing.
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("0 dead letter(s) pending"), std::string::npos);
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic, "--all", "--json"}, &out), 0);
  EXPECT_NE(out.find("\"offset\":" + std::to_string(poison_offset)), std::string::npos);
  EXPECT_NE(out.find("\"pending\":false"), std::string::npos) << out;
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic, "--group", "ledger"}, &out), 0);
  EXPECT_NE(out.find("replayed 0 dead letter(s)"), std::string::npos);

  // Even a stray second copy of the replay is dropped by ce_id.
  dlq::DlqOptions all;
  all.brokers = brokers_;
  all.dlq_topic = topic + ".dlq";
  auto dup = dlq::list(all, false);
  ASSERT_TRUE(dup && dup->size() == 1);
  int64_t again = send(topic, EncodedEvent{*dup->front().key, dup->front().value,
                                           dlq::replay_headers(dup->front().headers, dup->front().failure)},
                       1);
  ASSERT_TRUE(*r->wait_until(topic, 1, again, seconds(20)));
  EXPECT_EQ(*fold_of_db(store()), expected);
  EXPECT_EQ(r->stats().duplicates, 1);
  EXPECT_EQ(r->stats().dead_lettered, 1);
}

// A replay is for the group that dead-lettered the event. Another group that applied the original
// drops it even when its ce_id does not tell (here: that group keeps no dedup window).
TEST_P(DeadLetters, AnotherGroupDropsAReplayEvenWithoutDedup) {
  const std::string topic = "shared";
  ASSERT_TRUE(make_topic(brokers_, topic, 1));
  auto audit_store = open_test_store(GetParam(), dir_.path(), "dlq_audit");
  ASSERT_TRUE(create_fold_table(*audit_store.store));
  send(topic, fold_event("acct-1", 1), 0);
  send(topic, poison_event("acct-7", 1000), 0);
  int64_t last = send(topic, fold_event("acct-1", 2), 0);

  PoisonFold handler;
  ReplicaHandlers ledger_h;
  handler.install(ledger_h);
  auto ledger_cfg = test_config(brokers_, "ledger", topic);
  ledger_cfg.max_retries = 0;
  ReplicaHandlers audit_h;
  install_fold(audit_h);
  auto audit_cfg = test_config(brokers_, "audit", topic);
  audit_cfg.dedup_window = std::chrono::milliseconds(0);
  RunningReplica ledger(ledger_cfg, store(), std::move(ledger_h));
  RunningReplica audit(audit_cfg, *audit_store.store, std::move(audit_h));
  ASSERT_TRUE(*ledger->wait_until(topic, 0, last, seconds(30)));
  ASSERT_TRUE(*audit->wait_until(topic, 0, last, seconds(30)));
  const Fold audit_fold = *fold_of_db(*audit_store.store);
  EXPECT_EQ(audit_fold.at("acct-7").count, 1) << "audit applies the event ledger dead-letters";

  handler.fixed.store(true);
  std::string out;
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic, "--group", "ledger"}, &out), 0);
  EXPECT_NE(out.find("replayed 1 dead letter(s)"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return fold_of_db(store())->count("acct-7") == 1; }, seconds(20)))
      << "ledger did not apply the replay";
  int64_t after = send(topic, fold_event("acct-1", 3), 0);
  ASSERT_TRUE(*audit->wait_until(topic, 0, after, seconds(20)));
  EXPECT_EQ(fold_of_db(*audit_store.store)->at("acct-7").count, 1) << "audit applied ledger's replay a second time";
  EXPECT_EQ(audit->stats().duplicates, 1);
}

TEST_P(DeadLetters, SkipPassesOverPendingLettersWithoutRepublishing) {
  const std::string topic = "orders";
  ASSERT_TRUE(make_topic(brokers_, topic, 1));
  PoisonFold handler;
  ReplicaHandlers h;
  handler.install(h);
  auto cfg = test_config(brokers_, "shipping", topic);
  cfg.max_retries = 0;
  send(topic, poison_event("o1", 1), 0);
  send(topic, poison_event("o2", 2), 0);
  int64_t last = send(topic, fold_event("o3", 3), 0);
  RunningReplica r(cfg, store(), std::move(h));
  ASSERT_TRUE(*r->wait_until(topic, 0, last, seconds(30)));
  EXPECT_EQ(r->stats().dead_lettered, 2);
  std::string out;
  ASSERT_EQ(run_cli({"skip", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("skipped 2"), std::string::npos);
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("replayed 0"), std::string::npos);
  auto size = topic_size(brokers_, topic);
  EXPECT_EQ(*size, 3);
}

// A misspelt source topic is an error, not "0 dead letter(s) pending"; a dead-letter topic that no
// letter created yet is an empty list. Neither is created by asking.
TEST_P(DeadLetters, AMissingSourceTopicIsAnErrorAndAMissingDlqTopicIsEmpty) {
  ASSERT_TRUE(make_topic(brokers_, "invoices", 1));
  std::string out;
  EXPECT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", "invoices"}, &out), 0);
  EXPECT_NE(out.find("0 dead letter(s) pending"), std::string::npos);
  EXPECT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", "invoicse"}, &out), 1);
  EXPECT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", "invoicse"}, &out), 1);
  EXPECT_EQ(run_cli({"list", "--brokers", brokers_, "--dlq-topic", "invoicse.dlq"}, &out), 0);
  dlq::DlqOptions o;
  o.brokers = brokers_;
  for (const char* t : {"invoicse", "invoices.dlq", "invoicse.dlq"}) EXPECT_FALSE(*dlq::topic_exists(o, t)) << t;
  EXPECT_TRUE(*dlq::topic_exists(o, "invoices"));
}

TEST_P(DeadLetters, MalformedEnvelopeIsDeadLetteredWithoutRetries) {
  const std::string topic = "inbox";
  ASSERT_TRUE(make_topic(brokers_, topic, 1));
  PoisonFold handler;
  ReplicaHandlers h;
  handler.install(h);
  auto cfg = test_config(brokers_, "reader", topic);
  cfg.max_retries = 5;
  cfg.retry_backoff = milliseconds(500);
  EncodedEvent bad;
  bad.key = "x";
  bad.value = "{}";
  bad.headers = {{"ce_specversion", "1.0"}, {"ce_type", "fold.add"}};  // no ce_id, no ce_source
  send(topic, bad, 0);
  int64_t last = send(topic, fold_event("x", 4), 0);
  RunningReplica r(cfg, store(), std::move(h));
  ASSERT_TRUE(*r->wait_until(topic, 0, last, seconds(30)));
  EXPECT_EQ(r->stats().retries, 0) << "a malformed envelope must not be retried";
  EXPECT_EQ(r->stats().dead_lettered, 1);
  auto letters = read_topic(brokers_, topic + ".dlq", 1, seconds(10));
  ASSERT_TRUE(letters);
  EXPECT_NE(header(letters->front().headers, dlq::kHeaderError)->find("ce_id"), std::string::npos);
}

// An event that fits its topic but whose dead letter (the event plus the
// failure's headers) does not fit the dead-letter topic: the letter goes
// without its value, the replica moves on, and `dlq replay` reads the value
// from the source topic.
TEST_P(DeadLetters, ALetterTooLargeForTheDlqGoesWithoutItsValueAndReplayReadsTheOriginal) {
  const std::string topic = "bulky";
  ASSERT_TRUE(make_topic(brokers_, topic, 1, {{"max.message.bytes", "100000"}}));
  ASSERT_TRUE(make_topic(brokers_, topic + ".dlq", 1, {{"max.message.bytes", "92000"}}));
  std::atomic<bool> fixed{false};
  ReplicaHandlers h;
  h.on("fold.add", [&](const Event& ev, Tx& tx) {
    auto j = nlohmann::json::parse(ev.payload);
    if (j.contains("pad") && !fixed.load()) throw std::runtime_error("too bulky: " + std::string(4000, 'e'));
    fold_add(tx, ev.aggregate_id, j.at("amount").get<int64_t>());
  });
  auto cfg = test_config(brokers_, "bulk", topic);
  cfg.max_retries = 0;
  EncodedEvent big =
      *encode(Event::json("fold.add", "/sdk-test", "b", {{"amount", 7}, {"pad", std::string(90000, 'p')}}));
  const int64_t big_offset = send(topic, big, 0);
  int64_t last = send(topic, fold_event("b", 1), 0);
  RunningReplica r(cfg, store(), std::move(h));
  ASSERT_TRUE(*r->wait_until(topic, 0, last, seconds(30))) << "running: " << r->running();
  EXPECT_TRUE(r->running());
  EXPECT_EQ(r->stats().dead_lettered, 1);
  EXPECT_EQ((*fold_of_db(store()))["b"], (FoldRow{1, 1}));

  auto letters = read_topic(brokers_, topic + ".dlq", 1, seconds(20));
  ASSERT_TRUE(letters) << letters.error().to_string();
  ASSERT_EQ(letters->size(), 1u);
  EXPECT_FALSE(letters->front().value.has_value());
  EXPECT_EQ(*header(letters->front().headers, dlq::kHeaderValueOmitted), std::to_string(big.value->size()));
  EXPECT_EQ(*header(letters->front().headers, dlq::kHeaderOffset), std::to_string(big_offset));
  std::string out;
  ASSERT_EQ(run_cli({"list", "--brokers", brokers_, "--topic", topic}, &out), 0);
  EXPECT_NE(out.find("value of " + std::to_string(big.value->size()) + " bytes omitted"), std::string::npos);

  fixed.store(true);
  ASSERT_EQ(run_cli({"replay", "--brokers", brokers_, "--topic", topic, "--group", "bulk"}, &out), 0);
  EXPECT_NE(out.find("replayed 1 dead letter(s)"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return (*fold_of_db(store()))["b"] == (FoldRow{2, 8}); }, seconds(20)))
      << "the replayed event (its value read from the source) was not applied";
}

// The dead-letter topic refuses the letter (here: it is compacted and the
// event has no key): the replica waits, retrying, and neither stops nor moves
// past the event; once the topic is fixed (deleted: the replica creates it
// again) the letter goes out and the replica goes on.
TEST_P(DeadLetters, ALetterTheDlqRefusesIsRetriedUntilItTakesIt) {
  expect_waits_for_the_dlq("keyless", "waiter", {{"cleanup.policy", "compact"}}, [&](const std::string& topic) {
    EncodedEvent poison = poison_event("", 5);
    ASSERT_TRUE(producer_->send(topic, 0, std::nullopt, std::string_view(*poison.value), poison.headers));
  });
}

// A dead-letter topic that refuses the letter even without its value (its
// max.message.bytes is below the letter's key and headers): the replica waits,
// running, until the topic takes it (here: deleted, then auto-created with
// the defaults), instead of stopping on it at every start.
TEST_P(DeadLetters, ALetterTooLargeEvenWithoutItsValueWaitsForTheDlqToTakeIt) {
  expect_waits_for_the_dlq("small-dlq", "patient", {{"max.message.bytes", "300"}},
                           [&](const std::string& topic) { send(topic, poison_event("k3", 5), 0); });
}

// A service that forwards an event to another topic with all its extensions (to keep a trace
// header, say) copies the replay markers of a replayed letter too. They name a record of the first
// topic: on the second they mean nothing, and every group there applies the event.
TEST_P(DeadLetters, ReplayMarkersCopiedToAnotherTopicDoNotDropTheEvent) {
  ASSERT_TRUE(make_topic(brokers_, "forwarded", 1));
  auto ev = Event::json("fold.add", "/forwarder", "k", {{"amount", 7}});
  ev.extensions.push_back({"herald_replay_of", "orders/0/5"});
  ev.extensions.push_back({"herald_replay_group", "orders-projection"});
  int64_t last = send("forwarded", *encode(ev), 0);
  ReplicaHandlers h;
  install_fold(h);
  RunningReplica r(test_config(brokers_, "downstream", "forwarded"), store(), std::move(h));
  ASSERT_TRUE(*r->wait_until("forwarded", 0, last, seconds(30)));
  EXPECT_EQ(r->stats().duplicates, 0);
  EXPECT_EQ((*fold_of_db(store()))["k"], (FoldRow{1, 7}));
}

// stop() while the letter cannot be written (the dead-letter producer's broker is out of reach):
// the replica stops within moments, not after the producer's metadata, topic creation and
// delivery timeouts (~50 s), and the event stays unapplied, its offset not stored.
TEST_P(DeadLetters, StopIsPromptWhileALetterCannotBeWritten) {
  ASSERT_TRUE(make_topic(brokers_, "stuck", 1));
  PoisonFold handler;
  ReplicaHandlers h;
  handler.install(h);
  auto cfg = test_config(brokers_, "stopper", "stuck");
  cfg.max_retries = 0;
  cfg.dlq_producer = {{"log_level", "0"}, {"bootstrap.servers", "127.0.0.1:1"}};
  send("stuck", poison_event("k", 5), 0);
  auto c = Replica::create(cfg, store(), std::move(h));
  ASSERT_TRUE(c) << c.error().to_string();
  auto& r = **c;
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard lk(handler.mu);
        return !handler.attempts.empty();
      },
      seconds(20)));
  std::this_thread::sleep_for(milliseconds(1500));  // writing the letter
  const auto t0 = std::chrono::steady_clock::now();
  r.stop();
  EXPECT_TRUE(r.join());
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0);
  EXPECT_LT(took.count(), 5000) << "stop() waited for the dead-letter producer's timeouts";
  EXPECT_EQ(r.stats().dead_lettered, 0);
  auto offsets = stored_offsets(store(), "stopper", "stuck");
  ASSERT_TRUE(offsets) << offsets.error().to_string();
  EXPECT_FALSE(offsets->count(0)) << "the offset moved past an event that was not dead-lettered";
}

INSTANTIATE_TEST_SUITE_P(Store, DeadLetters, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
