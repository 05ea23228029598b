#include "sdk/saga/saga.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "sdk/outbox/outbox.h"
#include "sdk/replica/kafka_handles.h"

namespace herald::sdk {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

int64_t now_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A deadline whose handling failed (no definition for the saga's step here,
// on_finished threw, the database) is tried again this much later.
constexpr std::chrono::milliseconds kDeadlineRetry{10000};

// How often the timer asks the broker whether it is there (every tick while it is not).
constexpr std::chrono::milliseconds kProbeInterval{1000};
constexpr int kProbeTimeoutMs = 1000;

constexpr const char* kStateNames[] = {"running", "compensating", "completed", "compensated", "failed"};

const char* kSagaTables =
    "CREATE TABLE IF NOT EXISTS herald_sagas ("
    " saga_id TEXT PRIMARY KEY,"
    " saga TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " step INTEGER NOT NULL,"
    " data TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " attempts INTEGER NOT NULL,"
    " deadline_ms BIGINT NOT NULL,"   // 0 = no deadline (terminal, or a step without timeout)
    " version BIGINT NOT NULL,"       // compare-and-set between the reply and timer paths
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS herald_sagas_deadline ON herald_sagas(deadline_ms);"
    "CREATE TABLE IF NOT EXISTS herald_saga_commands ("
    " participant TEXT NOT NULL,"
    " command_id TEXT NOT NULL,"
    " reply TEXT NOT NULL,"           // the reply payload sent for it
    " created_at BIGINT NOT NULL,"
    " PRIMARY KEY(participant, command_id));"
    "CREATE INDEX IF NOT EXISTS herald_saga_commands_age ON herald_saga_commands(participant, created_at)";

const char* kSagaFinishedIndex = "CREATE INDEX IF NOT EXISTS herald_sagas_finished ON herald_sagas(state, updated_at)";

constexpr const char* kSagaColumns =
    "saga_id, saga, state, step, data, reason, attempts, deadline_ms, version, created_at, updated_at";

// One herald_sagas row plus what the transitions need that SagaInstance hides.
struct StoredSaga {
  SagaInstance s;
  int64_t deadline_ms = 0;
  int64_t version = 0;
};

Result<StoredSaga> parse_row(const sdk::Row& r) {
  StoredSaga row;
  row.s.id = r.text(0);
  row.s.saga = r.text(1);
  auto st = parse_saga_state(r.text(2));
  if (!st) return Error{Errc::kCorruption, fmt::format("saga {}: unknown state '{}'", row.s.id, r.text(2))};
  row.s.state = *st;
  row.s.step = static_cast<int>(r.int64(3));
  row.s.data = json::parse(r.text(4), nullptr, false);
  if (row.s.data.is_discarded()) return Error{Errc::kCorruption, fmt::format("saga {}: data is not JSON", row.s.id)};
  row.s.reason = r.text(5);
  row.s.attempts = static_cast<int>(r.int64(6));
  row.deadline_ms = r.int64(7);
  row.version = r.int64(8);
  row.s.created_at_ms = r.int64(9);
  row.s.updated_at_ms = r.int64(10);
  return row;
}

Result<std::optional<StoredSaga>> load(Tx& tx, std::string_view id) {
  HERALD_ASSIGN_OR_RETURN(auto r, tx.query_one(fmt::format("SELECT {} FROM herald_sagas WHERE saga_id = ?",
                                                           kSagaColumns), {id}));
  if (!r) return std::optional<StoredSaga>();
  HERALD_ASSIGN_OR_RETURN(auto row, parse_row(*r));
  return std::optional<StoredSaga>(std::move(row));
}

// The id of a step's command or compensation; a participant runs each id once. It names the saga
// instance, not only its id: two sagas of different definitions under one id (an order and its
// refund), or an id used again once its saga was pruned, are other instances whose commands must
// run. Ends in "/do" or "/undo", so a participant derives a command's id from its compensation's.
std::string command_id(const SagaInstance& s, bool compensation) {
  return fmt::format("{}/{}/{}/{}/{}", s.saga, s.id, s.created_at_ms, s.step, compensation ? "undo" : "do");
}

Result<void> check_definition(const SagaDefinition& d) {
  if (d.name.empty()) return Error{Errc::kInvalidArgument, "saga: a definition has no name"};
  if (d.steps.empty()) return Error{Errc::kInvalidArgument, fmt::format("saga {}: no steps", d.name)};
  std::set<std::string> names;
  for (const auto& s : d.steps) {
    if (s.name.empty() || s.topic.empty() || s.command.empty()) {
      return Error{Errc::kInvalidArgument, fmt::format("saga {}: every step needs a name, topic and command", d.name)};
    }
    if (!names.insert(s.name).second) {
      return Error{Errc::kInvalidArgument, fmt::format("saga {}: two steps named '{}'", d.name, s.name)};
    }
    if (s.timeout.count() < 0) return Error{Errc::kInvalidArgument, fmt::format("saga {}: negative timeout", d.name)};
  }
  return ok();
}

}  // namespace

const char* saga_state_name(SagaState s) { return kStateNames[static_cast<int>(s)]; }

std::optional<SagaState> parse_saga_state(std::string_view name) {
  for (int i = 0; i < 5; ++i) {
    if (name == kStateNames[i]) return static_cast<SagaState>(i);
  }
  return std::nullopt;
}

const std::vector<Migration>& saga_migrations() {
  static const std::vector<Migration> m{
      {"herald_sagas_v1", kSagaTables, kSagaTables},
      {"herald_sagas_v2", kSagaFinishedIndex, kSagaFinishedIndex},  // pruning finished sagas
  };
  return m;
}

// ---- the orchestrator ------------------------------------------------------------

class SagaOrchestrator::Impl {
 public:
  Impl(SagaOrchestratorConfig cfg, Store& store, std::vector<SagaDefinition> sagas)
      : cfg_(std::move(cfg)), store_(store), outbox_({.topic = "", .source = cfg_.source}) {
    for (auto& d : sagas) {
      for (const auto& step : d.steps) max_timeout_ms_ = std::max<int64_t>(max_timeout_ms_, step.timeout.count());
      std::string name = d.name;
      sagas_.emplace(std::move(name), std::move(d));
    }
  }

