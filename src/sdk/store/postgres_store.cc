#include "sdk/store/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "sdk/store/sql.h"

namespace herald::sdk::detail {
namespace {

constexpr Oid kByteaOid = 17;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// "postgres SQLSTATE: message" so that is_retryable() can read the state.
Error pg_error(PGconn* conn, const PGresult* res, std::string_view what) {
  const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = res ? PQresultErrorMessage(res) : "";
  if (msg.empty() && conn) msg = PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  Errc code = Errc::kIoError;
  std::string st = state ? state : "";
  if (st == "23505") code = Errc::kAlreadyExists;
  if (st == "53100") code = Errc::kNoSpace;
  if (conn && PQstatus(conn) == CONNECTION_BAD) code = Errc::kClosed;
  return Error{code, fmt::format("postgres {}: {}: {}", st.empty() ? "-----" : st, what, msg)};
}

// Defaults a connection string or URL can override: a server that does not answer fails the connect
// after 10 s, and a dead server or a half-open connection is noticed by TCP keepalives within ~25 s
// instead of the system's default of hours.
constexpr const char* kConnectDefaults[][2] = {
    {"connect_timeout", "10"},   {"keepalives", "1"},       {"keepalives_idle", "10"},
    {"keepalives_interval", "5"}, {"keepalives_count", "3"},
};

Result<ConnPtr> connect(const std::string& url) {
  // Keywords are processed in order and the last value wins: the defaults come first, so that the
  // connection string (expanded from "dbname") overrides them.
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : kConnectDefaults) {
    keys.push_back(k);
    values.push_back(v);
  }
  keys.push_back("dbname");
  values.push_back(url.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  ConnPtr c(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    std::string msg = c ? PQerrorMessage(c.get()) : "out of memory";
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return Error{Errc::kIoError, fmt::format("postgres: connect: {}", msg)};
  }
  // Keep server notices (e.g. "relation already exists, skipping") off stderr.
  PQsetNoticeProcessor(c.get(), [](void*, const char*) {}, nullptr);
  return c;
}

// Runs a parameterless command; returns the result (checked).
Result<ResultPtr> simple(PGconn* c, const char* sql) {
  ResultPtr r(PQexec(c, sql));
  auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return pg_error(c, r.get(), sql);
  return r;
}

class PgStore;

class PgTx final : public Tx {
 public:
  PgTx(PgStore* store, ConnPtr conn) : store_(store), conn_(std::move(conn)) {}
  ~PgTx() override { rollback(); }

  Dialect dialect() const override { return Dialect::kPostgres; }
  Result<void> notify(std::string_view channel) override;
  Result<void> do_commit() override;
  void rollback() override;
  bool is_open() const override { return conn_ != nullptr; }
  bool aborted() const override { return conn_ && PQtransactionStatus(conn_.get()) == PQTRANS_INERROR; }

 private:
  Result<int64_t> do_exec(std::string_view sql, const Params& params) override;
  Result<std::vector<Row>> do_query(std::string_view sql, const Params& params) override;
  Result<void> do_exec_script(std::string_view sql) override;
  Result<ResultPtr> run(std::string_view sql, const Params& params);
  void release();

  PgStore* store_;
  ConnPtr conn_;
};

// False once the server has closed `c` (a restart, a failover, idle_session_timeout,
// pg_terminate_backend). Its goodbye message and the end of the stream wait to be read, which
// takes two reads; on a connection still open both return at once.
bool still_open(PGconn* c) {
  for (int i = 0; i < 2; ++i) {
    if (PQconsumeInput(c) == 0 || PQstatus(c) != CONNECTION_OK) return false;
  }
  return true;
}

class PgListener final : public Listener {
 public:
  explicit PgListener(ConnPtr c) : conn_(std::move(c)) {}

