// Store: one small interface over the service's own database, SQLite (the
// embedded default) or PostgreSQL (libpq). The outbox, replicas and dead
// letters keep their state here, in the same local transactions as the
// service's own tables; that is what makes "state + event" and "effect +
// offset" atomic.
//
// Usage:
//   HERALD_ASSIGN_OR_RETURN(auto store, Store::open("sqlite:billing.db"));
//   // or "postgresql://user@127.0.0.1:5432/billing", or a plain path
//   HERALD_TRY(store->run([&](Tx& tx) -> Result<void> {
//     HERALD_TRY(tx.exec("INSERT INTO users(id, email) VALUES(?, ?) "
//                        "ON CONFLICT(id) DO UPDATE SET email = excluded.email",
//                        {user_id, email}));
//     HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT count(*) FROM users"));
//     return ok();
//   }));
//
// SQL dialect rules, the same for both stores (so the service's SQL runs on
// either):
//   - Placeholders are always '?'. For PostgreSQL they are rewritten to $1..$n
//     (outside '...' literals, "..." identifiers and -- / /* */ comments). The
//     jsonb '?' operators therefore cannot be written; use jsonb_exists().
//   - Upsert: INSERT ... ON CONFLICT (cols) DO UPDATE SET c = excluded.c and
//     ON CONFLICT DO NOTHING work in both (SQLite >= 3.24).
//   - Binary data: bind with Param::blob(); declare the column with
//     Store::blob_type() ("BLOB" / "BYTEA"). Query results give the raw bytes.
//   - Text parameters must be well-formed UTF-8 without NUL bytes, which is
//     what PostgreSQL TEXT can hold. Both stores refuse any other text before
//     the statement runs (kInvalidArgument naming the parameter; the
//     transaction stays usable), so nothing is cut at a NUL and no SQL works
//     on SQLite only. Bytes of unknown form go through Param::blob(), or
//     text_for_db() (sdk/envelope.h) when a lossy text form is good enough.
//   - Results are text: integers as decimal, NULL as std::nullopt. PostgreSQL
//     booleans read "t"/"f", SQLite's read "1"/"0": prefer integer columns.
//   - DDL that differs (autoincrement keys, types) goes through Migration,
//     which carries one statement list per dialect.
//
// Threads: a Store is thread-safe and pools connections; begin() takes one
// from the pool (opening another when all are busy, up to
// StoreOptions::max_connections, then waits). A Tx belongs to one thread at a
// time and must not outlive its Store. SQLite runs in WAL mode with
// synchronous=FULL (a committed transaction survives power loss) and
// serializes writers (BEGIN IMMEDIATE; busy_timeout); PostgreSQL runs READ
// COMMITTED unless TxOptions asks otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace herald::sdk {

enum class Dialect : uint8_t { kSqlite, kPostgres };

const char* dialect_name(Dialect d);

// One bound parameter: NULL, an integer, a double, text or bytes.
// Implicit from the usual C++ types so that {a, b, c} parameter lists read well.
class Param {
 public:
  enum class Kind : uint8_t { kNull, kInt, kDouble, kText, kBlob };

  Param() = default;                                                           // NULL
  Param(std::nullopt_t) {}                                                     // NOLINT: NULL
  Param(int v) : kind_(Kind::kInt), int_(v) {}                                 // NOLINT
  Param(long v) : kind_(Kind::kInt), int_(v) {}                                // NOLINT
  Param(long long v) : kind_(Kind::kInt), int_(v) {}                           // NOLINT
  Param(unsigned v) : kind_(Kind::kInt), int_(v) {}                            // NOLINT
  Param(unsigned long v) : kind_(Kind::kInt), int_(static_cast<int64_t>(v)) {}  // NOLINT
  Param(bool v) : kind_(Kind::kInt), int_(v ? 1 : 0) {}                        // NOLINT: 1/0
  Param(double v) : kind_(Kind::kDouble), double_(v) {}                        // NOLINT
  Param(std::string v) : kind_(Kind::kText), text_(std::move(v)) {}            // NOLINT
  Param(std::string_view v) : kind_(Kind::kText), text_(v) {}                  // NOLINT
  Param(const char* v) : kind_(Kind::kText), text_(v) {}                       // NOLINT
  template <class T>
  Param(const std::optional<T>& v) {                                           // NOLINT
    if (v) *this = Param(*v);
  }
  static Param blob(std::string_view bytes) {
    Param p;
    p.kind_ = Kind::kBlob;
    p.text_ = std::string(bytes);
    return p;
  }

