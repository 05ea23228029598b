// Snippets for docs/sagas.md, sections "Declaring a saga" and "A
// participant". See outbox_snippet.cc.
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "sdk/saga/saga.h"
#include "sdk/store/store.h"
#include "snippets.h"

namespace herald::snippets {

using namespace herald::sdk;

Result<std::unique_ptr<SagaOrchestrator>> saga_orchestrator_example(Store& store, const std::string& brokers) {
  auto made = store.run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, customer_id TEXT, state TEXT)"));
    return ok();
  });
  HERALD_TRY(made);
  // [START saga_orchestrator]
  SagaDefinition order{"order", {
      {.name = "reserve_credit", .topic = "payments.commands", .command = "payments.reserve_credit",
       .compensation = "payments.release_credit", .timeout = std::chrono::seconds(10)},
      {.name = "reserve_stock", .topic = "inventory.commands", .command = "inventory.reserve_stock",
       .compensation = "inventory.release_stock", .timeout = std::chrono::seconds(10)}}};

  SagaOrchestratorConfig cfg;
  cfg.brokers = brokers;
  cfg.group_id = "orders";                 // the reply replica's group
  cfg.reply_topic = "orders.saga-replies";
  cfg.source = "/orders";
  // Creates the saga tables and the topics.
  HERALD_ASSIGN_OR_RETURN(auto sagas, SagaOrchestrator::create(cfg, store, {order}));
  sagas->on_finished([](const SagaInstance& s, Tx& tx) {
    // Runs in the saga's last transaction: completed, compensated or failed.
    // Throwing rolls it back; the reply is tried again.
    auto r = tx.exec("UPDATE orders SET state = ? WHERE id = ?",
                     {s.state == SagaState::kCompleted ? "APPROVED" : "REJECTED", s.id});
    if (!r) throw std::runtime_error(r.error().to_string());
  });
  HERALD_TRY(sagas->start());
  // Plus an OutboxRelay on the same store, which publishes the commands.

  // Start one in the same transaction as your own row:
  const std::string order_id = "order-1", customer = "customer-7";
  auto begun = store.run([&](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("INSERT INTO orders (id, customer_id, state) VALUES (?, ?, 'PENDING')", {order_id, customer}));
    return sagas->begin(tx, "order", order_id, {{"customer_id", customer}, {"amount_cents", 300}});
  });
  HERALD_TRY(begun);
  // [END saga_orchestrator]
  return sagas;
}

Result<void> saga_participant_example(Store& store, ReplicaHandlers& handlers) {
  auto made = store.run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("CREATE TABLE IF NOT EXISTS customers (id TEXT PRIMARY KEY, credit_cents INTEGER)"));
    HERALD_TRY(tx.exec("CREATE TABLE IF NOT EXISTS credit_reservations "
                       "(saga_id TEXT PRIMARY KEY, customer_id TEXT, amount_cents INTEGER)"));
    return ok();
  });
  HERALD_TRY(made);
  // [START saga_participant]
  SagaParticipant payments("payments", "/payments");
  payments.on("payments.reserve_credit", [](const SagaCommand& c, Tx& tx) -> SagaReply {
    // c.saga_id, c.step, c.data (the saga's data), c.command_id
    const int64_t amount = c.data.at("amount_cents").get<int64_t>();
    const std::string customer = c.data.at("customer_id").get<std::string>();
    auto taken = tx.exec("UPDATE customers SET credit_cents = credit_cents - ? WHERE id = ? AND credit_cents >= ?",
                         {amount, customer, amount});
    if (!taken) throw std::runtime_error(taken.error().to_string());  // transient: retried
    if (*taken == 0) return SagaReply::failure("insufficient credit");  // a business refusal
    auto kept = tx.exec("INSERT INTO credit_reservations (saga_id, customer_id, amount_cents) VALUES (?, ?, ?)",
                        {c.saga_id, customer, amount});
    if (!kept) throw std::runtime_error(kept.error().to_string());
    return SagaReply::success();  // optional data, merged into the saga's data
  });
  // The compensation: undoes this saga's reservation if there is one, and succeeds when there is none.
  payments.on("payments.release_credit", [](const SagaCommand& c, Tx& tx) -> SagaReply {
    auto back = tx.exec("UPDATE customers SET credit_cents = credit_cents + "
                        "(SELECT amount_cents FROM credit_reservations WHERE saga_id = ?) "
                        "WHERE id = (SELECT customer_id FROM credit_reservations WHERE saga_id = ?)",
                        {c.saga_id, c.saga_id});
    if (!back) throw std::runtime_error(back.error().to_string());
    auto gone = tx.exec("DELETE FROM credit_reservations WHERE saga_id = ?", {c.saga_id});
    if (!gone) throw std::runtime_error(gone.error().to_string());
    return SagaReply::success();
  });
  // Then a Replica over payments.commands with these handlers, and an OutboxRelay.
  HERALD_TRY(payments.attach(store, handlers));
  // [END saga_participant]
  return ok();
}

}  // namespace herald::snippets