  Result<void> init() {
    HERALD_TRY(store_.migrate(saga_migrations()));
    HERALD_TRY(create_topics());
    ReplicaConfig rc;
    rc.brokers = cfg_.brokers;
    rc.group_id = cfg_.group_id;
    rc.topics = {cfg_.reply_topic};
    rc.client_id = "herald-saga-" + cfg_.group_id;
    rc.kafka = cfg_.kafka;
    // A reply that cannot be applied is almost always a transient conflict
    // (the timer moved the saga in the same moment): retry a while.
    rc.max_retries = 10;
    ReplicaHandlers handlers;
    handlers.on(std::string(kSagaReplyType), [this](const Event& ev, Tx& tx) { on_reply(ev, tx); });
    HERALD_ASSIGN_OR_RETURN(replica_, Replica::create(std::move(rc), store_, std::move(handlers)));
    return ok();
  }

  Result<void> begin(Tx& tx, std::string_view saga, std::string_view id, json data) const {
    auto it = sagas_.find(std::string(saga));
    if (it == sagas_.end()) return Error{Errc::kInvalidArgument, fmt::format("saga: unknown saga '{}'", saga)};
    if (id.empty()) return Error{Errc::kInvalidArgument, "saga: empty saga id"};
    if (data.is_null()) data = json::object();
    StoredSaga row;
    row.s.id = std::string(id);
    row.s.saga = it->first;
    row.s.data = std::move(data);
    row.s.created_at_ms = row.s.updated_at_ms = now_ms();
    row.deadline_ms = deadline_for(it->second.steps[0], false, row.s.created_at_ms);
    auto ins = tx.exec(fmt::format("INSERT INTO herald_sagas({}) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", kSagaColumns),
                       {row.s.id, row.s.saga, saga_state_name(row.s.state), row.s.step, row.s.data.dump(), "", 0,
                        row.deadline_ms, 0, row.s.created_at_ms, row.s.updated_at_ms});
    if (!ins) {
      if (ins.error().code == Errc::kAlreadyExists) {
        return Error{Errc::kAlreadyExists, fmt::format("saga: id '{}' is taken", id)};
      }
      return ins.error();
    }
    HERALD_TRY(publish_event(tx, row.s, "started", it->second));
    return send(tx, row.s, it->second, false);
  }

  Result<void> start() {
    HERALD_TRY(replica_->start());
    timer_ = std::thread([this] { timer_loop(); });
    return ok();
  }

  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (replica_) replica_->stop();
  }

  Result<void> join() {
    if (timer_.joinable()) timer_.join();
    return replica_ ? replica_->join() : ok();
  }

  SagaOrchestratorConfig cfg_;
  Store& store_;
  Outbox outbox_;
  std::map<std::string, SagaDefinition, std::less<>> sagas_;
  std::function<void(const SagaInstance&, Tx&)> on_finished_;
  std::unique_ptr<Replica> replica_;

