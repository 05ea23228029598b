// Sagas in one process against an embedded broker, on SQLite and PostgreSQL:
// an orchestrator with two steps (participants "a" and "b", each with its own
// database, command topic, replica and outbox relay). Happy path, a failure
// at each step, a step timing out while its participant is down, a
// compensation that keeps failing, and command deduplication.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "replica_harness.h"
#include "sdk/outbox/relay.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk/saga/saga.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// One participant: "<name>.do" records an effect row (refused when the saga's
// data says {"fail": "<name>"}), "<name>.undo" deletes it (refused while
// undo_fails is set).
struct Participant {
  explicit Participant(std::string n) : name(std::move(n)) {}
  std::string name;
  milliseconds retention{std::chrono::hours(24 * 7)};
  TestStore db;
  std::atomic<int> do_runs{0};
  std::atomic<int> undo_runs{0};
  std::atomic<bool> undo_fails{false};
  std::atomic<bool> hold{false};  // "<name>.do" waits while set, its reply unsent
  std::unique_ptr<OutboxRelay> relay;
  std::unique_ptr<RunningReplica> replica;

  void start(const std::string& brokers) {
    SagaParticipant p(name, "/" + name, retention);
    p.on(name + ".do", [this](const SagaCommand& c, Tx& tx) -> SagaReply {
      do_runs++;
      while (hold) std::this_thread::sleep_for(milliseconds(10));
      auto r = tx.exec("INSERT INTO effects(saga_id) VALUES(?) ON CONFLICT(saga_id) DO NOTHING", {c.saga_id});
      if (!r) throw std::runtime_error(r.error().to_string());
      if (c.data.value("fail", "") == name) return SagaReply::failure("refused by " + name);
      return SagaReply::success({{name + "_done", true}});
    });
    p.on(name + ".undo", [this](const SagaCommand& c, Tx& tx) -> SagaReply {
      undo_runs++;
      if (undo_fails) return SagaReply::failure("undo refused by " + name);
      auto r = tx.exec("DELETE FROM effects WHERE saga_id = ?", {c.saga_id});
      if (!r) throw std::runtime_error(r.error().to_string());
      return SagaReply::success();
    });
    ReplicaHandlers h;
    ASSERT_TRUE(p.attach(*db.store, h));
    auto rel = OutboxRelay::create(*db.store, {.brokers = brokers, .kafka_config = {{"log_level", "3"}}});
    ASSERT_TRUE(rel) << rel.error().to_string();
    relay = std::move(*rel);
    ASSERT_TRUE(relay->start());
    replica = std::make_unique<RunningReplica>(test_config(brokers, name, name + ".commands"), *db.store, std::move(h));
  }

  int64_t effects(const std::string& saga_id) {
    int64_t n = -1;
    auto r = db.store->run([&](Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT count(*) FROM effects WHERE saga_id = ?", {saga_id}));
      n = row->int64(0);
      return ok();
    });
    EXPECT_TRUE(r) << r.error().to_string();
    return n;
  }
};