  Result<bool> wait(std::chrono::milliseconds timeout) override {
    PGconn* c = conn_.get();
    HERALD_ASSIGN_OR_RETURN(bool got, drain());
    int64_t deadline = mono_ns() + timeout.count() * 1'000'000;
    while (!got) {
      int64_t left_ms = (deadline - mono_ns()) / 1'000'000;
      if (left_ms <= 0) return false;
      pollfd pfd{PQsocket(c), POLLIN, 0};
      int n = ::poll(&pfd, 1, static_cast<int>(left_ms));
      if (n < 0 && errno != EINTR) {
        return Error{Errc::kIoError, fmt::format("postgres listen: poll: {}", std::strerror(errno))};
      }
      if (n > 0) {
        HERALD_ASSIGN_OR_RETURN(got, drain());
      }
    }
    return true;
  }

 private:
  // Reads what the server sent; true if it held a notification. A closed connection is an error (the
  // caller listens again): its socket would otherwise be polled as -1 and time out forever.
  Result<bool> drain() {
    PGconn* c = conn_.get();
    if (PQconsumeInput(c) == 0 || PQstatus(c) != CONNECTION_OK || PQsocket(c) < 0) {
      return pg_error(c, nullptr, "listen");
    }
    bool any = false;
    while (PGnotify* n = PQnotifies(c)) {
      any = true;
      PQfreemem(n);
    }
    return any;
  }
  ConnPtr conn_;
};

// A session advisory lock on its own connection: the server releases it when
// the connection (or the process) dies.
class PgLease final : public Lease {
 public:
  explicit PgLease(ConnPtr c) : conn_(std::move(c)) {}
  // Unlocks before closing: the server drops a closed session's locks only once its backend has
  // exited, a moment after the close, and the next holder would not find the lease free yet. Waits
  // at most a second for the answer (a server out of reach must not hold up a stop).
  ~PgLease() override {
    PGconn* c = conn_.get();
    if (PQstatus(c) != CONNECTION_OK || !PQsendQuery(c, "SELECT pg_advisory_unlock_all()")) return;
    const int64_t deadline = mono_ns() + 1'000'000'000;
    while (PQconsumeInput(c) && PQisBusy(c)) {
      pollfd pfd{PQsocket(c), POLLIN, 0};
      const int64_t left_ms = (deadline - mono_ns()) / 1'000'000;
      if (left_ms <= 0 || ::poll(&pfd, 1, static_cast<int>(left_ms)) <= 0) return;
    }
  }
  bool valid() override { return still_open(conn_.get()); }

 private:
  ConnPtr conn_;
};

class PgStore final : public Store {
 public:
  PgStore(std::string url, StoreOptions options) : options_(options) {
    url_ = std::move(url);
    max_ = std::max(1, options_.max_connections);
  }

  Dialect dialect() const override { return Dialect::kPostgres; }