 private:
  Result<void> create_topics() {
    kafka::Properties props{{"bootstrap.servers", cfg_.brokers}};
    for (const auto& [k, v] : cfg_.kafka) {  // connection settings only; the rest is for the consumer
      if (k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.")) props.emplace_back(k, v);
    }
    HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf(props));
    HERALD_ASSIGN_OR_RETURN(probe_, kafka::make_handle(RD_KAFKA_PRODUCER, std::move(conf)));
    std::set<std::string> topics{cfg_.reply_topic, cfg_.events_topic};
    for (const auto& [_, d] : sagas_) {
      for (const auto& s : d.steps) topics.insert(s.topic);
    }
    for (const auto& t : topics) {
      HERALD_TRY(kafka::ensure_topic(probe_.get(), t, cfg_.topic_partitions, milliseconds(30000)));
    }
    return ok();
  }

  int64_t deadline_for(const SagaStep& step, bool compensation, int64_t now) const {
    if (compensation) return now + (step.timeout.count() > 0 ? step.timeout : cfg_.compensation_timeout).count();
    return step.timeout.count() > 0 ? now + step.timeout.count() : 0;
  }

  // Adds the command (or compensation) of the saga's current step to the outbox.
  Result<void> send(Tx& tx, const SagaInstance& s, const SagaDefinition& d, bool compensation) const {
    const SagaStep& step = d.steps.at(static_cast<size_t>(s.step));
    json cmd = {{"saga_id", s.id},
                {"saga", s.saga},
                {"step", s.step},
                {"step_name", step.name},
                {"compensation", compensation},
                {"command_id", command_id(s, compensation)},
                {"reply_to", cfg_.reply_topic},
                {"data", s.data}};
    HERALD_TRY(outbox_.add(tx, step.topic,
                           Event::json(compensation ? step.compensation : step.command, cfg_.source, s.id, cmd)));
    return ok();
  }

  Result<void> publish_event(Tx& tx, const SagaInstance& s, std::string_view what, const SagaDefinition& d) const {
    json ev = {{"saga_id", s.id},
               {"saga", s.saga},
               {"event", what},
               {"state", saga_state_name(s.state)},
               {"step", s.step},
               {"step_name", d.steps.at(static_cast<size_t>(s.step)).name},
               {"reason", s.reason},
               {"attempts", s.attempts}};
    // The step a running saga waits for once this one is done (`herald saga list` shows it).
    if (what == "step_completed" && static_cast<size_t>(s.step) + 1 < d.steps.size()) {
      ev["next_step"] = s.step + 1;
      ev["next_step_name"] = d.steps[static_cast<size_t>(s.step) + 1].name;
    }
    HERALD_TRY(outbox_.add(tx, cfg_.events_topic, Event::json(fmt::format("herald.saga.{}", what), cfg_.source, s.id, ev)));
    return ok();
  }

  // Writes `row` back if nobody changed it since it was read. False = conflict.
  Result<bool> save(Tx& tx, StoredSaga& row) const {
    row.s.updated_at_ms = now_ms();
    HERALD_ASSIGN_OR_RETURN(
        int64_t n, tx.exec("UPDATE herald_sagas SET state = ?, step = ?, data = ?, reason = ?, attempts = ?, "
                           "deadline_ms = ?, version = version + 1, updated_at = ? WHERE saga_id = ? AND version = ?",
                           {saga_state_name(row.s.state), row.s.step, row.s.data.dump(), row.s.reason, row.s.attempts,
                            row.deadline_ms, row.s.updated_at_ms, row.s.id, row.version}));
    return n == 1;
  }

  Result<void> finish(Tx& tx, StoredSaga& row, SagaState state, const SagaDefinition& d) const {
    row.s.state = state;
    row.deadline_ms = 0;
    HERALD_TRY(publish_event(tx, row.s, saga_state_name(state), d));
    if (on_finished_) on_finished_(row.s, tx);
    return ok();
  }

  // Compensates the completed steps at or below `from`, newest first.
  Result<void> compensate_from(Tx& tx, StoredSaga& row, int from, const SagaDefinition& d, int64_t now) const {
    row.s.state = SagaState::kCompensating;
    row.s.attempts = 0;
    int j = from;
    while (j >= 0 && d.steps[static_cast<size_t>(j)].compensation.empty()) --j;
    if (j < 0) return finish(tx, row, SagaState::kCompensated, d);
    row.s.step = j;
    return resend_compensation(tx, row, d, now);
  }

  Result<void> resend_compensation(Tx& tx, StoredSaga& row, const SagaDefinition& d, int64_t now) const {
    row.s.attempts++;
    row.deadline_ms = deadline_for(d.steps[static_cast<size_t>(row.s.step)], true, now);
    HERALD_TRY(publish_event(tx, row.s, "compensating", d));
    return send(tx, row.s, d, true);
  }

