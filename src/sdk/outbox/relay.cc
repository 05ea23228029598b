#include "sdk/outbox/relay.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/log.h"
#include "sdk/envelope.h"
#include "sdk/outbox/outbox.h"
#include "sdk/replica/kafka_handles.h"

namespace herald::sdk {
namespace {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_flush(rk, 0);
    rd_kafka_destroy(rk);
  }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// One produced row, filled in by the delivery report callback (or at once,
// when the producer refuses it). Lives in Impl::in_flight until settled,
// which may be rounds later.
struct Flight {
  int64_t id;
  std::string order_key;  // OutboxRow::order_key
  int64_t round;  // the round that produced it
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  bool done = false;
  bool local = false;  // refused by the producer itself: the error is this row's alone
};

bool is_fatal(rd_kafka_t* rk, std::string* reason = nullptr) {
  char buf[512];
  if (rd_kafka_fatal_error(rk, buf, sizeof(buf)) == RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  if (reason) *reason = buf;
  return true;
}

// Errors that say nothing about the row itself: it was purged, refused or
// timed out because the relay is stopping or the producer hit a fatal error
// (`fatal`) caused by another row.
bool is_collateral(rd_kafka_resp_err_t err, bool fatal) {
  switch (err) {
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__FATAL:
      return true;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
      return fatal;
    default:
      return false;
  }
}

// Errors a broker gives a whole produce request's batch for a partition: each row in it gets
// the error, while one of them (or their sum) may be the cause.
bool is_batch_wide(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
      return true;
    default:
      return false;
  }
}

// Rows of suspect aggregates (see Impl::suspects) sent alone per round, each waited for (all of
// them within kRoundWaitNs): the rest of the round waits behind them, so only a few.
constexpr int kMaxAlonePerRound = 32;

// Held aggregates: retry backoff cap. Holds are not capped: an aggregate
// left unheld would be read, and fail, in every round, and enough of them
// (a batch) would keep every row behind them from being read at all.
constexpr std::chrono::milliseconds kMaxHoldBackoff{30000};
// Most established (topic, aggregate) pairs remembered; beyond, all are
// forgotten (which only costs their later rows a round).
constexpr size_t kMaxEstablished = 100000;
// How long an acknowledged row keeps its (topic, aggregate) established. A
// broker forgets an idle producer's sequence state (Kafka and Herald after a
// day; sooner when retention removes its last batch): well before that, the
// next row goes alone again.
constexpr int64_t kEstablishedForNs = int64_t{3600} * 1'000'000'000;
// How long a round waits for the delivery reports of the rows it produced.
// Rows still unreported then stay in flight (their aggregates are not read
// until they settle) and the next round goes on with the others, so a
// partition that takes delivery_timeout to fail holds up only its own rows.
constexpr int64_t kRoundWaitNs = 1'000'000'000;
// warm_up(): metadata wait per topic, in slices so that stop() is seen.
constexpr int kWarmUpMs = 5000;
constexpr int kWarmUpSliceMs = 250;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* d = static_cast<Flight*>(msg->_private);
  if (d == nullptr) return;
  d->err = msg->err;
  d->done = true;
}

void on_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) {
    HLOG_WARN("outbox relay: librdkafka {}: {}", fac, buf);
  } else {
    HLOG_DEBUG("outbox relay: librdkafka {}: {}", fac, buf);
  }
}

void on_error(rd_kafka_t* rk, int err, const char* reason, void*) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof(buf));
    HLOG_ERROR("outbox relay: fatal producer error: {}", buf);
  } else {
    HLOG_DEBUG("outbox relay: producer: {}", reason);
  }
}

// Looks order keys up by std::string_view without copying them.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct OutboxRow {
  int64_t id;
  std::string aggregate;
  std::string topic;
  std::optional<std::string> key;
  Headers headers;
  std::optional<std::string> payload;
  bool unreadable = false;  // its headers column does not decode: failed like a refused row
  // What rows are ordered by: the aggregate within its topic (a record's order means nothing
  // outside its partition), so a row that fails holds back the aggregate's rows of that topic
  // only; a row without an aggregate id has no order and is a key of its own. A topic name has
  // neither a space nor a '#' (Kafka's legal characters), so the keys are unambiguous.
  std::string order_key = aggregate.empty() ? "#" + std::to_string(id) : topic + ' ' + aggregate;
};

}  // namespace

