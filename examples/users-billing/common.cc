#include "common.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/log.h"
#include "sdk/envelope.h"

namespace herald::examples {

using nlohmann::json;

Result<std::pair<std::string, int>> parse_host_port(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) {
    return Error{Errc::kInvalidArgument, fmt::format("'{}' is not HOST:PORT", s)};
  }
  std::string host(s.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  for (char c : s.substr(colon + 1)) {
    if (c < '0' || c > '9' || port > 65535) return Error{Errc::kInvalidArgument, fmt::format("bad port in '{}'", s)};
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return Error{Errc::kInvalidArgument, fmt::format("bad port in '{}'", s)};
  return std::pair{host, port};
}

Result<std::vector<std::pair<std::string, std::string>>> parse_properties(const std::vector<std::string>& kv) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : kv) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error{Errc::kInvalidArgument, fmt::format("'{}' is not KEY=VALUE", s)};
    }
    out.emplace_back(s.substr(0, eq), s.substr(eq + 1));
  }
  return out;
}

// ---- signals ---------------------------------------------------------------

namespace {
sigset_t shutdown_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// Until wait_for_shutdown_signal() takes over, a thread watches for the signals: a start-up step
// can block for a minute (ensure_topic while no broker answers), and a signal meanwhile ends the
// process at once. Leaked on purpose: the detached thread may use it until the process ends.
struct StartupWatch {
  std::mutex mu;
  bool handed_over = false;  // GUARDED_BY(mu)
  int pending = 0;           // a signal that came after the hand-over; GUARDED_BY(mu)
  std::atomic<bool> stop{false};
  std::atomic<bool> done{false};
};
StartupWatch* g_startup_watch = nullptr;

}  // namespace

void block_shutdown_signals() {
  const sigset_t set = shutdown_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (g_startup_watch) return;
  g_startup_watch = new StartupWatch;
  std::thread([w = g_startup_watch, set] {
    while (!w->stop.load()) {
      timespec ts{0, 100 * 1000 * 1000};
      const int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig <= 0) continue;
      std::lock_guard lock(w->mu);
      if (!w->handed_over) {
        HLOG_INFO("signal {} during start-up: exiting", sig);
        std::_Exit(0);  // nothing served yet; the database is as after any crash: consistent
      }
      w->pending = sig;
      break;
    }
    w->done = true;
    w->done.notify_all();
  }).detach();
}

int wait_for_shutdown_signal(const std::function<bool()>& healthy) {
  if (StartupWatch* w = std::exchange(g_startup_watch, nullptr)) {
    {
      std::lock_guard lock(w->mu);
      w->handed_over = true;
    }
    w->stop = true;
    w->done.wait(false);
    std::lock_guard lock(w->mu);
    if (w->pending) return w->pending;
  }
  const sigset_t set = shutdown_set();
  for (;;) {
    timespec ts{0, 500 * 1000 * 1000};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig > 0) return sig;
    if (healthy && !healthy()) return 0;
  }
}

// ---- topics ----------------------------------------------------------------