  const SagaDefinition* definition(const StoredSaga& row) const {
    auto it = sagas_.find(row.s.saga);
    if (it == sagas_.end()) {
      HLOG_ERROR("saga {}: unknown saga '{}' (definition removed?); left as is", row.s.id, row.s.saga);
      return nullptr;
    }
    if (row.s.step < 0 || static_cast<size_t>(row.s.step) >= it->second.steps.size()) {
      HLOG_ERROR("saga {}: at step {} but saga '{}' has {} step(s) now (definition shortened?); left as is", row.s.id,
                 row.s.step, row.s.saga, it->second.steps.size());
      return nullptr;
    }
    return &it->second;
  }

  // A participant's reply: the replica's handler (throws to have it retried).
  void on_reply(const Event& ev, Tx& tx) const {
    if (auto r = apply_reply(json::parse(ev.payload), tx); !r) throw std::runtime_error(r.error().to_string());
  }

  Result<void> apply_reply(const json& r, Tx& tx) const {
    const std::string id = r.at("saga_id").get<std::string>();
    const int step = r.at("step").get<int>();
    const bool compensation = r.at("compensation").get<bool>();
    const bool success = r.at("ok").get<bool>();
    const std::string reason = r.value("reason", "");
    HERALD_ASSIGN_OR_RETURN(auto loaded, load(tx, id));
    if (!loaded) {
      HLOG_WARN("saga {}: reply for an unknown saga ignored", id);
      return ok();
    }
    StoredSaga row = std::move(*loaded);
    const SagaDefinition* d = definition(row);
    if (d == nullptr) {
      // Not consumed: retried, then dead-lettered, for `herald dlq replay` once an
      // instance that knows the definition runs (a rolling upgrade adding a saga).
      return Error{Errc::kNotFound, fmt::format("saga {}: no definition of '{}' with step {} here", id, row.s.saga,
                                                row.s.step)};
    }
    const bool expected = row.s.step == step && ((row.s.state == SagaState::kRunning && !compensation) ||
                                                 (row.s.state == SagaState::kCompensating && compensation));
    if (!expected) {
      HLOG_DEBUG("saga {}: late or repeated reply for step {} ({}) ignored in state {} step {}", id, step,
                 compensation ? "compensation" : "command", saga_state_name(row.s.state), row.s.step);
      return ok();
    }
    const int64_t now = now_ms();
    const std::string& step_name = d->steps[static_cast<size_t>(step)].name;
    if (!compensation && success) {
      if (auto it = r.find("data"); it != r.end() && it->is_object()) row.s.data.update(*it);
      HERALD_TRY(publish_event(tx, row.s, "step_completed", *d));
      if (row.s.step + 1 == static_cast<int>(d->steps.size())) {
        HERALD_TRY(finish(tx, row, SagaState::kCompleted, *d));
      } else {
        row.s.step++;
        row.deadline_ms = deadline_for(d->steps[static_cast<size_t>(row.s.step)], false, now);
        HERALD_TRY(send(tx, row.s, *d, false));
      }
    } else if (!compensation) {
      row.s.reason = reason.empty() ? fmt::format("step {} failed", step_name) : reason;
      HERALD_TRY(publish_event(tx, row.s, "step_failed", *d));
      HERALD_TRY(compensate_from(tx, row, step - 1, *d, now));
    } else if (success) {
      HERALD_TRY(publish_event(tx, row.s, "step_compensated", *d));
      HERALD_TRY(compensate_from(tx, row, step - 1, *d, now));
    } else {
      // Resent by the timer after the backoff (resend_compensation).
      HLOG_WARN("saga {}: compensation of step {} failed (attempt {}): {}", id, step_name, row.s.attempts, reason);
      row.deadline_ms = now + cfg_.compensation_backoff.count();
      SagaInstance shown = row.s;
      shown.reason = reason;
      HERALD_TRY(publish_event(tx, shown, "compensation_failed", *d));
    }
    HERALD_ASSIGN_OR_RETURN(bool saved, save(tx, row));
    if (!saved) return Error{Errc::kAlreadyExists, fmt::format("saga {}: changed concurrently; retrying the reply", id)};
    return ok();
  }