struct OutboxRelay::Impl {
  Store& store;
  RelayOptions opt;
  KafkaPtr producer;
  std::unique_ptr<Lease> lease;
  std::unique_ptr<Listener> listener;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  std::atomic<bool> woken{false};
  mutable std::mutex stats_mu;
  RelayStats stats;
  std::set<std::string, std::less<>> known_topics;  // metadata fetched by this producer
  // Order keys whose last round failed: read_batch() skips them until retry_ns.
  struct Hold {
    int64_t retry_ns = 0;
    std::chrono::milliseconds backoff{0};
  };
  std::map<std::string, Hold, std::less<>> holds;
  // Order keys with a row acknowledged by the current producer within
  // kEstablishedForNs and no row failed since, with the time of that acknowledgement: their partition
  // has producer state on the broker, so a refusal there is a fatal error that
  // fails the rows in flight behind it. See produce().
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> established;
  // Produced rows whose delivery report has not been settled, by row id.
  // Their order keys are busy: read_batch() skips them, so nothing of an
  // aggregate in a topic is produced while an earlier row of it may still fail.
  std::map<int64_t, std::unique_ptr<Flight>> in_flight;
  // Order keys whose row failed with an error the broker gives a whole batch (too large, ...):
  // the row may be innocent, refused with a guilty one it shared a request with. Their next row
  // goes in a request of its own, so an innocent aggregate is acknowledged and flows again, and a
  // guilty one is held without taking others down with it. Dropped once a row of theirs is
  // acknowledged (bounded like `established`).
  std::set<std::string, std::less<>> suspects;
  int64_t round = 0;

  bool is_established(const OutboxRow& r, int64_t now_ns) const {
    auto it = established.find(r.order_key);
    return it != established.end() && now_ns - it->second < kEstablishedForNs;
  }

  Impl(Store& s, RelayOptions o) : store(s), opt(std::move(o)) {}
  // The producer holds pointers into in_flight: settle them first. Rows
  // acknowledged meanwhile stay in the outbox (a later relay repeats them).
  ~Impl() { purge_and_wait(); }

