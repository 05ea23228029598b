#include "sdk/replica/replica.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "common/log.h"
#include "sdk/dlq/dead_letter.h"
#include "sdk/dlq/parked.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk/replica/processed_ids.h"

namespace herald::sdk {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// FNV-1a over a record's timestamp, key and value (herald_offsets.last_record): what tells the log a
// stored offset was stored for from another one (a topic deleted and created again) by the record
// before it. Stable across builds and platforms.
int64_t fingerprint(const rd_kafka_message_t& m) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const void* data, size_t n) {
    for (const auto* b = static_cast<const unsigned char*>(data); n-- > 0; ++b) h = (h ^ *b) * 1099511628211ull;
  };
  auto mix_u64 = [&mix](uint64_t v) {
    unsigned char le[8];
    for (unsigned char& c : le) c = static_cast<unsigned char>(v), v >>= 8;
    mix(le, sizeof le);
  };
  mix_u64(static_cast<uint64_t>(rd_kafka_message_timestamp(&m, nullptr)));
  mix_u64(m.key == nullptr ? ~uint64_t{0} : m.key_len);
  if (m.key != nullptr) mix(m.key, m.key_len);
  mix_u64(m.payload == nullptr ? ~uint64_t{0} : m.len);
  if (m.payload != nullptr) mix(m.payload, m.len);
  return static_cast<int64_t>(h);
}

bool has_header(const Headers& h, std::string_view name) {
  return std::any_of(h.begin(), h.end(), [&](const Header& x) { return x.name == name; });
}

// Decodes a record into `e`: a CloudEvent, or, when the record has no
// ce_specversion header at all, a plain Kafka record handed over as an
// anonymous event (empty id and type, the key as aggregate id, the headers
// as extensions).
Result<void> decode_record(Event& e, std::string_view key, const std::optional<std::string_view>& value,
                           const Headers& h) {
  auto decoded = decode_into(e, key, value, h);
  if (decoded || has_header(h, kHeaderSpecVersion)) return decoded;
  e.id.clear();
  e.type.clear();
  e.source.clear();
  e.content_type.assign(kJsonContentType);
  e.time_ms = 0;
  e.aggregate_version.reset();
  e.aggregate_id.assign(key);
  e.tombstone = !value.has_value();
  e.payload.assign(value.value_or(std::string_view()));
  e.extensions = h;
  return ok();
}

// How one event fared inside a transaction.
enum class Outcome : uint8_t {
  kApplied,     // handler ran
  kDuplicate,   // ce_id already applied: skipped
  kUnhandled,   // no handler: skipped
  kParked,      // appended to its key's chain (ordered mode)
  kReplayHead,  // the replay of a parked chain's head: handled outside the batch
  kDropped,     // not ours any more (fenced partition)
  kFailed,      // handler threw (or the envelope is malformed)
};

// A thread that runs posted jobs one after another, in order.
class Worker {
 public:
  Worker() : thread_([this] { loop(); }) {}
  ~Worker() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void post(std::function<void()> job) {
    {
      std::lock_guard lk(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
  }
  // Returns once every posted job has finished.
  void wait_idle() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return jobs_.empty() && !busy_; });
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return done_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      lk.unlock();
      job();
      lk.lock();
      busy_ = false;
      if (jobs_.empty()) cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool busy_ = false;
  bool done_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace

class Replica::Impl {
 public:
  Impl(ReplicaConfig config, Store& store, ReplicaHandlers handlers)
      : cfg_(std::move(config)),
        store_(store),
        handlers_(std::move(handlers)),
        processed_(cfg_.group_id, cfg_.dedup_cache_ids) {}

  ~Impl() {
    stop();
    (void)join();
  }

  Result<void> init();
  Result<void> run();
  Result<void> start();
  void stop() { stop_requested_.store(true); }
  Result<void> join();

  bool ready() const { return ready_.load(); }
  bool running() const { return in_run_.load(); }
  std::vector<PartitionStatus> status() const;
  ReplicaStats stats() const {
    std::lock_guard lk(mu_);
    return stats_;
  }
  Result<bool> wait_until(std::string_view topic, int32_t partition, int64_t offset, milliseconds timeout);

  ReplicaConfig cfg_;
  std::function<void()> on_ready_;

 private:
  // One assigned partition. Written on the replica thread; the fields marked
  // (mu_) are also read by status()/wait_until() under mu_.
  struct Part {
    std::string topic;
    int32_t partition = 0;
    bool has_row = false;       // (mu_) herald_offsets has a row
    int64_t applied_next = 0;   // (mu_) position: herald_offsets.next_offset (0 when no row), lower after a rewind
    int64_t stored_next = 0;    // herald_offsets.next_offset as stored: applied_next, except after a rewind
    int64_t target = 0;         // (mu_) high watermark at assignment
    bool caught_up = false;     // (mu_)
    int64_t fetched_next = -1;  // next offset accepted into the batch (-1: any)
    int64_t broker_committed = -1;
    bool fenced = false;        // (mu_) another instance moved the stored offset: ignore until reassigned
    // The stored row's fingerprint of the record at verify_at = next_offset - 1, read again first
    // (-1: nothing to check): another record there means the topic was re-created (replaced()).
    int64_t verify_at = -1;
    int64_t verify_fingerprint = 0;
    std::map<std::string, int64_t> parked;  // ordered mode: key -> offset of the chain's first row
  };
  using PartKey = std::pair<std::string, int32_t>;

  // One consumed record waiting in the batch.
  struct Rec {
    Part* part = nullptr;
    kafka::MessagePtr msg;
    Event ev;
    std::optional<Uuid7> id7;  // ev.id when it is a UUIDv7
    ReplicaHandlers::Prepared prepared;  // handlers_.prepare(ev)
    bool decoded = false;
    std::string decode_error;
    bool dropped = false;

    int64_t offset() const { return msg->offset; }
    std::optional<std::string_view> key() const {
      if (msg->key == nullptr) return std::nullopt;
      return std::string_view(static_cast<const char*>(msg->key), msg->key_len);
    }
    std::optional<std::string_view> value() const {
      if (msg->payload == nullptr) return std::nullopt;
      return std::string_view(static_cast<const char*>(msg->payload), msg->len);
    }
    int64_t timestamp() const { return rd_kafka_message_timestamp(msg.get(), nullptr); }
  };

  // What a transaction changes in memory once it commits.
  struct Effects {
    ReplicaStats delta;
    struct Next {
      int64_t offset = 0;
      const rd_kafka_message_t* last = nullptr;  // the record at offset - 1 (alive until the commit)
    };
    std::map<Part*, Next> next_offsets;                     // partition -> new next_offset
    std::vector<std::tuple<Part*, std::string, int64_t>> new_chains;  // (part, key, first offset)
    std::vector<std::pair<Part*, std::string>> drained;     // chains that are gone
    ProcessedIds::Pending ids;                              // ce_ids applied (ProcessedIds)
    int64_t now_ms = wall_ms();                             // when the transaction began
  };