  Kind kind() const { return kind_; }
  int64_t as_int() const { return int_; }
  double as_double() const { return double_; }
  const std::string& as_bytes() const { return text_; }  // kText and kBlob

 private:
  Kind kind_ = Kind::kNull;
  int64_t int_ = 0;
  double double_ = 0;
  std::string text_;
};
using Params = std::vector<Param>;

// One result row: column values as text (bytes for BLOB/BYTEA), NULL as nullopt.
class Row {
 public:
  Row() = default;
  explicit Row(std::vector<std::optional<std::string>> cols) : cols_(std::move(cols)) {}

  size_t size() const { return cols_.size(); }
  bool is_null(size_t i) const { return !cols_.at(i).has_value(); }
  const std::optional<std::string>& operator[](size_t i) const { return cols_.at(i); }
  // The value, or "" when NULL.
  const std::string& text(size_t i) const;
  // The value parsed as a decimal integer; 0 when NULL or not a number.
  int64_t int64(size_t i) const;
  std::optional<int64_t> opt_int64(size_t i) const;

 private:
  std::vector<std::optional<std::string>> cols_;
};

struct TxOptions {
  bool read_only = false;  // SQLite: BEGIN DEFERRED; PostgreSQL: BEGIN READ ONLY
  bool serializable = false;  // PostgreSQL: ISOLATION LEVEL SERIALIZABLE (SQLite always is)
};

// True for errors where retrying the whole transaction may succeed:
// SQLITE_BUSY/LOCKED, PostgreSQL 40001 (serialization failure), 40P01
// (deadlock), 55P03 (lock not available).
bool is_retryable(const Error& e);

// is_retryable(), or the connection to PostgreSQL was lost or could not be
// made (a restart, a failover, the network), or the database cannot write for
// now (a full disk; PostgreSQL: a read-only standby, insufficient resources, a
// shutdown): the same transaction may succeed later, on a new connection. A COMMIT whose connection was lost may have
// committed: run it again only where that is detected (the replica's
// compare-and-set on its offsets is).
bool is_transient(const Error& e);

// A local transaction. Obtained from Store::begin(); ends with commit() or
// rollback(); the destructor rolls back one that is still open. After an
// error from exec/query the transaction is still open but PostgreSQL refuses
// further statements until rollback(): treat any error as "roll back".
class Tx {
 public:
  virtual ~Tx() = default;
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;

  virtual Dialect dialect() const = 0;

  // Runs one statement (no result rows expected). Returns the number of rows
  // inserted/updated/deleted. Errors: kAlreadyExists for a unique/primary-key
  // violation, kInvalidArgument for a text parameter that is not UTF-8 without
  // NUL or a wrong parameter count (nothing ran), kIoError otherwise
  // (is_retryable() tells deadlocks, busy and serialization failures apart),
  // kClosed when the transaction has ended.
  Result<int64_t> exec(std::string_view sql, const Params& params = {}) { return noted(do_exec(sql, params)); }

  // Runs one statement and returns all its rows (possibly none).
  Result<std::vector<Row>> query(std::string_view sql, const Params& params = {}) {
    return noted(do_query(sql, params));
  }

  // The first row, or nullopt when there is none.
  Result<std::optional<Row>> query_one(std::string_view sql, const Params& params = {});

  // Runs several ';'-separated statements without parameters (DDL).
  Result<void> exec_script(std::string_view sql) { return noted(do_exec_script(sql)); }

  // Wakes Store::listen(channel) listeners once this transaction commits
  // (PostgreSQL: NOTIFY, delivered to every process; SQLite: in-process only,
  // for listeners on the same Store object). Nothing is sent on rollback.
  virtual Result<void> notify(std::string_view channel) = 0;

  // Runs `fn` after a successful commit, on the committing thread (not on
  // rollback). Used to wake in-process workers; must not throw.
  void on_commit(std::function<void()> fn) { on_commit_.push_back(std::move(fn)); }

  // Commits. On error the transaction is rolled back (nothing was committed,
  // except for the one ambiguous case of a lost connection during COMMIT,
  // reported as kClosed). Either way the Tx is finished afterwards.
  // kInvalidArgument, and nothing happens, while the Tx is lent (Lend).
  Result<void> commit();
  // Rolls back; never fails in a way the caller can act on (errors are logged).
  virtual void rollback() = 0;
  virtual bool is_open() const = 0;

  // Whether a statement of this transaction failed with a transient error
  // (is_transient(): a deadlock, a lock or serialization conflict, a lost
  // connection), whatever the caller made of it: running the whole
  // transaction again may succeed.
  bool failed_transiently() const { return failed_transiently_; }

