// `herald outbox-relay --db URL --brokers HOST:PORT`: publishes the service's
// herald_outbox rows in commit order per aggregate and deletes them once the
// broker acknowledged them (see sdk/outbox/relay.h for the guarantees).
#include "cli/outbox_relay.h"
#include "cli/checks.h"
#include "cli/stop_signals.h"

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "common/log.h"
#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk/store/store.h"

namespace herald::cli {
namespace {

struct RelayFlags {
  std::string db;
  std::string brokers = "127.0.0.1:9092";
  std::vector<std::string> properties;  // KEY=VALUE
  int batch_size = 1000;
  double idle_wait_s = 1.0;
  double max_poll_ms = 100;
  double delivery_timeout_s = 30;
  bool once = false;
  double once_timeout_s = 60;
  std::string log_level;
};

int run(const RelayFlags& f) {
  if (!f.log_level.empty()) log::set_level(f.log_level);
  sdk::RelayOptions opts;
  opts.brokers = f.brokers;
  opts.batch_size = f.batch_size;
  opts.idle_wait = std::chrono::milliseconds(static_cast<int64_t>(f.idle_wait_s * 1000));
  opts.max_poll = std::chrono::milliseconds(static_cast<int64_t>(f.max_poll_ms));
  opts.delivery_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(f.delivery_timeout_s * 1000));
  for (const auto& kv : f.properties) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      fmt::print(stderr, "herald outbox-relay: --property '{}': expected KEY=VALUE\n", kv);
      return 2;
    }
    opts.kafka_config.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  // Before any thread starts (Store::open, OutboxRelay::create). Only the
  // long-running mode waits for SIGINT/SIGTERM; with --once they keep their
  // default action: the process ends, unacknowledged rows stay in the outbox.
  sigset_t set;
  if (f.once) {
    sigemptyset(&set);
    std::signal(SIGPIPE, SIG_IGN);
  } else {
    set = block_stop_signals();  // waited for below
  }

  // The service's database exists already: a mistyped path must not look like an empty outbox.
  sdk::StoreOptions store_opts;
  store_opts.create_sqlite_file = false;
  auto store = sdk::Store::open(f.db, store_opts);
  if (!store) {
    HLOG_ERROR("herald outbox-relay: {}: {}", f.db, store.error().to_string());
    return 1;
  }
  auto relay = sdk::OutboxRelay::create(**store, opts);
  if (!relay) {
    HLOG_ERROR("herald outbox-relay: {}", relay.error().to_string());
    return 2;
  }
  if (f.once) {
    auto r = (*relay)->drain(std::chrono::milliseconds(static_cast<int64_t>(f.once_timeout_s * 1000)));
    auto st = (*relay)->stats();
    fmt::print("published {} events\n", st.published);
    if (!r) {
      HLOG_ERROR("herald outbox-relay: {}", r.error().to_string());
      return 1;
    }
    return 0;
  }
  if (auto r = (*relay)->start(); !r) {
    HLOG_ERROR("herald outbox-relay: {}", r.error().to_string());
    return 1;
  }
  HLOG_INFO("outbox relay: {} -> {}", f.db, f.brokers);
  int sig = 0;
  sigwait(&set, &sig);
  HLOG_INFO("received {}, stopping the outbox relay", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*relay)->stop();
  auto st = (*relay)->stats();
  HLOG_INFO("outbox relay: published {} events in {} batches, {} failed deliveries", st.published,
            st.batches, st.failed_deliveries);
  return 0;
}

}  // namespace

void add_outbox_relay_command(CLI::App& app, std::function<int()>& action) {
  auto* cmd = app.add_subcommand(
      "outbox-relay",
      "Publish a service's transactional outbox (libherald) to the brokers, as a sidecar");
  auto f = std::make_shared<RelayFlags>();
  cmd->add_option("--db", f->db,
                  "The service's database: postgresql://..., sqlite:PATH or a SQLite file path; "
                  "env HERALD_OUTBOX_DB")
      ->envname("HERALD_OUTBOX_DB")
      ->required();
  cmd->add_option("-b,--brokers", f->brokers, "Bootstrap brokers, HOST:PORT[,HOST:PORT...]")
      ->envname("HERALD_BROKERS")
      ->capture_default_str();
  cmd->add_option("-X,--property", f->properties,
                  "Extra librdkafka producer setting KEY=VALUE, repeatable "
                  "(enable.idempotence, enable.gapless.guarantee and acks are always "
                  "true / true / all)")
      ->allow_extra_args(false);
  cmd->add_option("--batch-size", f->batch_size, "Rows per publish round")
      ->capture_default_str()
      ->check(integer_check(1));
  cmd->add_option("--idle-wait", f->idle_wait_s,
                  "PostgreSQL: seconds between rescans when no NOTIFY arrives")
      ->capture_default_str()
      ->check(duration_check(kMaxSeconds));
  cmd->add_option("--max-poll-ms", f->max_poll_ms,
                  "SQLite: longest pause between outbox scans when idle (ms)")
      ->capture_default_str()
      ->check(duration_check(kMaxSeconds * 1000));
  cmd->add_option("--delivery-timeout", f->delivery_timeout_s,
                  "Seconds before an unacknowledged event counts as failed (it stays in the "
                  "outbox and is retried)")
      ->capture_default_str()
      ->check(duration_check(kMaxSeconds));
  cmd->add_flag("--once", f->once, "Publish everything pending, then exit");
  cmd->add_option("--once-timeout", f->once_timeout_s, "With --once: give up after this many seconds")
      ->capture_default_str()
      ->check(duration_check(kMaxSeconds));
  cmd->add_option("--log-level", f->log_level, "trace|debug|info|warn|error [info]");
  cmd->footer(R"(
Exactly one relay publishes per database (a lease); start several for
failover. Events are published at least once; consumers drop repeats by ce_id.

Examples:
  herald outbox-relay --db postgresql://billing@db/billing --brokers kafka-1:9092,kafka-2:9092
  herald outbox-relay --db sqlite:/var/lib/users/users.db --once)");
  cmd->callback([&action, f] { action = [f] { return run(*f); }; });
}

}  // namespace herald::cli
