// Store contract, run against both stores: Sqlite/* on a temp file and
// Postgres/* on a fresh database of the "pg" fixture cluster.
#include "sdk/store/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "sdk/replica/processed_ids.h"
#include "sdk/store/sql.h"
#include "sdk_test_util.h"

namespace herald::sdk {
namespace {

using testing::PgDatabase;
using testing::TempDir;

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "postgres") {
      pg_ = PgDatabase::create("store");
      url_ = pg_->url();
    } else {
      url_ = "sqlite:" + (dir_.path() / "test.db").string();
    }
    auto s = Store::open(url_);
    ASSERT_TRUE(s) << s.error().to_string();
    store_ = std::move(*s);
  }
  void TearDown() override { store_.reset(); }

  std::unique_ptr<Tx> begin(TxOptions o = {}) {
    auto tx = store_->begin(o);
    EXPECT_TRUE(tx) << tx.error().to_string();
    return std::move(*tx);
  }
  int64_t count(const std::string& table) {
    auto tx = begin({.read_only = true});
    auto row = tx->query_one("SELECT count(*) FROM " + table);
    EXPECT_TRUE(row) << row.error().to_string();
    return (*row)->int64(0);
  }
  void create_items() {
    auto tx = begin();
    ASSERT_TRUE(tx->exec_script(std::string("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT, "
                                            "amount BIGINT, data ") +
                                store_->blob_type() + ", ratio DOUBLE PRECISION)"));
    ASSERT_TRUE(tx->commit());
  }

  TempDir dir_;
  std::unique_ptr<PgDatabase> pg_;
  std::string url_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, ReportsItsDialect) {
  EXPECT_EQ(store_->dialect(), GetParam() == "postgres" ? Dialect::kPostgres : Dialect::kSqlite);
  EXPECT_EQ(store_->url(), url_);
}

TEST_P(StoreTest, ParametersAndResultsRoundTripEveryType) {
  create_items();
  std::string bytes("\x00\x01\xff\x7f\x80 end", 9);
  auto tx = begin();
  auto n = tx->exec("INSERT INTO items (id, name, amount, data, ratio) VALUES (?, ?, ?, ?, ?)",
                    {1, "caf\xc3\xa9 'quoted'", int64_t{-9007199254740993}, Param::blob(bytes), 0.25});
  ASSERT_TRUE(n) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  ASSERT_TRUE(tx->exec("INSERT INTO items (id, name, amount, data, ratio) VALUES (?, ?, ?, ?, ?)",
                       {2, std::nullopt, std::optional<int64_t>{}, Param(), Param()}));
  auto rows = tx->query("SELECT id, name, amount, data, ratio FROM items ORDER BY id");
  ASSERT_TRUE(rows) << rows.error().to_string();
  ASSERT_EQ(rows->size(), 2u);
  const Row& r = (*rows)[0];
  EXPECT_EQ(r.int64(0), 1);
  EXPECT_EQ(r.text(1), "caf\xc3\xa9 'quoted'");
  EXPECT_EQ(r.int64(2), -9007199254740993);
  EXPECT_EQ(r[3], bytes);
  EXPECT_DOUBLE_EQ(std::stod(r.text(4)), 0.25);
  const Row& nulls = (*rows)[1];
  for (size_t c = 1; c < 5; ++c) EXPECT_TRUE(nulls.is_null(c)) << c;
  EXPECT_EQ(nulls.opt_int64(2), std::nullopt);
  ASSERT_TRUE(tx->commit());
}