Result<void> ensure_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::vector<std::pair<std::string, std::string>>& configs,
                          const std::vector<std::pair<std::string, std::string>>& extra_kafka,
                          std::chrono::milliseconds timeout) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& k, const std::string& v) -> Result<void> {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      return Error{Errc::kInvalidArgument, fmt::format("librdkafka setting {}: {}", k, errstr)};
    }
    return ok();
  };
  Result<void> r = set("bootstrap.servers", brokers);
  for (const auto& [k, v] : extra_kafka) {
    if (r) r = set(k, v);
  }
  if (!r) {
    rd_kafka_conf_destroy(conf);
    return r;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Error{Errc::kInvalidArgument, fmt::format("librdkafka: {}", errstr)};
  }
  std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> handle(rk, &rd_kafka_destroy);
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(rd_kafka_queue_new(rk),
                                                                             &rd_kafka_queue_destroy);

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  for (int attempt = 0;; ++attempt) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Error{Errc::kIoError,
                   fmt::format("creating topic '{}' at {}: gave up after {} ms: {}", topic, brokers,
                               timeout.count(), last_error)};
    }
    const int attempt_ms = static_cast<int>(std::min<int64_t>(left.count(), 10000));
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, errstr, sizeof errstr);
    if (nt == nullptr) return Error{Errc::kInvalidArgument, fmt::format("topic '{}': {}", topic, errstr)};
    std::unique_ptr<rd_kafka_NewTopic_t, decltype(&rd_kafka_NewTopic_destroy)> new_topic(nt,
                                                                                         &rd_kafka_NewTopic_destroy);
    for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> opts(
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS), &rd_kafka_AdminOptions_destroy);
    rd_kafka_AdminOptions_set_request_timeout(opts.get(), attempt_ms, errstr, sizeof errstr);
    rd_kafka_AdminOptions_set_operation_timeout(opts.get(), attempt_ms, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, &nt, 1, opts.get(), queue.get());
    std::unique_ptr<rd_kafka_event_t, decltype(&rd_kafka_event_destroy)> ev(
        rd_kafka_queue_poll(queue.get(), attempt_ms + 2000), &rd_kafka_event_destroy);
    if (!ev) {
      last_error = "no answer";
    } else if (rd_kafka_event_error(ev.get())) {
      last_error = rd_kafka_event_error_string(ev.get());
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** res =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
      if (n != 1) {
        last_error = fmt::format("CreateTopics returned {} results", n);
      } else {
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[0]);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          HLOG_INFO("created topic '{}' ({} partitions)", topic, partitions);
          return ok();
        }
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return ok();
        const char* msg = rd_kafka_topic_result_error_string(res[0]);
        last_error = fmt::format("{}{}{}", rd_kafka_err2str(err), msg ? ": " : "", msg ? msg : "");
        // Errors that retrying cannot fix.
        if (err == RD_KAFKA_RESP_ERR_INVALID_CONFIG || err == RD_KAFKA_RESP_ERR_INVALID_PARTITIONS ||
            err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION ||
            err == RD_KAFKA_RESP_ERR_POLICY_VIOLATION) {
          return Error{Errc::kInvalidArgument, fmt::format("creating topic '{}': {}", topic, last_error)};
        }
      }
    }
    if (attempt == 0 || attempt % 10 == 0) {
      HLOG_WARN("creating topic '{}' at {}: {}; retrying", topic, brokers, last_error);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

Result<void> ensure_users_topic(const CommonFlags& flags) {
  HERALD_ASSIGN_OR_RETURN(auto extra, parse_properties(flags.kafka));
  return ensure_topic(flags.brokers, kUsersTopic, kUsersPartitions, {{"cleanup.policy", "compact"}}, extra,
                      std::chrono::seconds(60));
}

// ---- HTTP ------------------------------------------------------------------

HttpService::HttpService() {
  server_.set_read_timeout(10, 0);
  server_.set_write_timeout(10, 0);
  server_.set_keep_alive_timeout(5);
  server_.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    HLOG_ERROR("{} {}: {}", req.method, req.path, what);
    reply_error(res, 500, what);
  });
  server_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      reply_json(res, res.status, json{{"error", res.status == 404 ? std::string("no such resource") : fmt::format("HTTP {}", res.status)}});
    }
  });
}

HttpService::~HttpService() { stop(); }

