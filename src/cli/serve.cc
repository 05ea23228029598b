// `herald serve`: flags, HERALD_* environment variables and a TOML config
// file, in increasing order of precedence: file < environment < flags.
#include "cli/serve.h"
#include "cli/stop_signals.h"

#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <toml.hpp>

#include "broker/broker.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parse.h"

namespace herald::cli {
namespace {

// Each partition keeps its active segment open and each client a socket: the soft descriptor limit
// is raised to the hard one, as the JVM and Go runtimes do for Kafka and NATS. The usual default soft
// limit, 1024, is used up by a few hundred partitions and clients.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t target = lim.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : lim.rlim_max;
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= target) return;
  const rlim_t before = lim.rlim_cur;
  lim.rlim_cur = target;
  if (::setrlimit(RLIMIT_NOFILE, &lim) == 0) {
    HLOG_INFO("file descriptor limit raised from {} to {}", before, target);
  } else {
    HLOG_WARN("file descriptor limit stays at {}: {}", before, std::strerror(errno));
  }
}

// One source's settings (file, environment or flags); unset ones leave the
// broker's value (or an earlier source's) alone.
struct ServeOptions {
  std::string listen;  // HOST:PORT
  std::string data_dir;
  std::string advertised_host;
  std::optional<bool> ephemeral;
  std::optional<int64_t> threads;
  std::optional<bool> auto_create;
  std::optional<int64_t> partitions;
  std::optional<int64_t> index_cache_mb;
  std::optional<int64_t> response_memory_mb;
  std::optional<int64_t> flush_threads;
  std::optional<int64_t> maintenance_interval_ms;
  std::optional<int64_t> connections_max_idle_ms;
  std::string log_level;
  std::string port_file;
  std::optional<std::string> metrics_listen;  // HOST:PORT; "" or "off": no metrics endpoint
  std::vector<std::string> topic_defaults;  // key=value
};

Result<bool> parse_bool(std::string_view what, std::string_view v) {
  std::string s(v);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "true" || s == "1" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "0" || s == "no" || s == "off") return false;
  return Error{Errc::kInvalidArgument, fmt::format("{}: '{}' is not true or false", what, v)};
}

Result<void> parse_listen(std::string_view what, const std::string& s, std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return Error{Errc::kInvalidArgument, fmt::format("{} '{}': expected HOST:PORT", what, s)};
  }
  auto p = parse_integer<int64_t>("port", std::string_view(s).substr(colon + 1));
  if (!p || *p < 0 || *p > 65535) {
    return Error{Errc::kInvalidArgument, fmt::format("{} '{}': bad port", what, s)};
  }
  host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  port = static_cast<uint16_t>(*p);
  return ok();
}

Result<void> apply_topic_default(const std::string& kv, broker::BrokerConfig& cfg) {
  auto eq = kv.find('=');
  if (eq == std::string::npos) return Error{Errc::kInvalidArgument, fmt::format("'{}': expected key=value", kv)};
  return cfg.topic_defaults.set(kv.substr(0, eq), kv.substr(eq + 1));
}

Result<void> in_range(std::string_view what, int64_t v, int64_t min, int64_t max) {
  if (v < min || v > max) {
    return Error{Errc::kInvalidArgument, fmt::format("{}: {} is outside [{}, {}]", what, v, min, max)};
  }
  return ok();
}