  // An idle pooled connection, or a new one (then `*fresh` is set).
  Result<ConnPtr> acquire(bool* fresh) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !idle_.empty() || open_ < max_; });
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        *fresh = false;
        return c;
      }
      ++open_;
    }
    *fresh = true;
    auto c = connect(url_);
    if (!c) release(nullptr);
    return c;
  }

  // Closes the idle connections the server has closed: after a restart or a failover every pooled
  // connection may be dead, and each would fail its next transaction.
  void drop_dead_idle() {
    std::vector<ConnPtr> dead;
    {
      std::lock_guard lock(mu_);
      std::erase_if(idle_, [&](ConnPtr& c) {
        if (still_open(c.get())) return false;
        dead.push_back(std::move(c));
        --open_;
        return true;
      });
    }
    cv_.notify_all();
  }

  void release(ConnPtr c) {
    {
      std::lock_guard lock(mu_);
      if (c && PQstatus(c.get()) == CONNECTION_OK &&
          PQtransactionStatus(c.get()) == PQTRANS_IDLE) {
        idle_.push_back(std::move(c));
      } else {
        --open_;
      }
    }
    cv_.notify_one();
  }

  Result<std::unique_ptr<Tx>> begin(TxOptions options) override {
    for (;;) {
      bool fresh = false;
      HERALD_ASSIGN_OR_RETURN(auto conn, acquire(&fresh));
      const char* sql = options.serializable
                            ? (options.read_only ? "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"
                                                 : "BEGIN ISOLATION LEVEL SERIALIZABLE")
                            : (options.read_only ? "BEGIN READ ONLY" : "BEGIN");
      auto r = simple(conn.get(), sql);
      if (!r) {
        bool broken = PQstatus(conn.get()) != CONNECTION_OK;
        release(nullptr);
        // A pooled connection the server closed meanwhile: drop the others it closed too, and try
        // again (each retry either takes an idle connection just found alive or opens a new one,
        // whose failure is returned).
        if (broken && !fresh) {
          drop_dead_idle();
          continue;
        }
        return std::move(r).error();
      }
      return std::unique_ptr<Tx>(std::make_unique<PgTx>(this, std::move(conn)));
    }
  }

  Result<std::unique_ptr<Listener>> listen(std::string_view channel) override {
    if (!is_identifier(channel)) {
      return Error{Errc::kInvalidArgument, fmt::format("bad channel name '{}'", channel)};
    }
    HERALD_ASSIGN_OR_RETURN(auto c, connect(url_));
    HERALD_TRY(simple(c.get(), fmt::format("LISTEN {}", channel).c_str()));
    return std::unique_ptr<Listener>(std::make_unique<PgListener>(std::move(c)));
  }

  Result<std::unique_ptr<Lease>> try_lease(std::string_view name) override {
    if (!is_identifier(name)) {
      return Error{Errc::kInvalidArgument, fmt::format("bad lease name '{}'", name)};
    }
    HERALD_ASSIGN_OR_RETURN(auto c, connect(url_));
    // The server releases the lock when it sees the connection die: its own keepalives make that ~25 s
    // after the holder's host is gone, not hours (ignored on a Unix socket, where a dead peer is seen
    // at once).
    HERALD_TRY(simple(c.get(), "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; "
                               "SET tcp_keepalives_count = 3"));
    std::string n(name);
    const char* values[] = {n.c_str()};
    // Per schema: services whose outbox tables live in different schemas of one database do not
    // share a lease.
    ResultPtr r(PQexecParams(c.get(),
                             "SELECT pg_try_advisory_lock(1214606444, hashtext(coalesce(current_schema(), '') || '.' || $1))",
                             1, nullptr, values, nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return pg_error(c.get(), r.get(), "lease");
    if (std::string_view(PQgetvalue(r.get(), 0, 0)) != "t") return std::unique_ptr<Lease>();
    return std::unique_ptr<Lease>(std::make_unique<PgLease>(std::move(c)));
  }

 private:
  StoreOptions options_;
  int max_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ConnPtr> idle_;
  int open_ = 0;
};

Result<ResultPtr> PgTx::run(std::string_view sql, const Params& params) {
  if (!conn_) return Error{Errc::kClosed, "postgres: transaction has ended"};
  int count = 0;
  std::string text = rewrite_placeholders(sql, &count);
  if (count != static_cast<int>(params.size())) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("postgres: '{}' has {} placeholders, {} parameters given", sql, count,
                             params.size())};
  }
  // libpq sends a text parameter up to its first NUL: refuse what would be cut.
  HERALD_TRY(check_text_params("postgres", sql, params));
  std::vector<std::string> scratch(params.size());
  std::vector<const char*> values(params.size());
  std::vector<int> lengths(params.size());
  std::vector<int> formats(params.size());
  std::vector<Oid> types(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    switch (p.kind()) {
      case Param::Kind::kNull: values[i] = nullptr; break;
      case Param::Kind::kInt:
        scratch[i] = std::to_string(p.as_int());
        values[i] = scratch[i].c_str();
        break;
      case Param::Kind::kDouble:
        scratch[i] = fmt::format("{}", p.as_double());
        values[i] = scratch[i].c_str();
        break;
      case Param::Kind::kText:
        values[i] = p.as_bytes().c_str();
        break;
      case Param::Kind::kBlob:
        values[i] = p.as_bytes().data();
        lengths[i] = static_cast<int>(p.as_bytes().size());
        formats[i] = 1;
        types[i] = kByteaOid;
        break;
    }
  }
  ResultPtr r(PQexecParams(conn_.get(), text.c_str(), static_cast<int>(params.size()),
                           types.data(), values.data(), lengths.data(), formats.data(), 0));
  auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return pg_error(conn_.get(), r.get(), sql);
  return r;
}

