// Store contract, run against both stores: Sqlite/* on a temp file and
// Postgres/* on a fresh database of the "pg" fixture cluster.
#include "sdk/store/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

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

TEST_P(StoreTest, SdkTablesExistAfterOpen) {
  for (const char* t : {"herald_outbox", "herald_offsets", "herald_processed", "herald_migrations"}) {
    EXPECT_EQ(count(t), std::string(t) == "herald_migrations" ? 3 : 0) << t;
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
  EXPECT_EQ(count("herald_migrations"), 5);
  // A failing migration leaves nothing behind and names itself.
  auto bad = store_->migrate({{"test_bad", "CREATE TABLE b (x INTEGER); SELEC 1",
                               "CREATE TABLE b (x INTEGER); SELEC 1"}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("test_bad"), std::string::npos);
  EXPECT_EQ(count("herald_migrations"), 5);
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

TEST_P(StoreTest, ProcessedIdsDeduplicateAndPrune) {
  auto tx = begin();
  EXPECT_TRUE(*mark_processed(*tx, "g", "id-1", 1000));
  EXPECT_FALSE(*mark_processed(*tx, "g", "id-1", 2000));
  EXPECT_TRUE(*mark_processed(*tx, "other", "id-1", 1000));
  EXPECT_TRUE(*mark_processed(*tx, "g", "id-2", 5000));
  EXPECT_TRUE(*is_processed(*tx, "g", "id-1"));
  EXPECT_FALSE(*is_processed(*tx, "g", "id-3"));
  EXPECT_EQ(*prune_processed(*tx, "g", 3000), 1);
  EXPECT_FALSE(*is_processed(*tx, "g", "id-1"));
  EXPECT_TRUE(*is_processed(*tx, "other", "id-1"));
  ASSERT_TRUE(tx->commit());
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

}  // namespace
}  // namespace herald::sdk
