// Outbox relay throughput: events/s from commit to acknowledged (acks=all,
// idempotent producer) on SQLite and PostgreSQL, against an embedded broker
// (or --brokers).
//
//   herald_sdk_outbox_bench [--store sqlite|postgres|both] [--events N] [--live-events M]
//                           [--writers W] [--batch B] [--brokers HOST:PORT] [--pg-url URL]
//                           [--reps R] [--notify on|off]
//
// Two phases per store, each repeated --reps times (a fresh database each):
//   backlog  N events are committed first (100 per transaction, relay stopped);
//            then the relay starts; time until the last one is acknowledged and
//            deleted. The relay's own ceiling.
//   live     W writer threads commit M events, one event per transaction (a
//            business row + the event), while the relay runs; time from the
//            first commit to the last acknowledgement. Also reports the commit
//            rate alone (when the writers finished). --notify off: the writers'
//            commits send no NOTIFY (OutboxOptions::notify) and the relay
//            rescans every 20 ms instead.
// Without --pg-url a throwaway PostgreSQL cluster (fsync=on) is started with
// tests/sdk/pg_fixture.sh and stopped at the end.
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "common/clock.h"
#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk/store/store.h"

using namespace herald;
using namespace herald::sdk;
using namespace std::chrono_literals;

namespace {

struct Args {
  std::string store = "both";
  int events = 50000;
  int live_events = 5000;  // one fsync'd commit each: bounded by the disk, so fewer
  int writers = 4;
  int batch = 1000;
  int reps = 3;
  bool notify = true;
  std::string brokers;
  std::string pg_url;
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "herald_sdk_outbox_bench: %s\n", m.c_str());
  std::exit(1);
}

double secs(int64_t ns) { return static_cast<double>(ns) / 1e9; }

std::unique_ptr<Store> open_store(const std::string& url) {
  auto s = Store::open(url, {.max_connections = 16});
  if (!s) die(url + ": " + s.error().to_string());
  auto r = (*s)->run([](Tx& tx) -> Result<void> {
    return tx.exec_script("CREATE TABLE IF NOT EXISTS bench_orders (id BIGINT PRIMARY KEY, "
                          "customer TEXT NOT NULL, total BIGINT NOT NULL)");
  });
  if (!r) die(r.error().to_string());
  return std::move(*s);
}

void wait_published(OutboxRelay& relay, uint64_t n) {
  int64_t deadline = mono_ns() + 600'000'000'000;
  while (relay.stats().published < n) {
    if (mono_ns() > deadline) die("timed out waiting for the relay");
    std::this_thread::sleep_for(200us);
  }
}

RelayOptions relay_options(const Args& a) {
  RelayOptions o;
  o.brokers = a.brokers;
  o.batch_size = a.batch;
  if (!a.notify) o.idle_wait = 20ms;
  return o;
}

double backlog(const Args& a, const std::string& url, const std::string& topic) {
  auto store = open_store(url);
  Outbox outbox({.topic = topic, .source = "/bench"});
  for (int i = 0; i < a.events;) {
    auto r = store->run([&](Tx& tx) -> Result<void> {
      for (int k = 0; k < 100 && i + k < a.events; ++k) {
        auto ev = Event::json("order.placed", "", "customer-" + std::to_string((i + k) % 1000),
                              {{"order", i + k}, {"total", 4200}});
        HERALD_TRY(outbox.add(tx, std::move(ev)));
      }
      return ok();
    });
    if (!r) die(r.error().to_string());
    i += 100;
  }
  auto relay = OutboxRelay::create(*store, relay_options(a));
  if (!relay) die(relay.error().to_string());
  int64_t t0 = mono_ns();
  if (auto r = (*relay)->start(); !r) die("start");
  wait_published(**relay, static_cast<uint64_t>(a.events));
  int64_t t1 = mono_ns();
  (*relay)->stop();
  return a.events / secs(t1 - t0);
}

std::pair<double, double> live(const Args& a, const std::string& url, const std::string& topic) {
  auto store = open_store(url);
  Outbox outbox({.topic = topic, .source = "/bench", .notify = a.notify});
  auto relay = OutboxRelay::create(*store, relay_options(a));
  if (!relay) die(relay.error().to_string());
  if (auto r = (*relay)->start(); !r) die("start");
  std::this_thread::sleep_for(500ms);  // producer connected, relay idle
  const int n = a.live_events;
  std::atomic<int> next{0};
  int64_t t0 = mono_ns();
  std::vector<std::thread> ts;
  for (int w = 0; w < a.writers; ++w) {
    ts.emplace_back([&] {
      for (int i; (i = next++) < n;) {
        auto r = store->run(
            [&](Tx& tx) -> Result<void> {
              std::string customer = "customer-" + std::to_string(i % 1000);
              HERALD_TRY(tx.exec("INSERT INTO bench_orders (id, customer, total) VALUES (?, ?, ?)",
                                 {i, customer, 4200}));
              HERALD_TRY(outbox.add(tx, Event::json("order.placed", "", customer,
                                                    {{"order", i}, {"total", 4200}})));
              return ok();
            },
            50);
        if (!r) die(r.error().to_string());
      }
    });
  }
  for (auto& t : ts) t.join();
  int64_t t_commit = mono_ns();
  wait_published(**relay, static_cast<uint64_t>(n));
  int64_t t1 = mono_ns();
  (*relay)->stop();
  return {n / secs(t1 - t0), n / secs(t_commit - t0)};
}

