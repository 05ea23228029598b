// billing: owns invoices and keeps its own copy of the users it bills (table
// `customers`: id, name, email, version, updated_at, and the partition and
// offset of the users event that last changed the row) through libherald's
// Replica. The replica's position in the users topic lives in billing's own
// database, committed in the same transaction as each change to `customers`,
// so a billing that was down (or SIGKILLed) resumes exactly where it stopped
// and catches up on everything it missed.
//
//   GET  /customers               every customer in the replica
//   GET  /customers/{id}          the replica's row | 404
//   GET  /customers/{id}?consistency=strong
//                                 ask users (--users-url) directly: fresher, but
//                                 503 when users is down
//   POST /invoices                {"user_id","amount_cents"} -> 201
//                                 {"id","user_id","email","amount_cents"} | 400 | 422
//   GET  /invoices/{id}           200 | 404
//   GET  /health                  position and lag per partition
//   GET  /ready                   200 once caught up, else 503 with the lag
//
//   billing --listen 127.0.0.1:8082 --brokers 127.0.0.1:9092 --db billing.db
//           --group billing --users-url http://127.0.0.1:8081
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "common.h"
#include "common/log.h"
#include "sdk/envelope.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::examples {
namespace {

using nlohmann::json;

const char* kCustomers = "customers";

const sdk::Migration kInvoicesSchema{
    "example_billing_invoices_v1",
    "CREATE TABLE IF NOT EXISTS invoices ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id TEXT NOT NULL,"
    " email TEXT NOT NULL,"
    " amount_cents BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS invoices ("
    " id BIGSERIAL PRIMARY KEY,"
    " user_id TEXT NOT NULL,"
    " email TEXT NOT NULL,"
    " amount_cents BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL)",
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json invoice_json(const sdk::Row& r) {
  return json{{"id", r.int64(0)},
              {"user_id", r.text(1)},
              {"email", r.text(2)},
              {"amount_cents", r.int64(3)},
              {"created_at", sdk::format_rfc3339(r.int64(4))}};
}

class BillingService {
 public:
  BillingService(sdk::Store& store, std::string users_url) : store_(store), users_url_(std::move(users_url)) {}

  void routes(httplib::Server& s) {
    s.Get("/customers", [this](const auto& req, auto& res) { list_customers(req, res); });
    s.Get(R"(/customers/([^/]+))", [this](const auto& req, auto& res) { get_customer(req, res); });
    s.Post("/invoices", [this](const auto& req, auto& res) { create_invoice(req, res); });
    s.Get(R"(/invoices/([^/]+))", [this](const auto& req, auto& res) { get_invoice(req, res); });
  }

 private:
  void list_customers(const httplib::Request&, httplib::Response& res) {
    auto rows = read_replica_rows(store_, kCustomers);
    if (!rows) return store_failure(res, rows.error());
    reply_json(res, 200, *rows);
  }

  void get_customer(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    std::string consistency = req.has_param("consistency") ? req.get_param_value("consistency") : "eventual";
    if (consistency == "strong") return ask_users(id, res);
    if (consistency != "eventual") {
      return reply_error(res, 400, "consistency must be 'eventual' (the replica, default) or 'strong' (ask users)");
    }
    auto row = read_replica_row(store_, kCustomers, id);
    if (!row) return store_failure(res, row.error());
    if (!*row) return reply_error(res, 404, fmt::format("no customer '{}' in billing's replica", id));
    json j = **row;
    j["source"] = "replica";
    reply_json(res, 200, j);
  }

  // The "just ask the owner" alternative: always fresh, but billing now fails
  // whenever users does.
  void ask_users(const std::string& id, httplib::Response& res) {
    if (users_url_.empty()) return reply_error(res, 503, "no --users-url configured");
    if (!valid_user_id(id)) return reply_error(res, 404, fmt::format("no user '{}'", id));
    httplib::Client cli(users_url_);
    cli.set_connection_timeout(std::chrono::seconds(2));
    cli.set_read_timeout(std::chrono::seconds(3));
    auto r = cli.Get(fmt::format("/users/{}", id));
    if (!r) {
      return reply_json(res, 503,
                        json{{"error", fmt::format("users service unavailable at {}: {} error", users_url_,
                                                   httplib::to_string(r.error()))},
                             {"hint", "the default (replica) read keeps working: drop ?consistency=strong"}});
    }
    if (r->status == 404) return reply_error(res, 404, fmt::format("no user '{}' in users", id));
    if (r->status != 200) {
      return reply_error(res, 502, fmt::format("users answered {}: {}", r->status, r->body));
    }
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return reply_error(res, 502, "users answered with invalid JSON");
    json out{{"id", j.value("id", id)},
             {"name", j.value("name", "")},
             {"email", j.value("email", "")},
             {"version", j.value("version", int64_t{0})},
             {"updated_at", j.value("updated_at", "")},
             {"source", "users"}};
    reply_json(res, 200, out);
  }

  void create_invoice(const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req, res);
    if (!body) return;
    auto user_id = string_field(*body, "user_id");
    auto amount = body->find("amount_cents");
    if (!user_id || user_id->empty()) return reply_error(res, 400, "field \"user_id\" is required (a string)");
    if (amount == body->end() || !amount->is_number_integer()) {
      return reply_error(res, 400, "field \"amount_cents\" is required (an integer)");
    }
    const int64_t cents = amount->get<int64_t>();
    if (cents <= 0) return reply_error(res, 400, "amount_cents must be positive");

    std::optional<json> invoice;
    auto r = store_.run([&](sdk::Tx& tx) -> Result<void> {
      invoice.reset();
      HERALD_ASSIGN_OR_RETURN(auto cust, tx.query_one("SELECT email FROM customers WHERE id = ?", {*user_id}));
      if (!cust) return ok();
      HERALD_ASSIGN_OR_RETURN(
          auto row, tx.query_one("INSERT INTO invoices (user_id, email, amount_cents, created_at) VALUES (?, ?, ?, ?) "
                                 "RETURNING id, user_id, email, amount_cents, created_at",
                                 {*user_id, cust->text(0), static_cast<long long>(cents),
                                  static_cast<long long>(now_ms())}));
      if (!row) return Error{Errc::kIoError, "INSERT ... RETURNING returned no row"};
      invoice = invoice_json(*row);
      return ok();
    });
    if (!r) return store_failure(res, r.error());
    if (!invoice) {
      return reply_error(res, 422, fmt::format("user '{}' is unknown to billing's replica", *user_id));
    }
    HLOG_INFO("invoice {} for {} <{}>: {} cents", (*invoice)["id"].get<int64_t>(), *user_id,
              (*invoice)["email"].get<std::string>(), cents);
    reply_json(res, 201, *invoice);
  }

  void get_invoice(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    int64_t n = 0;
    for (char c : id) {
      if (c < '0' || c > '9' || n > (INT64_MAX - 9) / 10) return reply_error(res, 404, "no such invoice");
      n = n * 10 + (c - '0');
    }
    std::optional<json> invoice;
    auto r = store_.run(
        [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT id, user_id, email, amount_cents, created_at "
                                                         "FROM invoices WHERE id = ?",
                                                         {static_cast<long long>(n)}));
          invoice.reset();
          if (row) invoice = invoice_json(*row);
          return ok();
        },
        5, sdk::TxOptions{.read_only = true});
    if (!r) return store_failure(res, r.error());
    if (!invoice) return reply_error(res, 404, fmt::format("no invoice {}", id));
    reply_json(res, 200, *invoice);
  }

  static void store_failure(httplib::Response& res, const Error& e) {
    HLOG_ERROR("database: {}", e.to_string());
    reply_error(res, 503, fmt::format("database unavailable: {}", e.message));
  }

  sdk::Store& store_;
  std::string users_url_;
};