  static void rebalance_trampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* parts, void* opaque);
  void on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts);
  Result<void> on_assign(rd_kafka_topic_partition_list_t* parts);
  Result<void> subscribe();
  Result<void> rejoin();
  void on_revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative);
  void on_eof(const char* topic, int32_t partition, int64_t offset);

  Result<void> loop();
  Result<void> accept(kafka::MessagePtr msg);
  Result<void> rewound(Part& p, int64_t offset);
  Result<void> replaced(Part& p);
  // Moves `p`'s position back to `from`, not caught up until the log's end.
  void read_again(Part& p, int64_t from);
  void note_gap(Part& p, int64_t next);
  Result<void> flush();
  Result<void> apply_range(size_t lo, size_t hi);
  Outcome apply_record(Tx& tx, Rec& r, std::string* err, Effects& fx);
  // id7: ev.id parsed, nullopt when it is not a UUIDv7; prepared: what
  // handlers_.prepare(ev) returned (or null). decode_batch() computes both.
  Outcome apply_event(Tx& tx, const Event& ev, const std::optional<Uuid7>& id7,
                      const ReplicaHandlers::Prepared* prepared, std::string* err, Effects& fx);
  // Moves the stored offsets and commits. false (rolled back) when a
  // partition's stored offset was moved by someone else: it is then fenced.
  Result<bool> commit(std::unique_ptr<Tx> tx, Effects& fx);
  void apply_effects(const Effects& fx);

  Result<void> handle_poison(Rec& r, std::string err);
  Result<void> replay_chain(Rec& r);
  Result<void> drain_chain(const std::string& topic, int32_t partition, const std::string& key);
  Result<void> dead_letter(const std::string& topic, int32_t partition, int64_t offset,
                           std::optional<std::string_view> key, std::optional<std::string_view> value,
                           const Headers& headers, int64_t timestamp, const std::string& err, int attempts);
  // Sleeps for the next retry; kClosed when stop() was called meanwhile.
  Result<void> backoff(int retry);
  // `e` when it is not transient (is_transient(), or `transient`); else logs
  // it and sleeps for backoff(failures), so that the caller can try again.
  Result<void> wait_transient(const Error& e, int failures, bool transient = false);
  // Runs fill() in a transaction and commits it, again after a backoff for as long as the
  // database fails transiently. Returns commit()'s answer (false: a partition was fenced).
  Result<bool> transact(const std::function<Result<void>(Tx&, Effects&)>& fill);
  // Waits until the database answers (transient errors are waited out); other errors are returned.
  Result<void> check_store();

  Result<void> periodic(Clock::time_point now);
  void commit_to_broker(bool force);
  Result<void> scan_parked();
  void update_ready();

  Part* find(std::string_view topic, int32_t partition) {
    auto it = parts_.find(PartKey(std::string(topic), partition));
    return it == parts_.end() ? nullptr : &it->second;
  }

  Store& store_;
  ReplicaHandlers handlers_;
  ProcessedIds processed_;  // replica thread only
  kafka::HandlePtr rk_;
  bool rejoin_ = false;  // replica thread: a partition was fenced (see rejoin())
  std::unique_ptr<kafka::SyncProducer> dlq_producer_;
  std::set<std::string> dlq_topics_ready_;
  Clock::time_point next_missing_topic_warning_{};

  std::map<PartKey, Part> parts_;  // structure changes under mu_
  // Consumed records wait in batches. Recs past `len` are kept, not
  // destroyed, so that the next batch reuses their buffers (the decoded
  // events' strings): no allocation per event once warm.
  struct Batch {
    std::vector<Rec> recs;
    size_t len = 0;
    bool decoded = false;             // decode_batch() ran over recs[0, len)
    Clock::time_point deadline;       // commit by then (first record + max_batch_delay)
  };
  // Decoding a record (its headers, the CloudEvents envelope) and freeing
  // the librdkafka message take about half the time of a no-op replica, and
  // need nothing but the record: with batches of at least kPipelineMin events
  // they run on decoder_, a second thread, while this thread applies the
  // previous batch. fill_ receives records; pending_ (if any) is full and
  // decoded (or being decoded) and is applied when fill_ is full, at its
  // deadline, or before anything else (end of partition, rebalance, stop)
  // by flush(). Three batches rotate: fill, pending, and the one the decoder
  // is releasing.
  static constexpr int kPipelineMin = 16;
  Batch batches_[3];
  Batch* fill_ = &batches_[0];
  Batch* pending_ = nullptr;
  Batch* applying_ = nullptr;  // the batch apply_range() works on
  std::unique_ptr<Worker> decoder_;  // null: decode inline (small batches)
  // decode_batch(): the current record's headers. One decode runs at a time
  // (inline ones only while the decoder is idle), so one scratch serves both threads.
  Headers headers_scratch_;
  void decode_batch(Batch& b);
  static void release_batch(Batch& b) {
    for (size_t i = 0; i < b.len; ++i) {
      b.recs[i].msg.reset();
      b.recs[i].prepared.reset();
    }
    b.len = 0;
    b.decoded = false;
  }
  // Drops every batch unapplied (the database decides where the next run starts).
  void drop_batches();
  Result<void> apply_batch(Batch& b);
  // fill_ is full: hands it to the decoder and applies pending_ meanwhile.
  Result<void> hand_off();
  Clock::time_point deadline() const { return pending_ ? pending_->deadline : fill_->deadline; }
  bool holds_records() const { return pending_ != nullptr || fill_->len > 0; }
  bool assigned_once_ = false;
  std::optional<Error> fatal_;      // set inside the rebalance callback
  bool closing_after_error_ = false;

  Clock::time_point last_broker_commit_{};
  Clock::time_point last_prune_{};
  Clock::time_point last_scan_{};
  bool scan_now_ = false;
  // Ordered mode, from an assignment until its first scan of parked events has drained the runnable
  // chains (a replayed chain a stop or crash left half applied): not ready meanwhile.
  std::atomic<bool> parked_pending_{false};

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> ready_{false};
  std::atomic<bool> running_{false};  // start() was called
  std::atomic<bool> in_run_{false};   // run() is executing
  std::thread thread_;
  std::optional<Result<void>> thread_result_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ReplicaStats stats_;  // (mu_)
};

// ---------------------------------------------------------------- setup

Result<void> Replica::Impl::init() {
  if (cfg_.group_id.empty()) return Error{Errc::kInvalidArgument, "replica: group_id is empty"};
  if (cfg_.topics.empty()) return Error{Errc::kInvalidArgument, "replica: no topics"};
  if (cfg_.max_batch_events < 1) cfg_.max_batch_events = 1;
  if (cfg_.max_retries < 0) cfg_.max_retries = 0;
  HERALD_TRY(store_.migrate(dlq::parked_migrations()));

  kafka::Properties props = {
      {"bootstrap.servers", cfg_.brokers},
      {"group.id", cfg_.group_id},
      {"client.id", cfg_.client_id},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "true"},
      kafka::kDeepFetchQueue,
  };
  props.insert(props.end(), cfg_.kafka.begin(), cfg_.kafka.end());
  props.emplace_back("enable.auto.commit", "false");
  props.emplace_back("enable.auto.offset.store", "false");
  HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf(props));
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::rebalance_trampoline);
  HERALD_ASSIGN_OR_RETURN(rk_, kafka::make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  rd_kafka_poll_set_consumer(rk_.get());
  return ok();
}


Result<void> Replica::Impl::subscribe() {
  auto list = kafka::make_list(static_cast<int>(cfg_.topics.size()));
  for (const auto& t : cfg_.topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_.get(), list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kInvalidArgument, fmt::format("replica {}: subscribe: {}", cfg_.group_id, kafka::describe(err))};
  }
  return ok();
}

// A partition was fenced: another instance of the group moved its stored offset. That instance may
// be a zombie (it stalled past its session and has not yet learned it lost the partition), or it
// may be gone with no rebalance to come. Leaving and rejoining the group settles both: the
// partitions are assigned afresh, each owner starting from the offsets in the database.
Result<void> Replica::Impl::rejoin() {
  HERALD_TRY(flush());
  rejoin_ = false;  // one rejoin also covers a partition the flush fenced
  HLOG_WARN("replica {}: rejoining the group after a fenced partition", cfg_.group_id);
  if (rd_kafka_resp_err_t err = rd_kafka_unsubscribe(rk_.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kIoError, fmt::format("replica {}: unsubscribe: {}", cfg_.group_id, kafka::describe(err))};
  }
  return subscribe();
}

Result<void> Replica::Impl::run() {
  if (rk_ == nullptr) return Error{Errc::kClosed, "replica: already ran (create a new one)"};
  in_run_.store(true);
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag.store(false); }
  } done{in_run_};
  HERALD_TRY(subscribe());
  if (cfg_.max_batch_events >= kPipelineMin) decoder_ = std::make_unique<Worker>();
  Result<void> result = loop();
  if (result) {
    commit_to_broker(true);
  } else {
    // Whatever is in the batches was not committed; the database decides
    // where the next run starts, so just drop it.
    closing_after_error_ = true;
    drop_batches();
  }
  rd_kafka_consumer_close(rk_.get());  // revoke callback flushes (nothing) and commits
  decoder_.reset();
  if (result && fatal_) result = *fatal_;
  if (dlq_producer_) rd_kafka_flush(dlq_producer_->handle(), 5000);
  kafka::HandlePtr rk;
  {
    // status() reads watermarks through rk_ for the partitions in parts_. The consumer is destroyed
    // outside the lock: status(), stats() and wait_until() never wait for librdkafka's shutdown.
    std::lock_guard lk(mu_);
    parts_.clear();
    rk = std::move(rk_);
  }
  rk.reset();
  ready_.store(false);
  cv_.notify_all();
  if (!result && result.error().code == Errc::kClosed && stop_requested_.load()) return ok();
  return result;
}

Result<void> Replica::Impl::start() {
  if (running_.exchange(true)) return Error{Errc::kInvalidArgument, "replica: already started"};
  in_run_.store(true);  // so that running() is true as soon as start() returns
  thread_ = std::thread([this] {
    auto r = run();
    if (!r) HLOG_ERROR("replica {}: stopped: {}", cfg_.group_id, r.error().to_string());
    std::lock_guard lk(mu_);
    thread_result_ = std::move(r);
  });
  return ok();
}

Result<void> Replica::Impl::join() {
  if (thread_.joinable()) thread_.join();
  std::lock_guard lk(mu_);
  if (thread_result_) return *thread_result_;
  return ok();
}

// ---------------------------------------------------------------- rebalance

void Replica::Impl::rebalance_trampoline(rd_kafka_t*, rd_kafka_resp_err_t err,
                                         rd_kafka_topic_partition_list_t* parts, void* opaque) {
  static_cast<Impl*>(opaque)->on_rebalance(err, parts);
}

