// users: the service that owns users. Every change is written to its table
// and, in the same local transaction, to the outbox; the outbox relay then
// publishes it to the compacted topic `users` (3 partitions, key = user id).
// Each event carries the user's full current state, so the latest event per
// key is a complete snapshot and compaction keeps "all current users".
//
//   POST   /users               {"id","name","email"} -> 201 user | 400 | 409
//   GET    /users               every user (ordered by id)
//   GET    /users/{id}          200 user | 404
//   PUT    /users/{id}/email    {"email"} -> 200 user | 400 | 404
//   DELETE /users/{id}          204 | 404   (publishes a tombstone)
//   GET    /health              outbox backlog and relay state
//
//   users --listen 127.0.0.1:8081 --brokers 127.0.0.1:9092 --db users.db
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <string>

#include "common.h"
#include "common/log.h"
#include "sdk/envelope.h"
#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk/store/store.h"

namespace herald::examples {
namespace {

using nlohmann::json;

const sdk::Migration kUsersSchema{
    "example_users_v1",
    "CREATE TABLE IF NOT EXISTS users ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " email TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS users ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " email TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL)",
};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct User {
  std::string id;
  std::string name;
  std::string email;
  int64_t version = 0;
  int64_t created_at = 0;
  int64_t updated_at = 0;

  // What the API returns and what every event carries: the full current state.
  json to_json() const {
    return json{{"id", id},
                {"name", name},
                {"email", email},
                {"version", version},
                {"created_at", sdk::format_rfc3339(created_at)},
                {"updated_at", sdk::format_rfc3339(updated_at)}};
  }
  static User from_row(const sdk::Row& r) {
    return User{r.text(0), r.text(1), r.text(2), r.int64(3), r.int64(4), r.int64(5)};
  }
};

constexpr const char* kUserColumns = "id, name, email, version, created_at, updated_at";

class UsersService {
 public:
  UsersService(sdk::Store& store, sdk::Outbox outbox) : store_(store), outbox_(std::move(outbox)) {}

  void routes(httplib::Server& s) {
    s.Post("/users", [this](const auto& req, auto& res) { create(req, res); });
    s.Get("/users", [this](const auto& req, auto& res) { list(req, res); });
    s.Get(R"(/users/([^/]+))", [this](const auto& req, auto& res) { get(req, res); });
    s.Put(R"(/users/([^/]+)/email)", [this](const auto& req, auto& res) { change_email(req, res); });
    s.Delete(R"(/users/([^/]+))", [this](const auto& req, auto& res) { remove(req, res); });
  }

  void set_relay(sdk::OutboxRelay* relay) { relay_ = relay; }

  void health(const httplib::Request&, httplib::Response& res) {
    json j{{"service", "users"}, {"status", "ok"}};
    int status = 200;
    if (auto pending = sdk::outbox_pending(store_)) {
      j["outbox_pending"] = *pending;
    } else {
      j["status"] = "database unavailable";
      j["error"] = pending.error().to_string();
      status = 503;
    }
    if (relay_) {
      auto st = relay_->stats();
      j["relay"] = {{"published", st.published},
                    {"batches", st.batches},
                    {"failed_deliveries", st.failed_deliveries},
                    {"errors", st.errors},
                    {"has_lease", st.has_lease},
                    {"last_error", st.last_error}};
    }
    reply_json(res, status, j);
  }

 private:
  // Publishes `u`'s state as `type`, in `tx`.
  Result<void> publish(sdk::Tx& tx, const char* type, const User& u) {
    json data{{"id", u.id}, {"name", u.name}, {"email", u.email}, {"version", u.version}};
    auto ev = sdk::Event::json(type, "", u.id, data);
    ev.aggregate_version = u.version;
    HERALD_TRY(outbox_.add(tx, std::move(ev)));
    return ok();
  }