  // A deadline passed: a step timed out, or a compensation is due for a resend.
  // `unsent`: the saga's current command (or compensation) was in the outbox
  // a moment ago.
  Result<void> on_deadline(Tx& tx, std::string_view id, bool unsent) const {
    HERALD_ASSIGN_OR_RETURN(auto loaded, load(tx, id));
    if (!loaded) return ok();
    StoredSaga row = std::move(*loaded);
    const int64_t now = now_ms();
    if (row.deadline_ms == 0 || row.deadline_ms > now || row.s.terminal()) return ok();
    const SagaDefinition* d = definition(row);
    if (d == nullptr) return Error{Errc::kNotFound, "no definition for its step here"};
    const SagaStep& step = d->steps[static_cast<size_t>(row.s.step)];
    // The command (or the compensation last sent) has not left the outbox: the
    // relay is down, and no participant has seen it. That is no timeout and no
    // failed attempt: the clock starts again.
    if (unsent) {
      HLOG_DEBUG("saga {}: step {} not published yet; its deadline starts again", row.s.id, step.name);
      row.deadline_ms = deadline_for(step, row.s.state == SagaState::kCompensating, now);
    } else if (row.s.state == SagaState::kRunning) {
      row.s.reason = fmt::format("step {} timed out after {} ms", step.name, step.timeout.count());
      HLOG_WARN("saga {}: {}", row.s.id, row.s.reason);
      HERALD_TRY(publish_event(tx, row.s, "step_timed_out", *d));
      HERALD_TRY(compensate_from(tx, row, row.s.step, *d, now));
    } else if (row.s.attempts > cfg_.max_compensation_retries) {
      row.s.reason = fmt::format("{}; compensation of step {} unconfirmed after {} attempts", row.s.reason, step.name,
                                 row.s.attempts);
      HLOG_ERROR("saga {}: failed, needs attention: {}", row.s.id, row.s.reason);
      HERALD_TRY(finish(tx, row, SagaState::kFailed, *d));
    } else {
      HERALD_TRY(resend_compensation(tx, row, *d, now));
    }
    HERALD_ASSIGN_OR_RETURN(bool saved, save(tx, row));
    if (!saved) return Error{Errc::kAlreadyExists, "changed concurrently"};
    return ok();
  }

  void timer_loop() {
    std::unique_lock lk(mu_);
    auto last_prune = std::chrono::steady_clock::now();
    while (!stopping_) {
      cv_.wait_for(lk, cfg_.timer_interval);
      if (stopping_) break;
      lk.unlock();
      if (cfg_.finished_retention.count() > 0 && std::chrono::steady_clock::now() - last_prune >= cfg_.prune_interval) {
        last_prune = std::chrono::steady_clock::now();
        prune_finished();
      }
      tick();
      lk.lock();
    }
  }

  // A broker outage holds every saga up, and after it the participants need a
  // while to reconnect and rejoin their groups: while the broker is
  // unreachable no deadline is checked, and once it is back every running
  // step gets its full timeout again.
  void tick() {
    const auto now = std::chrono::steady_clock::now();
    if (!reachable_ || now - last_probe_ >= kProbeInterval) {
      last_probe_ = now;
      const bool was = reachable_;
      reachable_ = broker_reachable();
      if (was && !reachable_) HLOG_WARN("saga: the broker is unreachable; no step times out until it is back");
      if (!reachable_) outage_ = true;
    }
    // Replies already in the log may still be unread (after a restart or an
    // outage): time nothing out before the replica has caught up.
    if (!reachable_ || !replica_->ready()) return;
    if (outage_) {
      if (!restart_deadlines()) return;  // tried again at the next tick
      outage_ = false;
    }
    check_deadlines();
  }

  bool broker_reachable() const {
    const struct rd_kafka_metadata* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(probe_.get(), 0, nullptr, &md, kProbeTimeoutMs);
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
  }

  // Every running step of this instance's sagas waits its full timeout from
  // now, unless its deadline is later already. Idempotent, so instances
  // sharing the database may each do it.
  bool restart_deadlines() const {
    const int64_t now = now_ms();
    int64_t n = 0;
    auto r = store_.run([&](Tx& tx) -> Result<void> {
      n = 0;
      for (const auto& [name, d] : sagas_) {
        for (size_t i = 0; i < d.steps.size(); ++i) {
          const int64_t deadline = deadline_for(d.steps[i], false, now);
          if (deadline == 0) continue;
          HERALD_ASSIGN_OR_RETURN(
              int64_t k, tx.exec("UPDATE herald_sagas SET deadline_ms = ?, version = version + 1 WHERE saga = ? "
                                 "AND step = ? AND state = 'running' AND deadline_ms > 0 AND deadline_ms < ?",
                                 {deadline, name, static_cast<int64_t>(i), deadline}));
          n += k;
        }
      }
      return ok();
    });
    if (!r) {
      HLOG_WARN("saga: restarting deadlines after an outage: {}", r.error().to_string());
      return false;
    }
    HLOG_INFO("saga: the broker is back; {} running step(s) wait their full timeout again", n);
    return true;
  }

