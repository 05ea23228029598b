#include "sdk/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string_view>
#include <unordered_map>

#include "common/log.h"
#include "sdk/store/sql.h"

namespace herald::sdk::detail {
namespace {

Error sqlite_error(sqlite3* db, int rc, std::string_view what) {
  int primary = rc & 0xFF;
  const char* tag = primary == SQLITE_BUSY     ? "BUSY"
                    : primary == SQLITE_LOCKED ? "LOCKED"
                                               : "ERROR";
  Errc code = Errc::kIoError;
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    code = Errc::kAlreadyExists;
  } else if (primary == SQLITE_FULL) {
    code = Errc::kNoSpace;
  } else if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    code = Errc::kCorruption;
  }
  return Error{code, fmt::format("sqlite {}: {}: {} (code {})", tag, what,
                                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc)};
}

// Looks statements up by the caller's SQL text without copying it.
struct SqlHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// One connection with its prepared-statement cache.
struct Conn {
  sqlite3* db = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*, SqlHash, std::equal_to<>> stmts;

  ~Conn() {
    for (auto& [sql, st] : stmts) sqlite3_finalize(st);
    if (db) sqlite3_close_v2(db);
  }

  Result<sqlite3_stmt*> prepare(std::string_view sql) {
    if (auto it = stmts.find(sql); it != stmts.end()) return it->second;
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &st, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(db, rc, fmt::format("prepare '{}'", sql));
    if (stmts.size() > 256) {
      for (auto& [s, old] : stmts) sqlite3_finalize(old);
      stmts.clear();
    }
    stmts.emplace(std::string(sql), st);
    return st;
  }

  Result<void> exec_simple(const char* sql) {
    char* msg = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
    if (rc != SQLITE_OK) {
      auto e = sqlite_error(db, rc, sql);
      sqlite3_free(msg);
      return e;
    }
    return ok();
  }
};

// In-process notification channels (Tx::notify -> Listener::wait).
struct Channels {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, uint64_t, std::less<>> counters;

  void bump(const std::string& channel) {
    {
      std::lock_guard lock(mu);
      ++counters[channel];
    }
    cv.notify_all();
  }
  uint64_t get(const std::string& channel) {
    std::lock_guard lock(mu);
    return counters[channel];
  }
};

class SqliteStore;

class SqliteTx final : public Tx {
 public:
  SqliteTx(SqliteStore* store, std::unique_ptr<Conn> conn, std::shared_ptr<Channels> channels)
      : store_(store), conn_(std::move(conn)), channels_(std::move(channels)) {}
  ~SqliteTx() override { rollback(); }

  Dialect dialect() const override { return Dialect::kSqlite; }
  Result<void> notify(std::string_view channel) override;
  Result<void> do_commit() override;
  void rollback() override;
  bool is_open() const override { return conn_ != nullptr; }

 private:
  Result<int64_t> do_exec(std::string_view sql, const Params& params) override;
  Result<std::vector<Row>> do_query(std::string_view sql, const Params& params) override;
  Result<void> do_exec_script(std::string_view sql) override;
  Result<sqlite3_stmt*> bind(std::string_view sql, const Params& params);
  void release(bool healthy);

  SqliteStore* store_;
  std::unique_ptr<Conn> conn_;
  std::shared_ptr<Channels> channels_;
  std::vector<std::string> notify_;
};

class SqliteListener final : public Listener {
 public:
  SqliteListener(std::shared_ptr<Channels> ch, std::string channel)
      : ch_(std::move(ch)), channel_(std::move(channel)), seen_(ch_->get(channel_)) {}

  Result<bool> wait(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(ch_->mu);
    bool got = ch_->cv.wait_for(lock, timeout, [&] { return ch_->counters[channel_] != seen_; });
    seen_ = ch_->counters[channel_];
    return got;
  }

 private:
  std::shared_ptr<Channels> ch_;
  std::string channel_;
  uint64_t seen_;
};

// flock on a side file: released by the kernel when the process dies.
class FileLease final : public Lease {
 public:
  explicit FileLease(int fd) : fd_(fd) {}
  ~FileLease() override { ::close(fd_); }
  bool valid() override { return true; }

 private:
  int fd_;
};

// For ":memory:" databases, which only this process can see.
class MemoryLease final : public Lease {
 public:
  MemoryLease(std::shared_ptr<std::mutex> mu, std::shared_ptr<std::set<std::string>> held,
              std::string name)
      : mu_(std::move(mu)), held_(std::move(held)), name_(std::move(name)) {}
  ~MemoryLease() override {
    std::lock_guard lock(*mu_);
    held_->erase(name_);
  }
  bool valid() override { return true; }