int run(int argc, char** argv) {
  CLI::App app{"billing: owns invoices; keeps a replica of users (its position stored in its own database)"};
  CommonFlags flags;
  add_common_flags(app, flags, "billing.db");
  std::string group = "billing";
  std::string users_url;
  std::string client_id;
  app.add_option("--group", group, "Consumer group (instances of one billing share it and split the partitions)")
      ->capture_default_str();
  app.add_option("--users-url", users_url, "Base URL of users, for ?consistency=strong (e.g. http://127.0.0.1:8081)");
  app.add_option("--client-id", client_id, "Kafka client.id shown by `herald group describe` [GROUP-PID]");
  CLI11_PARSE(app, argc, argv);
  if (client_id.empty()) client_id = fmt::format("{}-{}", group, getpid());
  while (!users_url.empty() && users_url.back() == '/') users_url.pop_back();

  block_shutdown_signals();
  setup_logging("billing", flags.log_level);

  auto store = sdk::Store::open(flags.db);
  if (!store) {
    HLOG_ERROR("opening database {}: {}", flags.db, store.error().to_string());
    return 1;
  }
  auto migrations = users_replica_migrations("example_billing_customers", kCustomers);
  migrations.push_back(kInvoicesSchema);
  if (auto r = (*store)->migrate(migrations); !r) {
    HLOG_ERROR("creating tables: {}", r.error().to_string());
    return 1;
  }
  if (auto r = ensure_users_topic(flags); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }

  sdk::ReplicaHandlers handlers;
  add_users_handlers(handlers, kCustomers, [](std::string_view kind, const std::string& id, const std::string& email) {
    if (kind == kUserDeleted) {
      HLOG_DEBUG("customer {} deleted", id);
    } else {
      HLOG_DEBUG("customer {} <{}> ({})", id, email, kind);
    }
  });
  auto replica = sdk::Replica::create(users_replica_config(flags, group, client_id), **store, std::move(handlers));
  if (!replica) {
    HLOG_ERROR("replica: {}", replica.error().to_string());
    return 1;
  }
  (*replica)->on_ready([] { HLOG_INFO("replica of users caught up: ready"); });

  BillingService svc(**store, users_url);
  HttpService http;
  svc.routes(http.server());
  add_replica_endpoints(http.server(), "billing", **replica, [&](json& j) {
    j["group"] = group;
    j["client_id"] = client_id;
  });
  auto port = http.bind(flags.listen, flags.port_file);
  if (!port) {
    HLOG_ERROR("{}", port.error().to_string());
    return 1;
  }
  if (auto r = (*replica)->start(); !r) {
    HLOG_ERROR("replica: {}", r.error().to_string());
    return 1;
  }
  http.start();
  HLOG_INFO("billing listening on http://127.0.0.1:{} (group {}, brokers {}, db {})", *port, group, flags.brokers,
            flags.db);

  int sig = wait_for_shutdown_signal([&] { return (*replica)->running(); });
  if (sig != 0) {
    HLOG_INFO("signal {}: shutting down", sig);
  } else {
    HLOG_ERROR("the replica stopped on its own; exiting so that a supervisor restarts billing");
  }
  http.stop();
  (*replica)->stop();
  auto r = (*replica)->join();
  if (!r || sig == 0) {
    if (!r) HLOG_ERROR("replica: {}", r.error().to_string());
    return 1;
  }
  HLOG_INFO("stopped");
  return 0;
}

}  // namespace
}  // namespace herald::examples

int main(int argc, char** argv) { return herald::examples::run(argc, argv); }