class Sagas : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    broker_ = GroupBroker::start({.data_dir = dir_.path() / "broker"});
    brokers_ = broker_->brokers();
    orch_db_ = open_test_store(GetParam(), dir_.path(), "orders");
    for (auto* p : {&a_, &b_}) {
      p->db = open_test_store(GetParam(), dir_.path(), p->name);
      ASSERT_TRUE(p->db.store->run([](Tx& tx) -> Result<void> {
        return tx.exec_script("CREATE TABLE effects (saga_id TEXT PRIMARY KEY)");
      }));
    }
  }

  // The two-step saga "pair"; creates every topic.
  // step_b_timeout / step_a_timeout: the steps' reply timeouts (0 = wait forever).
  // start_relay = false: the orchestrator's commands stay in its outbox until start_relay().
  void start_orchestrator(milliseconds step_b_timeout = milliseconds(0), int max_compensation_retries = 10,
                          milliseconds step_a_timeout = milliseconds(0), bool start_relay = true) {
    SagaOrchestratorConfig cfg;
    cfg.brokers = brokers_;
    cfg.group_id = "orders";
    cfg.reply_topic = "orders.replies";
    cfg.source = "/orders";
    cfg.topic_partitions = 2;
    cfg.max_compensation_retries = max_compensation_retries;
    cfg.compensation_backoff = milliseconds(100);
    cfg.compensation_timeout = seconds(2);
    cfg.timer_interval = milliseconds(50);
    cfg.finished_retention = finished_retention_;
    cfg.prune_interval = milliseconds(100);
    cfg.kafka = {{"log_level", "3"}};
    SagaDefinition d{"pair",
                     {{"step_a", "a.commands", "a.do", "a.undo", step_a_timeout},
                      {"step_b", "b.commands", "b.do", "b.undo", step_b_timeout}}};
    auto o = SagaOrchestrator::create(cfg, *orch_db_.store, {d});
    ASSERT_TRUE(o) << o.error().to_string();
    orch_ = std::move(*o);
    orch_->on_finished([this](const SagaInstance& s, Tx&) {
      std::lock_guard lk(mu_);
      finished_[s.id]++;
    });
    auto rel = OutboxRelay::create(*orch_db_.store, {.brokers = brokers_, .kafka_config = {{"log_level", "3"}}});
    ASSERT_TRUE(rel) << rel.error().to_string();
    orch_relay_ = std::move(*rel);
    if (start_relay) {
      ASSERT_TRUE(orch_relay_->start());
    }
    ASSERT_TRUE(orch_->start());
  }

  void begin(const std::string& id, json data = json::object()) {
    auto r = orch_db_.store->run([&](Tx& tx) { return orch_->begin(tx, "pair", id, data); });
    ASSERT_TRUE(r) << r.error().to_string();
  }

  std::optional<SagaInstance> get(const std::string& id) {
    std::optional<SagaInstance> out;
    auto r = orch_db_.store->run([&](Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(out, SagaOrchestrator::get(tx, id));
      return ok();
    });
    EXPECT_TRUE(r) << r.error().to_string();
    return out;
  }

  // Waits until saga `id` is in `state` (or, wrongly, in another final state); returns it.
  SagaInstance wait_state(const std::string& id, SagaState state, milliseconds timeout = seconds(60)) {
    std::optional<SagaInstance> s;
    eventually([&] {
      s = get(id);
      return s && (s->state == state || s->terminal());
    }, timeout);
    EXPECT_TRUE(s && s->state == state) << id << " is " << (s ? saga_state_name(s->state) : "missing") << ", not "
                         << saga_state_name(state);
    return s.value_or(SagaInstance{});
  }

  // Stops the broker for `outage`, then starts it again on the same port and data.
  void restart_broker(milliseconds outage) {
    broker_->stop();
    broker_.reset();
    std::this_thread::sleep_for(outage);
    const auto port = static_cast<uint16_t>(std::stoi(brokers_.substr(brokers_.rfind(':') + 1)));
    broker_ = GroupBroker::start({.data_dir = dir_.path() / "broker", .port = port});
  }

  int finished(const std::string& id) {
    std::lock_guard lk(mu_);
    return finished_[id];
  }

  void TearDown() override {
    if (orch_) orch_->stop();
    orch_.reset();
    orch_relay_.reset();
    for (auto* p : {&a_, &b_}) {
      p->replica.reset();
      p->relay.reset();
    }
  }

  TempDir dir_;
  std::unique_ptr<GroupBroker> broker_;
  std::string brokers_;
  TestStore orch_db_;
  Participant a_{std::string("a")};
  Participant b_{std::string("b")};
  std::unique_ptr<SagaOrchestrator> orch_;
  std::unique_ptr<OutboxRelay> orch_relay_;
  std::mutex mu_;
  std::map<std::string, int> finished_;
  milliseconds finished_retention_{std::chrono::hours(24)};
};

TEST_P(Sagas, HappyPathCompletesEveryStepAndMergesReplyData) {
  start_orchestrator();
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1", {{"amount", 5}});
  auto s = wait_state("s1", SagaState::kCompleted);
  EXPECT_EQ(s.data, (json{{"amount", 5}, {"a_done", true}, {"b_done", true}}));
  EXPECT_EQ(s.step, 1);
  EXPECT_EQ(a_.effects("s1"), 1);
  EXPECT_EQ(b_.effects("s1"), 1);
  EXPECT_EQ(a_.undo_runs + b_.undo_runs, 0);
  EXPECT_TRUE(eventually([&] { return finished("s1") == 1; }, seconds(5)));
  // A second begin with the same id is refused; nothing else changes.
  auto again = orch_db_.store->run([&](Tx& tx) { return orch_->begin(tx, "pair", "s1", {}); });
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kAlreadyExists);
  auto unknown = orch_db_.store->run([&](Tx& tx) { return orch_->begin(tx, "nope", "s2", {}); });
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Errc::kInvalidArgument);
}