  void prune_finished() const {
    int64_t n = 0;
    auto r = store_.run([&](Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(n, tx.exec("DELETE FROM herald_sagas WHERE state IN ('completed', 'compensated', "
                                         "'failed') AND updated_at < ?",
                                         {now_ms() - cfg_.finished_retention.count()}));
      return ok();
    });
    if (!r) {
      HLOG_WARN("saga: pruning finished sagas: {}", r.error().to_string());
    } else if (n > 0) {
      HLOG_DEBUG("saga: pruned {} finished saga(s)", n);
    }
  }

  // Handles the sagas whose deadline passed, and renews running steps whose
  // command still waits in the outbox with less than half their timeout left,
  // so a command the relay publishes late still has about half its timeout
  // (without this, what was left of it). The outbox is scanned only when some
  // saga is due or past half its timeout.
  void check_deadlines() const {
    if (sagas_.empty()) return;
    const int64_t now = now_ms();
    // Only sagas this instance has definitions for: another version's are
    // that version's to time out, and must not hold up the LIMIT.
    std::string sql = "SELECT saga_id, saga, step, state, deadline_ms FROM herald_sagas WHERE deadline_ms > 0 AND "
                      "deadline_ms <= ? AND saga IN (";
    Params params{now + max_timeout_ms_ / 2};
    for (const auto& [name, def] : sagas_) {
      sql += params.size() > 1 ? ", ?" : "?";
      params.emplace_back(name);
    }
    sql += ") ORDER BY deadline_ms LIMIT 500";
    struct Due {
      std::string id, saga;
      int64_t step = 0;
      std::string state;
      int64_t deadline = 0;
    };
    std::vector<Due> due;
    std::set<std::pair<std::string, std::string>> unsent;  // (saga id, topic) in the outbox
    auto r = store_.run([&](Tx& tx) -> Result<void> {
      due.clear();
      unsent.clear();
      HERALD_ASSIGN_OR_RETURN(auto rows, tx.query(sql, params));
      if (rows.empty()) return ok();
      // One scan of the outbox, which holds only what is not yet published (an
      // index on aggregate_id cost the SQLite relay ~25% of its backlog rate).
      std::string in = "SELECT aggregate_id, topic FROM herald_outbox WHERE aggregate_id IN (";
      Params ids;
      for (const auto& row : rows) {
        due.push_back({row.text(0), row.text(1), row.int64(2), row.text(3), row.int64(4)});
        in += ids.empty() ? "?" : ", ?";
        ids.emplace_back(due.back().id);
      }
      HERALD_ASSIGN_OR_RETURN(auto waiting, tx.query(in + ")", ids));
      for (const auto& w : waiting) unsent.emplace(w.text(0), w.text(1));
      return ok();
    }, 5, TxOptions{.read_only = true});
    if (!r) {
      HLOG_WARN("saga: reading deadlines: {}", r.error().to_string());
      return;
    }
    for (const auto& s : due) {
      const auto def = sagas_.find(s.saga);
      const bool known = def != sagas_.end() && s.step >= 0 && static_cast<size_t>(s.step) < def->second.steps.size();
      const SagaStep* step = known ? &def->second.steps[static_cast<size_t>(s.step)] : nullptr;
      const bool waiting = step != nullptr && unsent.count({s.id, step->topic}) > 0;
      if (s.deadline > now) {  // not due: renewed if its command still waits with under half its timeout left
        const bool running = s.state == saga_state_name(SagaState::kRunning);
        if (waiting && running && s.deadline - now < step->timeout.count() / 2) {
          renew_deadline(s.id, s.deadline, deadline_for(*step, false, now));
        }
        continue;
      }
      Result<void> done = ok();
      try {
        done = store_.run([&](Tx& tx) { return on_deadline(tx, s.id, waiting); });
      } catch (const std::exception& e) {  // from on_finished
        done = Error{Errc::kInvalidArgument, e.what()};
      }
      if (!done && done.error().code != Errc::kAlreadyExists) {
        // Tried again later, not at once: a saga that keeps failing here must not keep the others waiting.
        HLOG_WARN("saga {}: deadline: {}; trying again in {} s", s.id, done.error().to_string(),
                  kDeadlineRetry.count() / 1000);
        renew_deadline(s.id, s.deadline, now_ms() + kDeadlineRetry.count());
      }
    }
  }