Result<int> HttpService::bind(const std::string& listen, const std::string& port_file) {
  HERALD_ASSIGN_OR_RETURN(auto hp, parse_host_port(listen));
  if (hp.second == 0) {
    port_ = server_.bind_to_any_port(hp.first);
    if (port_ <= 0) return Error{Errc::kIoError, fmt::format("cannot listen on {}", listen)};
  } else {
    if (!server_.bind_to_port(hp.first, hp.second)) {
      return Error{Errc::kIoError, fmt::format("cannot listen on {}: {}", listen, std::strerror(errno))};
    }
    port_ = hp.second;
  }
  if (!port_file.empty()) {
    // Write-then-rename so a reader never sees a half-written file.
    std::string tmp = port_file + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << port_ << "\n";
      if (!f) return Error{Errc::kIoError, fmt::format("cannot write {}", tmp)};
    }
    if (std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      return Error{Errc::kIoError, fmt::format("cannot rename {}: {}", tmp, std::strerror(errno))};
    }
  }
  return port_;
}

void HttpService::start() {
  thread_ = std::thread([this] { server_.listen_after_bind(); });
}

void HttpService::stop() {
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void reply_error(httplib::Response& res, int status, std::string_view message) {
  reply_json(res, status, json{{"error", std::string(message)}});
}

std::optional<json> parse_body(const httplib::Request& req, httplib::Response& res) {
  json j = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    reply_error(res, 400, "the body is not valid JSON");
    return std::nullopt;
  }
  if (!j.is_object()) {
    reply_error(res, 400, "the body must be a JSON object");
    return std::nullopt;
  }
  return j;
}

bool valid_user_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