TEST_P(Sagas, FinishedSagasArePrunedAfterTheRetentionRunningOnesStay) {
  finished_retention_ = milliseconds(300);
  start_orchestrator();
  a_.start(brokers_);  // b is down: "open" waits at its second step
  begin("refused", {{"fail", "a"}});
  begin("open");
  wait_state("refused", SagaState::kCompensated);
  EXPECT_TRUE(eventually([&] { return !get("refused").has_value(); }, seconds(10)))
      << "a compensated saga outlived its retention";
  EXPECT_TRUE(eventually([&] { return a_.effects("open") == 1; }, seconds(10)));
  auto open = get("open");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->state, SagaState::kRunning);
  // Once pruned, the id may start a new saga: another instance, whose command a runs (it used to
  // get the first saga's stored refusal, and the new saga was compensated without a running).
  begin("refused");
  EXPECT_EQ(get("refused")->state, SagaState::kRunning);
  EXPECT_TRUE(eventually([&] { return a_.effects("refused") == 1; }, seconds(20)))
      << "a did not run the new saga's command";
  EXPECT_EQ(get("refused")->state, SagaState::kRunning);  // at step b, which is down
}

TEST_P(Sagas, FailureAtFirstStepHasNothingToCompensate) {
  start_orchestrator();
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1", {{"fail", "a"}});
  auto s = wait_state("s1", SagaState::kCompensated);
  EXPECT_EQ(s.reason, "refused by a");
  EXPECT_EQ(a_.effects("s1"), 0);  // the refusing handler's insert was rolled back
  EXPECT_EQ(b_.do_runs, 0);
  EXPECT_EQ(a_.undo_runs, 0);  // the failed step is not compensated
  EXPECT_TRUE(eventually([&] { return finished("s1") == 1; }, seconds(5)));
}

TEST_P(Sagas, FailureAtSecondStepCompensatesTheFirst) {
  start_orchestrator();
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1", {{"fail", "b"}});
  auto s = wait_state("s1", SagaState::kCompensated);
  EXPECT_EQ(s.reason, "refused by b");
  EXPECT_EQ(s.step, 0);
  EXPECT_EQ(a_.effects("s1"), 0);
  EXPECT_EQ(b_.effects("s1"), 0);
  EXPECT_EQ(a_.undo_runs, 1);
  EXPECT_EQ(b_.undo_runs, 0);
}

TEST_P(Sagas, StepTimeoutCompensatesOnceTheParticipantReturns) {
  // Only step_b has a timeout, so a slow machine cannot time out step_a first;
  // b's compensation is resent every 1.5 s while b is down.
  start_orchestrator(milliseconds(1500), 60);
  a_.start(brokers_);  // b is down
  begin("s1");
  auto s = wait_state("s1", SagaState::kCompensating);
  EXPECT_EQ(s.step, 1);  // the timed-out step is compensated too, first
  EXPECT_NE(s.reason.find("step_b timed out"), std::string::npos) << s.reason;
  EXPECT_EQ(a_.effects("s1"), 1);  // waits behind b's compensation
  b_.start(brokers_);
  wait_state("s1", SagaState::kCompensated);
  // b ran the late command, then its compensation; a was undone after.
  EXPECT_EQ(b_.do_runs, 1);
  EXPECT_GE(b_.undo_runs, 1);
  EXPECT_EQ(b_.effects("s1"), 0);
  EXPECT_EQ(a_.effects("s1"), 0);
  EXPECT_EQ(a_.undo_runs, 1);
}

TEST_P(Sagas, CompensationThatKeepsFailingEndsFailed) {
  start_orchestrator(milliseconds(0), 2);
  a_.undo_fails = true;
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1", {{"fail", "b"}});
  auto s = wait_state("s1", SagaState::kFailed);
  EXPECT_NE(s.reason.find("unconfirmed after 3 attempts"), std::string::npos) << s.reason;
  // A failed compensation is not remembered: each of the 3 sends runs it.
  EXPECT_TRUE(eventually([&] { return a_.undo_runs == 3; }, seconds(10))) << a_.undo_runs;
  EXPECT_EQ(a_.effects("s1"), 1);
  EXPECT_TRUE(eventually([&] { return finished("s1") == 1; }, seconds(5)));
  auto failed = orch_db_.store->run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(auto list, SagaOrchestrator::list(tx, SagaState::kFailed));
    EXPECT_EQ(list.size(), 1u);
    return ok();
  });
  EXPECT_TRUE(failed);
}

