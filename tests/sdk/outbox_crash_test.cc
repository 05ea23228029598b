// Outbox crash test: the producing process is SIGKILLed at random moments.
//
//   sdk_outbox_crash --store sqlite|postgres [--trials N] [--seed S]
//
// The driver (this process) runs the broker and the database. Each trial
// starts a child (this executable with --child) that, in a loop, commits one
// business change (a row in `changes`, with a per-aggregate version) and its
// event in ONE transaction through the Outbox, deliberately rolls back every
// tenth, and runs an OutboxRelay thread that publishes concurrently. The
// child reports "B id" before, "C id" after each commit and "R id" after each
// deliberate rollback on a pipe. The driver SIGKILLs it after a seeded random
// delay, then checks the database against the reports. After all trials a
// last relay drains the outbox and the driver reads the whole topic:
//   - every committed change (row in `changes`) has its event in the log,
//   - no event exists for a change that did not commit (no phantoms),
//   - per aggregate, the first occurrences of the versions are 1, 2, 3, ...
//     in log order (nothing lost, commit order kept),
//   - repeats (same ce_id twice, a re-publish after a crash) are allowed and
//     counted: consumers drop them by ce_id.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/clock.h"
#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk_test_util.h"

using namespace herald;
using namespace herald::sdk;
using namespace std::chrono_literals;

namespace {

constexpr const char* kTopic = "crash-changes";
constexpr int kAggregates = 5;

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "FAIL: " << msg << std::endl;
  std::exit(1);
}

std::string arg(int argc, char** argv, const std::string& name, const std::string& def = "") {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return def;
}

// ---- child: commit changes + events until killed ----
int child_main(int argc, char** argv) {
  std::string url = arg(argc, argv, "--db");
  std::string brokers = arg(argc, argv, "--brokers");
  int trial = std::stoi(arg(argc, argv, "--trial"));
  std::mt19937 rng(static_cast<uint32_t>(std::stoul(arg(argc, argv, "--seed"))));
  auto store = Store::open(url);
  if (!store) die("child open: " + store.error().to_string());
  RelayOptions ro;
  ro.brokers = brokers;
  ro.batch_size = 20;
  ro.standby_retry = 50ms;
  ro.max_poll = 10ms;
  if (const char* d = std::getenv("HERALD_RDKAFKA_DEBUG")) ro.kafka_config.emplace_back("debug", d);
  auto relay = OutboxRelay::create(**store, ro);
  if (!relay) die("child relay: " + relay.error().to_string());
  if (auto r = (*relay)->start(); !r) die("child relay start");
  Outbox outbox({.topic = kTopic, .source = "/crash-test"});
  for (int i = 0; i < 1000000; ++i) {
    std::string change = "t" + std::to_string(trial) + "-" + std::to_string(i);
    std::string agg = "agg-" + std::to_string(rng() % kAggregates);
    bool rollback = rng() % 10 == 0;
    int amount = static_cast<int>(rng() % 1000);
    std::printf("B %s\n", change.c_str());
    std::fflush(stdout);
    auto tx = (*store)->begin();
    if (!tx) die("child begin: " + tx.error().to_string());
    auto body = [&]() -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(
          auto row,
          (*tx)->query_one("SELECT coalesce(max(version), 0) + 1 FROM changes WHERE agg = ?", {agg}));
      int64_t version = row->int64(0);
      auto ev = Event::json("change.made", "", agg, {{"change", change}, {"amount", amount}});
      ev.aggregate_version = version;
      HERALD_ASSIGN_OR_RETURN(std::string ce_id, outbox.add(**tx, std::move(ev)));
      HERALD_TRY((*tx)->exec(
          "INSERT INTO changes (change_id, agg, version, ce_id, amount) VALUES (?, ?, ?, ?, ?)",
          {change, agg, version, ce_id, amount}));
      return ok();
    };
    if (auto r = body(); !r) {
      // A transaction of the previous (killed) child that the server was still
      // committing can take the same version: this one simply does not commit.
      if (r.error().code != Errc::kAlreadyExists) die("child tx: " + r.error().to_string());
      rollback = true;
    }
    if (rollback) {
      (*tx)->rollback();
      std::printf("R %s\n", change.c_str());
    } else {
      if (auto r = (*tx)->commit(); !r) die("child commit: " + r.error().to_string());
      std::printf("C %s\n", change.c_str());
    }
    std::fflush(stdout);
    if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
  }
  return 0;
}

