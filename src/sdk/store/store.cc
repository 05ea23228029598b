#include "sdk/store/store.h"

#include <fmt/format.h>

#include <charconv>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "sdk/store/postgres_store.h"
#include "sdk/store/sqlite_store.h"

namespace herald::sdk {

const char* dialect_name(Dialect d) { return d == Dialect::kSqlite ? "sqlite" : "postgresql"; }

const std::string& Row::text(size_t i) const {
  static const std::string kEmpty;
  const auto& v = cols_.at(i);
  return v ? *v : kEmpty;
}

std::optional<int64_t> Row::opt_int64(size_t i) const {
  const auto& v = cols_.at(i);
  if (!v) return std::nullopt;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc()) return std::nullopt;
  return out;
}

int64_t Row::int64(size_t i) const { return opt_int64(i).value_or(0); }

Result<std::optional<Row>> Tx::query_one(std::string_view sql, const Params& params) {
  HERALD_ASSIGN_OR_RETURN(auto rows, query(sql, params));
  if (rows.empty()) return std::optional<Row>{};
  return std::optional<Row>{std::move(rows.front())};
}

Result<void> Tx::commit() {
  if (lent_) {
    return Error{Errc::kInvalidArgument,
                 "commit: this transaction is lent (a replica's handler): the SDK commits it, with the offsets; "
                 "throw to refuse the event"};
  }
  return do_commit();
}

void Tx::run_on_commit() {
  auto fns = std::move(on_commit_);
  on_commit_.clear();
  for (auto& fn : fns) fn();
}

bool is_retryable(const Error& e) {
  const std::string& m = e.message;
  for (const char* prefix : {"sqlite BUSY", "sqlite LOCKED", "postgres 40001", "postgres 40P01",
                             "postgres 55P03"}) {
    if (m.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

bool is_transient(const Error& e) {
  if (is_retryable(e)) return true;
  if (e.code == Errc::kNoSpace) return true;  // SQLite: the disk is full
  const std::string& m = e.message;
  // PostgreSQL, "postgres SQLSTATE: ...": connection exceptions (08), a read-only transaction on a
  // server that is (still or again) a standby (25006), insufficient resources such as a full disk
  // or too many connections (53), a server shutting down or starting (57P01-57P03).
  for (const char* prefix : {"postgres 08", "postgres 25006", "postgres 53", "postgres 57P0"}) {
    if (m.rfind(prefix, 0) == 0) return true;
  }
  // pg_error() reports a dead connection as kClosed.
  return m.rfind("postgres: connect:", 0) == 0 || (e.code == Errc::kClosed && m.rfind("postgres ", 0) == 0);
}

Result<std::unique_ptr<Store>> Store::open(std::string_view url, StoreOptions options) {
  std::unique_ptr<Store> store;
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    HERALD_ASSIGN_OR_RETURN(store, detail::open_postgres(std::string(url), options));
  } else {
    std::string path(url);
    if (url.rfind("sqlite://", 0) == 0) {
      path = std::string(url.substr(9));
    } else if (url.rfind("sqlite:", 0) == 0) {
      path = std::string(url.substr(7));
    }
    if (path.empty()) return Error{Errc::kInvalidArgument, "store url: empty SQLite path"};
    HERALD_ASSIGN_OR_RETURN(store, detail::open_sqlite(std::string(url), path, options));
  }
  if (options.create_schema) HERALD_TRY(store->migrate(sdk_migrations()));
  return store;
}

Result<void> Store::run(const std::function<Result<void>(Tx&)>& fn, int max_attempts,
                        TxOptions options) {
  for (int attempt = 1;; ++attempt) {
    auto r = [&]() -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(auto tx, begin(options));
      if (auto body = fn(*tx); !body) {
        tx->rollback();
        return body;
      }
      return tx->commit();
    }();
    if (r || attempt >= max_attempts || !is_retryable(r.error())) return r;
    HLOG_DEBUG("store: retrying transaction after {} (attempt {})", r.error().message, attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * attempt * attempt));
  }
}