  // Marks `tx` lent while alive: it is handed to code that must not commit it, such as a replica's
  // handler, whose effects commit together with the offset (a commit there would store the effects
  // without the offset, and the events would be applied again).
  class Lend {
   public:
    explicit Lend(Tx& tx) : tx_(tx) { tx_.lent_ = true; }
    ~Lend() { tx_.lent_ = false; }
    Lend(const Lend&) = delete;
    Lend& operator=(const Lend&) = delete;

   private:
    Tx& tx_;
  };
  // Whether the database aborted the transaction: every further statement
  // fails until the rollback (PostgreSQL, after any failed statement; never
  // SQLite, where a failed statement leaves the transaction usable).
  virtual bool aborted() const { return false; }
  // The error of the last statement that failed ("" if none did).
  const std::string& last_error() const { return last_error_; }

 protected:
  Tx() = default;
  virtual Result<int64_t> do_exec(std::string_view sql, const Params& params) = 0;
  virtual Result<std::vector<Row>> do_query(std::string_view sql, const Params& params) = 0;
  virtual Result<void> do_exec_script(std::string_view sql) = 0;
  virtual Result<void> do_commit() = 0;
  void run_on_commit();
  std::vector<std::function<void()>> on_commit_;

 private:
  bool lent_ = false;
  template <class T>
  Result<T> noted(Result<T> r) {
    if (!r) {
      if (is_transient(r.error())) failed_transiently_ = true;
      last_error_ = r.error().message;
    }
    return r;
  }
  bool failed_transiently_ = false;
  std::string last_error_;
};

// Waits for notifications on one channel (see Tx::notify). Owned by the caller;
// used by one thread at a time.
class Listener {
 public:
  virtual ~Listener() = default;
  // Returns true when at least one notification arrived since the last call
  // (all pending ones are consumed), false on timeout. kIoError when the
  // connection broke (create a new listener).
  virtual Result<bool> wait(std::chrono::milliseconds timeout) = 0;
};

// An exclusive, crash-safe lock held until destroyed or until the holding
// process dies (PostgreSQL: a session advisory lock on its own connection;
// SQLite: flock on "<db path>.<name>.lock"). Used so that only one outbox relay
// publishes at a time.
class Lease {
 public:
  virtual ~Lease() = default;
  // False once the lock is known to be lost (PostgreSQL connection dropped).
  virtual bool valid() = 0;
};

// A schema change, applied once per database and recorded in
// herald_migrations(id, applied_at). Modules (replica, dlq, ...) declare
// theirs and call Store::migrate() before first use; the SDK's own tables
// are always applied by Store::open(). Applying is serialized across
// processes (SQLite write lock; PostgreSQL advisory lock), so concurrent
// starters are safe.
struct Migration {
  std::string id;            // unique and stable forever, e.g. "herald_dlq_v1"
  std::string sqlite_sql;    // ';'-separated statements
  std::string postgres_sql;  // ';'-separated statements; may contain $$-quoted bodies
};

struct StoreOptions {
  int max_connections = 8;  // pool size; ":memory:" SQLite always uses 1
  std::chrono::milliseconds busy_timeout{10000};  // SQLite: wait for the write lock
  bool sqlite_synchronous_full = true;            // false = synchronous=NORMAL (faster, may lose
                                                  // the last commits on power loss, not on a crash)
  bool create_schema = true;                      // apply the SDK's migrations in open()
  bool create_sqlite_file = true;                 // false: a missing SQLite file is an error
};

class Store {
 public:
  // Opens a store by URL:
  //   "postgresql://..." / "postgres://..."   libpq connection URI
  //   "sqlite:PATH" / "sqlite://PATH"         SQLite file (created if missing, unless
  //                                           options.create_sqlite_file is false)
  //   "sqlite::memory:" / ":memory:"          in-memory SQLite (one connection)
  //   anything else                           a SQLite file path
  // Connects once to check the URL and (by default) applies the SDK schema.
  // Errors: kInvalidArgument (bad URL), kIoError (cannot connect/open).
  static Result<std::unique_ptr<Store>> open(std::string_view url, StoreOptions options = {});

  virtual ~Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  virtual Dialect dialect() const = 0;
  const std::string& url() const { return url_; }
  // The column type for binary data: "BLOB" or "BYTEA".
  const char* blob_type() const { return dialect() == Dialect::kSqlite ? "BLOB" : "BYTEA"; }