 private:
  std::shared_ptr<std::mutex> mu_;
  std::shared_ptr<std::set<std::string>> held_;
  std::string name_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string url, std::string path, StoreOptions options)
      : path_(std::move(path)), options_(options), channels_(std::make_shared<Channels>()) {
    url_ = std::move(url);
    memory_ = path_ == ":memory:";
    max_ = memory_ ? 1 : std::max(1, options_.max_connections);
  }

  ~SqliteStore() override {
    std::lock_guard lock(mu_);
    idle_.clear();
  }

  Dialect dialect() const override { return Dialect::kSqlite; }

  Result<std::unique_ptr<Conn>> connect() {
    // SQLite counts every allocation under a global mutex unless told not to
    // (~6% of a replica applying events). Possible only before SQLite is
    // initialized: when the application already used it, this is a no-op.
    static std::once_flag memstatus_off;
    std::call_once(memstatus_off, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
    auto c = std::make_unique<Conn>();
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (options_.create_sqlite_file ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path_.c_str(), &c->db, flags, nullptr);
    if (rc != SQLITE_OK) return sqlite_error(c->db, rc, fmt::format("open {}", path_));
    sqlite3_busy_timeout(c->db, static_cast<int>(options_.busy_timeout.count()));
    sqlite3_extended_result_codes(c->db, 1);
    if (!memory_) HERALD_TRY(c->exec_simple("PRAGMA journal_mode=WAL"));
    HERALD_TRY(c->exec_simple(options_.sqlite_synchronous_full ? "PRAGMA synchronous=FULL"
                                                               : "PRAGMA synchronous=NORMAL"));
    HERALD_TRY(c->exec_simple("PRAGMA foreign_keys=ON"));
    return c;
  }

  Result<std::unique_ptr<Conn>> acquire() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;
    }
    auto c = connect();
    if (!c) {
      std::lock_guard lock(mu_);
      --open_;
      cv_.notify_one();
    }
    return c;
  }

  void release(std::unique_ptr<Conn> c) {
    {
      std::lock_guard lock(mu_);
      if (c) {
        idle_.push_back(std::move(c));
      } else {
        --open_;
      }
    }
    cv_.notify_one();
  }

  Result<std::unique_ptr<Tx>> begin(TxOptions options) override {
    HERALD_ASSIGN_OR_RETURN(auto conn, acquire());
    auto r = conn->exec_simple(options.read_only ? "BEGIN DEFERRED" : "BEGIN IMMEDIATE");
    if (!r) {
      release(std::move(conn));
      return std::move(r).error();
    }
    return std::unique_ptr<Tx>(std::make_unique<SqliteTx>(this, std::move(conn), channels_));
  }

  Result<std::unique_ptr<Listener>> listen(std::string_view channel) override {
    if (!is_identifier(channel)) {
      return Error{Errc::kInvalidArgument, fmt::format("bad channel name '{}'", channel)};
    }
    return std::unique_ptr<Listener>(
        std::make_unique<SqliteListener>(channels_, std::string(channel)));
  }

  Result<std::unique_ptr<Lease>> try_lease(std::string_view name) override {
    if (!is_identifier(name)) {
      return Error{Errc::kInvalidArgument, fmt::format("bad lease name '{}'", name)};
    }
    if (memory_) {
      std::lock_guard lock(*lease_mu_);
      if (!leases_->insert(std::string(name)).second) return std::unique_ptr<Lease>();
      return std::unique_ptr<Lease>(
          std::make_unique<MemoryLease>(lease_mu_, leases_, std::string(name)));
    }
    std::string file = fmt::format("{}.{}.lock", path_, name);
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Error{Errc::kIoError, fmt::format("open {}: {}", file, std::strerror(errno))};
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return std::unique_ptr<Lease>();
      return Error{Errc::kIoError, fmt::format("flock {}: {}", file, std::strerror(err))};
    }
    return std::unique_ptr<Lease>(std::make_unique<FileLease>(fd));
  }

 private:
  std::string path_;
  StoreOptions options_;
  bool memory_ = false;
  int max_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
  int open_ = 0;
  std::shared_ptr<Channels> channels_;
  std::shared_ptr<std::mutex> lease_mu_ = std::make_shared<std::mutex>();
  std::shared_ptr<std::set<std::string>> leases_ = std::make_shared<std::set<std::string>>();

  friend class SqliteTx;
};

