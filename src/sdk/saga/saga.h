// Sagas: work that spans services, run as a chain of local transactions, with
// compensating transactions that undo the completed steps when a later one
// fails or times out (orchestration, not choreography: one orchestrator keeps
// each saga's state and tells the participants what to do).
//
// Declaring a saga (once, in the orchestrating service):
//   SagaDefinition order{"order", {
//       {.name = "reserve_credit", .topic = "payments.commands", .command = "payments.reserve_credit",
//        .compensation = "payments.release_credit", .timeout = std::chrono::seconds(10)},
//       {.name = "reserve_stock", .topic = "inventory.commands", .command = "inventory.reserve_stock",
//        .compensation = "inventory.release_stock", .timeout = std::chrono::seconds(10)}}};
//   HERALD_ASSIGN_OR_RETURN(auto sagas, SagaOrchestrator::create(cfg, *store, {order}));
//   sagas->on_finished([](const SagaInstance& s, Tx& tx) { /* mark the order APPROVED/REJECTED */ });
//   HERALD_TRY(sagas->start());
//   // in the service's own transaction, together with its own row:
//   HERALD_TRY(store->run([&](Tx& tx) -> Result<void> {
//     HERALD_TRY(tx.exec("INSERT INTO orders ...", {...}));
//     return sagas->begin(tx, "order", order_id, {{"amount_cents", 300}, ...});
//   }));
//   // an OutboxRelay of the same store publishes the commands.
//
// A participant (a service that owns one step's data):
//   SagaParticipant payments("payments", "/payments");
//   payments.on("payments.reserve_credit", [](const SagaCommand& c, Tx& tx) -> SagaReply {
//     ... if (short) return SagaReply::failure("insufficient credit");
//     return SagaReply::success();
//   });
//   payments.on("payments.release_credit", ...);   // a compensation: idempotent
//   ReplicaHandlers handlers;
//   HERALD_TRY(payments.attach(*store, handlers));  // then a Replica over payments.commands
//
// Messages. A command is an event on the step's topic, key = saga id, ce_type
// = the step's command (or compensation), payload {"saga_id", "saga", "step",
// "step_name", "compensation", "command_id", "reply_to", "data"}. The reply is
// an event of ce_type "herald.saga.reply" on the orchestrator's reply topic,
// key = saga id, payload {"saga_id", "step", "compensation", "command_id", "ok",
// "reason", "data"}. A step's command and its compensation go to the same
// topic with the same key, so a participant handles the command first (unless
// the command was dead-lettered: see below).
//
// Guarantees (both sides are Replicas writing through the Outbox, so each
// message's effect, its offset and the next message commit together):
//   - A saga never skips or repeats a step across crashes of any process.
//   - Forward commands are sent once. Their replies are matched by (step,
//     direction); late or duplicate replies are ignored.
//   - A failure reply at step k compensates steps k-1..0 in reverse order; a
//     timeout at step k compensates k..0 (the participant may have done step k
//     after all, so its compensation runs too, after the command).
//   - A compensation is resent until a participant confirms it (same
//     command_id each time; compensations must be idempotent and must succeed
//     when the command they undo was never applied). After
//     max_compensation_retries resends without success the saga is failed:
//     it needs attention (`herald saga list --state failed`).
//   - Participants apply each command_id once: a repeated command gets the
//     stored reply again without running the handler. A failed compensation
//     is not stored, so its resend runs the handler again. Stored replies
//     are pruned after the participant's retention (7 days by default).
//   - A command never runs after its compensation: handling a compensation
//     stores the forward command as refused, so a late one (a dead letter
//     replayed after the saga was compensated) gets that refusal.
//   - Every state change is also published on `herald.sagas` (key = saga id),
//     the history `herald saga list|show` prints.
//
// States: running (waiting for step N), compensating (waiting for step N's
// compensation), then completed, compensated or failed (terminal).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::sdk {

inline constexpr std::string_view kSagaReplyType = "herald.saga.reply";
inline constexpr std::string_view kSagaEventsTopic = "herald.sagas";

struct SagaStep {
  std::string name;          // "reserve_credit"
  std::string topic;         // the participant's command topic
  std::string command;       // ce_type of the command
  std::string compensation;  // ce_type of the compensating command; empty = nothing to undo
  std::chrono::milliseconds timeout{0};  // 0 = wait for the reply forever
};

struct SagaDefinition {
  std::string name;  // "order"
  std::vector<SagaStep> steps;
};

enum class SagaState : uint8_t { kRunning, kCompensating, kCompleted, kCompensated, kFailed };
const char* saga_state_name(SagaState s);
std::optional<SagaState> parse_saga_state(std::string_view name);

struct SagaInstance {
  std::string id;
  std::string saga;          // definition name
  SagaState state = SagaState::kRunning;
  int step = 0;              // the step waited for (running) or being compensated
  nlohmann::json data;       // begin()'s data, merged with the data of every success reply
  std::string reason;        // why it compensates / failed (first failure)
  int attempts = 0;          // sends of the current compensation
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;

  bool terminal() const { return state >= SagaState::kCompleted; }
};

