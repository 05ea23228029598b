// Replica: a projection of one or more topics into the service's own
// database, with exactly-once effect.
//
// For every event (or every batch of events) the replica opens one local
// transaction that runs the service's handler, records the event's ce_id
// (dropping duplicates a re-publish may cause; processed_ids.h: for UUIDv7
// ids one row per ~4 s bucket and transaction) and moves herald_offsets(group, topic,
// partition, next_offset) past it with a compare-and-set, so that an instance
// that lost its partition to another (a zombie) cannot move it back. Because the
// effect and the position commit together, a crash anywhere neither loses nor
// repeats an effect: on partition assignment the replica seeks to the offsets
// in ITS database, never to the broker's. Offsets are also committed to the
// broker asynchronously, only so that `herald group describe` shows real lag.
//
//   ReplicaConfig cfg;
//   cfg.brokers = "127.0.0.1:9092";
//   cfg.group_id = "billing";
//   cfg.topics = {"users"};
//   ReplicaHandlers handlers;
//   handlers.on_json<EmailChanged>("users.email_changed", [](const EmailChanged& e, const Event& ev, Tx& tx) {
//     auto r = tx.exec("INSERT INTO emails(user_id, email) VALUES(?, ?) ON CONFLICT(user_id) DO UPDATE "
//                      "SET email = excluded.email", {ev.aggregate_id, e.email});
//     if (!r) throw std::runtime_error(r.error().to_string());
//   });
//   handlers.otherwise([](const Event& ev, Tx& tx) {        // tombstones (null value) and the rest
//     if (ev.tombstone) { (void)tx.exec("DELETE FROM emails WHERE user_id = ?", {ev.aggregate_id}); }
//   });
//   HERALD_ASSIGN_OR_RETURN(auto replica, Replica::create(cfg, *store, std::move(handlers)));
//   HERALD_TRY(replica->start());                 // or run() on your own thread
//   ... replica->ready() ...                      // true once caught up (health endpoint)
//   replica->stop(); HERALD_TRY(replica->join());
//
// Handlers: dispatched by ce_type through HandlerRegistry<Tx&>. A tombstone
// (null value) is dispatched with Event::tombstone set (by its ce_type when the
// producer sent one, else to otherwise()). Records that carry no CloudEvents
// headers at all (plain Kafka producers) are dispatched to otherwise() with an
// empty id and type. A handler fails by throwing; the replica then retries it
// with backoff and finally dead-letters it (dead_letter.h) or stops
// (PoisonPolicy::kStop). Effects must go through `tx` only: a failed attempt
// is rolled back, so it leaves nothing behind.
//
// Readiness: after each assignment the replica reads the high watermarks of
// its partitions; it is ready() once it has applied everything below them (or
// reached the end of each partition), and in ordered mode once it has also
// applied the replayed chains a stop left half applied, and stays ready until
// the next assignment. on_ready runs each time it becomes ready, on the replica's
// thread, just after ready() turned true (and before the next event).
//
// Threads: run() owns the librdkafka consumer and runs every handler on the
// calling thread (start() makes that a background thread). With
// max_batch_events >= 16 a second thread decodes the next batch meanwhile
// (headers, envelope, ce_id, and on_json payloads: HandlerRegistry::prepare).
// ready(), status(), stats(), wait_until() and stop() are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sdk/envelope.h"
#include "sdk/store/store.h"

namespace herald::sdk {

using ReplicaHandlers = HandlerRegistry<Tx&>;

// What happens to an event whose handler still fails after the retries.
enum class PoisonPolicy : uint8_t {
  kDeadLetter,  // publish it to the dead-letter topic and go on
  kStop,        // stop the replica: run() returns the error (the event stays unapplied)
};

struct ReplicaConfig {
  std::string brokers = "127.0.0.1:9092";  // bootstrap.servers
  std::string group_id;                    // consumer group; also keys herald_offsets / herald_processed
  std::vector<std::string> topics;
  std::string client_id = "herald-replica";

  // Transactions: up to max_batch_events events per local transaction; a
  // partial batch commits after max_batch_delay (or when the consumer has
  // nothing more). 1 = one transaction per event.
  int max_batch_events = 500;
  std::chrono::milliseconds max_batch_delay{50};

  // Deduplication by ce_id: ids are kept this long, then pruned (checked every
  // prune_interval). 0 disables deduplication.
  std::chrono::milliseconds dedup_window{std::chrono::hours(24 * 7)};
  std::chrono::milliseconds prune_interval{std::chrono::minutes(1)};
  // UUIDv7 ids are checked in memory (ProcessedIds, processed_ids.h): at most
  // this many are cached (16-32 bytes each), plus whatever the buckets used by
  // the last 64 transactions hold; older ~4 s buckets are dropped and read
  // again from the database when an id of theirs comes up.
  size_t dedup_cache_ids = 200'000;