void Replica::Impl::on_rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts) {
  const bool cooperative = std::strcmp(rd_kafka_rebalance_protocol(rk_.get()), "COOPERATIVE") == 0;
  // Everything consumed so far belongs to the old assignment: commit it first.
  if (!fatal_ && !closing_after_error_) {
    if (auto r = flush(); !r) fatal_ = r.error();
  }
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Result<void> r = fatal_ ? Result<void>(*fatal_) : on_assign(parts);
    if (!r) {
      // Without the stored offsets we must not consume at all.
      fatal_ = r.error();
      if (!cooperative) rd_kafka_assign(rk_.get(), nullptr);
      return;
    }
    // A partition the replica counts as its own but does not fetch would never catch up: a failed
    // assign stops the replica with the error rather than leave it unready for good.
    std::string failed;
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk_.get(), parts)) {
        failed = rd_kafka_error_string(e);
        rd_kafka_error_destroy(e);
      }
    } else if (rd_kafka_resp_err_t e = rd_kafka_assign(rk_.get(), parts); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failed = kafka::describe(e);
    }
    if (!failed.empty()) {
      fatal_ = Error{Errc::kIoError, fmt::format("replica {}: assigning partitions: {}", cfg_.group_id, failed)};
    }
  } else {
    on_revoke(parts, cooperative);
    if (cooperative) {
      rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk_.get(), parts);
      if (e) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk_.get(), nullptr);
    }
  }
}

Result<void> Replica::Impl::on_assign(rd_kafka_topic_partition_list_t* parts) {
  processed_.clear();  // the previous owners of these partitions recorded ids we have not seen
  // Positions come from OUR database, never from the broker.
  std::map<std::string, std::map<int32_t, StoredOffset>> stored;
  std::map<PartKey, std::map<std::string, int64_t>> chains;
  // A database that is down (a lost or refused connection) is waited for, as everywhere else: the
  // replica consumes nothing meanwhile, and stops only when asked to.
  for (int failures = 1;; ++failures) {
    auto loaded = store_.run(
        [&](Tx& tx) -> Result<void> {
          stored.clear();
          chains.clear();
          for (int i = 0; i < parts->cnt; ++i) {
            std::string topic = parts->elems[i].topic;
            if (!stored.count(topic)) {
              HERALD_ASSIGN_OR_RETURN(stored[topic], load_offset_rows(tx, cfg_.group_id, topic));
            }
            if (cfg_.ordered) {
              const int32_t partition = parts->elems[i].partition;
              HERALD_ASSIGN_OR_RETURN(auto heads, dlq::parked_heads(tx, cfg_.group_id, topic, partition));
              if (!heads.empty()) chains[PartKey(topic, partition)] = std::move(heads);
            }
          }
          return ok();
        },
        5, TxOptions{.read_only = true});
    if (loaded) break;
    HERALD_TRY(wait_transient(loaded.error(), failures));
  }

  std::map<PartKey, Part> fresh;
  int64_t lost = 0;
  for (int i = 0; i < parts->cnt; ++i) {
    auto& el = parts->elems[i];
    Part p;
    p.topic = el.topic;
    p.partition = el.partition;
    auto& offsets = stored[p.topic];
    std::optional<int64_t> last_record;
    if (auto it = offsets.find(p.partition); it != offsets.end()) {
      p.has_row = true;
      p.applied_next = it->second.next_offset;
      p.stored_next = it->second.next_offset;
      p.fetched_next = it->second.next_offset;
      el.offset = it->second.next_offset;
      last_record = it->second.last_record;
    } else {
      el.offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk_.get(), el.topic, el.partition, &lo, &hi,
                                                               static_cast<int>(cfg_.watermark_timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Unknown for now: the end-of-partition event will tell.
      HLOG_WARN("replica {}: watermarks of {}/{}: {}", cfg_.group_id, p.topic, p.partition, kafka::describe(err));
      p.target = INT64_MAX;
    } else {
      if (p.has_row && p.applied_next > hi) {
        // Past the end of the log: the topic was deleted and created again (or restored from an
        // older copy). Its records from the start are new to this replica; skipping them up to the
        // old position would lose them. The first transaction stores the new position.
        HLOG_ERROR("replica {}: stored offset {} of {}/{} is past the end of its log ({}): the topic was "
                   "re-created or truncated; reading it again from the earliest offset {}",
                   cfg_.group_id, p.applied_next, p.topic, p.partition, hi, lo);
        p.applied_next = lo;
        p.fetched_next = lo;
        el.offset = RD_KAFKA_OFFSET_BEGINNING;
      } else if (p.has_row && p.applied_next < lo) {
        // Retention (or DeleteRecords) removed events this replica had not read: they are gone
        // for it. Say so loudly; the local copy misses whatever they changed.
        HLOG_ERROR("replica {}: stored offset {} of {}/{} is below the log start {}: {} event(s) were removed "
                   "from the log before this replica applied them; going on from {}",
                   cfg_.group_id, p.applied_next, p.topic, p.partition, lo, lo - p.applied_next, lo);
        lost += lo - p.applied_next;
        p.applied_next = lo;
        p.fetched_next = lo;
        el.offset = lo;
      } else if (p.has_row && last_record && p.applied_next > lo) {
        // Read the last record applied again: is this the log the offset was stored for?
        p.verify_at = p.applied_next - 1;
        p.verify_fingerprint = *last_record;
        el.offset = p.verify_at;
      }
      // The earliest offset as a number: librdkafka resolves a logical
      // offset with a ListOffsets of its own, which for a partition new to
      // the consumer waits for a 500 ms timer first. Should the log start
      // move up meanwhile, the fetch is out of range and
      // auto.offset.reset=earliest takes over.
      if (el.offset == RD_KAFKA_OFFSET_BEGINNING) el.offset = lo;
      p.target = hi;
      // Not while the record before the stored offset is still to be read again: the log may be another.
      p.caught_up = p.verify_at < 0 && (p.has_row ? p.applied_next : lo) >= hi;
    }
    if (auto it = chains.find(PartKey(p.topic, p.partition)); it != chains.end()) p.parked = std::move(it->second);
    HLOG_INFO("replica {}: assigned {}/{} from {} (database), high watermark {}", cfg_.group_id, p.topic,
              p.partition, p.has_row ? std::to_string(p.applied_next) : std::string("earliest"), hi);
    fresh.emplace(PartKey(p.topic, p.partition), std::move(p));
  }
  {
    std::lock_guard lk(mu_);
    for (auto& [k, p] : fresh) parts_[k] = std::move(p);
    stats_.rebalances++;
    stats_.removed_unread += lost;
    assigned_once_ = true;
  }
  ready_.store(false);
  scan_now_ = cfg_.ordered;
  parked_pending_ = cfg_.ordered;
  update_ready();
  return ok();
}

void Replica::Impl::on_revoke(rd_kafka_topic_partition_list_t* parts, bool cooperative) {
  if (!rd_kafka_assignment_lost(rk_.get())) commit_to_broker(true);
  bool holds_some = false;
  {
    std::lock_guard lk(mu_);
    if (!cooperative) {
      parts_.clear();
    } else {
      for (int i = 0; i < parts->cnt; ++i) parts_.erase(PartKey(parts->elems[i].topic, parts->elems[i].partition));
    }
    holds_some = !parts_.empty();
    // Holding nothing until the next assignment has caught up: not ready (a saga orchestrator's
    // deadline check, gated on ready(), must not run on replies it cannot read).
    if (!holds_some) ready_.store(false);
  }
  if (holds_some) update_ready();  // the partitions left may all be caught up
}

// The consumer reached the end of the partition at `offset` (everything
// before it is applied: the batch was flushed first). That covers the target
// even when the last offsets below it do not exist (compaction, transaction
// markers), which position alone would never reach.
void Replica::Impl::on_eof(const char* topic, int32_t partition, int64_t offset) {
  Part* p = find(topic, partition);
  if (p == nullptr || p->caught_up) return;
  if (p->target != INT64_MAX && offset < p->target) {
    HLOG_DEBUG("replica {}: {}/{}: end of partition at {} below the high watermark {} seen at assignment",
               cfg_.group_id, p->topic, p->partition, offset, p->target);
    return;
  }
  {
    std::lock_guard lk(mu_);
    p->caught_up = true;
  }
  update_ready();
}

void Replica::Impl::update_ready() {
  bool all = true;
  {
    std::lock_guard lk(mu_);
    if (!assigned_once_) return;
    for (auto& [k, p] : parts_) {
      // A fenced partition waits for the rejoin that assigns it afresh: not ready until then.
      if (!p.caught_up || p.fenced) all = false;
    }
  }
  if (parked_pending_) all = false;
  if (all && !ready_.exchange(true)) {
    HLOG_INFO("replica {}: caught up, ready", cfg_.group_id);
    cv_.notify_all();
    if (on_ready_) on_ready_();
  }
}

// ---------------------------------------------------------------- main loop

Result<void> Replica::Impl::loop() {
  uint32_t since_clock = 0;
  while (!stop_requested_.load()) {
    if (fatal_) return *fatal_;
    if (rejoin_) HERALD_TRY(rejoin());
    // Look at the clock (housekeeping, the batch deadline) when idle and every
    // 64 messages, not per message: clock reads show up at 200k events/s.
    // Owned at once: a message still held when the consumer is destroyed blocks rd_kafka_destroy.
    kafka::MessagePtr msg(rd_kafka_consumer_poll(rk_.get(), 0));
    if (!msg || ++since_clock >= 64) {
      since_clock = 0;
      const auto now = Clock::now();
      HERALD_TRY(periodic(now));
      if (holds_records() && now >= deadline()) HERALD_TRY(flush());
      if (!msg) {
        int timeout_ms = 100;
        if (holds_records()) {
          timeout_ms = static_cast<int>(std::clamp<int64_t>(
              std::chrono::duration_cast<milliseconds>(deadline() - now).count(), 0, 100));
        }
        msg.reset(rd_kafka_consumer_poll(rk_.get(), timeout_ms));
      }
    }
    if (fatal_) return *fatal_;
    if (!msg) continue;
    const rd_kafka_message_t* m = msg.get();
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      HERALD_TRY(flush());
      on_eof(rd_kafka_topic_name(m->rkt), m->partition, m->offset);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk_.get(), buf, sizeof buf);
        return Error{Errc::kIoError, fmt::format("replica {}: fatal consumer error: {}", cfg_.group_id, buf)};
      }
      if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        // A subscribed topic that does not exist (a typo, not created yet): the replica is not ready
        // until it does, so say why, once a minute at most.
        const auto now = Clock::now();
        if (now >= next_missing_topic_warning_) {
          next_missing_topic_warning_ = now + std::chrono::minutes(1);
          HLOG_WARN("replica {}: {}; not ready until it exists", cfg_.group_id, rd_kafka_message_errstr(m));
        }
      } else {
        HLOG_DEBUG("replica {}: consumer: {}", cfg_.group_id, rd_kafka_message_errstr(m));
      }
      continue;
    }
    HERALD_TRY(accept(std::move(msg)));
  }
  return flush();
}

