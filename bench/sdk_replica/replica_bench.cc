// herald_replica_bench: how fast a Replica applies events into SQLite,
// against the raw consume rate of a plain librdkafka consumer reading the
// same topic from the same broker in the same run (goal: batched replica
// >= 50% of raw). Not a test; no assertions.
//
//   herald_replica_bench [--events N] [--partitions P] [--single N] [--reps R]
//                        [--batch B] [--brokers HOST:PORT] [--dir D]
//                        [--only raw,rawhdr,handler,batch,normal,nodedup,single] [--noop-handler]
//
// Workload: N "fold.add" CloudEvents (binary mode: ce_* headers, ~40-byte
// JSON payload, 1,000 keys) in P partitions. The replica's handler is the
// fold projection of the tests, written as a typed handler (on_json: the
// payload is parsed on the replica's decoder thread), one upsert per event
// (count and sum per key); plus the replica's own work per event (ce_id
// dedup) and per transaction (offset compare-and-set, commit).
//
//   raw               plain librdkafka consumer (assign, poll, count bytes)
//   rawhdr            the same, also reading every record's headers
//                     (rd_kafka_message_headers: what any CloudEvents consumer pays)
//   handler only      the fold's upserts alone through the same Store (no Kafka, no
//                     replica), transactions of B: the ceiling for this handler on one thread
//   replica batch     transactions of up to B events (default 1,000), SQLite synchronous=FULL
//   replica batch/normal   same with synchronous=NORMAL
//   replica batch/nodedup  same as batch with the ce_id window off
//   replica 1/tx      one transaction per event (first --single events), synchronous=FULL
//
// --noop-handler replaces the fold by a handler that does nothing (the
// replica's own cost: decode, dedup, offsets, commits).
//
// Each figure: events/s from start() until every partition is applied
// (group join included; a few ms with the embedded broker), median of --reps.
// Lines are "name key=value ..." for bench/RESULTS.md.
#include <librdkafka/rdkafka.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "sdk/envelope.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace {

using namespace herald;
using namespace herald::sdk;
using Clock = std::chrono::steady_clock;

bool g_noop_handler = false;  // --noop-handler: measure the replica's own cost

// The payload of a "fold.add" event ({"amount": N, "note": "bench"}).
struct FoldAdd {
  int64_t amount = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FoldAdd, amount)

constexpr const char* kFoldSchema =
    "CREATE TABLE IF NOT EXISTS fold (k TEXT PRIMARY KEY, cnt BIGINT NOT NULL, total BIGINT NOT "
    "NULL)";
constexpr const char* kFoldUpsert =
    "INSERT INTO fold (k, cnt, total) VALUES (?, 1, ?) ON CONFLICT (k) DO UPDATE SET "
    "cnt = fold.cnt + 1, total = fold.total + excluded.total";

struct Options {
  int64_t events = 1000000;
  int partitions = 4;
  int64_t single = 30000;
  int reps = 3;
  int batch = 1000;
  std::string brokers;
  std::string dir;
  std::string
      only;  // comma-separated subset of raw,rawhdr,handler,batch,normal,nodedup,single ("" = all)
  bool wants(const char* what) const {
    return only.empty() ||
           ("," + only + ",").find(std::string(",") + what + ",") != std::string::npos;
  }
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "herald_replica_bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().to_string());
  return std::move(r).value();
}
void must(Result<void> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().to_string());
}

rd_kafka_t* handle(rd_kafka_type_t type,
                   const std::vector<std::pair<std::string, std::string>>& props) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      die(k + ": " + err);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) die(err);
  return rk;
}

void create_topic(const std::string& brokers, const std::string& topic, int partitions) {
  rd_kafka_t* rk = handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}});
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof err);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
  if (!ev) die("create topic: timeout");
  rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
}

