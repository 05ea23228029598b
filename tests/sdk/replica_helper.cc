// sdk_replica_helper: a projecting process for the crash and rebalance
// tests. Runs a Replica with the fold handler (replica_harness.h) until
// SIGTERM/SIGINT; the tests SIGKILL it at random moments.
//
//   sdk_replica_helper --store URL --brokers HOST:PORT --group G --topic T
//                      [--batch N] [--instance ID] [--session-ms N]
//                      [--no-broker-commit] [--stats FILE]
//
// Every 100 ms it writes FILE (atomically) as JSON: applied, duplicates,
// transactions, ready and the assigned partitions.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "replica_harness.h"
#include "sdk/replica/replica.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

void write_stats(const std::string& path, herald::sdk::Replica& r) {
  if (path.empty()) return;
  auto s = r.stats();
  nlohmann::json parts = nlohmann::json::array();
  for (const auto& p : r.status()) parts.push_back({p.topic, p.partition, p.position});
  nlohmann::json j = {{"applied", s.applied},           {"duplicates", s.duplicates},
                      {"transactions", s.transactions}, {"ready", r.ready()},
                      {"rebalances", s.rebalances},     {"partitions", parts}};
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump();
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace herald::sdk;
  std::string store_url, brokers, group, topic, instance, stats_file;
  int batch = 100, session_ms = 0;
  bool broker_commit = true;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value for %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--store") store_url = next();
    else if (a == "--brokers") brokers = next();
    else if (a == "--group") group = next();
    else if (a == "--topic") topic = next();
    else if (a == "--batch") batch = std::atoi(next().c_str());
    else if (a == "--instance") instance = next();
    else if (a == "--session-ms") session_ms = std::atoi(next().c_str());
    else if (a == "--stats") stats_file = next();
    else if (a == "--no-broker-commit") broker_commit = false;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  ::signal(SIGTERM, on_signal);
  ::signal(SIGINT, on_signal);

  auto store = Store::open(store_url);
  if (!store) {
    std::fprintf(stderr, "store: %s\n", store.error().to_string().c_str());
    return 1;
  }
  if (auto r = herald::sdk::testing::create_fold_table(**store); !r) {
    std::fprintf(stderr, "fold table: %s\n", r.error().to_string().c_str());
    return 1;
  }
  ReplicaConfig cfg;
  cfg.brokers = brokers;
  cfg.group_id = group;
  cfg.topics = {topic};
  cfg.max_batch_events = batch;
  cfg.max_batch_delay = std::chrono::milliseconds(20);
  cfg.commit_to_broker = broker_commit;
  cfg.broker_commit_interval = std::chrono::milliseconds(200);
  if (!instance.empty()) cfg.kafka.emplace_back("group.instance.id", instance);
  if (session_ms > 0) {
    cfg.kafka.emplace_back("session.timeout.ms", std::to_string(session_ms));
    cfg.kafka.emplace_back("heartbeat.interval.ms", std::to_string(std::max(100, session_ms / 5)));
  }
  cfg.kafka.emplace_back("log_level", "4");
  ReplicaHandlers handlers;
  herald::sdk::testing::install_fold(handlers);
  auto replica = Replica::create(cfg, **store, std::move(handlers));
  if (!replica) {
    std::fprintf(stderr, "replica: %s\n", replica.error().to_string().c_str());
    return 1;
  }
  if (auto r = (*replica)->start(); !r) {
    std::fprintf(stderr, "start: %s\n", r.error().to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "helper %d: running (group %s, batch %d)\n", ::getpid(), group.c_str(), batch);
  while (!g_stop.load()) {
    write_stats(stats_file, **replica);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!(*replica)->running()) break;  // it ends on its own only on an error
  }
  (*replica)->stop();
  auto r = (*replica)->join();
  write_stats(stats_file, **replica);
  if (!r) {
    std::fprintf(stderr, "replica stopped: %s\n", r.error().to_string().c_str());
    return 1;
  }
  std::fprintf(stderr, "helper %d: stopped cleanly\n", ::getpid());
  return 0;
}