struct ChildReport {
  std::vector<std::string> committed, rolled_back;
  int begun = 0;
};

ChildReport run_trial(const std::string& self, const std::string& url, const std::string& brokers,
                      int trial, uint32_t child_seed, int kill_after_ms) {
  int fds[2];
  if (::pipe(fds) != 0) die("pipe");
  pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string t = std::to_string(trial), s = std::to_string(child_seed);
    ::execl(self.c_str(), self.c_str(), "--child", "--db", url.c_str(), "--brokers",
            brokers.c_str(), "--trial", t.c_str(), "--seed", s.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(fds[1]);
  // Read the child's reports while it runs, then kill it.
  std::string out;
  int64_t deadline = mono_ns() + int64_t{kill_after_ms} * 1'000'000;
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  char buf[65536];
  while (mono_ns() < deadline) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else {
      std::this_thread::sleep_for(1ms);
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::fcntl(fds[0], F_SETFL, 0);
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
    die("trial " + std::to_string(trial) + ": child ended before the kill (status " +
        std::to_string(status) + "); output:\n" + out);
  }
  ChildReport rep;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() < 3 || in.eof()) continue;  // a torn last line
    if (line[0] == 'B') ++rep.begun;
    if (line[0] == 'C') rep.committed.push_back(line.substr(2));
    if (line[0] == 'R') rep.rolled_back.push_back(line.substr(2));
  }
  return rep;
}