  // Asynchronous commits to the broker, for lag reporting only.
  bool commit_to_broker = true;
  std::chrono::milliseconds broker_commit_interval{1000};

  // Poison events: the handler runs 1 + max_retries times, sleeping
  // retry_backoff, 2*retry_backoff, ... (capped at max_retry_backoff) between.
  int max_retries = 3;
  std::chrono::milliseconds retry_backoff{100};
  std::chrono::milliseconds max_retry_backoff{5000};
  PoisonPolicy on_poison = PoisonPolicy::kDeadLetter;
  // Ordered dead letters: once an event of a key is dead-lettered, later
  // events of that key are parked (herald_parked) until it is replayed.
  bool ordered = false;
  std::string dlq_suffix = ".dlq";  // dead letters of topic T go to T + dlq_suffix
  // An event whose ce_type has no handler (and no otherwise()): skipped
  // (true; its offset still moves) or treated as a poison event (false).
  bool skip_unhandled = true;
  // How often ordered mode looks for chains marked for replay in the
  // database (dlq::replay_parked from another process).
  std::chrono::milliseconds parked_scan_interval{1000};

  std::chrono::milliseconds watermark_timeout{10000};

  // Extra librdkafka consumer properties, applied last (session.timeout.ms,
  // group.instance.id, security.protocol, ...). Before them the replica sets
  // queued.min.messages=1000000 (librdkafka's 100,000 makes a catch-up stall:
  // fetching pauses at that depth); after them it always sets
  // enable.auto.commit=false and enable.auto.offset.store=false.
  std::vector<std::pair<std::string, std::string>> kafka;
  // Extra properties for the dead-letter producer.
  std::vector<std::pair<std::string, std::string>> dlq_producer;
};

// One assigned partition, as seen by status().
struct PartitionStatus {
  std::string topic;
  int32_t partition = 0;
  int64_t position = 0;        // next offset to apply (= herald_offsets.next_offset)
  int64_t high_watermark = 0;  // latest known (from fetch responses)
  int64_t lag = 0;             // high_watermark - position, >= 0
  int64_t target = 0;          // high watermark read at assignment
  bool caught_up = false;      // position reached target (or end of partition)
};

struct ReplicaStats {
  int64_t applied = 0;          // handler ran and committed
  int64_t duplicates = 0;       // dropped because their ce_id was already applied
  int64_t unhandled = 0;        // skipped: no handler for the ce_type
  int64_t retries = 0;          // failed handler attempts that were retried
  int64_t dead_lettered = 0;    // published to a dead-letter topic
  int64_t parked = 0;           // parked behind a dead letter (ordered mode)
  int64_t unparked = 0;         // parked events applied after a replay
  int64_t transactions = 0;     // committed local transactions
  int64_t rebalances = 0;       // assignments received
  int64_t fenced = 0;           // batches dropped because another instance moved the offset
  int64_t transient_errors = 0; // transactions run again after a transient database error (is_transient)
  int64_t removed_unread = 0;   // events retention removed from the log before this replica read them
};

class Replica {
 public:
  // Validates `config`, creates the replica's tables if needed (herald_parked)
  // and the consumer. `store` must outlive the replica. kInvalidArgument for a
  // bad config (no group, no topics, a rejected librdkafka property).
  static Result<std::unique_ptr<Replica>> create(ReplicaConfig config, Store& store, ReplicaHandlers handlers);

  ~Replica();  // stop() + join()
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // Runs the consume loop on the calling thread until stop(), then commits the
  // current batch, leaves the group and returns. Returns an error (and stops)
  // when the store fails, or on a poison event with PoisonPolicy::kStop.
  Result<void> run();
  // run() on a background thread.
  Result<void> start();
  // Asks run() to finish; thread-safe, idempotent, returns at once.
  void stop();
  // Waits for the background thread; returns run()'s result.
  Result<void> join();
  // True while run() executes (on any thread); false once it returned.
  bool running() const;

  // Called on the replica's thread each time it becomes ready (ready() is
  // already true; no event is applied until it returns). Set before start().
  void on_ready(std::function<void()> fn);

  bool ready() const;
  std::vector<PartitionStatus> status() const;
  ReplicaStats stats() const;

  // Read-your-writes: waits until this replica's position in (topic,
  // partition) has passed `offset` (position > offset). Returns true when it
  // has, false on timeout. Passed is not always applied: an event that went
  // to the dead-letter topic, is parked behind a dead letter of its key
  // (ordered mode) or had no handler is passed too, and the local copy does
  // not reflect it (stats() counts those). For a partition this instance
  // does not hold, it reads herald_offsets (other instances sharing the
  // database may hold it).
  Result<bool> wait_until(std::string_view topic, int32_t partition, int64_t offset,
                          std::chrono::milliseconds timeout);

  const ReplicaConfig& config() const;

  class Impl;

 private:
  explicit Replica(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herald::sdk
