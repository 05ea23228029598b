// Rebalance (issue 5): two replica instances (processes) in one consumer
// group share one database; one is SIGKILLed; the other takes over its
// partitions and continues from the offsets in the database.
//
// Both instances run with broker commits turned off, so the broker holds no
// offsets for the group at all: a survivor that resumed from the broker would
// start from the beginning and see every event of the dead instance's
// partitions again (counted as duplicates, dropped by ce_id). The survivor
// must report zero duplicates, and the database must equal the fold of the
// log. SQLite (a shared file) and PostgreSQL.
//
// Also: an instance whose partition was taken over (fenced) answers
// wait_until() from the database, where the new owner's offsets land.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <random>
#include <thread>

#include "replica_harness.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk_test_util.h"

namespace herald::sdk::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class ReplicaRebalance : public ::testing::TestWithParam<std::string> {};

TEST_P(ReplicaRebalance, SurvivorTakesOverFromDatabaseOffsets) {
  TempDir dir;
  auto broker = GroupBroker::start();
  const std::string brokers = broker->brokers();
  const std::string topic = "fold";
  const std::string group = "fold-pair";
  ASSERT_TRUE(make_topic(brokers, topic, 4));
  TestStore ts = open_test_store(GetParam(), dir.path(), "replica_rebalance");
  ASSERT_TRUE(create_fold_table(*ts.store));

  std::atomic<bool> producing{true};
  std::atomic<int64_t> sent{0};
  std::thread producer([&] {
    EventProducer prod(brokers);
    std::mt19937_64 prng(42);
    while (producing.load()) {
      for (int i = 0; i < 10; ++i) {
        ASSERT_TRUE(prod.send(topic, fold_event("k" + std::to_string(prng() % 40), static_cast<int64_t>(prng() % 9) + 1)));
        sent++;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    ASSERT_TRUE(prod.flush());
  });

  const std::string helper = helper_path();
  auto spawn = [&](const std::string& name) {
    return Child::spawn(helper,
                        {"--store", ts.url, "--brokers", brokers, "--group", group, "--topic", topic, "--batch", "50",
                         "--instance", name, "--session-ms", "2000", "--no-broker-commit", "--stats",
                         (dir.path() / (name + ".json")).string()},
                        dir.path() / (name + ".log"));
  };
  auto stats = [&](const std::string& name) { return read_helper_stats(dir.path() / (name + ".json")); };
  auto a = spawn("a");
  auto b = spawn("b");
  auto both_working = [&] {
    auto sa = stats("a");
    auto sb = stats("b");
    return sa && sb && sa->partitions.size() == 2 && sb->partitions.size() == 2 && sa->applied > 0 && sb->applied > 0;
  };
  ASSERT_TRUE(eventually(both_working, seconds(40)))
      << "a:\n" << tail_file(dir.path() / "a.log") << "b:\n" << tail_file(dir.path() / "b.log");
  std::this_thread::sleep_for(milliseconds(700));
  auto a_parts = stats("a")->partitions;
  a->kill(SIGKILL);
  ASSERT_TRUE(a->wait(seconds(10)));
  auto at_kill = stored_offsets(*ts.store, group, topic);
  ASSERT_TRUE(at_kill);
  std::printf("killed a holding");
  for (auto& [t, p] : a_parts) std::printf(" %s/%d@%lld", t.c_str(), p, static_cast<long long>((*at_kill)[p]));
  std::printf(" (database offsets)\n");
  for (auto& [t, p] : a_parts) EXPECT_GT((*at_kill)[p], 0) << "a had not applied anything on partition " << p;

  ASSERT_TRUE(eventually([&] {
    auto sb = stats("b");
    return sb && sb->partitions.size() == 4;
  }, seconds(30))) << "b never took over a's partitions\n" << tail_file(dir.path() / "b.log");
  std::this_thread::sleep_for(seconds(1));  // b keeps applying while events flow
  producing.store(false);
  producer.join();

  auto ends = end_offsets(brokers, topic);
  ASSERT_TRUE(ends);
  ASSERT_TRUE(eventually([&] {
    auto s = stored_offsets(*ts.store, group, topic);
    return s && *s == *ends;
  }, seconds(60))) << tail_file(dir.path() / "b.log");
  b->kill(SIGTERM);
  auto st = b->wait(seconds(30));
  ASSERT_TRUE(st && WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << tail_file(dir.path() / "b.log");

  auto sb = stats("b");
  ASSERT_TRUE(sb);
  std::printf("b: %lld applied, %lld duplicates; sent %lld\n", static_cast<long long>(sb->applied),
              static_cast<long long>(sb->duplicates), static_cast<long long>(sent.load()));
  EXPECT_EQ(sb->duplicates, 0) << "b re-read events a had applied: it did not resume from the database offsets";

  // The broker never saw a commit from this group.
  auto conf = kafka::make_conf({{"bootstrap.servers", brokers}, {"group.id", group}, {"log_level", "3"}});
  auto c = kafka::make_handle(RD_KAFKA_CONSUMER, std::move(*conf));
  auto list = kafka::make_list();
  for (int p = 0; p < 4; ++p) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  ASSERT_EQ(rd_kafka_committed(c->get(), list.get(), 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int i = 0; i < list->cnt; ++i) EXPECT_LT(list->elems[i].offset, 0) << "partition " << i;
  rd_kafka_consumer_close(c->get());

  auto expected = fold_of_log(brokers, topic, static_cast<size_t>(sent.load()), seconds(60));
  ASSERT_TRUE(expected);
  EXPECT_EQ(*fold_of_db(*ts.store), expected->fold);
}

// Another instance of the group takes partition 0 over and applies offsets
// 5..7: its transaction moves the stored offset to 8. This instance reads
// 5..7 as well, finds the offset moved at commit and fences the partition
// (it drops its records). wait_until must then read the database, not this
// instance's stale position. Then it rejoins the group, is assigned the
// partition again from the stored offset, and applies what follows: the other
// instance may be gone with no rebalance to come.
TEST_P(ReplicaRebalance, WaitUntilReadsTheDatabaseForAFencedPartition) {
  TempDir dir;
  auto broker = GroupBroker::start();
  const std::string brokers = broker->brokers();
  const std::string topic = "fenced";
  const std::string group = "fenced-group";
  ASSERT_TRUE(make_topic(brokers, topic, 1));
  TestStore ts = open_test_store(GetParam(), dir.path(), "replica_fenced");
  ASSERT_TRUE(create_fold_table(*ts.store));
  EventProducer prod(brokers);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(prod.send(topic, fold_event("k", 1)));  // offsets 0..4
  ASSERT_TRUE(prod.flush());

  ReplicaHandlers h;
  install_fold(h);
  RunningReplica r(test_config(brokers, group, topic), *ts.store, std::move(h));
  auto applied = r->wait_until(topic, 0, 4, seconds(30));
  ASSERT_TRUE(applied && *applied) << (applied ? "timed out" : applied.error().to_string());
  ASSERT_EQ(stored_offsets(*ts.store, group, topic)->at(0), 5);

  ASSERT_TRUE(ts.store->run([&](Tx& tx) -> Result<void> { return save_offset(tx, group, topic, 0, 8); }));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(prod.send(topic, fold_event("k", 1)));  // offsets 5..7
  ASSERT_TRUE(prod.flush());
  ASSERT_TRUE(eventually([&] { return r->stats().fenced > 0; }, seconds(30))) << "the partition was never fenced";

  auto taken = r->wait_until(topic, 0, 7, seconds(5));
  ASSERT_TRUE(taken) << taken.error().to_string();
  EXPECT_TRUE(*taken) << "wait_until kept reading the fenced partition's position instead of the database";
  auto beyond = r->wait_until(topic, 0, 8, milliseconds(300));
  ASSERT_TRUE(beyond) << beyond.error().to_string();
  EXPECT_FALSE(*beyond) << "offset 8 was applied by nobody";

  for (int i = 0; i < 2; ++i) ASSERT_TRUE(prod.send(topic, fold_event("k", 1)));  // offsets 8..9
  ASSERT_TRUE(prod.flush());
  auto resumed = r->wait_until(topic, 0, 9, seconds(30));
  ASSERT_TRUE(resumed) << resumed.error().to_string();
  EXPECT_TRUE(*resumed) << "the fenced partition was never consumed again";
  EXPECT_EQ(fold_of_db(*ts.store)->at("k").count, 7) << "offsets 0..4 and 8..9; 5..7 belong to the other instance";
  EXPECT_TRUE(eventually([&] { return r->ready(); }, seconds(10)));
}

INSTANTIATE_TEST_SUITE_P(Store, ReplicaRebalance, ::testing::Values("sqlite", "postgres"),
                         store_param_name);

}  // namespace
}  // namespace herald::sdk::testing