Result<void> apply(const ServeOptions& o, broker::BrokerConfig& cfg) {
  if (!o.listen.empty()) HERALD_TRY(parse_listen("listen", o.listen, cfg.listen_host, cfg.listen_port));
  if (o.metrics_listen && (o.metrics_listen->empty() || *o.metrics_listen == "off")) {
    cfg.metrics_port = -1;
  } else if (o.metrics_listen) {
    uint16_t port = 0;
    HERALD_TRY(parse_listen("metrics listen", *o.metrics_listen, cfg.metrics_host, port));
    cfg.metrics_port = port;
  }
  if (!o.data_dir.empty()) cfg.data_dir = o.data_dir;
  if (!o.advertised_host.empty()) cfg.advertised_host = o.advertised_host;
  if (o.ephemeral) cfg.ephemeral = *o.ephemeral;
  if (o.threads) {
    HERALD_TRY(in_range("threads", *o.threads, 1, 256));
    cfg.threads = static_cast<int>(*o.threads);
  }
  if (o.auto_create) cfg.auto_create_topics = *o.auto_create;
  if (o.partitions) {
    HERALD_TRY(in_range("num partitions", *o.partitions, 1, 100000));
    cfg.default_partitions = static_cast<int32_t>(*o.partitions);
  }
  if (o.index_cache_mb) {
    HERALD_TRY(in_range("index cache MB", *o.index_cache_mb, 0, int64_t{1} << 30));
    cfg.index_cache_bytes = static_cast<uint64_t>(*o.index_cache_mb) << 20;
  }
  if (o.response_memory_mb) {
    HERALD_TRY(in_range("response memory MB", *o.response_memory_mb, 1, int64_t{1} << 30));
    cfg.response_memory_bytes = static_cast<uint64_t>(*o.response_memory_mb) << 20;
  }
  if (o.flush_threads) {
    HERALD_TRY(in_range("flush threads", *o.flush_threads, 1, 64));
    cfg.flush_threads = static_cast<int>(*o.flush_threads);
  }
  if (o.maintenance_interval_ms) {
    HERALD_TRY(in_range("maintenance interval ms", *o.maintenance_interval_ms, 1, INT64_MAX));
    cfg.maintenance_interval_ms = *o.maintenance_interval_ms;
  }
  if (o.connections_max_idle_ms) {
    HERALD_TRY(in_range("connections max idle ms", *o.connections_max_idle_ms, 0, INT64_MAX));
    cfg.connections_max_idle_ms = *o.connections_max_idle_ms;
  }
  if (!o.log_level.empty() && !log::valid_level(o.log_level)) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("log level '{}': expected trace, debug, info, warn, error or off", o.log_level)};
  }
  for (const auto& kv : o.topic_defaults) HERALD_TRY(apply_topic_default(kv, cfg));
  HERALD_TRY(cfg.topic_defaults.check());
  return ok();
}

// The config file's keys of each type (and auto_create_topics, metrics_listen, [topic_defaults]).
const std::map<std::string_view, std::string ServeOptions::*> kStringKeys = {
    {"listen", &ServeOptions::listen},
    {"data_dir", &ServeOptions::data_dir},
    {"advertised_host", &ServeOptions::advertised_host},
    {"log_level", &ServeOptions::log_level}};
const std::map<std::string_view, std::optional<int64_t> ServeOptions::*> kIntegerKeys = {
    {"threads", &ServeOptions::threads},
    {"num_partitions", &ServeOptions::partitions},
    {"index_cache_mb", &ServeOptions::index_cache_mb},
    {"response_memory_mb", &ServeOptions::response_memory_mb},
    {"flush_threads", &ServeOptions::flush_threads},
    {"maintenance_interval_ms", &ServeOptions::maintenance_interval_ms},
    {"connections_max_idle_ms", &ServeOptions::connections_max_idle_ms}};
constexpr std::string_view kFileKeys =
    "listen, data_dir, advertised_host, threads, auto_create_topics, num_partitions, index_cache_mb, "
    "response_memory_mb, flush_threads, maintenance_interval_ms, connections_max_idle_ms, log_level, metrics_listen, "
    "[topic_defaults]";

// Every key is checked: an unknown one (a typo) or a value of the wrong type is an error, not a
// silent default.
Result<void> load_file(const std::string& path, ServeOptions& o) {
  toml::value t;
  try {
    t = toml::parse(path);
  } catch (const std::exception& e) {
    return Error{Errc::kInvalidArgument, fmt::format("config file {}: {}", path, e.what())};
  }
  for (const auto& [key, v] : t.as_table()) {
    auto must_be = [&, &key = key, &v = v](toml::value_t type, std::string_view what) -> Result<void> {
      if (v.type() == type) return ok();
      return Error{Errc::kInvalidArgument,
                   fmt::format("config file {}: {} must be {}, not {}", path, key, what, toml::format(v))};
    };
    auto str = [&](std::string& out) -> Result<void> {
      HERALD_TRY(must_be(toml::value_t::string, "a string"));
      out = v.as_string().str;
      return ok();
    };
    auto integer = [&](std::optional<int64_t>& out) -> Result<void> {
      HERALD_TRY(must_be(toml::value_t::integer, "an integer"));
      out = v.as_integer();
      return ok();
    };
    if (auto f = kStringKeys.find(key); f != kStringKeys.end()) {
      HERALD_TRY(str(o.*(f->second)));
    } else if (auto g = kIntegerKeys.find(key); g != kIntegerKeys.end()) {
      HERALD_TRY(integer(o.*(g->second)));
    } else if (key == "auto_create_topics") {
      HERALD_TRY(must_be(toml::value_t::boolean, "true or false"));
      o.auto_create = v.as_boolean();
    } else if (key == "metrics_listen") {
      HERALD_TRY(str(o.metrics_listen.emplace()));
    } else if (key == "topic_defaults") {
      HERALD_TRY(must_be(toml::value_t::table, "a table ([topic_defaults])"));
      // Unquoted names are dotted keys (retention.ms = 1 is retention = {ms = 1}): joined back.
      std::function<void(const std::string&, const toml::value&)> add = [&](const std::string& name,
                                                                             const toml::value& d) {
        if (!d.is_table()) {
          o.topic_defaults.push_back(name + "=" + (d.is_string() ? d.as_string().str : toml::format(d)));
          return;
        }
        for (const auto& [k, inner] : d.as_table()) add(name.empty() ? k : name + "." + k, inner);
      };
      add("", v);
    } else {
      return Error{Errc::kInvalidArgument,
                   fmt::format("config file {}: unknown key '{}' (keys: {})", path, key, kFileKeys)};
    }
  }
  return ok();
}