// Produces n fold events; returns the high watermark per partition.
std::map<int32_t, int64_t> produce(const std::string& brokers, const std::string& topic, int64_t n,
                                   int partitions) {
  rd_kafka_t* rk = handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers},
                                              {"linger.ms", "20"},
                                              {"batch.size", "1000000"},
                                              {"queue.buffering.max.messages", "1000000"},
                                              {"enable.idempotence", "true"}});
  auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    std::string key = "k" + std::to_string(i % 1000);
    auto rec = must(
        encode(Event::json("fold.add", "/bench", key, {{"amount", i % 97}, {"note", "bench"}})),
        "encode");
    for (;;) {
      rd_kafka_headers_t* h = make_kafka_headers(rec.headers);
      auto err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                   RD_KAFKA_V_KEY(rec.key.data(), rec.key.size()),
                                   RD_KAFKA_V_VALUE(rec.value->data(), rec.value->size()),
                                   RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (!err) break;
      rd_kafka_headers_destroy(h);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) die(rd_kafka_err2str(err));
      rd_kafka_poll(rk, 5);
    }
    rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 120000)) die("flush timed out");
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::map<int32_t, int64_t> ends;
  for (int p = 0; p < partitions; ++p) {
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000)) die("watermarks");
    ends[p] = hi;
  }
  rd_kafka_destroy(rk);
  std::printf("produce topic=%s events=%lld seconds=%.2f events_per_s=%.0f\n", topic.c_str(),
              static_cast<long long>(n), secs, static_cast<double>(n) / secs);
  return ends;
}