TEST_P(StoreTest, CommitPublishesAndRollbackDiscards) {
  create_items();
  {
    auto tx = begin();
    ASSERT_TRUE(tx->exec("INSERT INTO items (id) VALUES (?)", {1}));
    ASSERT_TRUE(tx->commit());
    EXPECT_FALSE(tx->is_open());
    EXPECT_EQ(tx->exec("INSERT INTO items (id) VALUES (?)", {9}).error().code, Errc::kClosed);
  }
  {
    auto tx = begin();
    ASSERT_TRUE(tx->exec("INSERT INTO items (id) VALUES (?)", {2}));
    tx->rollback();
  }
  {
    auto tx = begin();
    ASSERT_TRUE(tx->exec("INSERT INTO items (id) VALUES (?)", {3}));
    // destroyed while open: rolled back
  }
  EXPECT_EQ(count("items"), 1);
}

TEST_P(StoreTest, UniqueViolationIsAlreadyExistsAndRunRollsBack) {
  create_items();
  auto r = store_->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("INSERT INTO items (id) VALUES (?)", {1}));
    HERALD_TRY(tx.exec("INSERT INTO items (id) VALUES (?)", {1}));
    return ok();
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists) << r.error().to_string();
  EXPECT_FALSE(is_retryable(r.error()));
  EXPECT_EQ(count("items"), 0);
}

TEST_P(StoreTest, UpsertSyntaxIsTheSameOnBothStores) {
  create_items();
  for (int v : {10, 20}) {
    ASSERT_TRUE(store_->run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec("INSERT INTO items (id, amount) VALUES (?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
                         {7, v}));
      return ok();
    }));
  }
  auto tx = begin();
  EXPECT_EQ((*tx->query_one("SELECT amount FROM items WHERE id = ?", {7}))->int64(0), 20);
  auto none = tx->query_one("SELECT amount FROM items WHERE id = ?", {8});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreTest, PlaceholdersInLiteralsAndCommentsAreText) {
  auto tx = begin();
  auto row = tx->query_one("SELECT '?' || ? /* ? */ -- ?\n", {"x"});
  ASSERT_TRUE(row) << row.error().to_string();
  EXPECT_EQ((*row)->text(0), "?x");
  auto mismatch = tx->query("SELECT ?, ?", {1});
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, Errc::kInvalidArgument);
}

// PostgreSQL TEXT holds neither NUL nor invalid UTF-8, and libpq sends a text
// parameter only up to its first NUL. Both stores refuse such text, naming the
// parameter, before the statement runs: nothing is cut short (two ids that
// differ after a NUL would be one), and SQL that works on SQLite works on
// PostgreSQL. The same bytes bind as Param::blob().
TEST_P(StoreTest, TextParametersMustBeUtf8WithoutNul) {
  using namespace std::string_literals;
  create_items();
  auto tx = begin();
  for (const std::string& bad : {"a\0x"s, "\0"s, "caf\xc3"s, "\xff"s, "a\xc0\xaf"s, "\xed\xa0\x80"s}) {
    auto n = tx->exec("INSERT INTO items (id, name) VALUES (?, ?)", {1, bad});
    ASSERT_FALSE(n) << ::testing::PrintToString(bad);
    EXPECT_EQ(n.error().code, Errc::kInvalidArgument) << n.error().to_string();
    EXPECT_NE(n.error().message.find("parameter 2"), std::string::npos) << n.error().message;
  }
  auto q = tx->query("SELECT id FROM items WHERE name = ? OR name = ?", {"ok", "a\0y"s});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::kInvalidArgument);
  EXPECT_NE(q.error().message.find("parameter 2"), std::string::npos) << q.error().message;
  // Refused before it reached the database: the transaction goes on.
  ASSERT_TRUE(tx->exec("INSERT INTO items (id, name, data) VALUES (?, ?, ?)",
                       {1, "caf\xc3\xa9 \xf0\x9f\x98\x80", Param::blob("a\0x\xff"s)}));
  auto row = tx->query_one("SELECT name, data FROM items WHERE id = ?", {1});
  ASSERT_TRUE(row && *row) << (row ? "no row" : row.error().to_string());
  EXPECT_EQ((*row)->text(0), "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ((*row)->text(1), "a\0x\xff"s);
  // Deduplication never merges two ids that differ only after a NUL.
  for (const std::string& id : {"a\0x"s, "a\0y"s}) {
    auto fresh = mark_processed(*tx, "g", id, 1000);
    ASSERT_FALSE(fresh) << "ce_id " << ::testing::PrintToString(id) << " recorded as " << *fresh;
    EXPECT_EQ(fresh.error().code, Errc::kInvalidArgument);
  }
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ(count("herald_processed"), 0);
}

