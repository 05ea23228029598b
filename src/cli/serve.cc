// `herald serve`: flags, HERALD_* environment variables and a TOML config
// file, in increasing order of precedence: file < environment < flags.
#include "cli/serve.h"
#include "cli/stop_signals.h"

#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <toml.hpp>

#include "broker/broker.h"
#include "common/fs.h"
#include "common/log.h"

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

struct ServeOptions {
  std::string listen;       // HOST:PORT
  std::string data_dir;
  std::string config_file;
  std::string advertised_host;
  bool ephemeral = false;
  int threads = 0;
  std::string auto_create;  // "true"/"false"
  int partitions = 0;
  int64_t index_cache_mb = -1;
  int64_t maintenance_interval_ms = 0;
  std::string log_level;
  std::string port_file;
  std::vector<std::string> topic_defaults;  // key=value
};

Result<void> parse_listen(const std::string& s, broker::BrokerConfig& cfg) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return Error{Errc::kInvalidArgument, fmt::format("--listen '{}': expected HOST:PORT", s)};
  cfg.listen_host = s.substr(0, colon);
  int port = std::atoi(s.c_str() + colon + 1);
  if (port < 0 || port > 65535) return Error{Errc::kInvalidArgument, fmt::format("--listen '{}': bad port", s)};
  cfg.listen_port = static_cast<uint16_t>(port);
  return ok();
}

Result<void> apply_topic_default(const std::string& kv, broker::BrokerConfig& cfg) {
  auto eq = kv.find('=');
  if (eq == std::string::npos) return Error{Errc::kInvalidArgument, fmt::format("'{}': expected key=value", kv)};
  return cfg.topic_defaults.set(kv.substr(0, eq), kv.substr(eq + 1));
}

Result<void> apply(const ServeOptions& o, broker::BrokerConfig& cfg) {
  if (!o.listen.empty()) HERALD_TRY(parse_listen(o.listen, cfg));
  if (!o.data_dir.empty()) cfg.data_dir = o.data_dir;
  if (!o.advertised_host.empty()) cfg.advertised_host = o.advertised_host;
  if (o.ephemeral) cfg.ephemeral = true;
  if (o.threads > 0) cfg.threads = o.threads;
  if (!o.auto_create.empty()) cfg.auto_create_topics = o.auto_create == "true" || o.auto_create == "1";
  if (o.partitions > 0) cfg.default_partitions = o.partitions;
  if (o.index_cache_mb >= 0) cfg.index_cache_bytes = static_cast<uint64_t>(o.index_cache_mb) << 20;
  if (o.maintenance_interval_ms < 0) {
    return Error{Errc::kInvalidArgument, fmt::format("maintenance interval {} ms: must be positive", o.maintenance_interval_ms)};
  }
  if (o.maintenance_interval_ms > 0) cfg.maintenance_interval_ms = o.maintenance_interval_ms;
  for (const auto& kv : o.topic_defaults) HERALD_TRY(apply_topic_default(kv, cfg));
  HERALD_TRY(cfg.topic_defaults.check());
  return ok();
}

Result<void> load_file(const std::string& path, ServeOptions& o) {
  try {
    auto t = toml::parse(path);
    o.listen = toml::find_or<std::string>(t, "listen", o.listen);
    o.data_dir = toml::find_or<std::string>(t, "data_dir", o.data_dir);
    o.advertised_host = toml::find_or<std::string>(t, "advertised_host", o.advertised_host);
    o.threads = static_cast<int>(toml::find_or<toml::integer>(t, "threads", toml::integer{o.threads}));
    if (t.contains("auto_create_topics")) o.auto_create = toml::find<bool>(t, "auto_create_topics") ? "true" : "false";
    o.partitions = static_cast<int>(toml::find_or<toml::integer>(t, "num_partitions", toml::integer{o.partitions}));
    o.log_level = toml::find_or<std::string>(t, "log_level", o.log_level);
    o.index_cache_mb = toml::find_or<toml::integer>(t, "index_cache_mb", toml::integer{o.index_cache_mb});
    o.maintenance_interval_ms =
        toml::find_or<toml::integer>(t, "maintenance_interval_ms", toml::integer{o.maintenance_interval_ms});
    if (t.contains("topic_defaults")) {
      for (const auto& [k, v] : toml::find<toml::table>(t, "topic_defaults")) {
        o.topic_defaults.push_back(k + "=" + (v.is_string() ? v.as_string().str : toml::format(v)));
      }
    }
  } catch (const std::exception& e) {
    return Error{Errc::kInvalidArgument, fmt::format("config file {}: {}", path, e.what())};
  }
  return ok();
}

