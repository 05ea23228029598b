// notifications: a tiny third service that only keeps a replica of users
// (table `contacts`), to show the other half of the catch-up story: a
// brand-new service bootstraps "all current users" by reading the compacted
// users topic from the beginning. Nobody broadcasts anything for it and users
// does not even know it exists.
//
//   GET /contacts         every contact
//   GET /contacts/{id}    200 | 404
//   GET /health           position and lag per partition
//   GET /ready            200 once caught up, else 503 with the lag
//
//   notifications --listen 127.0.0.1:8083 --brokers 127.0.0.1:9092 --db notifications.db
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "common.h"
#include "common/log.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::examples {
namespace {

using nlohmann::json;

const char* kContacts = "contacts";

int run(int argc, char** argv) {
  CLI::App app{"notifications: a replica of users only (bootstraps from the compacted topic)"};
  CommonFlags flags;
  add_common_flags(app, flags, "notifications.db");
  std::string group = "notifications";
  app.add_option("--group", group, "Consumer group")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const std::string client_id = fmt::format("{}-{}", group, getpid());

  block_shutdown_signals();
  setup_logging("notifications", flags.log_level);

  auto store = sdk::Store::open(flags.db);
  if (!store) {
    HLOG_ERROR("opening database {}: {}", flags.db, store.error().to_string());
    return 1;
  }
  if (auto r = (*store)->migrate(users_replica_migrations("example_notifications_contacts", kContacts)); !r) {
    HLOG_ERROR("creating tables: {}", r.error().to_string());
    return 1;
  }
  if (auto r = ensure_users_topic(flags); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }

  sdk::ReplicaHandlers handlers;
  // A real service would send a welcome mail on user.created and a "your
  // address changed" mail on user.email_changed; this one only logs.
  add_users_handlers(handlers, kContacts, [](std::string_view kind, const std::string& id, const std::string& email) {
    if (kind == kUserDeleted) {
      HLOG_DEBUG("contact {} removed", id);
    } else {
      HLOG_DEBUG("contact {} <{}> ({})", id, email, kind);
    }
  });
  auto replica = sdk::Replica::create(users_replica_config(flags, group, client_id), **store, std::move(handlers));
  if (!replica) {
    HLOG_ERROR("replica: {}", replica.error().to_string());
    return 1;
  }
  (*replica)->on_ready([] { HLOG_INFO("replica of users caught up: ready"); });

  HttpService http;
  auto& s = http.server();
  sdk::Store& st = **store;
  s.Get("/contacts", [&st](const httplib::Request&, httplib::Response& res) {
    auto rows = read_replica_rows(st, kContacts);
    if (!rows) return reply_error(res, 503, rows.error().to_string());
    reply_json(res, 200, *rows);
  });
  s.Get(R"(/contacts/([^/]+))", [&st](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto row = read_replica_row(st, kContacts, id);
    if (!row) return reply_error(res, 503, row.error().to_string());
    if (!*row) return reply_error(res, 404, fmt::format("no contact '{}'", id));
    reply_json(res, 200, **row);
  });
  add_replica_endpoints(s, "notifications", **replica, [&](json& j) { j["group"] = group; });
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
  HLOG_INFO("notifications listening on http://127.0.0.1:{} (brokers {}, db {})", *port, flags.brokers, flags.db);

  int sig = wait_for_shutdown_signal([&] { return (*replica)->running(); });
  if (sig != 0) {
    HLOG_INFO("signal {}: shutting down", sig);
  } else {
    HLOG_ERROR("the replica stopped on its own; exiting");
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