TEST_P(StoreTest, SdkTablesExistAfterOpen) {
  for (const char* t : {"herald_outbox", "herald_offsets", "herald_processed", "herald_processed_ids",
                        "herald_migrations"}) {
    EXPECT_EQ(count(t), std::string(t) == "herald_migrations" ? static_cast<int64_t>(sdk_migrations().size()) : 0)
        << t;
  }
}

TEST_P(StoreTest, MigrationsApplyOnceInOrder) {
  std::vector<Migration> ms = {
      {"test_a_v1", "CREATE TABLE a (x INTEGER)", "CREATE TABLE a (x INTEGER)"},
      {"test_a_v2", "ALTER TABLE a ADD COLUMN y TEXT; INSERT INTO a (x, y) VALUES (1, 'one')",
       "ALTER TABLE a ADD COLUMN y TEXT; INSERT INTO a (x, y) VALUES (1, 'one')"},
  };
  ASSERT_TRUE(store_->migrate(ms));
  ASSERT_TRUE(store_->migrate(ms));  // no-op the second time
  EXPECT_EQ(count("a"), 1);
  // A reopened store applies nothing twice either.
  store_.reset();
  auto again = Store::open(url_);
  ASSERT_TRUE(again);
  store_ = std::move(*again);
  ASSERT_TRUE(store_->migrate(ms));
  EXPECT_EQ(count("a"), 1);
  EXPECT_EQ(count("herald_migrations"), static_cast<int64_t>(sdk_migrations().size()) + 2);
  // A failing migration leaves nothing behind and names itself.
  auto bad = store_->migrate({{"test_bad", "CREATE TABLE b (x INTEGER); SELEC 1",
                               "CREATE TABLE b (x INTEGER); SELEC 1"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("test_bad"), std::string::npos);
  EXPECT_EQ(count("herald_migrations"), static_cast<int64_t>(sdk_migrations().size()) + 2);
}

TEST_P(StoreTest, OffsetsUpsertAndLoadPerGroupAndTopic) {
  ASSERT_TRUE(store_->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(save_offset(tx, "billing", "users", 0, 10));
    HERALD_TRY(save_offset(tx, "billing", "users", 1, 5));
    HERALD_TRY(save_offset(tx, "billing", "users", 0, 42));
    HERALD_TRY(save_offset(tx, "billing", "orders", 0, 7));
    HERALD_TRY(save_offset(tx, "search", "users", 0, 1));
    return ok();
  }));
  auto tx = begin();
  auto offs = load_offsets(*tx, "billing", "users");
  ASSERT_TRUE(offs);
  EXPECT_EQ(*offs, (std::map<int32_t, int64_t>{{0, 42}, {1, 5}}));
  EXPECT_TRUE(load_offsets(*tx, "nobody", "users")->empty());
}

TEST_P(StoreTest, HeraldProcessedRowsDeduplicateAndPrune) {
  auto tx = begin();
  EXPECT_TRUE(*mark_processed(*tx, "g", "id-1", 1000));
  EXPECT_FALSE(*mark_processed(*tx, "g", "id-1", 2000));
  EXPECT_TRUE(*mark_processed(*tx, "other", "id-1", 1000));
  EXPECT_TRUE(*mark_processed(*tx, "g", "id-2", 5000));
  EXPECT_EQ(*prune_processed(*tx, "g", 3000), 1);
  EXPECT_TRUE(*mark_processed(*tx, "g", "id-1", 6000));       // pruned: new again
  EXPECT_FALSE(*mark_processed(*tx, "other", "id-1", 6000));  // another group's entry stays
  ASSERT_TRUE(tx->commit());
}