  // Moves saga `id`'s deadline from `from` to `to`, unless it changed meanwhile.
  void renew_deadline(const std::string& id, int64_t from, int64_t to) const {
    auto r = store_.run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(
          tx.exec("UPDATE herald_sagas SET deadline_ms = ? WHERE saga_id = ? AND deadline_ms = ?", {to, id, from}));
      return ok();
    });
    if (!r) HLOG_WARN("saga {}: moving its deadline: {}", id, r.error().to_string());
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread timer_;
  // The timer thread's: the last probe of the broker, its answer, and whether
  // the broker was unreachable since deadlines were last restarted.
  std::chrono::steady_clock::time_point last_probe_;
  bool reachable_ = true;
  bool outage_ = false;
  int64_t max_timeout_ms_ = 0;   // the longest step timeout of this instance's sagas
  kafka::HandlePtr probe_;  // a producer handle: creates topics, then probes the broker
};

SagaOrchestrator::SagaOrchestrator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SagaOrchestrator::~SagaOrchestrator() {
  stop();
  (void)join();
}

Result<std::unique_ptr<SagaOrchestrator>> SagaOrchestrator::create(SagaOrchestratorConfig config, Store& store,
                                                                   std::vector<SagaDefinition> sagas) {
  if (config.group_id.empty() || config.reply_topic.empty() || config.source.empty()) {
    return Error{Errc::kInvalidArgument, "saga: group_id, reply_topic and source are required"};
  }
  if (sagas.empty()) return Error{Errc::kInvalidArgument, "saga: no saga definitions"};
  std::set<std::string> names;
  for (const auto& d : sagas) {
    HERALD_TRY(check_definition(d));
    if (!names.insert(d.name).second) return Error{Errc::kInvalidArgument, fmt::format("saga: '{}' twice", d.name)};
  }
  auto impl = std::make_unique<Impl>(std::move(config), store, std::move(sagas));
  HERALD_TRY(impl->init());
  return std::unique_ptr<SagaOrchestrator>(new SagaOrchestrator(std::move(impl)));
}

void SagaOrchestrator::on_finished(std::function<void(const SagaInstance&, Tx&)> fn) {
  impl_->on_finished_ = std::move(fn);
}

Result<void> SagaOrchestrator::begin(Tx& tx, std::string_view saga, std::string_view saga_id, json data) const {
  return impl_->begin(tx, saga, saga_id, std::move(data));
}

Result<void> SagaOrchestrator::start() { return impl_->start(); }
void SagaOrchestrator::stop() { impl_->stop(); }
Result<void> SagaOrchestrator::join() { return impl_->join(); }
bool SagaOrchestrator::ready() const { return impl_->replica_->ready(); }
Replica& SagaOrchestrator::replica() { return *impl_->replica_; }

Result<std::optional<SagaInstance>> SagaOrchestrator::get(Tx& tx, std::string_view id) {
  HERALD_ASSIGN_OR_RETURN(auto row, load(tx, id));
  if (!row) return std::optional<SagaInstance>();
  return std::optional<SagaInstance>(std::move(row->s));
}

Result<std::vector<SagaInstance>> SagaOrchestrator::list(Tx& tx, std::optional<SagaState> state, int limit) {
  std::string sql = fmt::format("SELECT {} FROM herald_sagas", kSagaColumns);
  Params params;
  if (state) {
    sql += " WHERE state = ?";
    params.emplace_back(saga_state_name(*state));
  }
  sql += " ORDER BY created_at, saga_id LIMIT ?";
  params.emplace_back(limit);
  HERALD_ASSIGN_OR_RETURN(auto rows, tx.query(sql, params));
  std::vector<SagaInstance> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    HERALD_ASSIGN_OR_RETURN(auto row, parse_row(r));
    out.push_back(std::move(row.s));
  }
  return out;
}

// ---- the participant -----------------------------------------------------------

SagaParticipant::SagaParticipant(std::string name, std::string source, std::chrono::milliseconds retention)
    : name_(std::move(name)), source_(std::move(source)), retention_(retention) {}

SagaParticipant& SagaParticipant::on(std::string command_type, SagaCommandHandler handler) {
  handlers_.emplace_back(std::move(command_type), std::move(handler));
  return *this;
}

namespace {

void must(const Result<void>& r) {
  if (!r) throw std::runtime_error(r.error().to_string());
}

// Deletes the participant's remembered commands older than its retention,
// at most once a minute (or once per retention, if shorter), inside a
// command's transaction.
struct Pruner {
  std::string participant;
  milliseconds retention;
  std::atomic<int64_t> last_ms{0};

