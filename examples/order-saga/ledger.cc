#include "ledger.h"

#include <fmt/format.h>

#include <stdexcept>

#include "common.h"
#include "common/log.h"
#include "saga_service.h"

namespace herald::examples::saga {

using nlohmann::json;

namespace {

void must(const Result<int64_t>& r) {
  if (!r) throw std::runtime_error(r.error().to_string());  // a database error: the replica retries
}

}  // namespace

sdk::Migration Ledger::schema(const std::string& id) const {
  std::string sql = fmt::format(
      "CREATE TABLE IF NOT EXISTS {0} (id TEXT PRIMARY KEY, {1} BIGINT NOT NULL, {2} BIGINT NOT NULL);"
      "CREATE TABLE IF NOT EXISTS {3} (order_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, amount BIGINT NOT NULL)",
      accounts, available, reserved, reservations);
  return {id, sql, sql};
}

sdk::SagaReply Ledger::reserve(const sdk::SagaCommand& c, sdk::Tx& tx) const {
  const std::string account = c.data.value(account_ref, "");
  const int64_t amount = c.data.value(amount_ref, int64_t{0});
  auto row = tx.query_one(fmt::format("SELECT {} FROM {} WHERE id = ?", available, accounts), {account});
  if (!row) throw std::runtime_error(row.error().to_string());
  if (!*row) return sdk::SagaReply::failure(fmt::format("unknown {} account '{}'", what, account));
  const int64_t have = (*row)->int64(0);
  if (have < amount) {
    return sdk::SagaReply::failure(fmt::format("insufficient {}: {} has {}, the order needs {}", what, account, have, amount));
  }
  must(tx.exec(fmt::format("UPDATE {0} SET {1} = {1} - ?, {2} = {2} + ? WHERE id = ?", accounts, available, reserved),
               {amount, amount, account}));
  must(tx.exec(fmt::format("INSERT INTO {} (order_id, account_id, amount) VALUES (?, ?, ?)", reservations),
               {c.saga_id, account, amount}));
  HLOG_INFO("order {}: reserved {} {} of {}", c.saga_id, amount, what, account);
  return sdk::SagaReply::success();
}

sdk::SagaReply Ledger::release(const sdk::SagaCommand& c, sdk::Tx& tx) const {
  // Idempotent, and a no-op when the reservation was never made (refused).
  auto row = tx.query_one(fmt::format("SELECT account_id, amount FROM {} WHERE order_id = ?", reservations),
                          {c.saga_id});
  if (!row) throw std::runtime_error(row.error().to_string());
  if (!*row) return sdk::SagaReply::success();
  const std::string account = (*row)->text(0);
  const int64_t amount = (*row)->int64(1);
  must(tx.exec(fmt::format("UPDATE {0} SET {1} = {1} + ?, {2} = {2} - ? WHERE id = ?", accounts, available, reserved),
               {amount, amount, account}));
  must(tx.exec(fmt::format("DELETE FROM {} WHERE order_id = ?", reservations), {c.saga_id}));
  HLOG_INFO("order {}: released {} {} of {}", c.saga_id, amount, what, account);
  return sdk::SagaReply::success();
}

void Ledger::routes(httplib::Server& server, sdk::Store& store) const {
  auto to_json = [this](const sdk::Row& r) {
    return json{{"id", r.text(0)}, {available, r.int64(1)}, {reserved, r.int64(2)}};
  };
  const std::string select = fmt::format("SELECT id, {}, {} FROM {}", available, reserved, accounts);

  server.Post("/" + accounts, [this, &store](const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req, res);
    if (!body) return;
    auto id = string_field(*body, "id");
    auto amount = int_field(*body, available.c_str(), 0);
    if (!id || !valid_user_id(*id) || !amount) {
      return reply_error(res, 400, fmt::format("need {{\"id\": [A-Za-z0-9._-]{{1,64}}, \"{}\": integer >= 0}}", available));
    }
    auto r = store.run([&](sdk::Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec(fmt::format("INSERT INTO {} (id, {}, {}) VALUES (?, ?, 0)", accounts, available, reserved),
                         {*id, *amount}));
      return ok();
    });
    if (!r && r.error().code == Errc::kAlreadyExists) return reply_error(res, 409, fmt::format("'{}' exists", *id));
    if (!r) return reply_error(res, 503, fmt::format("database unavailable: {}", r.error().message));
    HLOG_INFO("{} {}: {} {}", accounts, *id, available, *amount);
    reply_json(res, 201, json{{"id", *id}, {available, *amount}, {reserved, 0}});
  });
  server.Get("/" + accounts + R"(/([^/]+))", [&store, select, to_json](const httplib::Request& req,
                                                                       httplib::Response& res) {
    std::optional<json> out;
    const std::string id = req.matches[1];
    if (!read_json(store, res, [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one(select + " WHERE id = ?", {id}));
          if (row) out = to_json(*row);
          return ok();
        })) {
      return;
    }
    if (!out) return reply_error(res, 404, fmt::format("no '{}'", id));
    reply_json(res, 200, *out);
  });
  server.Get("/" + accounts, [&store, select, to_json](const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    if (!read_json(store, res, [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto rows, tx.query(select + " ORDER BY id"));
          for (const auto& r : rows) out.push_back(to_json(r));
          return ok();
        })) {
      return;
    }
    reply_json(res, 200, out);
  });
  server.Get("/reservations", [this, &store](const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    if (!read_json(store, res, [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto rows, tx.query(fmt::format(
                                                 "SELECT order_id, account_id, amount FROM {} ORDER BY order_id",
                                                 reservations)));
          for (const auto& r : rows) out.push_back({{"order_id", r.text(0)}, {"account_id", r.text(1)}, {"amount", r.int64(2)}});
          return ok();
        })) {
      return;
    }
    reply_json(res, 200, out);
  });
}

}  // namespace herald::examples::saga