Result<void> Replica::Impl::accept(kafka::MessagePtr msg) {
  Part* p = find(rd_kafka_topic_name(msg->rkt), msg->partition);
  if (p == nullptr || p->fenced) return ok();  // not (or no longer) ours
  if (p->verify_at >= 0) {
    // The first record of a partition assigned with a fingerprint stored: that record again, or
    // something after it when it is gone (compaction, retention), which leaves nothing to compare.
    const int64_t at = std::exchange(p->verify_at, -1);
    if (msg->offset == at) return fingerprint(*msg) == p->verify_fingerprint ? ok() : replaced(*p);
  }
  if (msg->offset < p->fetched_next) {
    HERALD_TRY(rewound(*p, msg->offset));
    if (p->fenced) return ok();
  }
  if (p->fetched_next >= 0 && msg->offset > p->fetched_next) note_gap(*p, msg->offset);
  p->fetched_next = msg->offset + 1;
  Batch& b = *fill_;
  if (b.len == b.recs.size()) b.recs.emplace_back();
  Rec& r = b.recs[b.len];
  r.part = p;
  r.msg = std::move(msg);
  if (b.len == 0) b.deadline = Clock::now() + cfg_.max_batch_delay;
  ++b.len;
  if (static_cast<int>(b.len) < cfg_.max_batch_events) return ok();
  return decoder_ ? hand_off() : flush();
}

// librdkafka delivered an offset below one it delivered before: its fetch was
// out of range and auto.offset.reset went on from the start of a new log (the
// topic was deleted and created again while the replica ran, or restored from
// an older copy). Those records are new to the replica; dropping them up to
// the old position would lose them. What was read before is applied first,
// then the position goes back (the next transaction stores it, compare-and-set
// as always); events applied before are dropped by ce_id.
Result<void> Replica::Impl::rewound(Part& p, int64_t offset) {
  HERALD_TRY(flush());
  if (p.fenced) return ok();
  HLOG_ERROR("replica {}: {}/{} went back from offset {} to {}: the topic was re-created or its log replaced; "
             "applying its events from {}",
             cfg_.group_id, p.topic, p.partition, p.fetched_next, offset, offset);
  read_again(p, offset);
  return ok();
}

void Replica::Impl::read_again(Part& p, int64_t from) {
  int64_t lo = -1, hi = -1;
  const bool known = rd_kafka_get_watermark_offsets(rk_.get(), p.topic.c_str(), p.partition, &lo, &hi) ==
                     RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0;
  std::lock_guard lk(mu_);
  p.applied_next = from;
  p.fetched_next = from;
  p.target = known ? hi : INT64_MAX;  // caught up again at the new log's end
  p.caught_up = from >= p.target;
  if (!p.caught_up) ready_.store(false);
}

// The record before a partition's stored offset is not the one that offset
// was stored after: the topic was deleted and created again (or restored from
// another copy) and its new log has grown past the old position. Its records
// from the log start are new to the replica; going on from the stored offset
// would skip them. The replica reads the partition from its start again; the
// next transaction stores the new position (compare-and-set as always) and
// events applied before are dropped by ce_id.
Result<void> Replica::Impl::replaced(Part& p) {
  int64_t lo = -1, hi = -1;
  rd_kafka_get_watermark_offsets(rk_.get(), p.topic.c_str(), p.partition, &lo, &hi);
  lo = std::max<int64_t>(lo, 0);  // librdkafka knows it from the fetch that brought the record
  HLOG_ERROR("replica {}: the record before stored offset {} of {}/{} is not the one it was stored after: the "
             "topic was re-created or its log replaced; reading it again from the earliest offset",
             cfg_.group_id, p.applied_next, p.topic, p.partition);
  auto list = kafka::make_list(1);
  rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = lo;
  rd_kafka_error_t* e = rd_kafka_seek_partitions(rk_.get(), list.get(), 10000);
  const rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : list->elems[0].err;
  if (e) rd_kafka_error_destroy(e);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kIoError, fmt::format("replica {}: seeking {}/{} to its start: {}", cfg_.group_id, p.topic,
                                             p.partition, kafka::describe(err))};
  }
  read_again(p, lo);
  return ok();
}

// Offsets fetched_next .. next-1 were skipped: compaction removed them (the
// usual case), or retention or DeleteRecords removed them before this running
// replica read them, and librdkafka's auto.offset.reset went on from the log
// start. The log start (librdkafka keeps the one of the last fetch) tells the
// two apart; the second is reported as at assignment.
void Replica::Impl::note_gap(Part& p, int64_t next) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_get_watermark_offsets(rk_.get(), p.topic.c_str(), p.partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      lo <= p.fetched_next) {
    return;
  }
  const int64_t lost = std::min(lo, next) - p.fetched_next;
  HLOG_ERROR("replica {}: {} event(s) of {}/{} from offset {} were removed from the log before this replica read "
             "them (its log start is now {}); going on from {}",
             cfg_.group_id, lost, p.topic, p.partition, p.fetched_next, lo, next);
  std::lock_guard lk(mu_);
  stats_.removed_unread += lost;
}

// Decodes b's records and prepares their typed handlers' payloads: runs on
// the decoder thread (or inline). Reads only the records, their partitions'
// names, which do not change while a batch holds them (rebalances flush
// first), and the read-only handler registry.
void Replica::Impl::decode_batch(Batch& b) {
  Headers& h = headers_scratch_;
  for (size_t i = 0; i < b.len; ++i) {
    Rec& r = b.recs[i];
    const rd_kafka_message_t& msg = *r.msg;
    r.dropped = false;
    r.decode_error.clear();
    message_headers_into(msg, h);
    std::optional<std::string_view> value;
    if (msg.payload) value = std::string_view(static_cast<const char*>(msg.payload), msg.len);
    std::string_view key;
    if (msg.key) key = std::string_view(static_cast<const char*>(msg.key), msg.key_len);
    auto decoded = decode_record(r.ev, key, value, h);
    r.decoded = decoded.has_value();
    if (!decoded) r.decode_error = decoded.error().to_string();
    if (r.decoded) {
      if (!r.ev.position) r.ev.position.emplace();
      r.ev.position->topic.assign(r.part->topic);
      r.ev.position->partition = r.part->partition;
      r.ev.position->offset = msg.offset;
      r.id7 = Uuid7::parse(r.ev.id);
      r.prepared = handlers_.prepare(r.ev);
    }
  }
  b.decoded = true;
}

Result<void> Replica::Impl::hand_off() {
  decoder_->wait_idle();  // pending_ is decoded; the third batch is released
  Batch* full = fill_;
  decoder_->post([this, full] { decode_batch(*full); });
  Batch* prev = pending_;
  pending_ = full;
  for (Batch& b : batches_) {
    if (&b != full && &b != prev) fill_ = &b;
  }
  if (prev == nullptr) return ok();
  auto r = apply_batch(*prev);
  decoder_->post([prev] { release_batch(*prev); });
  return r;
}

// Applies everything accepted so far: pending_, then fill_.
Result<void> Replica::Impl::flush() {
  if (decoder_) decoder_->wait_idle();
  for (Batch* b : {std::exchange(pending_, nullptr), fill_}) {
    if (b == nullptr || b->len == 0) continue;
    auto r = apply_batch(*b);
    release_batch(*b);
    HERALD_TRY(r);
  }
  return ok();
}