// A variable that is set but does not parse is an error.
Result<void> load_env(ServeOptions& o) {
  auto env = [](const char* name) -> const char* { return std::getenv(name); };
  auto integer = [&](const char* name, std::optional<int64_t>& out) -> Result<void> {
    if (auto v = env(name)) {
      HERALD_ASSIGN_OR_RETURN(out, parse_integer<int64_t>(name, v));
    }
    return ok();
  };
  auto boolean = [&](const char* name, std::optional<bool>& out) -> Result<void> {
    if (auto v = env(name)) {
      HERALD_ASSIGN_OR_RETURN(out, parse_bool(name, v));
    }
    return ok();
  };
  if (auto v = env("HERALD_LISTEN")) o.listen = v;
  if (auto v = env("HERALD_DATA_DIR")) o.data_dir = v;
  if (auto v = env("HERALD_ADVERTISED_HOST")) o.advertised_host = v;
  if (auto v = env("HERALD_LOG_LEVEL")) o.log_level = v;
  if (auto v = env("HERALD_METRICS_LISTEN")) o.metrics_listen = v;
  HERALD_TRY(integer("HERALD_THREADS", o.threads));
  HERALD_TRY(boolean("HERALD_AUTO_CREATE_TOPICS", o.auto_create));
  HERALD_TRY(integer("HERALD_NUM_PARTITIONS", o.partitions));
  HERALD_TRY(integer("HERALD_INDEX_CACHE_MB", o.index_cache_mb));
  HERALD_TRY(integer("HERALD_RESPONSE_MEMORY_MB", o.response_memory_mb));
  HERALD_TRY(integer("HERALD_FLUSH_THREADS", o.flush_threads));
  HERALD_TRY(integer("HERALD_MAINTENANCE_INTERVAL_MS", o.maintenance_interval_ms));
  HERALD_TRY(integer("HERALD_CONNECTIONS_MAX_IDLE_MS", o.connections_max_idle_ms));
  HERALD_TRY(boolean("HERALD_EPHEMERAL", o.ephemeral));
  return ok();
}

}  // namespace