TEST(Uuid7Test, ParsesOnlyCanonicalVersion7AndPrintsItBack) {
  const std::string id = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506";
  auto u = Uuid7::parse(id);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->text(), id);
  EXPECT_EQ(u->bucket(), 0x0192f3a45ULL);  // the first 9 hex digits
  EXPECT_FALSE(Uuid7::parse("0192F3A4-5B6C-7D8E-9FA0-B1C2D3E4F506"));  // not canonical: another id
  EXPECT_FALSE(Uuid7::parse("0192f3a4-5b6c-4d8e-9fa0-b1c2d3e4f506"));  // version 4
  EXPECT_FALSE(Uuid7::parse("0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f50"));   // short
  EXPECT_FALSE(Uuid7::parse("0192f3a4-5b6c-7d8e-9fa0xb1c2d3e4f506"));  // no dash
  EXPECT_FALSE(Uuid7::parse("0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5g6"));  // not hex
}

TEST(Uuid7Test, SetHoldsManyIdsAndTellsThemApart) {
  Uuid7Set set;
  for (uint64_t i = 1; i <= 10000; ++i) EXPECT_TRUE(set.insert({0x0192f3a456c7000ULL, i * 0x9E3779B9ULL}));
  EXPECT_FALSE(set.insert({0x0192f3a456c7000ULL, 5 * 0x9E3779B9ULL}));
  EXPECT_EQ(set.size(), 10000u);
  EXPECT_TRUE(set.contains({0x0192f3a456c7000ULL, 9999 * 0x9E3779B9ULL}));
  EXPECT_FALSE(set.contains({0x0192f3a456c7001ULL, 9999 * 0x9E3779B9ULL}));
}

namespace {
// The i-th id of bucket b (9 hex digits), version 7.
std::string v7_id(uint64_t b, uint64_t i) {
  return Uuid7{(b << 28) | 0x7000ULL | (i & 0xfff), 0x8000000000000000ULL | i}.text();
}
}  // namespace

TEST_P(StoreTest, ProcessedIdsRecordOneRowPerBucketAndSurviveAColdCache) {
  ProcessedIds ids("g", 1000);
  {
    auto tx = begin();
    ProcessedIds::Pending pending;
    for (uint64_t i = 0; i < 100; ++i) EXPECT_TRUE(*ids.mark(*tx, v7_id(0x0192f3a45 + i % 2, i), 1000, pending));
    EXPECT_FALSE(*ids.mark(*tx, v7_id(0x0192f3a45, 0), 1000, pending));  // again in the same transaction
    EXPECT_TRUE(*ids.mark(*tx, "order-17", 1000, pending));              // not a UUIDv7: one row of its own
    ASSERT_TRUE(ids.write(*tx, pending, 1000));
    ASSERT_TRUE(tx->commit());
    ids.committed(pending);
  }
  EXPECT_EQ(count("herald_processed_ids"), 2);  // two buckets
  EXPECT_EQ(count("herald_processed"), 1);
  {
    auto tx = begin();
    ProcessedIds::Pending pending;
    EXPECT_FALSE(*ids.mark(*tx, v7_id(0x0192f3a45, 42), 2000, pending));  // from the cache
    ids.clear();
    EXPECT_FALSE(*ids.mark(*tx, v7_id(0x0192f3a46, 43), 2000, pending));  // from the database
    EXPECT_FALSE(*ids.mark(*tx, "order-17", 2000, pending));
    EXPECT_TRUE(*ids.mark(*tx, v7_id(0x0192f3a45, 100), 2000, pending));
    tx->rollback();  // the new id was never applied
  }
  ProcessedIds cold("g", 1000);
  ProcessedIds other_group("h", 1000);
  auto tx = begin();
  ProcessedIds::Pending pending, other;
  EXPECT_FALSE(*cold.mark(*tx, v7_id(0x0192f3a45, 98), 3000, pending));
  EXPECT_TRUE(*cold.mark(*tx, v7_id(0x0192f3a45, 100), 3000, pending));
  EXPECT_TRUE(*other_group.mark(*tx, v7_id(0x0192f3a45, 98), 3000, other));
  ASSERT_TRUE(tx->commit());
}

