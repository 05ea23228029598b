// orders: owns orders and runs the order saga. POST /orders stores the order
// as PENDING and starts the saga in the same local transaction; the saga's
// commands leave through the outbox, the participants' replies come back
// through a Replica, and the order ends APPROVED (credit and stock reserved)
// or REJECTED with the reason (whatever was reserved is released first).
//
//   POST /orders        {"customer_id","item","quantity","amount_cents"[,"id"]}
//                       -> 202 {"id","state":"PENDING"} | 400 | 409 (id taken)
//   GET  /orders/{id}   {"id","state","reason","customer_id","item","quantity","amount_cents"} | 404
//   GET  /orders        every order (?state=PENDING|APPROVED|REJECTED)
//   GET  /health        the reply replica and the outbox; /ready once caught up
//
//   orders --listen 127.0.0.1:8090 --brokers 127.0.0.1:9092 --db orders.db [--step-timeout-ms 10000]
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>

#include "common/log.h"
#include "saga_service.h"
#include "sdk/outbox/outbox.h"
#include "sdk/uuid.h"

namespace herald::examples::saga {
namespace {

using nlohmann::json;

const char* kOrdersSql =
    "CREATE TABLE IF NOT EXISTS orders ("
    " id TEXT PRIMARY KEY,"
    " customer_id TEXT NOT NULL,"
    " item TEXT NOT NULL,"
    " quantity BIGINT NOT NULL,"
    " amount_cents BIGINT NOT NULL,"
    " state TEXT NOT NULL,"  // PENDING, APPROVED, REJECTED
    " reason TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL)";
const sdk::Migration kOrdersSchema{"example_orders_v1", kOrdersSql, kOrdersSql};
constexpr const char* kOrderColumns = "id, state, reason, customer_id, item, quantity, amount_cents";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json order_json(const sdk::Row& r) {
  return json{{"id", r.text(0)},          {"state", r.text(1)}, {"reason", r.text(2)},
              {"customer_id", r.text(3)}, {"item", r.text(4)},  {"quantity", r.int64(5)},
              {"amount_cents", r.int64(6)}};
}

sdk::SagaDefinition order_saga(std::chrono::milliseconds step_timeout) {
  return {"order",
          {{.name = "reserve_credit",
            .topic = kPaymentsCommands,
            .command = "payments.reserve_credit",
            .compensation = "payments.release_credit",
            .timeout = step_timeout},
           {.name = "reserve_stock",
            .topic = kInventoryCommands,
            .command = "inventory.reserve_stock",
            .compensation = "inventory.release_stock",
            .timeout = step_timeout}}};
}

// The order's final state, written in the saga's last transaction.
void finish_order(const sdk::SagaInstance& s, sdk::Tx& tx) {
  std::string state = s.state == sdk::SagaState::kCompleted ? "APPROVED" : "REJECTED";
  std::string reason = s.state == sdk::SagaState::kFailed ? "needs attention: " + s.reason : s.reason;
  auto r = tx.exec("UPDATE orders SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                   {state, reason, now_ms(), s.id});
  if (!r) throw std::runtime_error(r.error().to_string());
  HLOG_INFO("order {}: {}{}", s.id, state, reason.empty() ? "" : " (" + reason + ")");
}

void routes(httplib::Server& server, sdk::Store& store, const sdk::SagaOrchestrator& sagas) {
  server.Post("/orders", [&](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req, res);
    if (!body) return;
    auto customer = string_field(*body, "customer_id");
    auto item = string_field(*body, "item");
    auto quantity = int_field(*body, "quantity", 1);
    auto amount = int_field(*body, "amount_cents", 0);
    std::string id = string_field(*body, "id").value_or(sdk::new_uuid_v7());
    if (!customer || !valid_user_id(*customer) || !item || !valid_user_id(*item) || !quantity || !amount ||
        !valid_user_id(id)) {
      return reply_error(res, 400,
                         "need {\"customer_id\", \"item\", \"quantity\": integer >= 1, \"amount_cents\": integer >= 0} "
                         "(ids: [A-Za-z0-9._-]{1,64})");
    }
    json data = {{"customer_id", *customer}, {"item", *item}, {"quantity", *quantity}, {"amount_cents", *amount}};
    auto r = store.run([&](sdk::Tx& tx) -> Result<void> {
      const int64_t now = now_ms();
      HERALD_TRY(tx.exec("INSERT INTO orders (id, customer_id, item, quantity, amount_cents, state, reason, "
                         "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'PENDING', '', ?, ?)",
                         {id, *customer, *item, *quantity, *amount, now, now}));
      return sagas.begin(tx, "order", id, data);
    });
    if (!r && r.error().code == Errc::kAlreadyExists) return reply_error(res, 409, fmt::format("order '{}' exists", id));
    if (!r) {
      HLOG_ERROR("database: {}", r.error().to_string());
      return reply_error(res, 503, fmt::format("database unavailable: {}", r.error().message));
    }
    HLOG_INFO("order {}: PENDING ({} x {} for {}, {} cents)", id, *quantity, *item, *customer, *amount);
    reply_json(res, 202, json{{"id", id}, {"state", "PENDING"}});
  });
  server.Get(R"(/orders/([^/]+))", [&](const httplib::Request& req, httplib::Response& res) {
    std::optional<json> out;
    const std::string id = req.matches[1];
    if (!read_json(store, res, [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one(fmt::format("SELECT {} FROM orders WHERE id = ?",
                                                                     kOrderColumns), {id}));
          if (row) out = order_json(*row);
          return ok();
        })) {
      return;
    }
    if (!out) return reply_error(res, 404, fmt::format("no order '{}'", id));
    reply_json(res, 200, *out);
  });
  server.Get("/orders", [&](const httplib::Request& req, httplib::Response& res) {
    json out = json::array();
    const std::string state = req.get_param_value("state");
    if (!read_json(store, res, [&](sdk::Tx& tx) -> Result<void> {
          std::string sql = fmt::format("SELECT {} FROM orders", kOrderColumns);
          sdk::Params params;
          if (!state.empty()) {
            sql += " WHERE state = ?";
            params.emplace_back(state);
          }
          HERALD_ASSIGN_OR_RETURN(auto rows, tx.query(sql + " ORDER BY created_at, id", params));
          for (const auto& r : rows) out.push_back(order_json(r));
          return ok();
        })) {
      return;
    }
    reply_json(res, 200, out);
  });
}

int run(int argc, char** argv) {
  ServiceRuntime rt;
  rt.name = "orders";
  int64_t step_timeout_ms = 10000;
  auto code = rt.init(argc, argv, "orders: owns orders; runs the order saga (reserve credit in payments, then stock "
                      "in inventory)", kOrdersSchema, [&](CLI::App& app) {
                        app.add_option("--step-timeout-ms", step_timeout_ms,
                                       "A step without a reply for this long is compensated (0: wait forever)")
                            ->capture_default_str();
                      });
  if (code) return *code;
  sdk::SagaOrchestratorConfig cfg;
  cfg.brokers = rt.flags.brokers;
  cfg.group_id = "orders";
  cfg.reply_topic = kOrdersReplies;
  cfg.source = "/orders";
  cfg.topic_partitions = kPartitions;
  cfg.kafka = rt.consumer_kafka();
  auto created = sdk::SagaOrchestrator::create(cfg, *rt.store, {order_saga(std::chrono::milliseconds(step_timeout_ms))});
  if (!created) {
    HLOG_ERROR("saga orchestrator: {}", created.error().to_string());
    return 1;
  }
  sdk::SagaOrchestrator& sagas = **created;
  sagas.on_finished(finish_order);
  sagas.replica().on_ready([] { HLOG_INFO("orders caught up with {}: ready", kOrdersReplies); });
  routes(rt.http.server(), *rt.store, sagas);
  sdk::Store& store = *rt.store;
  return rt.serve({sagas.replica(), [&] { return sagas.start(); }, [&] { sagas.stop(); }, [&] { return sagas.join(); }},
                  fmt::format(", step timeout {} ms", step_timeout_ms), [&store](json& j) {
                    auto pending = sdk::outbox_pending(store);
                    j["outbox_pending"] = pending ? *pending : -1;
                  });
}

}  // namespace
}  // namespace herald::examples::saga

int main(int argc, char** argv) { return herald::examples::saga::run(argc, argv); }