void Replica::Impl::drop_batches() {
  if (decoder_) decoder_->wait_idle();
  for (Batch& b : batches_) release_batch(b);
  pending_ = nullptr;
}

Result<void> Replica::Impl::apply_batch(Batch& b) {
  if (!b.decoded) decode_batch(b);
  applying_ = &b;
  auto r = apply_range(0, b.len);
  applying_ = nullptr;
  return r;
}

// Applies applying_->recs[lo, hi) in one transaction. When an event fails, the
// transaction is rolled back, [lo, i) is applied again without it, the
// failing event goes through the poison path alone, and [i+1, hi) follows.
// A transient database error (a deadlock, a lock or serialization conflict,
// a lost connection, the database restarting) is no fault of the event: the
// range is run again after a backoff, for as long as it takes.
Result<void> Replica::Impl::apply_range(size_t lo, size_t hi) {
  int failures = 0;  // consecutive transient failures
  while (lo < hi) {
    auto begun = store_.begin();
    if (!begun) {
      HERALD_TRY(wait_transient(begun.error(), ++failures));
      continue;
    }
    auto tx = std::move(*begun);
    Effects fx;
    std::string err;
    size_t i = lo;
    Outcome out = Outcome::kApplied;
    auto& batch = applying_->recs;
    for (; i < hi; ++i) {
      out = apply_record(*tx, batch[i], &err, fx);
      if (out == Outcome::kFailed || out == Outcome::kReplayHead) break;
    }
    if (i == hi) {
      auto committed = commit(std::move(tx), fx);
      if (!committed) {
        // A COMMIT whose connection was lost may have committed: then the run
        // again finds the stored offset moved and fences (commit()).
        HERALD_TRY(wait_transient(committed.error(), ++failures));
        continue;
      }
      if (*committed) return ok();
      continue;  // a partition was fenced: its records are now dropped; redo the rest
    }
    const bool transient = out == Outcome::kFailed && tx->failed_transiently();
    tx->rollback();
    if (transient) {
      HERALD_TRY(wait_transient(Error{Errc::kIoError, err}, ++failures, true));
      continue;
    }
    if (i > lo) HERALD_TRY(apply_range(lo, i));
    if (batch[i].part->fenced) {
      batch[i].dropped = true;
    } else if (out == Outcome::kReplayHead) {
      HERALD_TRY(replay_chain(batch[i]));
    } else {
      HERALD_TRY(handle_poison(batch[i], err));
    }
    lo = i + 1;
  }
  return ok();
}

Outcome Replica::Impl::apply_record(Tx& tx, Rec& r, std::string* err, Effects& fx) {
  if (r.dropped || r.part->fenced) {
    r.dropped = true;
    return Outcome::kDropped;
  }
  auto& next = fx.next_offsets[r.part];
  if (r.offset() + 1 > next.offset) next = {r.offset() + 1, r.msg.get()};
  // The key orders events in ordered mode, whether or not the record decodes (the aggregate id is
  // the record key): an undecodable record of a parked key waits behind it like any other.
  const std::string_view order_key = r.key().value_or(std::string_view());
  const bool key_parked = cfg_.ordered && !order_key.empty() && r.part->parked.count(std::string(order_key)) > 0;
  if (!r.decoded && !key_parked) {
    *err = r.decode_error;
    return Outcome::kFailed;
  }
  // A dead letter replayed for another group: this group applied the original (or dead-lettered and
  // replays it itself), whatever its ce_id and however long ago.
  auto replay = dlq::replay_of(r.decoded ? r.ev.extensions : message_headers(*r.msg));
  // The markers name a record of this topic. On a record of another topic they were copied along
  // by a service that forwarded the event with its extensions (say, for tracing): not a replay here.
  if (replay && replay->topic != r.part->topic) replay.reset();
  if (replay && replay->group != cfg_.group_id) {
    fx.delta.duplicates++;
    return Outcome::kDuplicate;
  }
  if (cfg_.ordered && !order_key.empty()) {
    auto it = r.part->parked.find(std::string(order_key));
    if (it != r.part->parked.end() && replay && replay->topic == r.part->topic &&
        replay->partition == r.part->partition && replay->offset == it->second) {
      return Outcome::kReplayHead;
    }
    // The replay of an ordered letter whose key's chain does not start with it: the database dealt
    // with it already (`dlq replay|skip --store` applied or dropped it, or it was replayed before).
    // Applying it now would put it after the key's later events.
    if (replay && replay->ordered) {
      fx.delta.duplicates++;
      return Outcome::kDuplicate;
    }
    if (it != r.part->parked.end()) {
      dlq::ParkedEvent pe;
      pe.group = cfg_.group_id;
      pe.topic = r.part->topic;
      pe.partition = r.part->partition;
      pe.offset = r.offset();
      pe.key = std::string(order_key);
      if (auto v = r.value()) pe.value = std::string(*v);
      pe.headers = message_headers(*r.msg);
      pe.timestamp_ms = r.timestamp();
      pe.state = dlq::ParkedState::kWaiting;
      if (auto res = dlq::park(tx, pe); !res) {
        *err = res.error().to_string();
        return Outcome::kFailed;
      }
      fx.delta.parked++;
      return Outcome::kParked;
    }
  }
  if (replay && r.ev.id.empty() && cfg_.dedup_window.count() > 0) {
    // A plain record has no ce_id: a replay of it is known by the original's place instead, so that
    // two replays of one letter (two `dlq replay` runs at once, or one run again) apply it once.
    auto fresh = processed_.mark(tx, "herald_replay_of:" + dlq::coordinates(replay->topic, replay->partition,
                                                                            replay->offset),
                                 fx.now_ms, fx.ids);
    if (!fresh) {
      *err = fresh.error().to_string();
      return Outcome::kFailed;
    }
    if (!*fresh) {
      fx.delta.duplicates++;
      return Outcome::kDuplicate;
    }
  }
  return apply_event(tx, r.ev, r.id7, &r.prepared, err, fx);
}

Outcome Replica::Impl::apply_event(Tx& tx, const Event& ev, const std::optional<Uuid7>& id7,
                                   const ReplicaHandlers::Prepared* prepared, std::string* err, Effects& fx) {
  if (cfg_.dedup_window.count() > 0 && !ev.id.empty()) {
    auto fresh = id7 ? processed_.mark(tx, *id7, fx.ids) : processed_.mark(tx, ev.id, fx.now_ms, fx.ids);
    if (!fresh) {
      *err = fresh.error().to_string();
      return Outcome::kFailed;
    }
    if (!*fresh) {
      fx.delta.duplicates++;
      return Outcome::kDuplicate;
    }
  }
  try {
    Tx::Lend lend(tx);  // the handler cannot commit the offsets' transaction
    if (!handlers_.dispatch(ev, prepared, tx)) {
      if (cfg_.skip_unhandled) {
        fx.delta.unhandled++;
        return Outcome::kUnhandled;
      }
      *err = fmt::format("no handler for ce_type '{}'", ev.type);
      return Outcome::kFailed;
    }
  } catch (const std::exception& e) {
    *err = e.what();
    return Outcome::kFailed;
  } catch (...) {
    *err = "handler threw a non-standard exception";
    return Outcome::kFailed;
  }
  if (tx.aborted()) {  // the handler went on after a failed statement: nothing more can run in tx
    *err = fmt::format("a statement of the handler failed, which aborted the transaction: {}", tx.last_error());
    return Outcome::kFailed;
  }
  fx.delta.applied++;
  return Outcome::kApplied;
}

Result<bool> Replica::Impl::commit(std::unique_ptr<Tx> tx, Effects& fx) {
  const int64_t now = wall_ms();
  for (auto& [p, next] : fx.next_offsets) {
    if (p->fenced) continue;
    int64_t n = 0;
    const auto last = static_cast<long long>(fingerprint(*next.last));
    if (p->has_row) {
      if (next.offset <= p->applied_next) continue;
      HERALD_ASSIGN_OR_RETURN(n, tx->exec("UPDATE herald_offsets SET next_offset = ?, last_record = ?, updated_at = ? "
                                          "WHERE group_id = ? AND topic = ? AND partition_id = ? AND next_offset = ?",
                                          {static_cast<long long>(next.offset), last, static_cast<long long>(now),
                                           cfg_.group_id, p->topic, p->partition,
                                           static_cast<long long>(p->stored_next)}));
    } else {
      HERALD_ASSIGN_OR_RETURN(n, tx->exec("INSERT INTO herald_offsets (group_id, topic, partition_id, next_offset, "
                                          "last_record, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                                          "(group_id, topic, partition_id) DO NOTHING",
                                          {cfg_.group_id, p->topic, p->partition,
                                           static_cast<long long>(next.offset), last, static_cast<long long>(now)}));
    }
    if (n != 1) {
      // Another instance of the group moved this partition's offset (one of
      // us is a zombie). Drop our copy of its events and rejoin the group
      // (rejoin()): the new assignment starts from the stored offsets.
      tx->rollback();
      HLOG_WARN("replica {}: {}/{} fenced: its stored offset moved under us", cfg_.group_id, p->topic, p->partition);
      {
        std::lock_guard lk(mu_);
        p->fenced = true;
        stats_.fenced++;
      }
      rejoin_ = true;
      if (applying_ != nullptr) {
        for (size_t i = 0; i < applying_->len; ++i) {
          if (applying_->recs[i].part == p) applying_->recs[i].dropped = true;
        }
      }
      update_ready();
      processed_.clear();  // the other instance recorded ids we have not seen
      return false;
    }
  }
  HERALD_TRY(processed_.write(*tx, fx.ids, now));
  HERALD_TRY(tx->commit());
  processed_.committed(fx.ids);
  fx.delta.transactions++;
  apply_effects(fx);
  return true;
}