TEST_P(StoreTest, ProcessedIdsReloadEvictedBucketsAndPruneByProcessingTime) {
  ProcessedIds ids("g", 64, /*keep_transactions=*/1);  // a few buckets at most
  ProcessedIds busy("g2", 64, /*keep_transactions=*/10);  // keeps the last 10 transactions' buckets
  for (uint64_t t = 0; t < 20; ++t) {
    for (ProcessedIds* p : {&ids, &busy}) {
      auto tx = begin();
      ProcessedIds::Pending pending;
      for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(*p->mark(*tx, v7_id(0x0192f3a40 + t, i), 1000 + t, pending));
      ASSERT_TRUE(p->write(*tx, pending, 1000 + t));
      ASSERT_TRUE(tx->commit());
      p->committed(pending);
    }
    EXPECT_LE(ids.cached(), 64u + 10u);
    EXPECT_EQ(busy.cached(), std::min<size_t>(t + 1, 10) * 10) << t;  // over the limit from t = 6
  }
  {
    auto tx = begin();
    ProcessedIds::Pending pending;
    for (uint64_t t = 0; t < 20; ++t) EXPECT_FALSE(*ids.mark(*tx, v7_id(0x0192f3a40 + t, 7), 5000, pending)) << t;
    // Rows processed before 1010 go; the ids of later rows stay, whatever their buckets.
    EXPECT_EQ(*ids.prune(*tx, 1010), 10);
    ASSERT_TRUE(tx->commit());
  }
  ProcessedIds cold("g", 64);
  auto tx = begin();
  ProcessedIds::Pending pending;
  EXPECT_TRUE(*cold.mark(*tx, v7_id(0x0192f3a40 + 9, 7), 6000, pending));
  EXPECT_FALSE(*cold.mark(*tx, v7_id(0x0192f3a40 + 10, 7), 6000, pending));
  tx->rollback();
}

TEST_P(StoreTest, MigrationMovesUuid7IdsOfHeraldProcessedToBuckets) {
  // A database of the previous release: every id one row in herald_processed.
  TempDir dir;
  std::unique_ptr<PgDatabase> pg;
  std::string url = GetParam() == "postgres" ? (pg = PgDatabase::create("legacy"))->url()
                                             : "sqlite:" + (dir.path() / "legacy.db").string();
  {
    auto old = Store::open(url, StoreOptions{.create_schema = false});
    ASSERT_TRUE(old) << old.error().to_string();
    std::vector<Migration> before;
    for (const auto& m : sdk_migrations()) {
      if (m.id == "herald_processed_ids_v1") break;
      before.push_back(m);
    }
    ASSERT_TRUE((*old)->migrate(before));
    auto tx = (*old)->begin();
    ASSERT_TRUE(tx);
    ASSERT_TRUE(*mark_processed(**tx, "g", v7_id(0x0192f3a45, 1), 1000));
    ASSERT_TRUE(*mark_processed(**tx, "g", "order-17", 1000));
    ASSERT_TRUE((*tx)->commit());
  }
  auto store = Store::open(url);
  ASSERT_TRUE(store) << store.error().to_string();
  ProcessedIds ids("g", 1000);
  auto tx = (*store)->begin();
  ASSERT_TRUE(tx);
  ProcessedIds::Pending pending;
  EXPECT_FALSE(*ids.mark(**tx, v7_id(0x0192f3a45, 1), 2000, pending));
  EXPECT_FALSE(*ids.mark(**tx, "order-17", 2000, pending));
  auto moved = (*tx)->query_one("SELECT count(*) FROM herald_processed_ids");
  ASSERT_TRUE(moved);
  EXPECT_EQ((*moved)->int64(0), 1);
  auto left = (*tx)->query_one("SELECT count(*) FROM herald_processed");
  ASSERT_TRUE(left);
  EXPECT_EQ((*left)->int64(0), 1);
  (*tx)->rollback();
}