  void create(const httplib::Request& req, httplib::Response& res) {
    auto body = parse_body(req, res);
    if (!body) return;
    auto id = string_field(*body, "id");
    auto name = string_field(*body, "name");
    auto email = string_field(*body, "email");
    if (!id || !name || !email) {
      return reply_error(res, 400, "fields \"id\", \"name\" and \"email\" are required and must be strings");
    }
    if (!valid_user_id(*id)) return reply_error(res, 400, "invalid id: use 1-64 of [A-Za-z0-9._-]");
    if (name->empty() || name->size() > 200) return reply_error(res, 400, "invalid name: 1-200 characters");
    if (!valid_email(*email)) return reply_error(res, 400, fmt::format("invalid e-mail address: '{}'", *email));

    const int64_t now = now_ms();
    User u{*id, *name, *email, 1, now, now};
    bool exists = false;
    auto r = store_.run([&](sdk::Tx& tx) -> Result<void> {
      exists = false;
      auto ins = tx.exec(fmt::format("INSERT INTO users ({}) VALUES (?, ?, ?, ?, ?, ?)", kUserColumns),
                         {u.id, u.name, u.email, static_cast<long long>(u.version),
                          static_cast<long long>(u.created_at), static_cast<long long>(u.updated_at)});
      if (!ins && ins.error().code == Errc::kAlreadyExists) {
        exists = true;
        return ins.error();  // roll back
      }
      if (!ins) return ins.error();
      return publish(tx, kUserCreated, u);
    });
    if (exists) return reply_error(res, 409, fmt::format("user '{}' already exists", u.id));
    if (!r) return store_failure(res, r.error());
    HLOG_INFO("created user {} <{}>", u.id, u.email);
    reply_json(res, 201, u.to_json());
  }

  void list(const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    auto r = store_.run(
        [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(auto rows,
                                  tx.query(fmt::format("SELECT {} FROM users ORDER BY id", kUserColumns)));
          out = json::array();
          for (const auto& row : rows) out.push_back(User::from_row(row).to_json());
          return ok();
        },
        5, sdk::TxOptions{.read_only = true});
    if (!r) return store_failure(res, r.error());
    reply_json(res, 200, out);
  }

  void get(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    std::optional<User> u;
    auto r = store_.run(
        [&](sdk::Tx& tx) -> Result<void> {
          HERALD_ASSIGN_OR_RETURN(
              auto row, tx.query_one(fmt::format("SELECT {} FROM users WHERE id = ?", kUserColumns), {id}));
          u.reset();
          if (row) u = User::from_row(*row);
          return ok();
        },
        5, sdk::TxOptions{.read_only = true});
    if (!r) return store_failure(res, r.error());
    if (!u) return reply_error(res, 404, fmt::format("no user '{}'", id));
    reply_json(res, 200, u->to_json());
  }

  void change_email(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto body = parse_body(req, res);
    if (!body) return;
    auto email = string_field(*body, "email");
    if (!email) return reply_error(res, 400, "field \"email\" is required and must be a string");
    if (!valid_email(*email)) return reply_error(res, 400, fmt::format("invalid e-mail address: '{}'", *email));

    std::optional<User> u;
    bool changed = false;
    auto r = store_.run([&](sdk::Tx& tx) -> Result<void> {
      u.reset();
      changed = false;
      // One statement reads and bumps the row, so two writers of the same user
      // (two instances of this service) serialize on its row lock; the
      // outbox then orders their events in commit order.
      HERALD_ASSIGN_OR_RETURN(
          auto row, tx.query_one(fmt::format("UPDATE users SET email = ?, version = version + 1, updated_at = ? "
                                             "WHERE id = ? AND email <> ? RETURNING {}",
                                             kUserColumns),
                                 {*email, static_cast<long long>(now_ms()), id, *email}));
      if (row) {
        u = User::from_row(*row);
        changed = true;
        return publish(tx, kUserEmailChanged, *u);
      }
      // Unknown, or the e-mail is already this one (nothing to publish).
      HERALD_ASSIGN_OR_RETURN(auto cur,
                              tx.query_one(fmt::format("SELECT {} FROM users WHERE id = ?", kUserColumns), {id}));
      if (cur) u = User::from_row(*cur);
      return ok();
    });
    if (!r) return store_failure(res, r.error());
    if (!u) return reply_error(res, 404, fmt::format("no user '{}'", id));
    if (changed) HLOG_INFO("user {}: e-mail is now <{}> (version {})", u->id, u->email, u->version);
    reply_json(res, 200, u->to_json());
  }

