// PostgreSQL: per-aggregate commit order under concurrent writers.
//
// Eight threads commit interleaved transactions that add events for one to
// three of six aggregates (in random order, so some deadlock and are retried,
// and 15% roll back) while the relay publishes concurrently. The ground truth
// for commit order is PostgreSQL's own commit timestamp of each writing
// transaction (track_commit_timestamp=on in the fixture cluster): for every
// aggregate, the published order must be the commit order, and within one
// transaction the add() order. (Negative control, done by hand: with the
// advisory lock removed from Outbox::add this test reports dozens of
// "published after ... but committed before it" per run.)
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk_test_util.h"

namespace herald::sdk {
namespace {

using namespace std::chrono_literals;

TEST(OutboxPostgres, PublishedOrderPerAggregateEqualsCommitOrderUnderConcurrentWriters) {
  auto broker = testing::TestBroker::start();
  auto db = testing::PgDatabase::create("order");
  auto store = Store::open(db->url(), {.max_connections = 16});
  ASSERT_TRUE(store) << store.error().to_string();
  Outbox outbox({.topic = "orders", .source = "/order-test"});
  RelayOptions ro;
  ro.brokers = broker->brokers();
  ro.batch_size = 50;
  auto relay = OutboxRelay::create(**store, ro);
  ASSERT_TRUE(relay);
  ASSERT_TRUE((*relay)->start());

  uint32_t seed = std::random_device{}();
  if (const char* s = std::getenv("HERALD_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  std::cout << "seed " << seed << " (HERALD_SEED to repeat)\n";
  constexpr int kThreads = 8, kTxPerThread = 40, kAggregates = 6;
  std::mutex mu;
  std::set<std::string> committed, rolled_back;
  std::atomic<int> deadlocks{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<uint32_t>(t));
      auto pause = [&] { std::this_thread::sleep_for(std::chrono::microseconds(rng() % 1500)); };
      for (int i = 0; i < kTxPerThread; ++i) {
        std::vector<std::string> ids;
        bool rollback = rng() % 100 < 15;
        int attempts = 0;
        auto r = (*store)->run(
            [&](Tx& tx) -> Result<void> {
              ++attempts;
              ids.clear();
              HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT pg_current_xact_id()::text"));
              std::string txid = (*row).text(0);
              int n = 1 + static_cast<int>(rng() % 3);
              for (int k = 0; k < n; ++k) {
                pause();
                std::string agg = "agg-" + std::to_string(rng() % kAggregates);
                auto ev = Event::json("order.step", "", agg,
                                      {{"txid", txid}, {"k", k}, {"thread", t}, {"i", i}});
                HERALD_ASSIGN_OR_RETURN(std::string id, outbox.add(tx, std::move(ev)));
                ids.push_back(id);
              }
              pause();
              if (rollback) return Error{Errc::kInvalidArgument, "deliberate rollback"};
              return ok();
            },
            50);
        deadlocks += attempts - 1;
        std::lock_guard lock(mu);
        if (r) {
          committed.insert(ids.begin(), ids.end());
        } else {
          ASSERT_TRUE(rollback) << r.error().to_string();
          rolled_back.insert(ids.begin(), ids.end());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::cout << committed.size() << " events committed, " << rolled_back.size()
            << " rolled back, " << deadlocks << " retried transactions (deadlocks)\n";

  auto recs = testing::read_topic(broker->brokers(), "orders", committed.size(), 60s);
  ASSERT_TRUE(recs) << recs.error().to_string();
  (*relay)->stop();
  ASSERT_EQ(recs->size(), committed.size());

  // Commit timestamp of every writing transaction.
  std::map<std::string, std::string> commit_ts;
  auto tx = (*store)->begin();
  ASSERT_TRUE(tx);
  std::map<std::string, std::vector<std::pair<std::string, int>>> per_agg;  // (txid, k)
  std::set<std::string> seen;
  for (const auto& rec : *recs) {
    auto ev = rec.event();
    ASSERT_TRUE(ev);
    EXPECT_TRUE(committed.count(ev->id)) << "phantom event " << ev->id;
    EXPECT_TRUE(seen.insert(ev->id).second) << "duplicate " << ev->id;
    auto p = ev->json_payload().value();
    std::string txid = p["txid"];
    per_agg[ev->aggregate_id].emplace_back(txid, p["k"].get<int>());
    if (!commit_ts.count(txid)) {
      auto ts = (*tx)->query_one(
          "SELECT to_char(pg_xact_commit_timestamp(xid(?::xid8)), 'YYYYMMDDHH24MISSUS')", {txid});
      ASSERT_TRUE(ts) << ts.error().to_string();
      ASSERT_FALSE((*ts)->is_null(0)) << "no commit timestamp for " << txid;
      commit_ts[txid] = (*ts)->text(0);
    }
  }
  int checked = 0;
  for (const auto& [agg, list] : per_agg) {
    for (size_t i = 1; i < list.size(); ++i) {
      const auto& [prev_tx, prev_k] = list[i - 1];
      const auto& [cur_tx, cur_k] = list[i];
      if (prev_tx == cur_tx) {
        EXPECT_LT(prev_k, cur_k) << agg << ": add() order broken inside transaction " << cur_tx;
      } else {
        EXPECT_LT(commit_ts[prev_tx], commit_ts[cur_tx])
            << agg << ": transaction " << cur_tx << " published after " << prev_tx
            << " but committed before it";
      }
      ++checked;
    }
  }
  std::cout << checked << " consecutive pairs checked over " << per_agg.size() << " aggregates\n";
  EXPECT_EQ(outbox_pending(**store).value(), 0);
}

}  // namespace
}  // namespace herald::sdk