TEST_P(StoreTest, NotifyWakesListenersOnlyOnCommit) {
  auto listener = store_->listen("test_channel");
  ASSERT_TRUE(listener) << listener.error().to_string();
  {
    auto tx = begin();
    ASSERT_TRUE(tx->notify("test_channel"));
    tx->rollback();
  }
  EXPECT_FALSE(*(*listener)->wait(std::chrono::milliseconds(200)));
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto tx = store_->begin();
    ASSERT_TRUE(tx);
    ASSERT_TRUE((*tx)->notify("test_channel"));
    ASSERT_TRUE((*tx)->commit());
  });
  auto t0 = std::chrono::steady_clock::now();
  auto got = (*listener)->wait(std::chrono::seconds(10));
  committer.join();
  ASSERT_TRUE(got);
  EXPECT_TRUE(*got);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_FALSE(store_->listen("bad name; DROP TABLE x"));
}

TEST_P(StoreTest, OnCommitCallbacksRunOnlyAfterCommit) {
  int ran = 0;
  {
    auto tx = begin();
    tx->on_commit([&] { ++ran; });
    tx->rollback();
  }
  EXPECT_EQ(ran, 0);
  auto tx = begin();
  tx->on_commit([&] { ++ran; });
  EXPECT_EQ(ran, 0);
  ASSERT_TRUE(tx->commit());
  EXPECT_EQ(ran, 1);
}

TEST_P(StoreTest, LeaseIsExclusiveUntilReleased) {
  auto a = store_->try_lease("relay_test");
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_NE(*a, nullptr);
  EXPECT_TRUE((*a)->valid());
  // Another Store object (as another process would) cannot take it.
  auto other = Store::open(url_);
  ASSERT_TRUE(other);
  auto b = (*other)->try_lease("relay_test");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, nullptr);
  auto c = (*other)->try_lease("another_name");
  ASSERT_TRUE(c);
  EXPECT_NE(*c, nullptr);
  a->reset();
  auto d = (*other)->try_lease("relay_test");
  ASSERT_TRUE(d);
  EXPECT_NE(*d, nullptr);
  // Handed back and forth: free as soon as the holder has released it (a relay's standby takes
  // over at its next try, not after a backend's exit).
  std::unique_ptr<Lease> held = std::move(*d);
  for (int i = 0; i < 20; ++i) {
    held.reset();
    auto next = (i % 2 ? **other : *store_).try_lease("relay_test");
    ASSERT_TRUE(next) << next.error().to_string();
    ASSERT_NE(*next, nullptr) << "hand-over " << i << ": the released lease was not free";
    held = std::move(*next);
  }
}

