// flusher.h: the group-commit threads. One Flusher per process.
//
// Appends to a kAlways log only write(2); the log then notify()s the flusher,
// one of whose threads runs one fdatasync per dirty segment covering every
// append made before it started, from every producer, advances the log's
// durable offset and fires its wait_durable() callbacks. While one sync runs,
// new appends pile up and the next round covers them all (group commit).
// kInterval logs are synced every flush_interval_ms instead.
//
// Different logs are synced in parallel (two at a time by default; `herald
// serve --flush-threads`), a log never by two threads at once.
// Concurrent fdatasyncs of several files finish sooner than the same syncs one
// after another (the file system shares journal commits between them), so an
// ack waits for about half of the other partitions' syncs instead of all. On
// the 2-vCPU ext4 machine this was measured on (bench/RESULTS.md), 8
// partitions written at once: end-to-end p50 0.7-1.0 ms with two threads
// against 1.9-2.2 ms with one; 4 or 8 threads gave no better median and a
// worse tail.
//
//   storage::Flusher flusher;                                  // starts the threads
//   auto log = storage::PartitionLog::open(dir, config, &flusher);
//   ...
//   (*log)->close();                                           // every log before the flusher dies
//
// The flusher never takes a log's append lock while syncing, so appenders never
// wait for a disk flush. Logs register themselves in open() and deregister in
// close(); remove() blocks until a sync of that log in progress has finished.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/histogram.h"

namespace herald::storage {

// What the flusher drives: implemented by PartitionLog.
class FlushTarget {
 public:
  virtual ~FlushTarget() = default;
  // Runs on the flusher thread: sync whatever was appended and not yet synced.
  virtual void flusher_sync() = 0;
};

class Flusher {
 public:
  static constexpr int kDefaultThreads = 2;
  explicit Flusher(int threads = kDefaultThreads);
  // Stops and joins the threads. Every registered target must have been removed.
  ~Flusher();
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  // Registers `t`. interval_ms > 0: also sync it every interval_ms.
  void add(FlushTarget* t, int64_t interval_ms);
  void set_interval(FlushTarget* t, int64_t interval_ms);
  // Deregisters `t`; returns once the flusher is not (and will never again be) inside t->flusher_sync().
  void remove(FlushTarget* t);
  // Marks `t` dirty and wakes a thread. Cheap; call after each append.
  void notify(FlushTarget* t);

  // Number of flusher_sync() calls made (for tests and benchmarks).
  uint64_t rounds() const;
  // How long the fdatasyncs of the logs using this flusher take (every one, whichever thread ran it).
  LatencyHistogram& sync_latency() { return sync_latency_; }

 private:
  struct Entry {
    bool dirty = false;  // queued in dirty_
    int64_t interval_ms = 0;
    int64_t next_due_ms = 0;  // monotonic
  };
  void run();
  // Queues the interval targets that are due; returns the next due time (INT64_MAX: none).
  int64_t queue_due_intervals(int64_t now_ms);
  // The first queued target no thread is syncing, taken off the queue; null if none.
  FlushTarget* take_ready();

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work or stop
  std::condition_variable idle_cv_;  // a sync finished
  std::unordered_map<FlushTarget*, Entry> targets_;  // GUARDED_BY(mu_)
  // Targets to sync, in the order they became dirty (may hold removed ones); GUARDED_BY(mu_).
  std::vector<FlushTarget*> dirty_;
  size_t interval_targets_ = 0;                      // targets with interval_ms > 0; GUARDED_BY(mu_)
  int64_t next_interval_due_ms_ = 0;  // no interval target is due before; GUARDED_BY(mu_)
  std::vector<FlushTarget*> busy_;                   // inside flusher_sync(); GUARDED_BY(mu_)
  bool stop_ = false;                                // GUARDED_BY(mu_)
  uint64_t rounds_ = 0;                              // GUARDED_BY(mu_)
  LatencyHistogram sync_latency_;
  std::vector<std::thread> threads_;
};

}  // namespace herald::storage
