// flusher.h: the group-commit thread. One per process.
//
// Appends to a kAlways log only write(2); the log then notify()s the flusher,
// whose thread runs one fdatasync per dirty segment covering every append
// made before it started, from every producer, advances the log's durable
// offset and fires its wait_durable() callbacks. While one sync runs, new
// appends pile up and the next round covers them all (group commit). kInterval
// logs are synced every flush_interval_ms instead.
//
//   storage::Flusher flusher;                                  // starts the thread
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
  Flusher();
  // Stops and joins the thread. Every registered target must have been removed.
  ~Flusher();
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  // Registers `t`. interval_ms > 0: also sync it every interval_ms.
  void add(FlushTarget* t, int64_t interval_ms);
  void set_interval(FlushTarget* t, int64_t interval_ms);
  // Deregisters `t`; returns once the flusher is not (and will never again be) inside t->flusher_sync().
  void remove(FlushTarget* t);
  // Marks `t` dirty and wakes the thread. Cheap; call after each append.
  void notify(FlushTarget* t);

  // Number of flusher_sync() calls made (for tests and benchmarks).
  uint64_t rounds() const;

 private:
  struct Entry {
    bool dirty = false;
    int64_t interval_ms = 0;
    int64_t next_due_ms = 0;  // monotonic
  };
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work or stop
  std::condition_variable idle_cv_;  // busy_ changed
  std::unordered_map<FlushTarget*, Entry> targets_;  // GUARDED_BY(mu_)
  std::vector<FlushTarget*> dirty_;                  // notified since the last round; GUARDED_BY(mu_)
  size_t interval_targets_ = 0;                      // targets with interval_ms > 0; GUARDED_BY(mu_)
  FlushTarget* busy_ = nullptr;                      // GUARDED_BY(mu_)
  bool stop_ = false;                                // GUARDED_BY(mu_)
  uint64_t rounds_ = 0;                              // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace herald::storage