void add_serve_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("serve", "Run the broker (Kafka wire protocol)");
  auto flags = std::make_shared<ServeOptions>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, fmt::format("TOML config file (keys: {})", kFileKeys));
  cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on [127.0.0.1:9092]; env HERALD_LISTEN");
  cmd->add_option("--data-dir", flags->data_dir, "Directory for topics and state [./data]; env HERALD_DATA_DIR");
  cmd->add_flag_callback(
      "--ephemeral", [flags] { flags->ephemeral = true; },
      "Use a temporary data dir, removed at exit (development, tests); env HERALD_EPHEMERAL=1");
  cmd->add_option("--advertised-host", flags->advertised_host,
                  "Host clients should connect to (Metadata) [listen host; 127.0.0.1 when listening on 0.0.0.0 or ::]; "
                  "env HERALD_ADVERTISED_HOST");
  auto integer = [&](const char* name, std::optional<int64_t> ServeOptions::*field, const char* help) {
    cmd->add_option_function<int64_t>(name, [flags, field](const int64_t& v) { (*flags).*field = v; }, help);
  };
  integer("--threads", &ServeOptions::threads, "Network threads [2]; env HERALD_THREADS");
  cmd->add_option_function<std::string>(
      "--auto-create-topics",
      [flags](const std::string& v) {
        auto b = parse_bool("--auto-create-topics", v);
        if (!b) throw CLI::ValidationError(b.error().message);
        flags->auto_create = *b;
      },
      "Create unknown topics on Metadata requests: true|false [true]; env HERALD_AUTO_CREATE_TOPICS");
  integer("--num-partitions", &ServeOptions::partitions,
          "Partitions of auto-created topics [1]; env HERALD_NUM_PARTITIONS");
  integer("--index-cache-mb", &ServeOptions::index_cache_mb,
          "Memory for the indexes of closed segments, MiB; the least recently used are dropped and "
          "reloaded from disk when needed [128]; env HERALD_INDEX_CACHE_MB");
  integer("--response-memory-mb", &ServeOptions::response_memory_mb,
          "Memory for responses built and not yet read by their clients, MiB; past it fetches get one batch "
          "[512]; env HERALD_RESPONSE_MEMORY_MB");
  integer("--flush-threads", &ServeOptions::flush_threads,
          "Partitions fdatasync'ed at the same time for acks=all (flush.policy=always) [2]; "
          "env HERALD_FLUSH_THREADS");
  integer("--maintenance-interval-ms", &ServeOptions::maintenance_interval_ms,
          "How often retention, compaction, producer-state snapshots and group expiry are checked, "
          "ms [30000]; env HERALD_MAINTENANCE_INTERVAL_MS");
  integer("--connections-max-idle-ms", &ServeOptions::connections_max_idle_ms,
          "Close a connection with no request and no response for this long, ms; 0 = never [600000]; "
          "env HERALD_CONNECTIONS_MAX_IDLE_MS");
  cmd->add_option("--port-file", flags->port_file,
                  "Write the bound port to this file once listening (useful with --listen HOST:0)");
  cmd->add_option("--log-level", flags->log_level, "trace|debug|info|warn|error|off [info]; env HERALD_LOG_LEVEL");
  cmd->add_option_function<std::string>(
      "--metrics-listen", [flags](const std::string& v) { flags->metrics_listen = v; },
      "HOST:PORT for Prometheus metrics (GET /metrics) and GET /health; off (or empty) for none [off]; "
      "env HERALD_METRICS_LISTEN");
  cmd->add_option("--topic-default", flags->topic_defaults,
                  "Broker-wide topic config default, KEY=VALUE, repeatable (e.g. retention.ms=604800000, "
                  "flush.policy=interval): applies to every topic without its own value, existing ones "
                  "included, as Kafka's log.* settings do");
  cmd->footer(R"(
Settings: --config file < HERALD_* environment < flags. SIGTERM/SIGINT stop
cleanly (flush, checkpoint), so the next start does not rescan the log.

Examples:
  herald serve                                          # 127.0.0.1:9092, data in ./data
  herald serve --listen 0.0.0.0:9092 --advertised-host broker-1.internal --data-dir /var/lib/herald
  herald serve --ephemeral --listen 127.0.0.1:0 --port-file /tmp/herald.port   # tests
  herald serve --topic-default retention.ms=604800000 --topic-default flush.policy=interval
  HERALD_DATA_DIR=/srv/herald herald serve --config /etc/herald.toml)");
  cmd->callback([&action, flags, config_file] { action = [flags, config_file]() -> int {
    ServeOptions file_opts, env_opts;
    if (!config_file->empty()) {
      if (auto r = load_file(*config_file, file_opts); !r) {
        fmt::print(stderr, "herald serve: {}\n", r.error().message);
        return 2;
      }
    }
    if (auto r = load_env(env_opts); !r) {
      fmt::print(stderr, "herald serve: {}\n", r.error().message);
      return 2;
    }
    broker::BrokerConfig cfg;
    const std::pair<const ServeOptions*, std::string> sources[] = {
        {&file_opts, "config file " + *config_file + ": "}, {&env_opts, "environment (HERALD_*): "}, {flags.get(), ""}};
    for (const auto& [o, source] : sources) {
      if (auto r = apply(*o, cfg); !r) {
        fmt::print(stderr, "herald serve: {}{}\n", source, r.error().message);
        return 2;
      }
      if (!o->log_level.empty()) log::set_level(o->log_level);
    }
    if (cfg.ephemeral && (!file_opts.data_dir.empty() || !env_opts.data_dir.empty() || !flags->data_dir.empty())) {
      HLOG_WARN("herald serve: --ephemeral uses a temporary data dir; data dir {} is not used", cfg.data_dir.string());
    }
    const sigset_t set = block_stop_signals();  // before any thread starts; waited for below
    raise_descriptor_limit();
    auto b = broker::Broker::start(cfg);
    if (!b) {
      HLOG_ERROR("herald serve: {}", b.error().to_string());
      return 1;
    }
    if (!flags->port_file.empty()) {
      std::string port = std::to_string((*b)->port());
      if (auto r = atomic_write_file(flags->port_file, as_bytes(port)); !r) {
        HLOG_ERROR("herald serve: {}", r.error().to_string());
        return 1;
      }
    }
    int sig = 0;
    sigwait(&set, &sig);
    HLOG_INFO("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    (*b)->stop();
    return 0;
  }; });
}

}  // namespace herald::cli