bool valid_email(std::string_view email) {
  if (email.size() < 3 || email.size() > 254) return false;
  auto at = email.find('@');
  if (at == std::string_view::npos || at == 0 || email.find('@', at + 1) != std::string_view::npos) return false;
  std::string_view local = email.substr(0, at), domain = email.substr(at + 1);
  if (local.size() > 64) return false;
  auto ok_char = [](char c) {
    return static_cast<unsigned char>(c) > 32 && c != 127 && c != '(' && c != ')' && c != ',' && c != ';' &&
           c != ':' && c != '<' && c != '>' && c != '[' && c != ']' && c != '\\' && c != '"';
  };
  if (!std::all_of(local.begin(), local.end(), ok_char)) return false;
  // domain: labels of [A-Za-z0-9-], separated by dots, at least two labels.
  auto dot = domain.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == domain.size()) return false;
  size_t label = 0;
  for (size_t i = 0; i < domain.size(); ++i) {
    char c = domain[i];
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-') return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

std::optional<std::string> string_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// ---- users replica -----------------------------------------------------------

std::vector<sdk::Migration> users_replica_migrations(const std::string& id_prefix, const std::string& table) {
  std::string v1 = fmt::format(
      "CREATE TABLE IF NOT EXISTS {} ("
      " id TEXT PRIMARY KEY,"
      " name TEXT NOT NULL,"
      " email TEXT NOT NULL,"
      " version BIGINT NOT NULL,"
      " updated_at BIGINT NOT NULL)",
      table);
  std::string v2 = fmt::format(
      "ALTER TABLE {0} ADD COLUMN updated_partition INTEGER NOT NULL DEFAULT -1;"
      "ALTER TABLE {0} ADD COLUMN updated_offset BIGINT NOT NULL DEFAULT -1",
      table);
  return {sdk::Migration{id_prefix + "_v1", v1, v1}, sdk::Migration{id_prefix + "_v2", v2, v2}};
}

namespace {
constexpr const char* kReplicaColumns = "id, name, email, version, updated_at, updated_partition, updated_offset";

struct UserState {
  std::string id;
  std::string name;
  std::string email;
  int64_t version = 0;
};
void from_json(const json& j, UserState& u) {
  j.at("id").get_to(u.id);
  j.at("name").get_to(u.name);
  j.at("email").get_to(u.email);
  u.version = j.value("version", int64_t{0});
}

void must(const Result<int64_t>& r) {
  if (!r) throw std::runtime_error(r.error().to_string());
}
}  // namespace

void add_users_handlers(sdk::ReplicaHandlers& handlers, const std::string& table, ChangeHook on_change) {
  auto upsert_sql = fmt::format(
      "INSERT INTO {} ({}) VALUES (?, ?, ?, ?, ?, ?, ?) "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email, "
      "version = excluded.version, updated_at = excluded.updated_at, "
      "updated_partition = excluded.updated_partition, updated_offset = excluded.updated_offset",
      table, kReplicaColumns);
  auto delete_sql = fmt::format("DELETE FROM {} WHERE id = ?", table);

  auto upsert = [upsert_sql, on_change](std::string_view kind) {
    return [upsert_sql, on_change, kind = std::string(kind)](const sdk::Event& ev, sdk::Tx& tx) {
      if (ev.tombstone) {
        throw std::runtime_error(fmt::format("{} for '{}' without a value", kind, ev.aggregate_id));
      }
      UserState u = json::parse(ev.payload).get<UserState>();
      // The record key is the authority on which user this is.
      if (!ev.aggregate_id.empty()) u.id = ev.aggregate_id;
      const sdk::EventPosition pos = ev.position.value_or(sdk::EventPosition{});
      must(tx.exec(upsert_sql, {u.id, u.name, u.email, static_cast<long long>(u.version),
                                static_cast<long long>(ev.time_ms), static_cast<long long>(pos.partition),
                                static_cast<long long>(pos.offset)}));
      if (on_change) on_change(kind, u.id, u.email);
    };
  };
  auto remove = [delete_sql, on_change](const sdk::Event& ev, sdk::Tx& tx) {
    must(tx.exec(delete_sql, {ev.aggregate_id}));
    if (on_change) on_change(kUserDeleted, ev.aggregate_id, "");
  };
  handlers.on(kUserCreated, upsert(kUserCreated));
  handlers.on(kUserEmailChanged, upsert(kUserEmailChanged));
  handlers.on(kUserDeleted, remove);
  handlers.otherwise([remove](const sdk::Event& ev, sdk::Tx& tx) {
    // A tombstone from a producer that sent no ce_type still deletes the user;
    // anything else we do not know is skipped.
    if (ev.tombstone) remove(ev, tx);
  });
}

namespace {
json row_json(const sdk::Row& r) {
  return json{{"id", r.text(0)},
              {"name", r.text(1)},
              {"email", r.text(2)},
              {"version", r.int64(3)},
              {"updated_at", sdk::format_rfc3339(r.int64(4))},
              {"updated_partition", r.int64(5)},
              {"updated_offset", r.int64(6)}};
}
}  // namespace

Result<std::optional<json>> read_replica_row(sdk::Store& store, const std::string& table, const std::string& id) {
  std::optional<json> out;
  HERALD_TRY(store.run(
      [&](sdk::Tx& tx) -> Result<void> {
        HERALD_ASSIGN_OR_RETURN(
            auto row, tx.query_one(fmt::format("SELECT {} FROM {} WHERE id = ?", kReplicaColumns, table),
                                   {id}));
        out.reset();
        if (row) out = row_json(*row);
        return ok();
      },
      5, sdk::TxOptions{.read_only = true}));
  return out;
}

Result<json> read_replica_rows(sdk::Store& store, const std::string& table) {
  json out = json::array();
  HERALD_TRY(store.run(
      [&](sdk::Tx& tx) -> Result<void> {
        HERALD_ASSIGN_OR_RETURN(
            auto rows, tx.query(fmt::format("SELECT {} FROM {} ORDER BY id", kReplicaColumns, table)));
        out = json::array();
        for (const auto& r : rows) out.push_back(row_json(r));
        return ok();
      },
      5, sdk::TxOptions{.read_only = true}));
  return out;
}

json replica_status_json(const sdk::Replica& replica) {
  auto parts = replica.status();
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  });
  json arr = json::array();
  int64_t lag = 0;
  for (const auto& p : parts) {
    lag += p.lag;
    arr.push_back({{"topic", p.topic},
                   {"partition", p.partition},
                   {"position", p.position},
                   {"high_watermark", p.high_watermark},
                   {"lag", p.lag},
                   {"caught_up", p.caught_up}});
  }
  auto s = replica.stats();
  return json{{"ready", replica.ready()},
              {"running", replica.running()},
              {"lag", lag},
              {"partitions", arr},
              {"stats",
               {{"applied", s.applied},
                {"duplicates", s.duplicates},
                {"unhandled", s.unhandled},
                {"retries", s.retries},
                {"dead_lettered", s.dead_lettered},
                {"transactions", s.transactions},
                {"rebalances", s.rebalances},
                {"fenced", s.fenced}}}};
}