  Result<void> make_producer() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& k, const std::string& v) -> Result<void> {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        return Error{Errc::kInvalidArgument, fmt::format("outbox relay: {}={}: {}", k, v, err)};
      }
      return ok();
    };
    auto configure = [&]() -> Result<void> {
      HERALD_TRY(set("bootstrap.servers", opt.brokers));
      HERALD_TRY(set("client.id", "herald-outbox-relay"));
      HERALD_TRY(set("linger.ms", "2"));
      HERALD_TRY(set(kafka::kReconnectBackoffMaxKey, kafka::kReconnectBackoffMax));
      for (const auto& [k, v] : opt.kafka_config) HERALD_TRY(set(k, v));
      HERALD_TRY(set("enable.idempotence", "true"));
      HERALD_TRY(set("acks", "all"));
      // A permanent failure inside a partition's stream (e.g. the broker refuses
      // a record as too large while later ones are in flight) is a fatal error,
      // not a gap the later records of the aggregate would jump: see relay.h.
      HERALD_TRY(set("enable.gapless.guarantee", "true"));
      HERALD_TRY(set("message.timeout.ms", std::to_string(opt.delivery_timeout.count())));
      return ok();
    };
    if (auto r = configure(); !r) {
      rd_kafka_conf_destroy(conf);
      return r;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Error{Errc::kInvalidArgument, fmt::format("outbox relay: producer: {}", err)};
    }
    producer.reset(rk);
    return ok();
  }

  void record_error(const Error& e) {
    HLOG_WARN("outbox relay: {}", e.to_string());
    std::lock_guard lock(stats_mu);
    ++stats.errors;
    stats.last_error = e.to_string();
  }

  // True when this relay holds (or just took) the lease.
  Result<bool> ensure_lease() {
    if (lease && lease->valid()) return true;
    if (lease) HLOG_WARN("outbox relay: lost the lease {}", opt.lease_name);
    lease.reset();
    HERALD_ASSIGN_OR_RETURN(lease, store.try_lease(opt.lease_name));
    bool have = lease != nullptr;
    {
      std::lock_guard lock(stats_mu);
      stats.has_lease = have;
    }
    if (have) HLOG_INFO("outbox relay: publishing (lease {} taken)", opt.lease_name);
    return have;
  }

  // What a round publishes: the oldest batch_size rows of aggregates not held,
  // and, merged in id order, the oldest batch_size rows of the held aggregates
  // whose retry is due at `now_ns`. Retries have their own budget, so however
  // many aggregates keep failing, the rows of the others are read at full pace.
  struct Batch {
    std::vector<OutboxRow> rows;
    bool all_due_read = true;  // every row of the due aggregates is in `rows`
  };
  Result<Batch> read_batch(int64_t now_ns) {
    nlohmann::json held = nlohmann::json::array(), due = nlohmann::json::array();
    const std::set<std::string_view> busy = busy_keys();
    for (std::string_view k : busy) held.push_back(k);
    for (const auto& [k, hold] : holds) {
      if (busy.count(k)) continue;
      held.push_back(k);
      if (hold.retry_ns <= now_ns) due.push_back(k);
    }
    const bool pg = store.dialect() == Dialect::kPostgres;
    const std::string in_list = pg ? "(SELECT jsonb_array_elements_text(?::jsonb)) " : "(SELECT value FROM json_each(?)) ";
    // Invalid UTF-8 is replaced: such an aggregate is then retried early, no more.
    auto dump = [](const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
    const std::string select = "SELECT id, aggregate_id, topic, msg_key, headers, payload FROM herald_outbox ";
    const std::string order_key =  // OutboxRow::order_key
        "(CASE WHEN aggregate_id = '' THEN '#' || id ELSE topic || ' ' || aggregate_id END) ";
    HERALD_ASSIGN_OR_RETURN(auto tx, store.begin({.read_only = true}));
    std::vector<Row> fresh, retry;
    if (held.empty()) {
      HERALD_ASSIGN_OR_RETURN(fresh, tx->query(select + "ORDER BY id LIMIT ?", {opt.batch_size}));
    } else {
      HERALD_ASSIGN_OR_RETURN(fresh, tx->query(select + "WHERE " + order_key + "NOT IN " + in_list + "ORDER BY id LIMIT ?",
                                               {dump(held), opt.batch_size}));
    }
    if (!due.empty()) {
      HERALD_ASSIGN_OR_RETURN(retry, tx->query(select + "WHERE " + order_key + "IN " + in_list + "ORDER BY id LIMIT ?",
                                               {dump(due), opt.batch_size}));
    }
    tx->rollback();
    Batch out;
    out.all_due_read = static_cast<int64_t>(retry.size()) < opt.batch_size;
    out.rows.reserve(fresh.size() + retry.size());
    size_t f = 0, r = 0;
    while (f < fresh.size() || r < retry.size()) {
      Row& row = r == retry.size() || (f < fresh.size() && fresh[f].int64(0) < retry[r].int64(0)) ? fresh[f++] : retry[r++];
      auto h = headers_from_json(row.text(4));
      out.rows.push_back(
          OutboxRow{row.int64(0), row.text(1), row.text(2), row[3], h ? std::move(*h) : Headers{}, row[5]});
      if (!h) {
        // Written by hand or by another program: held like a row the broker refuses, so that the
        // rest of the outbox flows.
        HLOG_WARN("outbox relay: row {} (aggregate '{}'): unreadable headers: {}", out.rows.back().id,
                  out.rows.back().aggregate, h.error().to_string());
        out.rows.back().unreadable = true;
      }
    }
    return out;
  }

  // After a round read at `read_ns`: drops the holds of aggregates with an
  // acknowledged row, then holds (or holds longer) those with a failed row.
  void update_holds(int64_t read_ns, const Batch& batch, const std::set<std::string_view>& acked,
                    const std::set<std::string_view>& failed) {
    if (batch.all_due_read) {
      // A due hold whose order key has no row left (deleted by hand) is stale.
      std::set<std::string_view> seen = busy_keys();
      for (const auto& r : batch.rows) seen.insert(r.order_key);
      seen.insert(acked.begin(), acked.end());  // settled rows of earlier rounds
      seen.insert(failed.begin(), failed.end());
      std::erase_if(holds, [&](const auto& h) {
        return h.second.retry_ns <= read_ns && !seen.count(h.first);
      });
    }
    for (std::string_view a : acked) {
      if (auto it = holds.find(a); it != holds.end()) holds.erase(it);
    }
    int64_t now = mono_ns();
    for (std::string_view a : failed) {
      auto it = holds.find(a);
      if (it == holds.end()) {
        it = holds.emplace(std::string(a), Hold{}).first;
        it->second.backoff = opt.error_backoff;
      } else {
        it->second.backoff = std::min(it->second.backoff * 2, kMaxHoldBackoff);
      }
      it->second.retry_ns = now + std::chrono::nanoseconds(it->second.backoff).count();
    }
  }

  std::set<std::string_view> busy_keys() const {
    std::set<std::string_view> busy;
    for (const auto& [id, f] : in_flight) busy.insert(f->order_key);
    return busy;
  }

  // How long until the next hold comes due (for idle()); `d` when none is sooner.
  std::chrono::milliseconds until_next_retry(std::chrono::milliseconds d) const {
    int64_t now = mono_ns();
    int64_t left_ms = d.count();
    for (const auto& [k, hold] : holds) {
      if (hold.retry_ns > now) left_ms = std::min(left_ms, (hold.retry_ns - now) / 1'000'000 + 1);
    }
    return std::chrono::milliseconds(left_ms);
  }

  Result<void> delete_rows(const std::vector<int64_t>& ids) {
    if (ids.empty()) return ok();
    bool pg = store.dialect() == Dialect::kPostgres;
    std::string list = pg ? "{" : "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) list += ',';
      list += std::to_string(ids[i]);
    }
    list += pg ? "}" : "]";
    return store.run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec(pg ? "DELETE FROM herald_outbox WHERE id = ANY(?::bigint[])"
                            : "DELETE FROM herald_outbox WHERE id IN (SELECT value FROM json_each(?))",
                         {list}));
      return ok();
    });
  }

  // librdkafka 2.0 asks for the metadata of a topic it has not produced to
  // only on its 1 s topic scan; ask now, so the first events of a topic (and
  // of a freshly started relay) do not wait a second. Best effort: gives up
  // on stop() and after the first failure (no broker reachable: the other
  // topics would wait as long, and the rows cannot go out anyway).
  void warm_up(const std::vector<OutboxRow>& rows) {
    for (const auto& r : rows) {
      if (stopping) return;
      if (known_topics.count(r.topic)) continue;
      known_topics.insert(r.topic);
      rd_kafka_topic_t* t = rd_kafka_topic_new(producer.get(), r.topic.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
      for (int waited = 0; waited < kWarmUpMs && !stopping; waited += kWarmUpSliceMs) {
        err = rd_kafka_metadata(producer.get(), 0, t, &md, kWarmUpSliceMs);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT) break;
      }
      rd_kafka_topic_destroy(t);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        HLOG_DEBUG("outbox relay: metadata of {}: {}", r.topic, rd_kafka_err2str(err));
        return;
      }
      rd_kafka_metadata_destroy(md);
    }
  }

  // Produces `rows` in order into in_flight. Some rows are held (not
  // produced; they go in a later round) so that they cannot overtake an
  // earlier row of their aggregate that fails:
  //   - the rows of an aggregate after one refused synchronously;
  //   - the rows of an aggregate that is not established after its first.
  //     A broker keeps no sequence state for a producer whose first record in
  //     a partition it refused, so it would accept the records in flight
  //     behind it (as Kafka does); gapless only stops the producer afterwards.
  //     This covers a fresh producer (relay start, after a fatal error) and a
  //     held aggregate (its row failed: it is no longer established).
  //   - the rows of a suspect aggregate after its first, which goes first and alone.
  void produce(const std::vector<OutboxRow>& rows) {
    warm_up(rows);
    std::set<std::string_view> stopped;  // order keys with nothing more this round
    int alone = 0;
    const int64_t alone_deadline = mono_ns() + kRoundWaitNs;  // for all of them: a slow broker delays a round 1 s
    for (const OutboxRow& r : rows) {
      if (!suspects.count(r.order_key) || !stopped.insert(r.order_key).second) continue;
      // Over the budget, or after a fatal error (the producer is recreated): a later round.
      if (alone++ == kMaxAlonePerRound || mono_ns() >= alone_deadline || is_fatal(producer.get())) continue;
      Flight* flight = send(r);
      while (!flight->done && !stopping && mono_ns() < alone_deadline) rd_kafka_poll(producer.get(), 10);
    }
    if (is_fatal(producer.get())) return;  // a row sent alone was refused: settle() recreates the producer
    const int64_t now = mono_ns();
    for (const OutboxRow& r : rows) {
      if (stopped.count(r.order_key)) continue;
      if (!is_established(r, now)) stopped.insert(r.order_key);
      if (send(r)->done) stopped.insert(r.order_key);  // refused at once
    }
  }

  // Produces one row into in_flight; a row the producer refuses at once is done with its error.
  Flight* send(const OutboxRow& r) {
    auto owned = std::make_unique<Flight>(Flight{r.id, r.order_key, round});
    Flight* flight = owned.get();
    in_flight.emplace(r.id, std::move(owned));
    if (r.unreadable) {
      flight->err = RD_KAFKA_RESP_ERR__BAD_MSG;
      flight->done = flight->local = true;
      return flight;
    }
    rd_kafka_t* rk = producer.get();
    rd_kafka_headers_t* hdrs = make_kafka_headers(r.headers);
    // The RD_KAFKA_V_* macros do not parenthesize their arguments: pass plain names.
    void* key = r.key ? const_cast<char*>(r.key->data()) : nullptr;
    size_t key_len = r.key ? r.key->size() : 0;
    void* value = r.payload ? const_cast<char*>(r.payload->data()) : nullptr;
    size_t value_len = r.payload ? r.payload->size() : 0;
    const char* topic = r.topic.c_str();
    rd_kafka_resp_err_t err;
    for (;;) {
      err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(flight), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
      rd_kafka_poll(rk, 10);
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_headers_destroy(hdrs);
      flight->err = err;
      flight->done = flight->local = true;
    }
    return flight;
  }

  // Serves delivery reports until this round's rows are all reported or
  // kRoundWaitNs has passed. On stop, and after a fatal error (the producer
  // is recreated: what it still holds would only time out), purges instead
  // and waits for every report.
  void wait_reports() {
    rd_kafka_t* rk = producer.get();
    const int64_t deadline = mono_ns() + kRoundWaitNs;
    auto round_done = [&] {
      return std::all_of(in_flight.begin(), in_flight.end(),
                         [&](const auto& f) { return f.second->done || f.second->round != round; });
    };
    while (rd_kafka_outq_len(rk) > 0) {
      if (stopping || is_fatal(rk)) {
        purge_and_wait();
        return;
      }
      if (round_done() || mono_ns() > deadline) break;
      rd_kafka_flush(rk, 10);
    }
    rd_kafka_poll(rk, 0);
  }

  // Purges what the producer holds and waits for every report (each in-flight
  // row then has its outcome).
  void purge_and_wait() {
    if (!producer) return;
    rd_kafka_t* rk = producer.get();
    while (rd_kafka_outq_len(rk) > 0) {
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk, 100);
    }
    rd_kafka_poll(rk, 0);
  }

  Result<size_t> publish_once() {
    HERALD_ASSIGN_OR_RETURN(bool have, ensure_lease());
    if (!have) return size_t{0};
    if (!producer) HERALD_TRY(make_producer());  // recreating it after a fatal error failed
    ++round;
    {
      std::lock_guard lock(stats_mu);
      ++stats.scans;
    }
    int64_t read_ns = mono_ns();
    HERALD_ASSIGN_OR_RETURN(Batch batch, read_batch(read_ns));
    if (batch.rows.empty() && in_flight.empty()) {
      update_holds(read_ns, batch, {}, {});
      return size_t{0};
    }
    produce(batch.rows);
    wait_reports();
    return settle(read_ns, batch);
  }

  // Takes the reported rows out of in_flight: deletes the acknowledged ones,
  // holds the aggregates of the failed ones (update_holds), recreates the
  // producer after a fatal error. Returns the number deleted; an Error when
  // rows failed and none was acknowledged.
  Result<size_t> settle(int64_t read_ns, const Batch& batch) {
    std::string fatal_reason;
    bool fatal = producer && is_fatal(producer.get(), &fatal_reason);
    if (fatal) purge_and_wait();  // everything in flight settles before the producer goes
    std::vector<int64_t> acked;
    std::set<std::string_view> acked_keys, failed_keys;
    const int64_t acked_ns = mono_ns();
    uint64_t failed = 0;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::vector<std::unique_ptr<Flight>> settled;  // keeps the keys viewed above alive
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      Flight& f = *it->second;
      if (!f.done) {
        ++it;
        continue;
      }
      if (f.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        acked.push_back(f.id);
        acked_keys.insert(f.order_key);
        established[f.order_key] = acked_ns;
        if (auto s = suspects.find(f.order_key); s != suspects.end()) suspects.erase(s);
      } else {
        ++failed;
        if (!is_collateral(f.err, fatal)) failed_keys.insert(f.order_key);
        if (!f.local && is_batch_wide(f.err) && suspects.size() < kMaxEstablished) suspects.insert(f.order_key);
        if (first_err == RD_KAFKA_RESP_ERR_NO_ERROR || is_collateral(first_err, fatal)) {
          first_err = f.err;
        }
      }
      settled.push_back(std::move(it->second));
      it = in_flight.erase(it);
    }
    update_holds(read_ns, batch, acked_keys, failed_keys);
    for (std::string_view k : failed_keys) {
      if (auto it = established.find(k); it != established.end()) established.erase(it);
    }
    if (established.size() > kMaxEstablished) established.clear();
    if (fatal) {
      // Before anything that can fail: a relay left with the failed producer would retry on it forever.
      HLOG_WARN("outbox relay: recreating the producer after a fatal error: {}", fatal_reason);
      producer.reset();
      known_topics.clear();
      established.clear();
    }
    HERALD_TRY(delete_rows(acked));
    {
      std::lock_guard lock(stats_mu);
      stats.published += acked.size();
      if (!acked.empty()) ++stats.batches;
      stats.failed_deliveries += failed;
    }
    if (fatal) HERALD_TRY(make_producer());
    if (failed > 0) {
      Error e{Errc::kIoError,
              fmt::format("outbox relay: {} of {} deliveries failed (first: {}); they stay "
                          "in the outbox",
                          failed, failed + acked.size(), rd_kafka_err2str(first_err))};
      // Nothing went out: the caller backs off. Otherwise the rest flows and
      // the failed aggregates wait for their retry.
      if (acked.empty()) return e;
      HLOG_WARN("{}", e.to_string());
      std::lock_guard lock(stats_mu);
      stats.last_error = e.to_string();
    }
    return acked.size();
  }

  // Sleeps up to `d`, returning early on stop() and, if `on_commit`, on wake(), a notification or a
  // lost listener (loop() listens again, then scans). Notifications are read either way, so the
  // server's queue of them never backs up behind us. With `on_report`, delivery reports are served
  // meanwhile and the first one that settles a row in flight ends the sleep.
  void idle(std::chrono::milliseconds d, bool on_commit = true, bool on_report = false) {
    int64_t deadline = mono_ns() + std::chrono::nanoseconds(d).count();
    while (!stopping && !(on_commit && woken.exchange(false))) {
      if (on_report && producer) {
        rd_kafka_poll(producer.get(), 0);
        if (std::any_of(in_flight.begin(), in_flight.end(), [](const auto& f) { return f.second->done; })) return;
      }
      int64_t left = (deadline - mono_ns()) / 1'000'000;
      if (left <= 0) return;
      auto slice = std::chrono::milliseconds(std::min<int64_t>(left, on_report ? 10 : 50));
      if (!listener) {
        std::this_thread::sleep_for(slice);
      } else if (auto r = listen_wait(slice); on_commit && (r || !listener)) {
        return;
      }
    }
  }

  // Waits up to `d` for a notification; a broken listener is dropped (loop() listens again).
  bool listen_wait(std::chrono::milliseconds d) {
    auto r = listener->wait(d);
    if (!r) {
      record_error(r.error());
      listener.reset();
      return false;
    }
    return *r;
  }

  void loop() {
    bool pg = store.dialect() == Dialect::kPostgres;
    auto poll = opt.min_poll;
    while (!stopping) {
      if (!listener) {
        // Listen before scanning, so that no commit falls between the two.
        auto l = store.listen(kOutboxChannel);
        if (l) {
          listener = std::move(*l);
        } else {
          record_error(l.error());
        }
      }
      // A busy relay rarely idles: read the notifications of the rows this round will see anyway.
      if (listener) listen_wait(std::chrono::milliseconds(0));
      auto r = publish_once();
      if (!r) {
        record_error(r.error());
        // The full backoff: on PostgreSQL every commit notifies, and a failing
        // round must not run again at the service's commit rate.
        idle(opt.error_backoff, /*on_commit=*/false);
        continue;
      }
      if (*r > 0) {
        poll = opt.min_poll;
        continue;
      }
      bool have;
      {
        std::lock_guard lock(stats_mu);
        have = stats.has_lease;
      }
      if (!have) {
        // A standby tries the lease again on its own clock: a commit elsewhere says nothing about
        // whether the holder is gone.
        idle(opt.standby_retry, /*on_commit=*/false);
      } else if (!in_flight.empty()) {
        // Rows of an earlier round still unreported (a slow or unreachable broker): the next
        // scan waits for one of their reports, a commit or a hold coming due, not a timer.
        idle(until_next_retry(pg ? opt.idle_wait : opt.max_poll), /*on_commit=*/true, /*on_report=*/true);
      } else if (pg) {
        idle(until_next_retry(opt.idle_wait));
      } else {
        idle(until_next_retry(poll));
        poll = std::min(poll * 2, opt.max_poll);
      }
    }
    // Rows acknowledged after their round stopped waiting are deleted now, not
    // published again by the next relay.
    if (!in_flight.empty()) {
      purge_and_wait();
      if (auto r = settle(mono_ns(), Batch{{}, /*all_due_read=*/false}); !r) record_error(r.error());
    }
    // A LISTEN session nobody reads would keep the server from trimming its notification queue.
    listener.reset();
  }
};