int driver_main(int argc, char** argv) {
  std::string kind = arg(argc, argv, "--store", "sqlite");
  int trials = std::stoi(arg(argc, argv, "--trials", "30"));
  uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("HERALD_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  if (auto s = arg(argc, argv, "--seed"); !s.empty()) seed = static_cast<uint32_t>(std::stoul(s));
  std::cout << "outbox crash test: store " << kind << ", " << trials << " trials, seed " << seed
            << " (--seed or HERALD_SEED to repeat)" << std::endl;
  std::mt19937 rng(seed);

  auto broker = testing::TestBroker::start();
  testing::TempDir dir;
  std::unique_ptr<testing::PgDatabase> pg;
  std::string url;
  if (kind == "postgres") {
    pg = testing::PgDatabase::create("crash");
    url = pg->url();
  } else {
    url = "sqlite:" + (dir.path() / "svc.db").string();
  }
  auto store = Store::open(url);
  if (!store) die(store.error().to_string());
  if (auto r = (*store)->run([](Tx& tx) -> Result<void> {
        return tx.exec_script(
            "CREATE TABLE changes (change_id TEXT PRIMARY KEY, agg TEXT NOT NULL, "
            "version BIGINT NOT NULL, ce_id TEXT NOT NULL, amount BIGINT NOT NULL, "
            "UNIQUE (agg, version))");
      });
      !r) {
    die(r.error().to_string());
  }
  std::string self = std::filesystem::read_symlink("/proc/self/exe").string();

  auto db_changes = [&]() {
    std::map<std::string, std::tuple<std::string, int64_t, std::string>> m;  // id -> agg, version, ce_id
    auto tx = (*store)->begin({.read_only = true});
    if (!tx) die(tx.error().to_string());
    auto rows = (*tx)->query("SELECT change_id, agg, version, ce_id FROM changes");
    if (!rows) die(rows.error().to_string());
    for (const auto& r : *rows) m[r.text(0)] = {r.text(1), r.int64(2), r.text(3)};
    return m;
  };

  int total_committed = 0, total_rolled_back = 0, in_doubt = 0;
  for (int t = 1; t <= trials; ++t) {
    // Kill moments spread from "still starting up" to "well into the loop".
    int kill_after = 20 + static_cast<int>(rng() % 700);
    auto rep = run_trial(self, url, broker->brokers(), t, static_cast<uint32_t>(rng()), kill_after);
    auto db = db_changes();
    for (const auto& c : rep.committed) {
      if (!db.count(c)) die("trial " + std::to_string(t) + ": commit of " + c + " was reported but it is not in the database");
    }
    for (const auto& c : rep.rolled_back) {
      if (db.count(c)) die("trial " + std::to_string(t) + ": rolled-back " + c + " is in the database");
    }
    int doubt = rep.begun - static_cast<int>(rep.committed.size() + rep.rolled_back.size());
    in_doubt += doubt;
    total_committed += static_cast<int>(rep.committed.size());
    total_rolled_back += static_cast<int>(rep.rolled_back.size());
    auto pending = outbox_pending(**store);
    std::cout << "trial " << t << ": killed after " << kill_after << " ms; " << rep.committed.size()
              << " committed, " << rep.rolled_back.size() << " rolled back, " << doubt
              << " in flight at the kill; outbox holds " << (pending ? *pending : -1) << std::endl;
  }

  // Publish what the killed relays left behind.
  RelayOptions ro;
  ro.brokers = broker->brokers();
  auto relay = OutboxRelay::create(**store, ro);
  if (!relay) die(relay.error().to_string());
  int64_t deadline = mono_ns() + 60'000'000'000;
  for (;;) {
    auto r = (*relay)->drain(30s);
    if (r) break;
    if (mono_ns() > deadline) die("final drain: " + r.error().to_string());
    std::this_thread::sleep_for(200ms);  // e.g. a killed child's PG session still holds the lease
  }
  relay->reset();

  auto db = db_changes();
  std::map<std::string, std::string> ce_to_change;
  for (const auto& [id, v] : db) ce_to_change[std::get<2>(v)] = id;
  auto recs = testing::read_topic(broker->brokers(), kTopic, db.size(), 60s);
  if (!recs) die("read topic: " + recs.error().to_string());
  std::map<std::string, int> times_seen;
  std::map<std::string, int64_t> next_version;  // per aggregate: the next first-seen version
  int repeats = 0;
  for (const auto& rec : *recs) {
    auto ev = rec.event();
    if (!ev) die("undecodable event: " + ev.error().to_string());
    auto it = ce_to_change.find(ev->id);
    std::string change = ev->json_payload().value()["change"];
    if (it == ce_to_change.end() || it->second != change) {
      die("phantom event " + ev->id + " for change " + change + " that never committed");
    }
    if (times_seen[ev->id]++ > 0) {
      ++repeats;
      continue;
    }
    int64_t& next = next_version[ev->aggregate_id];
    if (*ev->aggregate_version <= next - 1) {
      continue;  // an older version again after a re-publish: allowed
    }
    if (next == 0) next = 1;
    if (*ev->aggregate_version != next) {
      die(ev->aggregate_id + ": version " + std::to_string(*ev->aggregate_version) +
          " published before version " + std::to_string(next));
    }
    ++next;
  }
  for (const auto& [id, v] : db) {
    if (!times_seen.count(std::get<2>(v))) die("committed change " + id + " has no event in the log");
  }
  std::cout << "PASS: " << trials << " SIGKILLs; " << db.size() << " committed changes ("
            << total_committed << " reported, " << in_doubt
            << " in flight at a kill resolved by the database), " << total_rolled_back
            << " rolled back; " << recs->size() << " events in the log, every committed change "
            << "present, no phantom, " << repeats << " repeats (re-published after a crash)"
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--child") == 0) return child_main(argc, argv);
  }
  return driver_main(argc, argv);
}