// Plain consumer: assign every partition from its earliest offset, poll until the
// ends; with read_headers, also parse each record's headers and walk them.
double raw_consume(const std::string& brokers, const std::string& topic,
                   const std::map<int32_t, int64_t>& ends, int64_t* bytes_out, bool read_headers) {
  rd_kafka_t* rk = handle(RD_KAFKA_CONSUMER, {{"bootstrap.servers", brokers},
                                              {"group.id", "bench-raw"},
                                              {"queued.min.messages", "1000000"},  // as the replica
                                              {"enable.auto.commit", "false"},
                                              {"enable.partition.eof", "false"}});
  rd_kafka_poll_set_consumer(rk);
  auto t0 = Clock::now();
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(ends.size()));
  for (auto& [p, end] : ends) {
    // The earliest offset as a number, as the replica assigns it: a logical
    // offset costs a 500 ms timer in librdkafka before the first fetch.
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
      lo = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = lo;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  int64_t total = 0, bytes = 0, want = 0;
  for (auto& [p, end] : ends) want += end;
  while (total < want) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (!m) continue;
    if (!m->err) {
      total++;
      bytes += static_cast<int64_t>(m->len + m->key_len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (read_headers && rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             ++i) {
          bytes += static_cast<int64_t>(size);
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  *bytes_out = bytes;
  return secs;
}

struct ReplicaRun {
  double seconds = 0;
  int64_t applied = 0;
  int64_t transactions = 0;
};

// A fresh SQLite database with the fold table.
std::unique_ptr<Store> fold_store(const std::string& db_path, bool sync_full) {
  std::filesystem::remove(db_path);
  std::filesystem::remove(db_path + "-wal");
  std::filesystem::remove(db_path + "-shm");
  StoreOptions so;
  so.sqlite_synchronous_full = sync_full;
  auto store = must(Store::open("sqlite:" + db_path, so), "open store");
  must(store->run([](Tx& tx) { return tx.exec_script(kFoldSchema); }), "create fold");
  return store;
}

// The fold handler's own work without Kafka or a replica: the same upserts
// (same keys and amounts as produce()) in transactions of `batch`, sync=FULL.
// The ceiling for a replica running this handler on one thread.
double handler_only(const std::string& db_path, int64_t n, int batch) {
  auto store = fold_store(db_path, true);
  std::vector<std::string> keys;
  for (int k = 0; k < 1000; ++k) keys.push_back("k" + std::to_string(k));
  auto t0 = Clock::now();
  for (int64_t lo = 0; lo < n; lo += batch) {
    must(store->run([&](Tx& tx) -> Result<void> {
      for (int64_t i = lo; i < std::min<int64_t>(n, lo + batch); ++i) {
        HERALD_TRY(tx.exec(kFoldUpsert,
                           {keys[static_cast<size_t>(i % 1000)], static_cast<long long>(i % 97)}));
      }
      return ok();
    }),
         "handler-only transaction");
  }
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A fresh SQLite database; a replica with the fold handler until `want` events are applied.
ReplicaRun replica_run(const std::string& brokers, const std::string& topic,
                       const std::string& db_path, const std::string& group, int batch,
                       bool sync_full, bool dedup, const std::map<int32_t, int64_t>& upto) {
  auto store = fold_store(db_path, sync_full);
  ReplicaConfig cfg;
  cfg.brokers = brokers;
  cfg.group_id = group;
  cfg.topics = {topic};
  cfg.max_batch_events = batch;
  cfg.max_batch_delay = std::chrono::milliseconds(50);
  if (!dedup) cfg.dedup_window = std::chrono::milliseconds(0);
  cfg.kafka = {{"log_level", "3"},
               {"fetch.max.bytes", "52428800"},
               {"max.partition.fetch.bytes", "4194304"}};
  ReplicaHandlers h;
  if (g_noop_handler) {
    h.on("fold.add", [](const Event&, Tx&) {});
  } else {
    h.on_json<FoldAdd>("fold.add", [](const FoldAdd& add, const Event& ev, Tx& tx) {
      auto r = tx.exec(kFoldUpsert, {ev.aggregate_id, static_cast<long long>(add.amount)});
      if (!r) throw std::runtime_error(r.error().to_string());
    });
  }
  auto replica = must(Replica::create(cfg, *store, std::move(h)), "replica");
  auto t0 = Clock::now();
  must(replica->start(), "start");
  for (auto& [p, end] : upto) {
    if (end == 0) continue;
    for (;;) {
      auto r = must(replica->wait_until(topic, p, end - 1, std::chrono::seconds(1)), "wait_until");
      if (r) break;
      if (!replica->running()) die("replica stopped");
    }
  }
  ReplicaRun out;
  out.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  out.applied = replica->stats().applied;
  out.transactions = replica->stats().transactions;
  replica->stop();
  must(replica->join(), "join");
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--events")
      o.events = std::atoll(next().c_str());
    else if (a == "--partitions")
      o.partitions = std::atoi(next().c_str());
    else if (a == "--single")
      o.single = std::atoll(next().c_str());
    else if (a == "--reps")
      o.reps = std::atoi(next().c_str());
    else if (a == "--batch")
      o.batch = std::atoi(next().c_str());
    else if (a == "--brokers")
      o.brokers = next();
    else if (a == "--dir")
      o.dir = next();
    else if (a == "--only")
      o.only = next();
    else if (a == "--noop-handler")
      g_noop_handler = true;
    else
      die("unknown argument " + a + " (see the header of replica_bench.cc)");
  }
  std::filesystem::path dir = o.dir.empty()
                                  ? std::filesystem::temp_directory_path() / "herald-replica-bench"
                                  : std::filesystem::path(o.dir);
  std::filesystem::create_directories(dir);

  std::unique_ptr<broker::Broker> embedded;
  if (o.brokers.empty()) {
    broker::BrokerConfig cfg;
    cfg.listen_port = 0;
    cfg.data_dir = dir / "broker";
    std::filesystem::remove_all(cfg.data_dir);
    cfg.group_initial_rebalance_delay_ms = 0;
    embedded = must(broker::Broker::start(cfg), "broker");
    o.brokers = "127.0.0.1:" + std::to_string(embedded->port());
  }
  utsname u{};
  ::uname(&u);
  std::printf("host kernel=%s cpus=%u events=%lld partitions=%d batch=%d reps=%d brokers=%s%s\n",
              u.release, std::thread::hardware_concurrency(), static_cast<long long>(o.events),
              o.partitions, o.batch, o.reps, o.brokers.c_str(),
              embedded ? " (embedded herald)" : "");

  const std::string topic = "bench-fold";
  create_topic(o.brokers, topic, o.partitions);
  auto ends = produce(o.brokers, topic, o.events, o.partitions);
  // The per-event run applies only the first --single events.
  const std::string topic1 = "bench-fold-single";
  create_topic(o.brokers, topic1, o.partitions);
  auto ends1 = produce(o.brokers, topic1, o.single, o.partitions);

  std::vector<double> raw, raw_headers, handler, batch_full, batch_normal, batch_nodedup, single;
  const std::string db = (dir / "replica.db").string();
  for (int rep = 0; rep < o.reps; ++rep) {
    if (o.wants("raw")) {
      int64_t bytes = 0;
      double s = raw_consume(o.brokers, topic, ends, &bytes, false);
      raw.push_back(static_cast<double>(o.events) / s);
      std::printf("rep %d raw events_per_s=%.0f mib_per_s=%.1f\n", rep, raw.back(),
                  static_cast<double>(bytes) / s / (1 << 20));
    }
    if (o.wants("rawhdr")) {
      int64_t bytes = 0;
      double s = raw_consume(o.brokers, topic, ends, &bytes, true);
      raw_headers.push_back(static_cast<double>(o.events) / s);
      std::printf("rep %d raw_headers events_per_s=%.0f\n", rep, raw_headers.back());
    }
    if (o.wants("handler") && !g_noop_handler) {  // the fold's own upserts
      handler.push_back(static_cast<double>(o.events) / handler_only(db, o.events, o.batch));
      std::printf("rep %d handler_only events_per_s=%.0f\n", rep, handler.back());
    }
    if (o.wants("batch")) {
      auto r = replica_run(o.brokers, topic, db, "bench-batch-" + std::to_string(rep), o.batch,
                           true, true, ends);
      batch_full.push_back(static_cast<double>(r.applied) / r.seconds);
      std::printf(
          "rep %d replica_batch sync=full events_per_s=%.0f applied=%lld transactions=%lld "
          "seconds=%.2f\n",
          rep, batch_full.back(), static_cast<long long>(r.applied),
          static_cast<long long>(r.transactions), r.seconds);
    }
    if (o.wants("normal")) {
      auto r = replica_run(o.brokers, topic, db, "bench-normal-" + std::to_string(rep), o.batch,
                           false, true, ends);
      batch_normal.push_back(static_cast<double>(r.applied) / r.seconds);
      std::printf(
          "rep %d replica_batch sync=normal events_per_s=%.0f transactions=%lld seconds=%.2f\n",
          rep, batch_normal.back(), static_cast<long long>(r.transactions), r.seconds);
    }
    if (o.wants("nodedup")) {
      auto r = replica_run(o.brokers, topic, db, "bench-nodedup-" + std::to_string(rep), o.batch,
                           true, false, ends);
      batch_nodedup.push_back(static_cast<double>(r.applied) / r.seconds);
      std::printf("rep %d replica_batch sync=full dedup=off events_per_s=%.0f seconds=%.2f\n", rep,
                  batch_nodedup.back(), r.seconds);
    }
    if (o.wants("single")) {
      auto r = replica_run(o.brokers, topic1, db, "bench-single-" + std::to_string(rep), 1, true,
                           true, ends1);
      single.push_back(static_cast<double>(r.applied) / r.seconds);
      std::printf(
          "rep %d replica_per_event sync=full events_per_s=%.0f transactions=%lld seconds=%.2f\n",
          rep, single.back(), static_cast<long long>(r.transactions), r.seconds);
    }
  }
  double raw_m = raw.empty() ? 0 : median(raw);
  // ratio_to_raw: median over median; per_rep_ratio: the median of each
  // repetition's figure over the raw rate of the same repetition (steadier
  // when the machine's speed drifts during the run).
  auto report = [&](const char* name, const std::vector<double>& v) {
    if (v.empty()) return;
    std::vector<double> ratios;
    for (size_t i = 0; i < v.size() && i < raw.size(); ++i) ratios.push_back(v[i] / raw[i]);
    std::printf("replica_bench %s events_per_s=%.0f ratio_to_raw=%.3f per_rep_ratio=%.3f\n", name,
                median(v), raw_m > 0 ? median(v) / raw_m : 0.0,
                ratios.empty() ? 0.0 : median(ratios));
  };
  std::printf("\nreplica_bench raw events_per_s=%.0f\n", raw_m);
  report("raw_reading_headers", raw_headers);
  report("handler_only_sqlite", handler);
  report(("batch" + std::to_string(o.batch) + "_sync_full").c_str(), batch_full);
  report(("batch" + std::to_string(o.batch) + "_sync_normal").c_str(), batch_normal);
  report(("batch" + std::to_string(o.batch) + "_sync_full_nodedup").c_str(), batch_nodedup);
  report("per_event_sync_full", single);
  if (embedded) embedded->stop();
  return 0;
}