void load_env(ServeOptions& o) {
  auto env = [](const char* name) -> const char* { return std::getenv(name); };
  if (auto v = env("HERALD_LISTEN")) o.listen = v;
  if (auto v = env("HERALD_DATA_DIR")) o.data_dir = v;
  if (auto v = env("HERALD_ADVERTISED_HOST")) o.advertised_host = v;
  if (auto v = env("HERALD_THREADS")) o.threads = std::atoi(v);
  if (auto v = env("HERALD_AUTO_CREATE_TOPICS")) o.auto_create = v;
  if (auto v = env("HERALD_NUM_PARTITIONS")) o.partitions = std::atoi(v);
  if (auto v = env("HERALD_LOG_LEVEL")) o.log_level = v;
  if (auto v = env("HERALD_INDEX_CACHE_MB")) o.index_cache_mb = std::atoll(v);
  if (auto v = env("HERALD_MAINTENANCE_INTERVAL_MS")) o.maintenance_interval_ms = std::atoll(v);
  if (auto v = env("HERALD_EPHEMERAL")) o.ephemeral = std::string(v) == "1" || std::string(v) == "true";
}

}  // namespace

void add_serve_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand("serve", "Run the broker (Kafka wire protocol)");
  auto flags = std::make_shared<ServeOptions>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config", *config_file, "TOML config file (keys: listen, data_dir, advertised_host, threads, "
                                            "auto_create_topics, num_partitions, index_cache_mb, maintenance_interval_ms, log_level, "
                                            "[topic_defaults])");
  cmd->add_option("--listen", flags->listen, "HOST:PORT to listen on [127.0.0.1:9092]; env HERALD_LISTEN");
  cmd->add_option("--data-dir", flags->data_dir, "Directory for topics and state [./data]; env HERALD_DATA_DIR");
  cmd->add_flag("--ephemeral", flags->ephemeral,
                "Use a temporary data dir, removed at exit (development, tests); env HERALD_EPHEMERAL=1");
  cmd->add_option("--advertised-host", flags->advertised_host,
                  "Host clients should connect to (Metadata) [listen host]; env HERALD_ADVERTISED_HOST");
  cmd->add_option("--threads", flags->threads, "Network threads [2]; env HERALD_THREADS");
  cmd->add_option("--auto-create-topics", flags->auto_create,
                  "Create unknown topics on Metadata requests: true|false [true]; env HERALD_AUTO_CREATE_TOPICS");
  cmd->add_option("--num-partitions", flags->partitions,
                  "Partitions of auto-created topics [1]; env HERALD_NUM_PARTITIONS");
  cmd->add_option("--index-cache-mb", flags->index_cache_mb,
                  "Memory for the indexes of closed segments, MiB; the least recently used are dropped and "
                  "reloaded from disk when needed [128]; env HERALD_INDEX_CACHE_MB")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--maintenance-interval-ms", flags->maintenance_interval_ms,
                  "How often retention, compaction, producer-state snapshots and group expiry are checked, "
                  "ms [30000]; env HERALD_MAINTENANCE_INTERVAL_MS")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--port-file", flags->port_file,
                  "Write the bound port to this file once listening (useful with --listen HOST:0)");
  cmd->add_option("--log-level", flags->log_level, "trace|debug|info|warn|error [info]; env HERALD_LOG_LEVEL");
  cmd->add_option("--topic-default", flags->topic_defaults,
                  "Default topic config for new topics, KEY=VALUE, repeatable (e.g. retention.ms=604800000, "
                  "flush.policy=interval, segment.bytes=1073741824)");
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
    load_env(env_opts);
    broker::BrokerConfig cfg;
    for (const ServeOptions* o : {&file_opts, &env_opts, flags.get()}) {
      if (!o->log_level.empty()) log::set_level(o->log_level);
      if (auto r = apply(*o, cfg); !r) {
        fmt::print(stderr, "herald serve: {}\n", r.error().message);
        return 2;
      }
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
