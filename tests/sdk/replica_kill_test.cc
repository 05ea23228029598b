// Exactly-once effect under SIGKILL (issue 5): a projection folds events
// (count and sum per key) while events flow; the projecting process
// (sdk_replica_helper) is SIGKILLed at random moments at least 25 times and
// restarted; afterwards the database equals the fold of the log exactly (no
// lost, no double-applied event). The producer also re-publishes ~3% of its
// events with the same ce_id, as an outbox relay may after a crash; the fold
// of the log counts each ce_id once, so those must be dropped too.
//
// One executable, one CTest entry per store: sdk_replica_kill_sqlite,
// sdk_replica_kill_postgres. HERALD_SEED=<n> repeats a run; HERALD_KILL_TRIALS
// changes the number of kills (default 30).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <random>
#include <thread>

#include "replica_harness.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

uint64_t seed_from_env() {
  if (const char* s = std::getenv("HERALD_SEED"); s && *s) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

int64_t sum(const std::map<int32_t, int64_t>& m) {
  int64_t n = 0;
  for (auto& [p, v] : m) n += v;
  return n;
}

class ReplicaKill : public ::testing::TestWithParam<std::string> {};

TEST_P(ReplicaKill, FoldEqualsLogAfterRepeatedSigkill) {
  const uint64_t seed = seed_from_env();
  int trials = 30;
  if (const char* t = std::getenv("HERALD_KILL_TRIALS"); t && *t) trials = std::atoi(t);
  std::printf("seed %llu (HERALD_SEED=%llu repeats this run), %d kills, store %s\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed), trials,
              GetParam().c_str());
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);

  TempDir dir;
  auto broker = GroupBroker::start();
  const std::string brokers = broker->brokers();
  const std::string topic = "fold";
  const std::string group = "fold-projection";
  ASSERT_TRUE(make_topic(brokers, topic, 4));
  TestStore ts = open_test_store(GetParam(), dir.path(), "replica_kill");
  ASSERT_TRUE(create_fold_table(*ts.store));

  // Events flow the whole time, ~3% of them re-published with the same ce_id.
  std::atomic<bool> producing{true};
  std::atomic<int64_t> sent{0};
  std::string producer_error;
  std::thread producer([&, pseed = rng()] {
    EventProducer prod(brokers);
    std::mt19937_64 prng(pseed);
    std::vector<EncodedEvent> recent;
    while (producing.load()) {
      for (int i = 0; i < 20; ++i) {
        EncodedEvent ev = fold_event("k" + std::to_string(prng() % 50), static_cast<int64_t>(prng() % 100) + 1);
        if (auto r = prod.send(topic, ev); !r) producer_error = r.error().to_string();
        sent++;
        if (prng() % 100 < 3 && !recent.empty()) {
          if (auto r = prod.send(topic, recent[prng() % recent.size()]); !r) producer_error = r.error().to_string();
          sent++;
        }
        if (recent.size() < 200) recent.push_back(std::move(ev));
        else recent[prng() % recent.size()] = std::move(ev);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (auto r = prod.flush(); !r) producer_error = r.error().to_string();
  });

  const std::string helper = helper_path();
  const auto log = dir.path() / "helper.log";
  auto args = [&](int batch) {
    return std::vector<std::string>{"--store",    ts.url,           "--brokers", brokers, "--group",
                                    group,        "--topic",        topic,       "--batch", std::to_string(batch),
                                    "--instance", "fold-helper-1", "--session-ms", "6000",
                                    "--stats",    (dir.path() / "stats.json").string()};
  };

  const int batches[] = {1, 20, 200};
  int progressed = 0;  // kills that landed after the helper had committed something in that run
  int64_t last = 0;
  for (int trial = 0; trial < trials; ++trial) {
    auto child = Child::spawn(helper, args(batches[trial % 3]), log);
    auto delay = std::chrono::milliseconds(150 + rng() % 1350);
    std::this_thread::sleep_for(delay);
    ASSERT_TRUE(child->alive()) << "helper exited on its own (trial " << trial << ")\n" << tail_file(log);
    child->kill(SIGKILL);
    auto st = child->wait(std::chrono::seconds(10));
    ASSERT_TRUE(st.has_value());
    ASSERT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGKILL);
    auto stored = stored_offsets(*ts.store, group, topic);
    ASSERT_TRUE(stored) << stored.error().to_string();
    int64_t now = sum(*stored);
    if (now > last) progressed++;
    std::printf("kill %2d: batch %3d, after %4lld ms, stored offsets %lld (+%lld), sent %lld\n", trial + 1,
                batches[trial % 3], static_cast<long long>(delay.count()), static_cast<long long>(now),
                static_cast<long long>(now - last), static_cast<long long>(sent.load()));
    last = now;
  }
  producing.store(false);
  producer.join();
  ASSERT_TRUE(producer_error.empty()) << producer_error;

  // One last, undisturbed run catches up with the end of the log.
  auto ends = end_offsets(brokers, topic);
  ASSERT_TRUE(ends) << ends.error().to_string();
  auto child = Child::spawn(helper, args(100), log);
  bool caught_up = eventually(
      [&] {
        auto s = stored_offsets(*ts.store, group, topic);
        return s && *s == *ends;
      },
      std::chrono::seconds(90));
  child->kill(SIGTERM);
  auto st = child->wait(std::chrono::seconds(30));
  ASSERT_TRUE(caught_up) << "the final run did not catch up\n" << tail_file(log);
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << tail_file(log);

  auto expected = fold_of_log(brokers, topic, static_cast<size_t>(sent.load()), std::chrono::seconds(60));
  ASSERT_TRUE(expected) << expected.error().to_string();
  auto actual = fold_of_db(*ts.store);
  ASSERT_TRUE(actual) << actual.error().to_string();
  int64_t applied = 0;
  for (auto& [k, row] : *actual) applied += row.count;
  std::printf("log: %lld records (%lld re-published duplicates), %zu keys; database: %lld events applied; "
              "%d of %d kills after progress\n",
              static_cast<long long>(expected->records), static_cast<long long>(expected->duplicates),
              expected->fold.size(), static_cast<long long>(applied), progressed, trials);
  EXPECT_EQ(expected->records, sent.load());
  EXPECT_EQ(*actual, expected->fold) << "the database is not the fold of the log";
  EXPECT_GE(progressed, trials / 2) << "too few kills landed while the projection was working";
}

INSTANTIATE_TEST_SUITE_P(Store, ReplicaKill, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
