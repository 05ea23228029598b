// OutboxRelay: publishes herald_outbox rows to Kafka (Herald, Apache Kafka,
// Redpanda: anything librdkafka talks to) and deletes each row only after its
// delivery report says the broker has it (acks=all, idempotent producer).
//
// Usage (a thread inside the service):
//   RelayOptions opts;
//   opts.brokers = "127.0.0.1:9092";
//   HERALD_ASSIGN_OR_RETURN(auto relay, OutboxRelay::create(*store, opts));
//   HERALD_TRY(relay->start());
//   ...
//   relay->stop();
// or as a sidecar process: `herald outbox-relay --db URL --brokers HOST:PORT`.
//
// Guarantees:
//   - At least once: a crash anywhere (service, relay, broker) loses nothing.
//     A crash between the delivery report and the DELETE republishes those
//     rows on restart; consumers drop the repeats by ce_id.
//   - Per-aggregate commit order (see outbox.h): rows are read in id order,
//     produced in that order with an idempotent producer (which keeps
//     per-partition order across retries), and the record key is the
//     aggregate id, so all events of an aggregate land in one partition.
//     When a row fails, the later rows of its aggregate do not overtake it:
//     after a synchronous refusal (e.g. larger than message.max.bytes) they
//     are not produced in that round; a broker refusal (e.g. the topic's
//     max.message.bytes) is a fatal producer error (enable.gapless.guarantee,
//     forced), which fails what follows it in the partition, and the relay
//     recreates the producer. The one case gapless does not cover is a
//     delivery that times out (delivery_timeout, message.timeout.ms): a later
//     row of the aggregate in another request may still be acknowledged.
//     Gapless needs sequence state, and a broker keeps none for a producer
//     whose first record in a partition it refused: it accepts the requests
//     in flight behind it. So until a row of an aggregate is acknowledged by
//     the current producer (relay start, every `--once` run, a producer
//     recreated after a fatal error), and again after a row of it failed,
//     a round sends only the aggregate's first row; its later rows go in the
//     next round.
//   - One active relay per database: the relay holds the lease
//     "herald_outbox_relay" (Store::try_lease) while publishing; a second relay
//     (another replica of the service, a sidecar) stands by and takes over when
//     the holder dies.
//   - Bounded table: published rows are deleted.
// A row whose delivery fails (broker down past delivery_timeout, message too
// large, ...) stays in the outbox; the failure is logged and counted in
// stats(). Its aggregate is held: the relay skips the aggregate's rows
// (in memory, per relay) and retries the first of them alone after
// error_backoff, doubling per consecutive failure up to 30 s; an
// acknowledged row of the aggregate ends the hold. A broker refusal of a
// whole batch (too large, invalid record) fails every row in the request:
// their aggregates are suspects, whose next row is sent first and alone
// (up to 32 per round), so an innocent one is acknowledged and flows again
// and only the guilty one stays held. Other aggregates flow
// meanwhile, however many aggregates are held: a round reads up to
// batch_size rows of aggregates not held and, separately, up to batch_size
// rows of held aggregates whose retry is due. A round in which nothing was
// acknowledged and something failed counts as an error: the loop waits
// error_backoff, whatever is committed meanwhile.
//
// Rows in flight: a round waits up to 1 s for the delivery reports of what it
// produced. Rows still unreported then stay in flight, and their aggregates
// are skipped until the reports come (each later round serves them), so a
// partition that takes delivery_timeout to fail (no leader on a Kafka
// cluster, a topic that does not exist) holds up only the aggregates with a
// row in it.
//
// Waking up: PostgreSQL: LISTEN herald_outbox (a trigger NOTIFYs on insert),
// with a rescan every idle_wait as a safety net. SQLite: the Outbox wakes
// relays on the same Store object at commit; another process (the sidecar)
// polls with a backoff from min_poll to max_poll.
//
// Threads: start() runs the loop on a thread owned by the relay; run() runs it
// on the caller's thread instead (sidecar). stop() may be called from any
// thread. The Store must outlive the relay.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sdk/store/store.h"

namespace herald::sdk {

struct RelayOptions {
  std::string brokers = "127.0.0.1:9092";  // bootstrap.servers
  // Extra librdkafka settings, applied last (e.g. {"compression.type", "lz4"},
  // security settings for a real cluster). enable.idempotence,
  // enable.gapless.guarantee and acks are forced to true / true / all.
  std::vector<std::pair<std::string, std::string>> kafka_config;
  int batch_size = 1000;                           // rows per read/produce/delete round
  std::chrono::milliseconds idle_wait{1000};       // PostgreSQL: rescan at least this often
  std::chrono::milliseconds min_poll{1};           // SQLite: first wait when idle
  std::chrono::milliseconds max_poll{100};         // SQLite: backoff cap when idle
  std::chrono::milliseconds delivery_timeout{30000};  // message.timeout.ms
  std::chrono::milliseconds error_backoff{500};    // after a failed round; first hold
  std::chrono::milliseconds standby_retry{1000};   // retry the lease this often
  std::string lease_name = "herald_outbox_relay";
};

struct RelayStats {
  uint64_t published = 0;          // rows acknowledged by the broker and deleted
  uint64_t batches = 0;            // rounds that published at least one row
  uint64_t scans = 0;              // rounds that read the outbox table
  uint64_t failed_deliveries = 0;  // rows produced without success (refused, error report)
  uint64_t errors = 0;             // failed rounds (store errors; rows failed, none acknowledged)
  bool has_lease = false;
  std::string last_error;
};

class OutboxRelay {
 public:
  // Creates the relay and its producer (no thread yet). kInvalidArgument when
  // librdkafka rejects a setting.
  static Result<std::unique_ptr<OutboxRelay>> create(Store& store, RelayOptions options);
  ~OutboxRelay();  // stop()
  OutboxRelay(const OutboxRelay&) = delete;
  OutboxRelay& operator=(const OutboxRelay&) = delete;

  // Starts the background thread. kInvalidArgument when already running.
  Result<void> start();
  // Runs the loop on this thread until stop() (from another thread or a
  // signal-handling thread). Errors never end the loop: they are logged,
  // counted in stats() and retried after error_backoff. kInvalidArgument when
  // the relay is already running.
  Result<void> run();
  // Stops the loop (after the current round; rows not yet acknowledged stay
  // in the outbox) and joins the thread. Idempotent.
  void stop();
  // Wakes an idle loop now (the Outbox does this for SQLite on commit).
  void wake();

  // One round on the caller's thread: takes the lease if needed, reads up to
  // batch_size rows (not of held or in-flight aggregates, plus the due
  // retries), publishes them (only the first row of an aggregate without an
  // acknowledged row yet: see above), waits up to 1 s for their reports,
  // deletes the rows acknowledged by then (of this round or earlier ones).
  // Returns the number deleted; 0 when the outbox is empty (or only held or
  // in-flight aggregates are left) or another relay holds the lease. Rows
  // that failed while others were acknowledged are logged and counted
  // (failed_deliveries, last_error); an Error when rows failed and none was
  // acknowledged. Not to be mixed with a running loop.
  Result<size_t> publish_once();
  // publish_once() until the outbox is empty; kOutOfRange on timeout.
  Result<void> drain(std::chrono::milliseconds timeout);

  RelayStats stats() const;

 private:
  struct Impl;
  explicit OutboxRelay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace herald::sdk