struct SagaOrchestratorConfig {
  std::string brokers = "127.0.0.1:9092";
  std::string group_id;      // consumer group of the reply Replica (and herald_offsets key)
  std::string reply_topic;   // where participants reply
  std::string source;        // ce_source of commands and saga events
  std::string events_topic = std::string(kSagaEventsTopic);
  int topic_partitions = 3;  // for the topics create() makes when missing
  int max_compensation_retries = 10;
  std::chrono::milliseconds compensation_backoff{1000};   // after a failed compensation
  std::chrono::milliseconds compensation_timeout{30000};  // resend when unconfirmed (steps without timeout)
  std::chrono::milliseconds timer_interval{200};          // how often deadlines are checked
  // Terminal sagas (completed, compensated, failed) are deleted from
  // herald_sagas this long after they finished, checked every prune_interval;
  // 0 keeps them. Their history stays in events_topic either way.
  std::chrono::milliseconds finished_retention{std::chrono::hours(24 * 30)};
  std::chrono::milliseconds prune_interval{std::chrono::minutes(1)};
  // Extra librdkafka properties for the reply consumer (session.timeout.ms,
  // group.instance.id, ...) and for topic creation.
  std::vector<std::pair<std::string, std::string>> kafka;
};

class SagaOrchestrator {
 public:
  // Checks the definitions, applies the saga tables (herald_sagas,
  // herald_saga_commands), creates missing topics (reply, events, every
  // step's) and the reply Replica. kInvalidArgument for a bad config or
  // definition (no steps, duplicate names, a step without topic or command).
  static Result<std::unique_ptr<SagaOrchestrator>> create(SagaOrchestratorConfig config, Store& store,
                                                          std::vector<SagaDefinition> sagas);
  ~SagaOrchestrator();  // stop() + join()
  SagaOrchestrator(const SagaOrchestrator&) = delete;
  SagaOrchestrator& operator=(const SagaOrchestrator&) = delete;

  // Runs in the transaction that makes a saga terminal (completed,
  // compensated or failed), e.g. to set the business row's final state.
  // Throwing rolls that transaction back (the reply is retried). Set before start().
  void on_finished(std::function<void(const SagaInstance&, Tx&)> fn);

  // Starts saga `saga` with id `saga_id` inside `tx`: records it and adds the
  // first command to the outbox, so both exist iff `tx` commits.
  // kInvalidArgument for an unknown saga or empty id, kAlreadyExists when the id
  // is taken (by a saga not yet pruned: see finished_retention).
  Result<void> begin(Tx& tx, std::string_view saga, std::string_view saga_id, nlohmann::json data) const;

  // Consumes replies and checks deadlines on background threads until stop().
  Result<void> start();
  void stop();
  Result<void> join();  // the reply Replica's result

  bool ready() const;  // the reply Replica has caught up
  Replica& replica();

  // The saga `id` as stored, or nullopt.
  static Result<std::optional<SagaInstance>> get(Tx& tx, std::string_view id);
  // Sagas in `state` (all when nullopt), oldest first, at most `limit`.
  static Result<std::vector<SagaInstance>> list(Tx& tx, std::optional<SagaState> state, int limit = 1000);

  class Impl;

 private:
  explicit SagaOrchestrator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- the participant side ---------------------------------------------------

struct SagaCommand {
  std::string saga_id;
  std::string saga;
  int step = 0;
  std::string step_name;
  bool compensation = false;
  std::string command_id;  // the same for every resend of one command
  std::string type;        // ce_type
  nlohmann::json data;     // the saga's data
};

struct SagaReply {
  bool ok = true;
  std::string reason;                               // why not (failure)
  nlohmann::json data = nlohmann::json::object();   // merged into the saga's data on success

  static SagaReply success(nlohmann::json data = nlohmann::json::object()) { return {true, {}, std::move(data)}; }
  static SagaReply failure(std::string reason) { return {false, std::move(reason), nlohmann::json::object()}; }
};

// Runs inside the participant Replica's transaction. Return failure() for a
// business refusal: whatever the handler wrote is rolled back (a savepoint)
// and the failure is replied. Throw for a transient error: the Replica
// retries the command (and finally dead-letters it).
using SagaCommandHandler = std::function<SagaReply(const SagaCommand&, Tx&)>;

class SagaParticipant {
 public:
  // `name` keys the command deduplication table (herald_saga_commands);
  // `source` is the ce_source of the replies. Answered commands are
  // remembered for `retention` (checked once a minute, in the command
  // transactions); it must exceed the longest time an orchestrator keeps
  // resending a compensation (max_compensation_retries x its timeout).
  SagaParticipant(std::string name, std::string source,
                  std::chrono::milliseconds retention = std::chrono::hours(24 * 7));

  SagaParticipant& on(std::string command_type, SagaCommandHandler handler);

  // Applies the saga tables to `store` and registers every handler on
  // `handlers` (those of a Replica over the participant's command topic,
  // whose store must be `store`).
  Result<void> attach(Store& store, ReplicaHandlers& handlers) const;

 private:
  std::string name_;
  std::string source_;
  std::chrono::milliseconds retention_;
  std::vector<std::pair<std::string, SagaCommandHandler>> handlers_;
};

// herald_sagas and herald_saga_commands (applied by create() and attach()).
const std::vector<Migration>& saga_migrations();

}  // namespace herald::sdk