Result<void> Store::migrate(const std::vector<Migration>& migrations) {
  for (const auto& m : migrations) {
    auto apply = [&](Tx& tx) -> Result<void> {
      if (tx.dialect() == Dialect::kPostgres) {
        // Serializes migrators across processes; released at commit.
        HERALD_TRY(tx.query("SELECT pg_advisory_xact_lock(1214606444, 1)"));
      }
      HERALD_TRY(tx.exec_script(
          "CREATE TABLE IF NOT EXISTS herald_migrations (id TEXT PRIMARY KEY, "
          "applied_at BIGINT NOT NULL)"));
      HERALD_ASSIGN_OR_RETURN(auto row,
                              tx.query_one("SELECT 1 FROM herald_migrations WHERE id = ?", {m.id}));
      if (row) return ok();
      const std::string& sql = tx.dialect() == Dialect::kSqlite ? m.sqlite_sql : m.postgres_sql;
      if (auto r = tx.exec_script(sql); !r) {
        return Error{r.error().code, fmt::format("migration {}: {}", m.id, r.error().message)};
      }
      HERALD_TRY(tx.exec("INSERT INTO herald_migrations (id, applied_at) VALUES (?, ?)",
                         {m.id, now_ms()}));
      return ok();
    };
    HERALD_TRY(run(apply));
  }
  return ok();
}

namespace {
// herald_processed_ids, and the UUIDv7 ids of herald_processed moved there
// (one row each; `bucket` is the id's first 10 characters).
std::string processed_ids_sql(Dialect d) {
  std::string is_v7;
  if (d == Dialect::kSqlite) {
    auto hex = [](int n) {
      std::string s;
      for (int i = 0; i < n; ++i) s += "[0-9a-f]";
      return s;
    };
    is_v7 = "ce_id GLOB '" + hex(8) + "-" + hex(4) + "-7" + hex(3) + "-" + hex(4) + "-" + hex(12) + "'";
  } else {
    is_v7 = "ce_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$'";
  }
  const char* int_type = d == Dialect::kSqlite ? "INTEGER" : "BIGINT";
  return fmt::format(
      R"(CREATE TABLE IF NOT EXISTS herald_processed_ids (
            group_id TEXT NOT NULL,
            bucket TEXT NOT NULL,
            ids TEXT NOT NULL,
            processed_at {0} NOT NULL);
          CREATE INDEX IF NOT EXISTS herald_processed_ids_by_bucket ON herald_processed_ids (group_id, bucket);
          CREATE INDEX IF NOT EXISTS herald_processed_ids_by_time ON herald_processed_ids (group_id, processed_at);
          INSERT INTO herald_processed_ids (group_id, bucket, ids, processed_at)
            SELECT group_id, substr(ce_id, 1, 10), ce_id, processed_at FROM herald_processed WHERE {1};
          DELETE FROM herald_processed WHERE {1})",
      int_type, is_v7);
}
}  // namespace