// A listener whose server connection was closed while nobody waited (a PostgreSQL restart, an
// administrator's pg_terminate_backend) reports it at its next wait, so the relay listens again,
// instead of timing out quietly on every wait from then on.
TEST_P(StoreTest, AListenerWhoseConnectionWasClosedReportsAnError) {
  if (GetParam() != "postgres") GTEST_SKIP() << "the SQLite listener has no connection";
  auto listener = store_->listen("test_channel");
  ASSERT_TRUE(listener) << listener.error().to_string();
  {
    auto tx = begin();
    auto killed = tx->query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'");
    ASSERT_TRUE(killed) << killed.error().to_string();
    ASSERT_EQ((*killed)->int64(0), 1);
    ASSERT_TRUE(tx->commit());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server's goodbye arrives
  // A zero wait (the relay's per-round read) takes the server's last message; the end of the
  // stream is read by the next wait.
  bool broken = !(*listener)->wait(std::chrono::milliseconds(0));
  for (int i = 0; i < 5 && !broken; ++i) broken = !(*listener)->wait(std::chrono::milliseconds(100));
  EXPECT_TRUE(broken) << "the listener times out forever on a closed connection";
}

// A PostgreSQL restart, a failover or idle_session_timeout closes every pooled connection: the
// next transactions open new ones instead of failing on the dead ones.
TEST_P(StoreTest, PooledConnectionsTheServerClosedAreReplaced) {
  if (GetParam() != "postgres") GTEST_SKIP() << "SQLite has no server";
  {
    std::vector<std::unique_ptr<Tx>> held;  // four connections at once, then all idle in the pool
    for (int i = 0; i < 4; ++i) held.push_back(begin());
    for (auto& tx : held) ASSERT_TRUE(tx->commit());
  }
  auto other = Store::open(url_);
  ASSERT_TRUE(other) << other.error().to_string();
  {
    auto tx = (*other)->begin();
    ASSERT_TRUE(tx) << tx.error().to_string();
    auto killed = (*tx)->query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
    ASSERT_TRUE(killed) << killed.error().to_string();
    ASSERT_GE((*killed)->int64(0), 4);
    ASSERT_TRUE((*tx)->commit());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server's goodbyes arrive
  for (int i = 0; i < 10; ++i) {
    auto tx = store_->begin();
    ASSERT_TRUE(tx) << "transaction " << i << ": " << tx.error().to_string();
    ASSERT_TRUE((*tx)->query_one("SELECT 1"));
    ASSERT_TRUE((*tx)->commit());
  }
}

// PostgreSQL's advisory locks are per database: the lease also names the schema, so services whose
// outbox tables live in different schemas of one database each have a relay publishing.
TEST_P(StoreTest, LeasesOfDifferentSchemasDoNotExcludeEachOther) {
  if (GetParam() != "postgres") GTEST_SKIP() << "an SQLite database has one schema";
  {
    auto tx = begin();
    ASSERT_TRUE(tx->exec_script("CREATE SCHEMA billing"));
    ASSERT_TRUE(tx->commit());
  }
  auto a = store_->try_lease("relay_test");
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_NE(*a, nullptr);
  auto billing = Store::open(url_ + "?options=-csearch_path%3Dbilling");
  ASSERT_TRUE(billing) << billing.error().to_string();
  auto b = (*billing)->try_lease("relay_test");
  ASSERT_TRUE(b) << b.error().to_string();
  EXPECT_NE(*b, nullptr) << "a relay of another schema holds this one's lease";
  auto same = Store::open(url_);
  ASSERT_TRUE(same);
  auto c = (*same)->try_lease("relay_test");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, nullptr);
}

TEST_P(StoreTest, ConcurrentTransactionsFromManyThreadsAllCommit) {
  ASSERT_TRUE(store_->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"));
    HERALD_TRY(tx.exec("INSERT INTO counter (id, n) VALUES (1, 0)"));
    return ok();
  }));
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 6; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto r = store_->run(
            [](Tx& tx) -> Result<void> {
              HERALD_TRY(tx.exec("UPDATE counter SET n = n + 1 WHERE id = 1"));
              return ok();
            },
            20);
        if (!r) {
          ++failures;
          ADD_FAILURE() << r.error().to_string();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures, 0);
  auto tx = begin();
  EXPECT_EQ((*tx->query_one("SELECT n FROM counter"))->int64(0), 300);
}

TEST_P(StoreTest, ErrorsInsideRunAreReturnedAndNothingCommits) {
  create_items();
  auto r = store_->run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec("INSERT INTO items (id) VALUES (?)", {1}));
    HERALD_TRY(tx.exec("INSERT INTO no_such_table (id) VALUES (?)", {1}));
    return ok();
  });
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no_such_table"), std::string::npos) << r.error().message;
  EXPECT_EQ(count("items"), 0);
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreTest, ::testing::Values("sqlite"));
INSTANTIATE_TEST_SUITE_P(Postgres, StoreTest, ::testing::Values("postgres"));