// Sends saga x1's command "x1/0/do" (or its compensation "x1/0/undo") to participant a, `copies` times (one
// ce_id each).
// A command that has not left the orchestrator's outbox (the relay or the
// broker is down) cannot have been answered: its step does not time out, and
// it runs normally once published.
TEST_P(Sagas, AStepDoesNotTimeOutWhileItsCommandIsStillInTheOutbox) {
  start_orchestrator(milliseconds(0), 10, /*step_a_timeout=*/milliseconds(1000), /*start_relay=*/false);
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1");
  std::this_thread::sleep_for(milliseconds(3500));  // 3.5 timeouts of step_a, checked every 50 ms
  auto s = get("s1");
  ASSERT_TRUE(s);
  EXPECT_EQ(saga_state_name(s->state), std::string("running")) << s->reason;
  EXPECT_EQ(s->step, 0);
  ASSERT_TRUE(orch_relay_->start());
  wait_state("s1", SagaState::kCompleted);
  EXPECT_EQ(a_.do_runs, 1);
  EXPECT_EQ(a_.undo_runs, 0);
}

// A broker outage longer than a step's timeout times no step out: no
// deadline is checked while the broker is unreachable, and once it is back
// every running step waits its full timeout again. Participant a has the
// command and holds its reply across a 5 s outage; step_a's timeout is 3 s.
TEST_P(Sagas, ABrokerOutageTimesNoStepOut) {
  start_orchestrator(milliseconds(0), 10, /*step_a_timeout=*/milliseconds(3000));
  a_.hold = true;
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1");
  ASSERT_TRUE(eventually([&] { return a_.do_runs >= 1; }, seconds(30)));
  restart_broker(milliseconds(5000));
  a_.hold = false;
  auto s = wait_state("s1", SagaState::kCompleted);
  EXPECT_EQ(s.reason, "");
  EXPECT_EQ(a_.undo_runs, 0);
  EXPECT_EQ(b_.do_runs, 1);
}

// A command the relay publishes late still has about half its step's
// timeout: while it waits in the outbox, its deadline is renewed whenever
// less than half is left. Here the relay starts 7.8 s in (the 4 s deadline
// was renewed at 4 s, 6 s... before; fixed renewals at 4 s and 8 s would
// leave 0.2 s) and participant a takes 1 s to answer.
TEST_P(Sagas, ACommandPublishedLateStillHasHalfItsTimeout) {
  const auto begun = std::chrono::steady_clock::now();
  start_orchestrator(milliseconds(0), 10, /*step_a_timeout=*/milliseconds(4000), /*start_relay=*/false);
  a_.hold = true;
  a_.start(brokers_);
  b_.start(brokers_);
  begin("s1");
  std::this_thread::sleep_until(begun + milliseconds(7800));
  ASSERT_TRUE(orch_relay_->start());
  ASSERT_TRUE(eventually([&] { return a_.do_runs >= 1; }, seconds(30)));
  std::this_thread::sleep_for(milliseconds(1000));
  a_.hold = false;
  auto s = wait_state("s1", SagaState::kCompleted);
  EXPECT_EQ(s.reason, "");
  EXPECT_EQ(a_.undo_runs, 0);
}

// Rows and replies of a saga this orchestrator has no definition for (another
// version's, during a rolling upgrade) hold up neither its own deadlines nor
// get consumed: 600 such rows past their deadline sort before every other,
// yet step_b still times out; a reply for one of them is not swallowed but
// dead-lettered, for `herald dlq replay` once a version that knows it runs.
TEST_P(Sagas, SagasOfAnotherVersionHoldUpNoDeadlineAndTheirRepliesAreKept) {
  start_orchestrator(milliseconds(1500), 60);
  ASSERT_TRUE(orch_db_.store->run([](Tx& tx) -> Result<void> {
    for (int i = 0; i < 600; ++i) {
      HERALD_TRY(tx.exec("INSERT INTO herald_sagas (saga_id, saga, state, step, data, reason, attempts, deadline_ms, "
                         "version, created_at, updated_at) VALUES (?, 'refund', 'running', 0, '{}', '', 0, 1, 1, 1, 1)",
                         {"legacy-" + std::to_string(i)}));
    }
    return ok();
  }));
  a_.start(brokers_);  // b is down: step_b times out
  begin("s1");
  auto s = wait_state("s1", SagaState::kCompensating, seconds(30));
  EXPECT_NE(s.reason.find("step_b timed out"), std::string::npos) << s.reason;

  json reply = {{"saga_id", "legacy-7"}, {"step", 0}, {"compensation", false}, {"ok", true}};
  auto prod = kafka::SyncProducer::create(brokers_, {{"log_level", "3"}});
  ASSERT_TRUE(prod);
  auto rec = encode(Event::json(std::string(kSagaReplyType), "/test", "legacy-7", reply));
  ASSERT_TRUE(rec);
  ASSERT_TRUE((*prod)->send("orders.replies", kafka::kAnyPartition, rec->key, rec->value, rec->headers));
  auto dead = read_topic(brokers_, "orders.replies.dlq", 1, seconds(90));  // after ~26 s of retries
  ASSERT_TRUE(dead) << dead.error().to_string();
  auto ev = (*dead)[0].event();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->aggregate_id, "legacy-7");
  auto legacy = get("legacy-7");
  ASSERT_TRUE(legacy);
  EXPECT_EQ(legacy->state, SagaState::kRunning);
}