const std::vector<Migration>& sdk_migrations() {
  static const std::vector<Migration> kMigrations = {
      {"herald_outbox_v1",
       R"(CREATE TABLE IF NOT EXISTS herald_outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            aggregate_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BLOB,
            headers TEXT NOT NULL,
            payload BLOB,
            ce_id TEXT NOT NULL,
            created_at INTEGER NOT NULL))",
       R"(CREATE TABLE IF NOT EXISTS herald_outbox (
            id BIGSERIAL PRIMARY KEY,
            aggregate_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            msg_key BYTEA,
            headers TEXT NOT NULL,
            payload BYTEA,
            ce_id TEXT NOT NULL,
            txid XID8 NOT NULL DEFAULT pg_current_xact_id(),
            created_at BIGINT NOT NULL);
          CREATE OR REPLACE FUNCTION herald_outbox_notify() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('herald_outbox', ''); RETURN NULL; END $$;
          DROP TRIGGER IF EXISTS herald_outbox_notify ON herald_outbox;
          CREATE TRIGGER herald_outbox_notify AFTER INSERT ON herald_outbox
            FOR EACH STATEMENT EXECUTE FUNCTION herald_outbox_notify())"},
      {"herald_offsets_v1",
       R"(CREATE TABLE IF NOT EXISTS herald_offsets (
            group_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            partition_id INTEGER NOT NULL,
            next_offset INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (group_id, topic, partition_id)))",
       R"(CREATE TABLE IF NOT EXISTS herald_offsets (
            group_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            partition_id INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (group_id, topic, partition_id)))"},
      {"herald_processed_v1",
       R"(CREATE TABLE IF NOT EXISTS herald_processed (
            group_id TEXT NOT NULL,
            ce_id TEXT NOT NULL,
            processed_at INTEGER NOT NULL,
            PRIMARY KEY (group_id, ce_id));
          CREATE INDEX IF NOT EXISTS herald_processed_by_time
            ON herald_processed (group_id, processed_at))",
       R"(CREATE TABLE IF NOT EXISTS herald_processed (
            group_id TEXT NOT NULL,
            ce_id TEXT NOT NULL,
            processed_at BIGINT NOT NULL,
            PRIMARY KEY (group_id, ce_id));
          CREATE INDEX IF NOT EXISTS herald_processed_by_time
            ON herald_processed (group_id, processed_at))"},
      // UUIDv7 ids move to one row per bucket and transaction (ProcessedIds).
      {"herald_processed_ids_v1", processed_ids_sql(Dialect::kSqlite), processed_ids_sql(Dialect::kPostgres)},
      // A replica's fingerprint of the record at next_offset - 1 (a topic re-created is told from the log
      // the offset was stored for).
      {"herald_offsets_last_record_v1", "ALTER TABLE herald_offsets ADD COLUMN last_record INTEGER",
       "ALTER TABLE herald_offsets ADD COLUMN IF NOT EXISTS last_record BIGINT"},
      // A transaction that set herald.outbox_notify to off (OutboxOptions::notify) does not NOTIFY.
      {"herald_outbox_notify_v2", "SELECT 1",
       R"(CREATE OR REPLACE FUNCTION herald_outbox_notify() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN
              IF current_setting('herald.outbox_notify', true) IS DISTINCT FROM 'off' THEN
                PERFORM pg_notify('herald_outbox', '');
              END IF;
              RETURN NULL;
            END $$)"},
  };
  return kMigrations;
}

Result<void> save_offset(Tx& tx, std::string_view group, std::string_view topic,
                         int32_t partition, int64_t next_offset) {
  HERALD_TRY(tx.exec(
      "INSERT INTO herald_offsets (group_id, topic, partition_id, next_offset, updated_at) "
      "VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, topic, partition_id) DO UPDATE SET "
      "next_offset = excluded.next_offset, updated_at = excluded.updated_at, last_record = NULL",
      {group, topic, partition, next_offset, now_ms()}));
  return ok();
}

Result<std::map<int32_t, int64_t>> load_offsets(Tx& tx, std::string_view group,
                                                std::string_view topic) {
  HERALD_ASSIGN_OR_RETURN(auto rows, load_offset_rows(tx, group, topic));
  std::map<int32_t, int64_t> out;
  for (const auto& [partition, row] : rows) out[partition] = row.next_offset;
  return out;
}

Result<std::map<int32_t, StoredOffset>> load_offset_rows(Tx& tx, std::string_view group,
                                                         std::string_view topic) {
  HERALD_ASSIGN_OR_RETURN(
      auto rows, tx.query("SELECT partition_id, next_offset, last_record FROM herald_offsets "
                          "WHERE group_id = ? AND topic = ?",
                          {group, topic}));
  std::map<int32_t, StoredOffset> out;
  for (const auto& r : rows) {
    auto& row = out[static_cast<int32_t>(r.int64(0))];
    row.next_offset = r.int64(1);
    if (!r.is_null(2)) row.last_record = r.int64(2);
  }
  return out;
}

Result<bool> mark_processed(Tx& tx, std::string_view group, std::string_view ce_id,
                            int64_t now) {
  HERALD_ASSIGN_OR_RETURN(
      int64_t n, tx.exec("INSERT INTO herald_processed (group_id, ce_id, processed_at) "
                         "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                         {group, ce_id, now}));
  return n == 1;
}

Result<int64_t> prune_processed(Tx& tx, std::string_view group, int64_t older_than_ms) {
  return tx.exec("DELETE FROM herald_processed WHERE group_id = ? AND processed_at < ?",
                 {group, older_than_ms});
}

}  // namespace herald::sdk