void Replica::Impl::apply_effects(const Effects& fx) {
  {
    std::lock_guard lk(mu_);
    for (auto& [p, next] : fx.next_offsets) {
      if (p->fenced) continue;
      if (!p->has_row || next.offset > p->applied_next) {
        p->has_row = true;
        p->applied_next = next.offset;
        p->stored_next = next.offset;
      }
      if (!p->caught_up && p->applied_next >= p->target) p->caught_up = true;
    }
    for (auto& [p, key, first] : fx.new_chains) p->parked.emplace(key, first);
    for (auto& [p, key] : fx.drained) p->parked.erase(key);
    auto& s = stats_;
    const auto& d = fx.delta;
    s.applied += d.applied;
    s.duplicates += d.duplicates;
    s.unhandled += d.unhandled;
    s.retries += d.retries;
    s.dead_lettered += d.dead_lettered;
    s.parked += d.parked;
    s.unparked += d.unparked;
    s.transactions += d.transactions;
  }
  cv_.notify_all();
  if (!ready_.load()) update_ready();
}

// ---------------------------------------------------------------- poison events

Result<void> Replica::Impl::backoff(int retry) {
  auto delay = cfg_.retry_backoff;
  for (int i = 1; i < retry && delay < cfg_.max_retry_backoff; ++i) delay *= 2;
  delay = std::min(delay, cfg_.max_retry_backoff);
  auto until = Clock::now() + delay;
  while (Clock::now() < until) {
    if (stop_requested_.load()) return Error{Errc::kClosed, "replica stopping"};
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), milliseconds(20)));
  }
  return ok();
}

Result<void> Replica::Impl::wait_transient(const Error& e, int failures, bool transient) {
  if (!transient && !is_transient(e)) return e;
  HLOG_WARN("replica {}: transient database error (failure {} in a row), running the transaction again: {}",
            cfg_.group_id, failures, e.message);
  {
    std::lock_guard lk(mu_);
    stats_.transient_errors++;
  }
  return backoff(failures);
}

Result<bool> Replica::Impl::transact(const std::function<Result<void>(Tx&, Effects&)>& fill) {
  for (int failures = 1;; ++failures) {
    auto begun = store_.begin();
    if (!begun) {
      HERALD_TRY(wait_transient(begun.error(), failures));
      continue;
    }
    auto tx = std::move(*begun);
    Effects fx;
    if (auto r = fill(*tx, fx); !r) {
      const bool transient = tx->failed_transiently();
      tx->rollback();
      HERALD_TRY(wait_transient(r.error(), failures, transient));
      continue;
    }
    auto committed = commit(std::move(tx), fx);
    if (committed) return *committed;
    HERALD_TRY(wait_transient(committed.error(), failures));
  }
}

Result<void> Replica::Impl::check_store() {
  // Before blaming the event, make sure the database itself answers: a
  // database outage must not dead-letter every event.
  for (int failures = 1;; ++failures) {
    auto r = store_.run([](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.query("SELECT 1"));
      return ok();
    });
    if (r) return ok();
    HERALD_TRY(wait_transient(r.error(), failures));
  }
}

Result<void> Replica::Impl::handle_poison(Rec& r, std::string err) {
  int attempts = 1;
  if (r.decoded) {
    // A transient database error during a retry is no attempt of the handler's: the retry runs
    // again after wait_transient(), as in apply_range.
    int db_failures = 0;
    for (int retry = 1; retry <= cfg_.max_retries;) {
      if (db_failures == 0) {
        HLOG_WARN("replica {}: {}/{}@{} failed (attempt {}): {}; retrying", cfg_.group_id, r.part->topic,
                  r.part->partition, r.offset(), attempts, err);
        HERALD_TRY(backoff(retry));
      }
      auto begun = store_.begin();
      if (!begun) {
        HERALD_TRY(wait_transient(begun.error(), ++db_failures));
        continue;
      }
      auto tx = std::move(*begun);
      Effects fx;
      fx.delta.retries = 1;
      Outcome out = apply_record(*tx, r, &err, fx);
      if (out == Outcome::kDropped) return ok();
      if (out != Outcome::kFailed) {
        auto committed = commit(std::move(tx), fx);
        if (committed) return ok();
        HERALD_TRY(wait_transient(committed.error(), ++db_failures));
        continue;
      }
      const bool transient = tx->failed_transiently();
      tx->rollback();
      if (transient) {
        HERALD_TRY(wait_transient(Error{Errc::kIoError, err}, ++db_failures, true));
        continue;
      }
      db_failures = 0;
      {
        std::lock_guard lk(mu_);
        stats_.retries++;
      }
      ++attempts;
      ++retry;
    }
  }
  HLOG_ERROR("replica {}: {}/{}@{} (ce_id '{}') failed {} times: {}", cfg_.group_id, r.part->topic,
             r.part->partition, r.offset(), r.ev.id, attempts, err);
  if (cfg_.on_poison == PoisonPolicy::kStop) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("replica {}: {}/{}@{} failed after {} attempts: {}", cfg_.group_id, r.part->topic,
                             r.part->partition, r.offset(), attempts, err)};
  }
  HERALD_TRY(check_store());
  HERALD_TRY(dead_letter(r.part->topic, r.part->partition, r.offset(), r.key(), r.value(), message_headers(*r.msg),
                         r.timestamp(), err, attempts));
  auto done = transact([&](Tx& tx, Effects& fx) -> Result<void> {
    fx.next_offsets[r.part] = {r.offset() + 1, r.msg.get()};
    fx.delta.dead_lettered = 1;
    // Ordered: the key's later events park behind this one, also when it did not decode.
    const std::string_view order_key = r.key().value_or(std::string_view());
    if (!cfg_.ordered || order_key.empty()) return ok();
    dlq::ParkedEvent pe;
    pe.group = cfg_.group_id;
    pe.topic = r.part->topic;
    pe.partition = r.part->partition;
    pe.offset = r.offset();
    pe.key = std::string(order_key);
    if (auto v = r.value()) pe.value = std::string(*v);
    pe.headers = message_headers(*r.msg);
    pe.timestamp_ms = r.timestamp();
    pe.state = dlq::ParkedState::kDead;
    pe.error = err;
    pe.attempts = attempts;
    HERALD_TRY(dlq::park(tx, pe));
    fx.new_chains.emplace_back(r.part, pe.key, pe.offset);
    return ok();
  });
  if (!done) return done.error();
  return ok();
}

Result<void> Replica::Impl::dead_letter(const std::string& topic, int32_t partition, int64_t offset,
                                        std::optional<std::string_view> key, std::optional<std::string_view> value,
                                        const Headers& headers, int64_t timestamp, const std::string& err,
                                        int attempts) {
  if (!dlq_producer_) {
    HERALD_ASSIGN_OR_RETURN(dlq_producer_, kafka::SyncProducer::create(cfg_.brokers, cfg_.dlq_producer));
  }
  const std::string dlq_topic = topic + cfg_.dlq_suffix;
  dlq::Failure f;
  f.topic = topic;
  f.partition = partition;
  f.offset = offset;
  f.group = cfg_.group_id;
  f.error = err;
  f.attempts = attempts;
  f.failed_at_ms = wall_ms();
  f.timestamp_ms = timestamp;
  f.ordered = cfg_.ordered;
  // The partition waits until the letter is written: a broker that cannot take it now (unreachable,
  // the topic missing or not writable) is retried with backoff; the replica stops only when asked
  // to. A letter too large for the dead-letter topic goes without its value (replay reads it from
  // the source).
  for (int failures = 1;; ++failures) {
    // Each wait below ends soon after stop(): the event stays unapplied, its offset not stored.
    if (!dlq_topics_ready_.count(dlq_topic)) {
      auto n = kafka::partition_count(dlq_producer_->handle(), topic, cfg_.watermark_timeout, &stop_requested_);
      auto r = kafka::ensure_topic(dlq_producer_->handle(), dlq_topic, n ? *n : 1, cfg_.watermark_timeout,
                                   &stop_requested_);
      if (stop_requested_.load()) return Error{Errc::kClosed, "replica stopping"};
      if (!r) HLOG_WARN("replica {}: {} (relying on auto-creation)", cfg_.group_id, r.error().to_string());
      dlq_topics_ready_.insert(dlq_topic);
    }
    auto at = dlq_producer_->send(dlq_topic, kafka::kAnyPartition, key, value, dlq::dead_letter_headers(headers, f),
                                  0, &stop_requested_);
    if (!at && at.error().code == Errc::kClosed) return at.error();
    if (at) {
      HLOG_WARN("replica {}: {}/{}@{} dead-lettered to {} at offset {}{}", cfg_.group_id, topic, partition, offset,
                dlq_topic, *at, f.value_omitted >= 0 ? " without its value" : "");
      return ok();
    }
    if (at.error().code == Errc::kInvalidArgument && value) {
      HLOG_WARN("replica {}: the dead letter of {}/{}@{} is too large for {} ({}): sending it without its value of "
                "{} bytes",
                cfg_.group_id, topic, partition, offset, dlq_topic, at.error().message, value->size());
      f.value_omitted = static_cast<int64_t>(value->size());
      value.reset();
      --failures;
      continue;
    }
    // Refused even without its value (its key and headers alone are too large for the topic's
    // max.message.bytes) or failed otherwise: the replica waits for a fix, as for a DLQ it cannot reach.
    HLOG_ERROR("replica {}: cannot dead-letter {}/{}@{} to {} (attempt {}): {}; the replica waits{}", cfg_.group_id,
               topic, partition, offset, dlq_topic, failures, at.error().message,
               at.error().code == Errc::kInvalidArgument ? " (without its value it is still too large: raise the "
                                                           "dead-letter topic's max.message.bytes)"
                                                         : "");
    dlq_topics_ready_.erase(dlq_topic);  // try to create it again
    HERALD_TRY(backoff(failures));
  }
}