TEST(StoreOpen, AcceptsEverySqliteUrlForm) {
  TempDir dir;
  for (std::string url : {"sqlite:" + (dir.path() / "a.db").string(),
                          "sqlite://" + (dir.path() / "b.db").string(),
                          (dir.path() / "c.db").string(), std::string("sqlite::memory:"),
                          std::string(":memory:")}) {
    auto s = Store::open(url);
    ASSERT_TRUE(s) << url << ": " << s.error().to_string();
    EXPECT_EQ((*s)->dialect(), Dialect::kSqlite);
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "a.db"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "b.db"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "c.db"));
}

TEST(StoreOpen, BadLocationsFailWithAnError) {
  auto s = Store::open("sqlite:/nonexistent-dir/x/y.db");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kIoError);
  EXPECT_FALSE(Store::open("sqlite:"));
  auto pg = Store::open("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(pg);
  EXPECT_EQ(pg.error().code, Errc::kIoError);
}

TEST(SqlRewrite, QuestionMarksBecomeNumberedOutsideQuotesAndComments) {
  int n = 0;
  EXPECT_EQ(detail::rewrite_placeholders("SELECT ?, '?''?', \"a?\", ? -- ?\n, ? /* ? */", &n),
            "SELECT $1, '?''?', \"a?\", $2 -- ?\n, $3 /* ? */");
  EXPECT_EQ(n, 3);
  EXPECT_EQ(detail::rewrite_placeholders("DO $$ BEGIN PERFORM '?'; END $$; SELECT ?", &n),
            "DO $$ BEGIN PERFORM '?'; END $$; SELECT $1");
  EXPECT_EQ(detail::rewrite_placeholders("SELECT $tag$ ? $tag$, ?", &n),
            "SELECT $tag$ ? $tag$, $1");
  EXPECT_EQ(n, 1);
}

TEST(SqlRewrite, IdentifiersAreValidated) {
  EXPECT_TRUE(detail::is_identifier("herald_outbox"));
  EXPECT_TRUE(detail::is_identifier("_x1"));
  EXPECT_FALSE(detail::is_identifier("1x"));
  EXPECT_FALSE(detail::is_identifier("a b"));
  EXPECT_FALSE(detail::is_identifier(""));
}

TEST(SqlRewrite, TextIsCheckedForUtf8AndNul) {
  using namespace std::string_literals;
  constexpr size_t kOk = std::string_view::npos;
  EXPECT_EQ(detail::bad_text_byte(""), kOk);
  EXPECT_EQ(detail::bad_text_byte("plain ascii"), kOk);
  EXPECT_EQ(detail::bad_text_byte("\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xef\xbf\xbf"), kOk);
  EXPECT_EQ(detail::bad_text_byte("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf"), kOk);  // U+10000, U+10FFFF
  EXPECT_EQ(detail::bad_text_byte("ab\0c"s), 2u);
  EXPECT_EQ(detail::bad_text_byte("a\x80"), 1u);              // lone continuation byte
  EXPECT_EQ(detail::bad_text_byte("a\xc3"), 1u);              // cut short
  EXPECT_EQ(detail::bad_text_byte("\xc3\x28"), 0u);           // not a continuation
  EXPECT_EQ(detail::bad_text_byte("\xc0\x80"), 0u);           // overlong NUL
  EXPECT_EQ(detail::bad_text_byte("\xe0\x80\xaf"), 0u);       // overlong
  EXPECT_EQ(detail::bad_text_byte("x\xed\xb0\x80"), 1u);      // surrogate
  EXPECT_EQ(detail::bad_text_byte("\xf4\x90\x80\x80"), 0u);   // above U+10FFFF
  EXPECT_EQ(detail::bad_text_byte("\xf8\x88\x80\x80\x80"), 0u);
}

}  // namespace
}  // namespace herald::sdk