  // Starts a transaction on a pooled connection (waits for one when the pool
  // is exhausted). kIoError when the database cannot be reached.
  virtual Result<std::unique_ptr<Tx>> begin(TxOptions options = {}) = 0;

  // Runs fn in a transaction and commits it; rolls back when fn fails. Retries
  // the whole transaction (up to max_attempts, with a short backoff) when the
  // failure is_retryable() (deadlock, serialization failure, SQLITE_BUSY).
  Result<void> run(const std::function<Result<void>(Tx&)>& fn, int max_attempts = 5,
                   TxOptions options = {});

  // A listener for `channel` (an SQL identifier: [a-z_][a-z0-9_]*).
  virtual Result<std::unique_ptr<Listener>> listen(std::string_view channel) = 0;

  // Tries to take the exclusive lease `name`; nullptr (no error) when another
  // holder has it.
  virtual Result<std::unique_ptr<Lease>> try_lease(std::string_view name) = 0;

  // Applies each migration not yet recorded, in order, each in its own
  // transaction together with its herald_migrations row.
  Result<void> migrate(const std::vector<Migration>& migrations);

 protected:
  Store() = default;
  std::string url_;
};


// The SDK's own migrations, applied by Store::open(). Tables (columns of the
// PostgreSQL version; SQLite uses INTEGER/BLOB/TEXT equivalents):
//
//   herald_migrations(id TEXT PRIMARY KEY, applied_at BIGINT)
//
//   herald_outbox(                 -- events waiting to be published
//     id BIGSERIAL PRIMARY KEY,    -- SQLite: INTEGER PRIMARY KEY AUTOINCREMENT
//     aggregate_id TEXT NOT NULL,  -- = record key; commit order is kept per aggregate
//     topic TEXT NOT NULL,
//     msg_key BYTEA,               -- record key bytes (NULL = null key)
//     headers TEXT NOT NULL,       -- headers_to_json()
//     payload BYTEA,               -- record value (NULL = tombstone)
//     ce_id TEXT NOT NULL,
//     txid XID8,                   -- PostgreSQL only: pg_current_xact_id() of the writer
//     created_at BIGINT NOT NULL)  -- ms since the epoch
//     (PostgreSQL: a statement trigger NOTIFYs channel herald_outbox on insert.)
//
//   herald_offsets(group_id TEXT, topic TEXT, partition_id INTEGER, next_offset BIGINT,
//                  updated_at BIGINT, last_record BIGINT NULL,
//                  PRIMARY KEY(group_id, topic, partition_id))
//
//   herald_processed(group_id TEXT, ce_id TEXT, processed_at BIGINT,
//                    PRIMARY KEY(group_id, ce_id))   + index on (group_id, processed_at)
//     (ids that are not UUIDv7; those are in herald_processed_ids, see
//     sdk/replica/processed_ids.h)
//   herald_processed_ids(group_id TEXT, bucket TEXT, ids TEXT, processed_at BIGINT)
//                    + indexes on (group_id, bucket) and (group_id, processed_at)
const std::vector<Migration>& sdk_migrations();

// ---- herald_offsets: consumer positions kept in the service's database ----

// Upserts next_offset for (group, topic, partition) in `tx` (with no last_record: see StoredOffset).
Result<void> save_offset(Tx& tx, std::string_view group, std::string_view topic,
                         int32_t partition, int64_t next_offset);
// partition -> next_offset of every stored partition of (group, topic).
Result<std::map<int32_t, int64_t>> load_offsets(Tx& tx, std::string_view group,
                                                std::string_view topic);
struct StoredOffset {
  int64_t next_offset = 0;
  // A replica's fingerprint of the record at next_offset - 1 (Replica tells by it a topic deleted
  // and created again from the log the offset was stored for); none from save_offset.
  std::optional<int64_t> last_record;
};
// partition -> the whole row of every stored partition of (group, topic).
Result<std::map<int32_t, StoredOffset>> load_offset_rows(Tx& tx, std::string_view group,
                                                         std::string_view topic);

// ---- herald_processed: ce_ids already applied, for deduplication ----

// Records ce_id for group. Returns true when it is new, false when it was
// already recorded (a duplicate: skip the event's effect). kInvalidArgument
// when ce_id is not UTF-8 without NUL (TEXT column; see the rules above).
Result<bool> mark_processed(Tx& tx, std::string_view group, std::string_view ce_id,
                            int64_t now_ms);
// Deletes entries of group older than older_than_ms; returns how many.
Result<int64_t> prune_processed(Tx& tx, std::string_view group, int64_t older_than_ms);

}  // namespace herald::sdk