// The replay of a parked chain's head arrived: mark the chain runnable
// together with the replay's own offset, then apply the chain.
Result<void> Replica::Impl::replay_chain(Rec& r) {
  const std::string key(r.key().value_or(std::string_view()));  // the record key: it may not have decoded
  const int64_t head = r.part->parked.at(key);
  HERALD_ASSIGN_OR_RETURN(bool committed, transact([&](Tx& tx, Effects& fx) -> Result<void> {
    fx.next_offsets[r.part] = {r.offset() + 1, r.msg.get()};
    return dlq::set_parked_state(tx, cfg_.group_id, r.part->topic, r.part->partition, head,
                                 dlq::ParkedState::kReplay);
  }));
  if (!committed) return ok();
  HLOG_INFO("replica {}: replay of {}/{}@{} arrived; applying key '{}' in order", cfg_.group_id, r.part->topic,
            r.part->partition, head, key);
  return drain_chain(r.part->topic, r.part->partition, key);
}

// Applies the chain of (topic, partition, key) in offset order, max_batch_events
// per transaction (a long chain does not hold the store's write lock for
// seconds; a crash between two of them leaves the rest a runnable chain, which
// the next start drains). When an event fails, the good prefix of its
// transaction commits on its own, the failing event (now the chain's first
// row) is retried with backoff, and when it still fails it becomes the chain's
// new dead head (and goes to the dead-letter topic), leaving the rest parked
// behind it.
Result<void> Replica::Impl::drain_chain(const std::string& topic, int32_t partition, const std::string& key) {
  Part* p = find(topic, partition);
  if (p == nullptr || p->fenced) return ok();
  auto decode_row = [&](const dlq::ParkedEvent& row) -> Result<Event> {
    Event ev;
    HERALD_TRY(decode_record(ev, row.key, row.value ? std::optional<std::string_view>(*row.value) : std::nullopt,
                             row.headers));
    ev.position = EventPosition{topic, partition, row.offset};
    return ev;
  };
  // Set when a row was gone at its delete: another instance of the group (one that held the
  // partition before a rebalance and has not noticed yet) applied it. The pass rolls back and
  // reloads the chain, so no event is applied by both.
  bool raced = false;
  // Applies rows [0, n) of `chain` in `tx`; returns how many succeeded.
  auto apply_rows = [&](Tx& tx, const std::vector<dlq::ParkedEvent>& chain, size_t n, Effects& fx,
                        std::string* err) -> Result<size_t> {
    for (size_t i = 0; i < n; ++i) {
      auto ev = decode_row(chain[i]);
      if (!ev) {
        *err = ev.error().to_string();
        return i;
      }
      if (apply_event(tx, *ev, Uuid7::parse(ev->id), nullptr, err, fx) == Outcome::kFailed) return i;
      HERALD_ASSIGN_OR_RETURN(int64_t deleted, dlq::delete_parked(tx, cfg_.group_id, topic, partition, chain[i].offset));
      if (deleted != 1) {
        raced = true;
        return Error{Errc::kNotFound, fmt::format("replica {}: parked {}/{}@{} was applied by another instance",
                                                  cfg_.group_id, topic, partition, chain[i].offset)};
      }
      fx.delta.unparked++;
    }
    return n;
  };
  const size_t chunk = static_cast<size_t>(std::max(cfg_.max_batch_events, 1));
  size_t applied_total = 0;  // rows applied by the transactions committed so far
  auto log_drained = [&] {
    if (applied_total == 0) return;
    HLOG_INFO("replica {}: key '{}' of {}/{}: {} parked events applied", cfg_.group_id, key, topic, partition,
              applied_total);
  };
  int failures = 0;  // failed attempts of the current first row
  int64_t failing = -1;  // its offset
  std::string err;
  // A transient database error (the handler's or ours) is no attempt: the pass runs again after
  // wait_transient(), without the retry backoff.
  int db_failures = 0;
  bool db_retry = false;
  auto db_wait = [&](const Error& e, bool transient = false) -> Result<void> {
    db_retry = true;
    return wait_transient(e, ++db_failures, transient);
  };
  // Commits t: commit()'s answer, or nullopt when the pass must run again (a transient error, waited for).
  auto try_commit = [&](std::unique_ptr<Tx> t, Effects& e) -> Result<std::optional<bool>> {
    auto committed = commit(std::move(t), e);
    if (committed) {
      db_failures = 0;
      return std::optional<bool>(*committed);
    }
    HERALD_TRY(db_wait(committed.error()));
    return std::optional<bool>();
  };
  // Rolls t back after apply_rows stopped short or failed; true when the cause was transient
  // (waited for already).
  auto rolled_back_transient = [&](Tx& t, const Result<size_t>& applied) -> Result<bool> {
    const bool transient = t.failed_transiently();
    t.rollback();
    if (!applied) {
      if (std::exchange(raced, false)) {
        HLOG_INFO("{}; reloading the chain", applied.error().message);
        return true;
      }
      HERALD_TRY(db_wait(applied.error(), transient));
      return true;
    }
    if (!transient) return false;
    HERALD_TRY(db_wait(Error{Errc::kIoError, err}, true));
    return true;
  };
  for (;;) {
    if (!std::exchange(db_retry, false) && failures > 0 && failures <= cfg_.max_retries) {
      HLOG_WARN("replica {}: parked {}/{}@{} failed (attempt {}): {}; retrying", cfg_.group_id, topic, partition,
                failing, failures, err);
      {
        std::lock_guard lk(mu_);
        stats_.retries++;
      }
      HERALD_TRY(backoff(failures));  // before the transaction: the store's other writers go on meanwhile
    }
    auto begun = store_.begin();
    if (!begun) {
      HERALD_TRY(db_wait(begun.error()));
      continue;
    }
    auto tx = std::move(*begun);
    auto loaded = dlq::load_chain(*tx, cfg_.group_id, topic, partition, key, static_cast<int64_t>(chunk));
    if (!loaded) {
      tx->rollback();
      HERALD_TRY(db_wait(loaded.error()));
      continue;
    }
    const auto& chain = *loaded;
    Effects fx;
    if (chain.empty()) {
      fx.drained.emplace_back(p, key);
      HERALD_ASSIGN_OR_RETURN(auto committed, try_commit(std::move(tx), fx));
      if (!committed) continue;
      if (*committed) log_drained();
      return ok();
    }
    if (chain.front().state == dlq::ParkedState::kDead) {
      tx->rollback();
      std::lock_guard lk(mu_);
      p->parked[key] = chain.front().offset;
      return ok();
    }
    if (failures == 0) {
      auto applied = apply_rows(*tx, chain, chain.size(), fx, &err);
      if (applied && *applied == chain.size()) {
        const bool last = chain.size() < chunk;  // else the next pass loads the rest (or finds none)
        if (last) fx.drained.emplace_back(p, key);
        HERALD_ASSIGN_OR_RETURN(auto committed, try_commit(std::move(tx), fx));
        if (!committed) continue;
        if (!*committed) return ok();
        applied_total += chain.size();
        if (!last) continue;
        log_drained();
        return ok();
      }
      HERALD_ASSIGN_OR_RETURN(bool transient, rolled_back_transient(*tx, applied));
      if (transient) continue;
      const size_t done = *applied;
      if (done > 0) {
        auto begun2 = store_.begin();
        if (!begun2) {
          HERALD_TRY(db_wait(begun2.error()));
          continue;
        }
        auto tx2 = std::move(*begun2);
        Effects fx2;
        auto again = apply_rows(*tx2, chain, done, fx2, &err);
        if (!again || *again != done) {
          HERALD_TRY(rolled_back_transient(*tx2, again));
          continue;  // a transient error, or a flaky handler: start over
        }
        HERALD_ASSIGN_OR_RETURN(auto committed, try_commit(std::move(tx2), fx2));
        if (!committed) continue;
        if (!*committed) return ok();
        applied_total += done;
      }
      failures = 1;
      failing = chain[done].offset;
      continue;
    }
    const auto& head = chain.front();
    if (head.offset != failing) {  // the chain changed meanwhile (dlq skip): start over
      tx->rollback();
      failures = 0;
      continue;
    }
    if (failures <= cfg_.max_retries) {
      auto applied = apply_rows(*tx, chain, 1, fx, &err);
      if (applied && *applied == 1) {
        HERALD_ASSIGN_OR_RETURN(auto committed, try_commit(std::move(tx), fx));
        if (!committed) continue;
        if (!*committed) return ok();
        applied_total += 1;
        failures = 0;
        continue;
      }
      HERALD_ASSIGN_OR_RETURN(bool transient, rolled_back_transient(*tx, applied));
      if (!transient) ++failures;
      continue;
    }
    tx->rollback();
    const int attempts = head.attempts + failures;
    if (cfg_.on_poison == PoisonPolicy::kStop) {
      return Error{Errc::kInvalidArgument, fmt::format("replica {}: parked {}/{}@{} failed after {} attempts: {}",
                                                       cfg_.group_id, topic, partition, head.offset, failures, err)};
    }
    HERALD_TRY(check_store());
    HERALD_TRY(dead_letter(topic, partition, head.offset, std::string_view(head.key),
                           head.value ? std::optional<std::string_view>(*head.value) : std::nullopt, head.headers,
                           head.timestamp_ms, err, attempts));
    HERALD_TRY(transact([&](Tx& t, Effects& fx3) -> Result<void> {
      fx3.delta.dead_lettered = 1;
      return dlq::set_parked_state(t, cfg_.group_id, topic, partition, head.offset, dlq::ParkedState::kDead, err,
                                   attempts);
    }));
    std::lock_guard lk(mu_);
    p->parked[key] = head.offset;
    return ok();
  }
}