sdk::ReplicaConfig users_replica_config(const CommonFlags& flags, const std::string& group,
                                        const std::string& client_id) {
  sdk::ReplicaConfig cfg;
  cfg.brokers = flags.brokers;
  cfg.group_id = group;
  cfg.client_id = client_id;
  cfg.topics = {kUsersTopic};
  // A killed instance is noticed after session.timeout.ms; keep it short so
  // that its partitions move to the survivors (and a restarted instance gets
  // them back) within seconds. 6 s is the smallest Apache Kafka accepts by default.
  cfg.kafka = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "1000"}};
  if (auto extra = parse_properties(flags.kafka)) {
    cfg.kafka.insert(cfg.kafka.end(), extra->begin(), extra->end());
  }
  cfg.dlq_producer = cfg.kafka;
  cfg.dlq_producer.erase(std::remove_if(cfg.dlq_producer.begin(), cfg.dlq_producer.end(),
                                        [](const auto& kv) {
                                          return kv.first == "session.timeout.ms" ||
                                                 kv.first == "heartbeat.interval.ms";
                                        }),
                         cfg.dlq_producer.end());
  return cfg;
}

void add_replica_endpoints(httplib::Server& server, const std::string& service, const sdk::Replica& replica,
                           std::function<void(json&)> extra) {
  server.Get("/health", [&replica, service, extra](const httplib::Request&, httplib::Response& res) {
    json j = replica_status_json(replica);
    j["service"] = service;
    j["status"] = replica.running() ? "ok" : "replica stopped";
    if (extra) extra(j);
    reply_json(res, replica.running() ? 200 : 503, j);
  });
  server.Get("/ready", [&replica](const httplib::Request&, httplib::Response& res) {
    json s = replica_status_json(replica);
    json j{{"ready", s["ready"]}, {"lag", s["lag"]}, {"partitions", s["partitions"]}};
    if (!replica.ready()) {
      j["waiting_for"] = s["partitions"].empty() ? "a partition assignment (joining the consumer group)"
                                                 : "the replica to reach the log end it saw at assignment";
    }
    reply_json(res, replica.ready() ? 200 : 503, j);
  });
}

void add_common_flags(CLI::App& app, CommonFlags& flags, const std::string& default_db) {
  flags.db = default_db;
  app.add_option("--listen", flags.listen, "HTTP address HOST:PORT (port 0: any free port)")->capture_default_str();
  app.add_option("--brokers", flags.brokers, "Kafka bootstrap servers: Herald or any Kafka cluster")
      ->envname("HERALD_BROKERS")
      ->capture_default_str();
  app.add_option("--db", flags.db, "Database: a SQLite path, sqlite:PATH or postgresql://...")
      ->capture_default_str();
  app.add_option("--port-file", flags.port_file, "Write the bound HTTP port to this file");
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--kafka", flags.kafka, "Extra librdkafka setting KEY=VALUE (security, ...), repeatable");
}

void setup_logging(const std::string& service, const std::string& level) {
  auto& lg = log::logger();
  lg.set_pattern(fmt::format("%Y-%m-%dT%H:%M:%S.%e {} %^%l%$ %v", service));
  log::set_level(level);
}

}  // namespace herald::examples