  void maybe_prune(Tx& tx) {
    const int64_t now = now_ms();
    int64_t last = last_ms.load();
    const int64_t every = std::min<int64_t>(60000, retention.count());
    if (now - last < every || !last_ms.compare_exchange_strong(last, now)) return;
    auto n = tx.exec("DELETE FROM herald_saga_commands WHERE participant = ? AND created_at <= ?",
                     {participant, now - retention.count()});
    if (!n) throw std::runtime_error(n.error().to_string());
    if (*n > 0) HLOG_DEBUG("saga participant {}: pruned {} remembered command(s)", participant, *n);
  }
};

// Runs one command once per command_id and replies through the outbox.
void handle_command(const std::string& participant, const Outbox& outbox, const SagaCommandHandler& handler,
                    Pruner& pruner, const Event& ev, Tx& tx) {
  pruner.maybe_prune(tx);
  json c = json::parse(ev.payload);
  SagaCommand cmd;
  cmd.saga_id = c.at("saga_id").get<std::string>();
  cmd.saga = c.value("saga", "");
  cmd.step = c.at("step").get<int>();
  cmd.step_name = c.value("step_name", "");
  cmd.compensation = c.at("compensation").get<bool>();
  cmd.command_id = c.at("command_id").get<std::string>();
  cmd.type = ev.type;
  cmd.data = c.value("data", json::object());
  const std::string reply_to = c.at("reply_to").get<std::string>();

  auto stored = tx.query_one("SELECT reply FROM herald_saga_commands WHERE participant = ? AND command_id = ?",
                             {participant, cmd.command_id});
  if (!stored) throw std::runtime_error(stored.error().to_string());
  json reply;
  if (*stored) {
    reply = json::parse((*stored)->text(0));  // a resend: the same answer, the handler does not run again
  } else {
    if (cmd.compensation) {
      // The step's command must never run after its compensation: it may still come (a dead letter
      // replayed after the saga was compensated); it then gets this refusal instead of running.
      std::string do_id = cmd.command_id;
      if (do_id.ends_with("/undo")) do_id.replace(do_id.size() - 4, 4, "do");
      json refused = {{"saga_id", cmd.saga_id}, {"step", cmd.step}, {"compensation", false},
                      {"command_id", do_id}, {"ok", false},
                      {"reason", "compensated before it ran"}, {"data", json::object()}};
      auto ins = tx.exec("INSERT INTO herald_saga_commands(participant, command_id, reply, created_at) "
                         "VALUES(?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         {participant, refused["command_id"].get<std::string>(), refused.dump(), now_ms()});
      if (!ins) throw std::runtime_error(ins.error().to_string());
    }
    must(tx.exec_script("SAVEPOINT herald_saga_command"));
    SagaReply answer;
    try {
      answer = handler(cmd, tx);
    } catch (...) {
      (void)tx.exec_script("ROLLBACK TO SAVEPOINT herald_saga_command");
      throw;
    }
    must(tx.exec_script(answer.ok ? "RELEASE SAVEPOINT herald_saga_command"
                                  : "ROLLBACK TO SAVEPOINT herald_saga_command"));
    reply = {{"saga_id", cmd.saga_id}, {"step", cmd.step},       {"compensation", cmd.compensation},
             {"command_id", cmd.command_id}, {"ok", answer.ok}, {"reason", answer.reason},
             {"data", answer.data}};
    // A failed compensation is not remembered: its resend runs the handler again.
    if (answer.ok || !cmd.compensation) {
      auto ins = tx.exec("INSERT INTO herald_saga_commands(participant, command_id, reply, created_at) "
                         "VALUES(?, ?, ?, ?)",
                         {participant, cmd.command_id, reply.dump(), now_ms()});
      if (!ins) throw std::runtime_error(ins.error().to_string());
    }
  }
  auto added = outbox.add(tx, reply_to, Event::json(std::string(kSagaReplyType), "", cmd.saga_id, reply));
  if (!added) throw std::runtime_error(added.error().to_string());
}

}  // namespace

Result<void> SagaParticipant::attach(Store& store, ReplicaHandlers& handlers) const {
  if (name_.empty() || source_.empty()) return Error{Errc::kInvalidArgument, "saga participant: name and source are required"};
  HERALD_TRY(store.migrate(saga_migrations()));
  Outbox outbox({.topic = "", .source = source_});
  auto pruner = std::make_shared<Pruner>(name_, retention_);
  for (const auto& [type, handler] : handlers_) {
    handlers.on(type, [participant = name_, outbox, handler = handler, pruner](const Event& ev, Tx& tx) {
      handle_command(participant, outbox, handler, *pruner, ev, tx);
    });
  }
  return ok();
}

}  // namespace herald::sdk