// ---------------------------------------------------------------- housekeeping

Result<void> Replica::Impl::periodic(Clock::time_point now) {
  if (cfg_.commit_to_broker && now - last_broker_commit_ >= cfg_.broker_commit_interval) {
    commit_to_broker(false);
  }
  if (cfg_.dedup_window.count() > 0 && now - last_prune_ >= cfg_.prune_interval) {
    last_prune_ = now;
    int64_t pruned = 0;
    auto r = store_.run([&](Tx& tx) -> Result<void> {
      HERALD_ASSIGN_OR_RETURN(pruned, processed_.prune(tx, wall_ms() - cfg_.dedup_window.count()));
      return ok();
    });
    if (!r && !is_transient(r.error())) return r;
    if (!r) HLOG_WARN("replica {}: pruning processed ids: {}; next time", cfg_.group_id, r.error().message);
    if (pruned > 0) HLOG_DEBUG("replica {}: pruned {} rows of processed ids", cfg_.group_id, pruned);
  }
  if (cfg_.ordered && (scan_now_ || now - last_scan_ >= cfg_.parked_scan_interval)) {
    scan_now_ = false;
    last_scan_ = now;
    if (auto r = scan_parked(); !r) {
      if (!is_transient(r.error())) return r;
      HLOG_WARN("replica {}: scanning parked events: {}; next time", cfg_.group_id, r.error().message);
    } else if (parked_pending_.exchange(false)) {
      update_ready();
    }
  }
  return ok();
}

Result<void> Replica::Impl::scan_parked() {
  std::vector<dlq::ChainId> runnable;
  HERALD_TRY(store_.run(
      [&](Tx& tx) -> Result<void> {
        HERALD_ASSIGN_OR_RETURN(runnable, dlq::runnable_chains(tx, cfg_.group_id));
        return ok();
      },
      5, TxOptions{.read_only = true}));
  for (const auto& c : runnable) {
    if (find(c.topic, c.partition) == nullptr) continue;  // another instance's partition
    HERALD_TRY(flush());  // the batch's events of other keys first; keeps offsets simple
    HERALD_TRY(drain_chain(c.topic, c.partition, c.key));
  }
  return ok();
}

void Replica::Impl::commit_to_broker(bool force) {
  if (!cfg_.commit_to_broker || rk_ == nullptr) return;
  last_broker_commit_ = Clock::now();
  auto list = kafka::make_list();
  {
    std::lock_guard lk(mu_);
    for (auto& [k, p] : parts_) {
      if (!p.has_row || p.fenced || p.applied_next == p.broker_committed) continue;
      rd_kafka_topic_partition_list_add(list.get(), p.topic.c_str(), p.partition)->offset = p.applied_next;
      p.broker_committed = p.applied_next;
    }
  }
  if (list->cnt == 0) return;
  rd_kafka_resp_err_t err = rd_kafka_commit(rk_.get(), list.get(), 1);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && force) {
    HLOG_DEBUG("replica {}: broker commit: {}", cfg_.group_id, kafka::describe(err));
  }
}

// ---------------------------------------------------------------- observers

std::vector<PartitionStatus> Replica::Impl::status() const {
  std::vector<PartitionStatus> out;
  std::lock_guard lk(mu_);
  for (const auto& [k, p] : parts_) {
    PartitionStatus s;
    s.topic = p.topic;
    s.partition = p.partition;
    s.position = p.applied_next;
    s.target = p.target == INT64_MAX ? -1 : p.target;
    int64_t lo = -1, hi = -1;
    if (rk_ && rd_kafka_get_watermark_offsets(rk_.get(), p.topic.c_str(), p.partition, &lo, &hi) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR &&
        hi >= 0) {
      s.high_watermark = hi;
    } else {
      s.high_watermark = std::max<int64_t>(s.target, 0);
    }
    s.high_watermark = std::max(s.high_watermark, s.target);
    s.lag = std::max<int64_t>(0, s.high_watermark - s.position);
    s.caught_up = p.caught_up;
    out.push_back(std::move(s));
  }
  return out;
}

Result<bool> Replica::Impl::wait_until(std::string_view topic, int32_t partition, int64_t offset,
                                       milliseconds timeout) {
  // Clock::now() + milliseconds::max() overflows: a timeout beyond a century waits for ever.
  const auto deadline =
      timeout >= std::chrono::hours(24 * 365 * 100) ? Clock::time_point::max() : Clock::now() + timeout;
  std::unique_lock lk(mu_);
  for (;;) {
    auto it = parts_.find(PartKey(std::string(topic), partition));
    if (it != parts_.end() && it->second.has_row && it->second.applied_next > offset) return true;
    if (it == parts_.end() || it->second.fenced) {
      // Not ours (not yet, or no longer: a fenced partition stays listed until
      // the rebalance, but another instance sharing the database applies it
      // now): its offset is in the database.
      lk.unlock();
      std::map<int32_t, int64_t> stored;
      HERALD_TRY(store_.run(
          [&](Tx& tx) -> Result<void> {
            HERALD_ASSIGN_OR_RETURN(stored, load_offsets(tx, cfg_.group_id, topic));
            return ok();
          },
          5, TxOptions{.read_only = true}));
      lk.lock();
      if (auto s = stored.find(partition); s != stored.end() && s->second > offset) return true;
    }
    auto now = Clock::now();
    if (now >= deadline) return false;
    cv_.wait_for(lk, std::min<Clock::duration>(deadline - now, milliseconds(100)));
  }
}

// ---------------------------------------------------------------- Replica

Replica::Replica(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Replica::~Replica() = default;

Result<std::unique_ptr<Replica>> Replica::create(ReplicaConfig config, Store& store, ReplicaHandlers handlers) {
  auto impl = std::make_unique<Impl>(std::move(config), store, std::move(handlers));
  HERALD_TRY(impl->init());
  return std::unique_ptr<Replica>(new Replica(std::move(impl)));
}

Result<void> Replica::run() { return impl_->run(); }
Result<void> Replica::start() { return impl_->start(); }
void Replica::stop() { impl_->stop(); }
Result<void> Replica::join() { return impl_->join(); }
void Replica::on_ready(std::function<void()> fn) { impl_->on_ready_ = std::move(fn); }
bool Replica::ready() const { return impl_->ready(); }
bool Replica::running() const { return impl_->running(); }
std::vector<PartitionStatus> Replica::status() const { return impl_->status(); }
ReplicaStats Replica::stats() const { return impl_->stats(); }
Result<bool> Replica::wait_until(std::string_view topic, int32_t partition, int64_t offset,
                                 std::chrono::milliseconds timeout) {
  return impl_->wait_until(topic, partition, offset, timeout);
}
const ReplicaConfig& Replica::config() const { return impl_->cfg_; }

}  // namespace herald::sdk