void send_command(const std::string& brokers, bool compensation, int copies = 1) {
  json cmd = {{"saga_id", "x1"},
              {"saga", "pair"},
              {"step", 0},
              {"step_name", "step_a"},
              {"compensation", compensation},
              {"command_id", compensation ? "x1/0/undo" : "x1/0/do"},
              {"reply_to", "orders.replies"},
              {"data", json::object()}};
  auto prod = kafka::SyncProducer::create(brokers, {{"log_level", "3"}});
  ASSERT_TRUE(prod);
  for (int i = 0; i < copies; ++i) {
    auto rec = encode(Event::json(compensation ? "a.undo" : "a.do", "/test", "x1", cmd));
    ASSERT_TRUE(rec);
    ASSERT_TRUE((*prod)->send("a.commands", kafka::kAnyPartition, rec->key, rec->value, rec->headers));
  }
}
void send_command_twice(const std::string& brokers) { send_command(brokers, false, 2); }

TEST_P(Sagas, ARepeatedCommandRunsOnceAndGetsTheSameReply) {
  start_orchestrator();  // creates the topics; its replies topic gets both answers
  a_.start(brokers_);
  send_command_twice(brokers_);
  auto replies = read_topic(brokers_, "orders.replies", 2, seconds(30));
  ASSERT_TRUE(replies) << replies.error().to_string();
  ASSERT_EQ(replies->size(), 2u);
  EXPECT_EQ(json::parse(*(*replies)[0].value), json::parse(*(*replies)[1].value));
  EXPECT_EQ(json::parse(*(*replies)[0].value).at("ok"), true);
  EXPECT_EQ(a_.do_runs, 1);
  EXPECT_EQ(a_.effects("x1"), 1);
}

// E.g. a command dead-lettered by its participant, the saga timed out and compensated, then the
// dead letter replayed: the command is answered with a refusal and does not run.
TEST_P(Sagas, ACommandThatComesAfterItsCompensationDoesNotRun) {
  start_orchestrator();
  a_.start(brokers_);
  send_command(brokers_, /*compensation=*/true);
  send_command(brokers_, /*compensation=*/false);
  auto replies = read_topic(brokers_, "orders.replies", 2, seconds(30));
  ASSERT_TRUE(replies) << replies.error().to_string();
  ASSERT_EQ(replies->size(), 2u);
  const json undo = json::parse(*(*replies)[0].value), late = json::parse(*(*replies)[1].value);
  EXPECT_EQ(undo.at("command_id"), "x1/0/undo");
  EXPECT_EQ(undo.at("ok"), true);
  EXPECT_EQ(late.at("command_id"), "x1/0/do");
  EXPECT_EQ(late.at("ok"), false);
  EXPECT_EQ(late.at("reason"), "compensated before it ran");
  EXPECT_EQ(a_.undo_runs, 1);
  EXPECT_EQ(a_.do_runs, 0);
  EXPECT_EQ(a_.effects("x1"), 0);
}

TEST_P(Sagas, RememberedCommandsArePrunedAfterTheRetention) {
  start_orchestrator();
  a_.retention = milliseconds(0);  // forget each command before the next one
  a_.start(brokers_);
  send_command_twice(brokers_);
  auto replies = read_topic(brokers_, "orders.replies", 2, seconds(30));
  ASSERT_TRUE(replies) << replies.error().to_string();
  EXPECT_EQ(a_.do_runs, 2);  // the second one was no longer known: the handler ran again
  EXPECT_EQ(a_.effects("x1"), 1);
}

INSTANTIATE_TEST_SUITE_P(Store, Sagas, ::testing::Values("sqlite", "postgres"), store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