  void remove(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    bool found = false;
    auto r = store_.run([&](sdk::Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(int64_t n, tx.exec("DELETE FROM users WHERE id = ?", {id}));
      found = n > 0;
      if (!found) return ok();
      // A tombstone (null value): compaction forgets the user entirely.
      HERALD_TRY(outbox_.add(tx, sdk::Event::make_tombstone(id, kUserDeleted, "")));
      return ok();
    });
    if (!r) return store_failure(res, r.error());
    if (!found) return reply_error(res, 404, fmt::format("no user '{}'", id));
    HLOG_INFO("deleted user {}", id);
    res.status = 204;
  }

  static void store_failure(httplib::Response& res, const Error& e) {
    HLOG_ERROR("database: {}", e.to_string());
    reply_error(res, 503, fmt::format("database unavailable: {}", e.message));
  }

  sdk::Store& store_;
  sdk::Outbox outbox_;
  sdk::OutboxRelay* relay_ = nullptr;
};

int run(int argc, char** argv) {
  CLI::App app{"users: owns users; publishes every change through the outbox to the compacted topic 'users'"};
  CommonFlags flags;
  add_common_flags(app, flags, "users.db");
  std::string source = "/users";
  app.add_option("--source", source, "ce_source of the events")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  block_shutdown_signals();
  setup_logging("users", flags.log_level);

  auto store = sdk::Store::open(flags.db);
  if (!store) {
    HLOG_ERROR("opening database {}: {}", flags.db, store.error().to_string());
    return 1;
  }
  if (auto r = (*store)->migrate({kUsersSchema}); !r) {
    HLOG_ERROR("creating tables: {}", r.error().to_string());
    return 1;
  }
  if (auto r = ensure_users_topic(flags); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }
  auto extra = parse_properties(flags.kafka);
  if (!extra) {
    HLOG_ERROR("{}", extra.error().to_string());
    return 2;
  }
  sdk::RelayOptions ropts;
  ropts.brokers = flags.brokers;
  ropts.kafka_config = *extra;
  auto relay = sdk::OutboxRelay::create(**store, ropts);
  if (!relay) {
    HLOG_ERROR("outbox relay: {}", relay.error().to_string());
    return 1;
  }

  UsersService svc(**store, sdk::Outbox({.topic = kUsersTopic, .source = source}));
  svc.set_relay(relay->get());
  HttpService http;
  svc.routes(http.server());
  http.server().Get("/health", [&svc](const auto& req, auto& res) { svc.health(req, res); });
  auto port = http.bind(flags.listen, flags.port_file);
  if (!port) {
    HLOG_ERROR("{}", port.error().to_string());
    return 1;
  }
  if (auto r = (*relay)->start(); !r) {
    HLOG_ERROR("outbox relay: {}", r.error().to_string());
    return 1;
  }
  http.start();
  HLOG_INFO("users listening on http://127.0.0.1:{} (brokers {}, db {})", *port, flags.brokers, flags.db);

  int sig = wait_for_shutdown_signal();
  HLOG_INFO("signal {}: shutting down", sig);
  http.stop();
  (*relay)->stop();  // rows not yet acknowledged stay in the outbox for next time
  HLOG_INFO("stopped");
  return 0;
}

}  // namespace
}  // namespace herald::examples

int main(int argc, char** argv) { return herald::examples::run(argc, argv); }