Result<int64_t> PgTx::do_exec(std::string_view sql, const Params& params) {
  HERALD_ASSIGN_OR_RETURN(auto r, run(sql, params));
  const char* n = PQcmdTuples(r.get());
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}

Result<std::vector<Row>> PgTx::do_query(std::string_view sql, const Params& params) {
  HERALD_ASSIGN_OR_RETURN(auto r, run(sql, params));
  std::vector<Row> rows;
  int nrows = PQntuples(r.get()), ncols = PQnfields(r.get());
  rows.reserve(static_cast<size_t>(nrows));
  for (int i = 0; i < nrows; ++i) {
    std::vector<std::optional<std::string>> cols(static_cast<size_t>(ncols));
    for (int c = 0; c < ncols; ++c) {
      if (PQgetisnull(r.get(), i, c)) continue;
      const char* v = PQgetvalue(r.get(), i, c);
      if (PQftype(r.get(), c) == kByteaOid) {
        size_t len = 0;
        unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(v), &len);
        if (!raw) return Error{Errc::kIoError, "postgres: cannot decode bytea"};
        cols[static_cast<size_t>(c)] = std::string(reinterpret_cast<char*>(raw), len);
        PQfreemem(raw);
      } else {
        cols[static_cast<size_t>(c)] =
            std::string(v, static_cast<size_t>(PQgetlength(r.get(), i, c)));
      }
    }
    rows.emplace_back(std::move(cols));
  }
  return rows;
}

Result<void> PgTx::do_exec_script(std::string_view sql) {
  if (!conn_) return Error{Errc::kClosed, "postgres: transaction has ended"};
  HERALD_TRY(simple(conn_.get(), std::string(sql).c_str()));
  return ok();
}

Result<void> PgTx::notify(std::string_view channel) {
  if (!is_identifier(channel)) {
    return Error{Errc::kInvalidArgument, fmt::format("bad channel name '{}'", channel)};
  }
  return exec_script(fmt::format("NOTIFY {}", channel));
}

void PgTx::release() { static_cast<PgStore*>(store_)->release(std::move(conn_)); }

Result<void> PgTx::do_commit() {
  if (!conn_) return Error{Errc::kClosed, "postgres: transaction has ended"};
  if (PQtransactionStatus(conn_.get()) == PQTRANS_INERROR) {
    rollback();
    return Error{Errc::kIoError, "postgres: commit of a failed transaction (rolled back)"};
  }
  ResultPtr r(PQexec(conn_.get(), "COMMIT"));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    auto e = pg_error(conn_.get(), r.get(), "COMMIT");
    if (PQstatus(conn_.get()) == CONNECTION_OK &&
        PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      (void)simple(conn_.get(), "ROLLBACK");
    }
    release();
    on_commit_.clear();
    return e;
  }
  // A COMMIT of an aborted transaction "succeeds" with the tag ROLLBACK.
  if (std::string_view(PQcmdStatus(r.get())) != "COMMIT") {
    release();
    on_commit_.clear();
    return Error{Errc::kIoError, "postgres: transaction was rolled back at COMMIT"};
  }
  release();
  run_on_commit();
  return ok();
}

void PgTx::rollback() {
  if (!conn_) return;
  if (PQstatus(conn_.get()) == CONNECTION_OK) {
    if (auto r = simple(conn_.get(), "ROLLBACK"); !r) {
      HLOG_WARN("postgres rollback: {}", r.error().message);
    }
  }
  release();
  on_commit_.clear();
}

}  // namespace

Result<std::unique_ptr<Store>> open_postgres(std::string url, const StoreOptions& options) {
  auto store = std::make_unique<PgStore>(std::move(url), options);
  HERALD_ASSIGN_OR_RETURN(auto tx, store->begin({.read_only = true}));
  tx->rollback();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace herald::sdk::detail