Result<sqlite3_stmt*> SqliteTx::bind(std::string_view sql, const Params& params) {
  if (!conn_) return Error{Errc::kClosed, "sqlite: transaction has ended"};
  HERALD_ASSIGN_OR_RETURN(sqlite3_stmt * st, conn_->prepare(sql));
  sqlite3_reset(st);  // every parameter is bound again below: no clear_bindings
  int expected = sqlite3_bind_parameter_count(st);
  if (expected != static_cast<int>(params.size())) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("sqlite: '{}' has {} placeholders, {} parameters given", sql,
                             expected, params.size())};
  }
  HERALD_TRY(check_text_params("sqlite", sql, params));  // what PostgreSQL would refuse or cut
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    int idx = static_cast<int>(i + 1);
    int rc = SQLITE_OK;
    switch (p.kind()) {
      case Param::Kind::kNull: rc = sqlite3_bind_null(st, idx); break;
      case Param::Kind::kInt: rc = sqlite3_bind_int64(st, idx, p.as_int()); break;
      case Param::Kind::kDouble: rc = sqlite3_bind_double(st, idx, p.as_double()); break;
      case Param::Kind::kText:
        rc = sqlite3_bind_text64(st, idx, p.as_bytes().data(), p.as_bytes().size(),
                                 SQLITE_STATIC, SQLITE_UTF8);
        break;
      case Param::Kind::kBlob:
        rc = sqlite3_bind_blob64(st, idx, p.as_bytes().data(), p.as_bytes().size(),
                                 SQLITE_STATIC);
        break;
    }
    if (rc != SQLITE_OK) return sqlite_error(conn_->db, rc, "bind");
  }
  return st;
}

Result<int64_t> SqliteTx::do_exec(std::string_view sql, const Params& params) {
  HERALD_ASSIGN_OR_RETURN(sqlite3_stmt * st, bind(sql, params));
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return sqlite_error(conn_->db, rc, sql);
  return static_cast<int64_t>(sqlite3_changes64(conn_->db));
}

Result<std::vector<Row>> SqliteTx::do_query(std::string_view sql, const Params& params) {
  HERALD_ASSIGN_OR_RETURN(sqlite3_stmt * st, bind(sql, params));
  std::vector<Row> rows;
  int rc;
  int ncols = sqlite3_column_count(st);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::vector<std::optional<std::string>> cols(static_cast<size_t>(ncols));
    for (int c = 0; c < ncols; ++c) {
      int type = sqlite3_column_type(st, c);
      if (type == SQLITE_NULL) continue;
      if (type == SQLITE_BLOB) {
        const void* p = sqlite3_column_blob(st, c);
        int n = sqlite3_column_bytes(st, c);
        cols[static_cast<size_t>(c)] = std::string(static_cast<const char*>(p), static_cast<size_t>(n));
      } else {
        const unsigned char* p = sqlite3_column_text(st, c);
        int n = sqlite3_column_bytes(st, c);
        cols[static_cast<size_t>(c)] = std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
      }
    }
    rows.emplace_back(std::move(cols));
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return sqlite_error(conn_->db, rc, sql);
  return rows;
}

Result<void> SqliteTx::do_exec_script(std::string_view sql) {
  if (!conn_) return Error{Errc::kClosed, "sqlite: transaction has ended"};
  return conn_->exec_simple(std::string(sql).c_str());
}

Result<void> SqliteTx::notify(std::string_view channel) {
  if (!is_identifier(channel)) {
    return Error{Errc::kInvalidArgument, fmt::format("bad channel name '{}'", channel)};
  }
  notify_.emplace_back(channel);
  return ok();
}

void SqliteTx::release(bool healthy) {
  if (!conn_) return;
  if (!healthy || sqlite3_get_autocommit(conn_->db) == 0) {
    // Still inside a transaction we could not end: drop the connection.
    conn_.reset();
    static_cast<SqliteStore*>(store_)->release(nullptr);
    return;
  }
  static_cast<SqliteStore*>(store_)->release(std::move(conn_));
}

Result<void> SqliteTx::do_commit() {
  if (!conn_) return Error{Errc::kClosed, "sqlite: transaction has ended"};
  auto r = conn_->exec_simple("COMMIT");
  if (!r) {
    if (sqlite3_get_autocommit(conn_->db) == 0) (void)conn_->exec_simple("ROLLBACK");
    release(true);
    notify_.clear();
    on_commit_.clear();
    return r;
  }
  release(true);
  for (const auto& ch : notify_) channels_->bump(ch);
  notify_.clear();
  run_on_commit();
  return ok();
}

void SqliteTx::rollback() {
  if (!conn_) return;
  if (sqlite3_get_autocommit(conn_->db) == 0) {
    if (auto r = conn_->exec_simple("ROLLBACK"); !r) {
      HLOG_WARN("sqlite rollback: {}", r.error().message);
    }
  }
  release(true);
  notify_.clear();
  on_commit_.clear();
}

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite(std::string url, std::string path,
                                           const StoreOptions& options) {
  auto store = std::make_unique<SqliteStore>(std::move(url), std::move(path), options);
  // Connect once now so that a bad path fails here, not at the first begin().
  HERALD_ASSIGN_OR_RETURN(auto tx, store->begin({.read_only = true}));
  tx->rollback();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace herald::sdk::detail