OutboxRelay::OutboxRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OutboxRelay::~OutboxRelay() { stop(); }

Result<std::unique_ptr<OutboxRelay>> OutboxRelay::create(Store& store, RelayOptions options) {
  if (options.batch_size <= 0) return Error{Errc::kInvalidArgument, "outbox relay: batch_size <= 0"};
  auto impl = std::make_unique<Impl>(store, std::move(options));
  HERALD_TRY(impl->make_producer());
  return std::unique_ptr<OutboxRelay>(new OutboxRelay(std::move(impl)));
}

Result<void> OutboxRelay::start() {
  if (impl_->running.exchange(true)) {
    return Error{Errc::kInvalidArgument, "outbox relay: already running"};
  }
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->loop(); });
  return ok();
}

Result<void> OutboxRelay::run() {
  if (impl_->running.exchange(true)) {
    return Error{Errc::kInvalidArgument, "outbox relay: already running"};
  }
  impl_->loop();
  impl_->running = false;
  return ok();
}

void OutboxRelay::stop() {
  impl_->stopping = true;
  if (impl_->thread.joinable()) {
    impl_->thread.join();
    impl_->running = false;
  }
}

void OutboxRelay::wake() { impl_->woken = true; }

Result<size_t> OutboxRelay::publish_once() { return impl_->publish_once(); }

Result<void> OutboxRelay::drain(std::chrono::milliseconds timeout) {
  int64_t deadline = mono_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    HERALD_ASSIGN_OR_RETURN(size_t n, publish_once());
    if (n == 0) {
      HERALD_ASSIGN_OR_RETURN(int64_t left, outbox_pending(impl_->store));
      if (left == 0) return ok();
    }
    if (mono_ns() > deadline) {
      if (!stats().has_lease) {
        return Error{Errc::kOutOfRange, fmt::format("outbox relay: drain timed out: another relay holds the lease "
                                                    "'{}' on this database",
                                                    impl_->opt.lease_name)};
      }
      return Error{Errc::kOutOfRange, "outbox relay: drain timed out"};
    }
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

RelayStats OutboxRelay::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

}  // namespace herald::sdk