void pg_exec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) die(std::string("connect: ") + PQerrorMessage(c));
  PGresult* r = PQexec(c, sql.c_str());
  if (PQresultStatus(r) != PGRES_COMMAND_OK) die(sql + ": " + PQresultErrorMessage(r));
  PQclear(r);
  PQfinish(c);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--store") a.store = v;
    else if (k == "--events") a.events = std::stoi(v);
    else if (k == "--live-events") a.live_events = std::stoi(v);
    else if (k == "--writers") a.writers = std::stoi(v);
    else if (k == "--batch") a.batch = std::stoi(v);
    else if (k == "--reps") a.reps = std::stoi(v);
    else if (k == "--brokers") a.brokers = v;
    else if (k == "--pg-url") a.pg_url = v;
    else if (k == "--notify") a.notify = v != "off";
    else die("unknown option " + k);
  }
  std::unique_ptr<broker::Broker> broker;
  if (a.brokers.empty()) {
    broker::BrokerConfig cfg;
    cfg.listen_port = 0;
    cfg.ephemeral = true;
    auto b = broker::Broker::start(cfg);
    if (!b) die(b.error().to_string());
    broker = std::move(*b);
    a.brokers = "127.0.0.1:" + std::to_string(broker->port());
  }
  char tmpl[] = "/tmp/herald-outbox-bench.XXXXXX";
  std::string tmp = ::mkdtemp(tmpl);
  bool own_pg = false;
  bool want_pg = a.store == "both" || a.store == "postgres";
  bool want_sqlite = a.store == "both" || a.store == "sqlite";
  if (want_pg && a.pg_url.empty()) {
    std::string cmd = std::string("PG_FSYNC=on sh ") + HERALD_PG_FIXTURE + " start " + tmp + "/pg";
    if (std::system(cmd.c_str()) != 0) die("could not start PostgreSQL: " + cmd);
    std::ifstream in(tmp + "/pg/url");
    std::getline(in, a.pg_url);
    own_pg = true;
  }
  std::printf("# outbox relay: backlog %d events, live %d events from %d writers, batch %d, "
              "%d reps, notify %s, brokers %s\n",
              a.events, a.live_events, a.writers, a.batch, a.reps, a.notify ? "on" : "off", a.brokers.c_str());
  int run = 0;
  auto bench = [&](const std::string& name, auto make_url) {
    std::vector<double> bl, lv, cm;
    for (int r = 0; r < a.reps; ++r) {
      bl.push_back(backlog(a, make_url(), "bench-" + name + "-b" + std::to_string(++run)));
      auto [e2e, commit] = live(a, make_url(), "bench-" + name + "-l" + std::to_string(++run));
      lv.push_back(e2e);
      cm.push_back(commit);
      std::printf("outbox_relay store=%s rep=%d backlog_events_per_s=%.0f live_events_per_s=%.0f "
                  "live_commit_per_s=%.0f\n",
                  name.c_str(), r + 1, bl.back(), lv.back(), cm.back());
      std::fflush(stdout);
    }
    std::printf("outbox_relay store=%s median backlog_events_per_s=%.0f live_events_per_s=%.0f "
                "live_commit_per_s=%.0f\n",
                name.c_str(), median(bl), median(lv), median(cm));
  };
  if (want_sqlite) {
    int n = 0;
    bench("sqlite", [&] { return "sqlite:" + tmp + "/bench" + std::to_string(++n) + ".db"; });
  }
  if (want_pg) {
    int n = 0;
    std::string admin = a.pg_url;
    std::vector<std::string> created;
    bench("postgres", [&] {
      // A fresh database per run, so each starts with an empty outbox.
      std::string name = "outbox_bench_" + std::to_string(::getpid()) + "_" + std::to_string(++n);
      pg_exec(admin, "CREATE DATABASE " + name);
      created.push_back(name);
      return admin.substr(0, admin.rfind('/') + 1) + name;
    });
    if (!own_pg) {
      for (const auto& db : created) pg_exec(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    }
  }
  if (own_pg) {
    std::string cmd = std::string("sh ") + HERALD_PG_FIXTURE + " stop " + tmp + "/pg >/dev/null";
    (void)std::system(cmd.c_str());
  }
  std::filesystem::remove_all(tmp);
  if (broker) broker->stop();
  return 0;
}
