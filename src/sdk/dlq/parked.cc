#include "sdk/dlq/parked.h"

#include <map>
#include <fmt/format.h>

#include <chrono>

#include "sdk/dlq/dead_letter.h"

namespace herald::sdk::dlq {
namespace {

constexpr std::string_view kColumns =
    "group_id, topic, partition_id, record_offset, record_key, payload, headers, record_timestamp, state, "
    "error, attempts, parked_at";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<ParkedEvent> from_row(const Row& r) {
  ParkedEvent e;
  e.group = r.text(0);
  e.topic = r.text(1);
  e.partition = static_cast<int32_t>(r.int64(2));
  e.offset = r.int64(3);
  e.key = r.text(4);
  if (!r.is_null(5)) e.value = r.text(5);
  HERALD_ASSIGN_OR_RETURN(e.headers, headers_from_json(r.text(6)));
  e.timestamp_ms = r.int64(7);
  e.state = static_cast<ParkedState>(r.int64(8));
  e.error = r.text(9);
  e.attempts = static_cast<int>(r.int64(10));
  e.parked_at_ms = r.int64(11);
  return e;
}

Result<std::vector<ParkedEvent>> from_rows(const std::vector<Row>& rows) {
  std::vector<ParkedEvent> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    HERALD_ASSIGN_OR_RETURN(auto e, from_row(r));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace

const std::vector<Migration>& parked_migrations() {
  static const std::vector<Migration> kMigrations = {
      {"herald_parked_v1",
       "CREATE TABLE IF NOT EXISTS herald_parked ("
       " group_id TEXT NOT NULL, topic TEXT NOT NULL, partition_id INTEGER NOT NULL,"
       " record_offset INTEGER NOT NULL, record_key BLOB NOT NULL, payload BLOB, headers TEXT NOT NULL,"
       " record_timestamp INTEGER NOT NULL, state INTEGER NOT NULL, error TEXT,"
       " attempts INTEGER NOT NULL DEFAULT 0, parked_at INTEGER NOT NULL,"
       " PRIMARY KEY (group_id, topic, partition_id, record_offset));"
       "CREATE INDEX IF NOT EXISTS herald_parked_by_key ON herald_parked(group_id, topic, record_key, record_offset)",
       "CREATE TABLE IF NOT EXISTS herald_parked ("
       " group_id TEXT NOT NULL, topic TEXT NOT NULL, partition_id INTEGER NOT NULL,"
       " record_offset BIGINT NOT NULL, record_key BYTEA NOT NULL, payload BYTEA, headers TEXT NOT NULL,"
       " record_timestamp BIGINT NOT NULL, state INTEGER NOT NULL, error TEXT,"
       " attempts INTEGER NOT NULL DEFAULT 0, parked_at BIGINT NOT NULL,"
       " PRIMARY KEY (group_id, topic, partition_id, record_offset));"
       "CREATE INDEX IF NOT EXISTS herald_parked_by_key ON herald_parked(group_id, topic, record_key, record_offset)"},
  };
  return kMigrations;
}

Result<void> park(Tx& tx, const ParkedEvent& e) {
  Param v = e.value ? Param::blob(*e.value) : Param();
  HERALD_TRY(tx.exec(fmt::format("INSERT INTO herald_parked({}) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT (group_id, topic, partition_id, record_offset) DO NOTHING",
                                 kColumns),
                     {e.group, e.topic, e.partition, static_cast<long long>(e.offset), Param::blob(e.key), v,
                      headers_to_json(e.headers), static_cast<long long>(e.timestamp_ms),
                      static_cast<int>(e.state), text_for_db(e.error, kMaxErrorBytes), e.attempts,
                      static_cast<long long>(e.parked_at_ms != 0 ? e.parked_at_ms : now_ms())}));
  return ok();
}

Result<std::vector<ParkedEvent>> load_chain(Tx& tx, std::string_view group, std::string_view topic,
                                            int32_t partition, std::string_view key, int64_t limit) {
  HERALD_ASSIGN_OR_RETURN(
      auto rows, tx.query(fmt::format("SELECT {} FROM herald_parked WHERE group_id = ? AND topic = ? AND "
                                      "record_key = ? AND partition_id = ? ORDER BY record_offset LIMIT ?",
                                      kColumns),
                          {group, topic, Param::blob(key), partition, static_cast<long long>(limit)}));
  return from_rows(rows);
}

Result<std::map<std::string, int64_t>> parked_heads(Tx& tx, std::string_view group, std::string_view topic,
                                                    int32_t partition) {
  HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT record_key, MIN(record_offset) FROM herald_parked WHERE "
                                              "group_id = ? AND topic = ? AND partition_id = ? GROUP BY record_key",
                                              {group, topic, partition}));
  std::map<std::string, int64_t> out;
  for (const auto& r : rows) out.emplace(r.text(0), r.int64(1));
  return out;
}

Result<std::vector<ChainId>> runnable_chains(Tx& tx, std::string_view group) {
  HERALD_ASSIGN_OR_RETURN(
      auto rows,
      tx.query("SELECT p.topic, p.partition_id, p.record_key FROM herald_parked p WHERE p.group_id = ? AND "
               "p.state <> 1 AND NOT EXISTS (SELECT 1 FROM herald_parked q WHERE q.group_id = p.group_id AND "
               "q.topic = p.topic AND q.partition_id = p.partition_id AND q.record_key = p.record_key AND "
               "q.record_offset < p.record_offset) "
               "ORDER BY p.topic, p.partition_id, p.record_offset",
               {group}));
  std::vector<ChainId> out;
  for (const auto& r : rows) out.push_back({r.text(0), static_cast<int32_t>(r.int64(1)), r.text(2)});
  return out;
}

Result<int64_t> delete_parked(Tx& tx, std::string_view group, std::string_view topic, int32_t partition,
                              int64_t offset) {
  return tx.exec("DELETE FROM herald_parked WHERE group_id = ? AND topic = ? AND partition_id = ? AND "
                 "record_offset = ?",
                 {group, topic, partition, static_cast<long long>(offset)});
}

Result<void> set_parked_state(Tx& tx, std::string_view group, std::string_view topic, int32_t partition,
                              int64_t offset, ParkedState state, std::string_view error, int attempts) {
  if (error.empty() && attempts == 0) {
    HERALD_TRY(tx.exec("UPDATE herald_parked SET state = ? WHERE group_id = ? AND topic = ? AND "
                       "partition_id = ? AND record_offset = ?",
                       {static_cast<int>(state), group, topic, partition, static_cast<long long>(offset)}));
  } else {
    HERALD_TRY(tx.exec("UPDATE herald_parked SET state = ?, error = ?, attempts = ? WHERE group_id = ? AND "
                       "topic = ? AND partition_id = ? AND record_offset = ?",
                       {static_cast<int>(state), text_for_db(error, kMaxErrorBytes), attempts, group, topic, partition,
                        static_cast<long long>(offset)}));
  }
  return ok();
}

Result<std::vector<ParkedEvent>> list_parked(Store& store, std::string_view group, std::string_view topic) {
  HERALD_TRY(store.migrate(parked_migrations()));
  std::vector<ParkedEvent> out;
  HERALD_TRY(store.run(
      [&](Tx& tx) -> Result<void> {
        HERALD_ASSIGN_OR_RETURN(
            auto rows,
            tx.query(fmt::format("SELECT {} FROM herald_parked WHERE group_id = ? AND (? = '' OR topic = ?) "
                                 "ORDER BY topic, record_key, record_offset",
                                 kColumns),
                     {group, topic, topic}));
        HERALD_ASSIGN_OR_RETURN(out, from_rows(rows));
        return ok();
      },
      5, TxOptions{.read_only = true}));
  return out;
}

Result<int64_t> replay_parked(Store& store, std::string_view group, std::string_view topic,
                              std::optional<std::string> key) {
  HERALD_TRY(store.migrate(parked_migrations()));
  int64_t n = 0;
  HERALD_TRY(store.run([&](Tx& tx) -> Result<void> {
    if (key) {
      HERALD_ASSIGN_OR_RETURN(n, tx.exec("UPDATE herald_parked SET state = 2 WHERE group_id = ? AND "
                                         "(? = '' OR topic = ?) AND record_key = ? AND state = 1",
                                         {group, topic, topic, Param::blob(*key)}));
    } else {
      HERALD_ASSIGN_OR_RETURN(n, tx.exec("UPDATE herald_parked SET state = 2 WHERE group_id = ? AND "
                                         "(? = '' OR topic = ?) AND state = 1",
                                         {group, topic, topic}));
    }
    return ok();
  }));
  return n;
}

Result<int64_t> skip_parked(Store& store, std::string_view group, std::string_view topic, std::string_view key) {
  HERALD_TRY(store.migrate(parked_migrations()));
  int64_t n = 0;
  HERALD_TRY(store.run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(n, tx.exec("DELETE FROM herald_parked WHERE group_id = ? AND topic = ? AND "
                                       "record_key = ? AND state IN (1, 2)",
                                       {group, topic, Param::blob(key)}));
    return ok();
  }));
  return n;
}

Result<int64_t> skip_parked_at(Store& store, std::string_view group, std::string_view topic, int32_t partition,
                               int64_t offset) {
  HERALD_TRY(store.migrate(parked_migrations()));
  int64_t n = 0;
  HERALD_TRY(store.run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(n, tx.exec("DELETE FROM herald_parked WHERE group_id = ? AND topic = ? AND "
                                       "partition_id = ? AND record_offset = ? AND state IN (1, 2)",
                                       {group, topic, static_cast<long long>(partition),
                                        static_cast<long long>(offset)}));
    return ok();
  }));
  return n;
}

}  // namespace herald::sdk::dlq
