#include "storage/flusher.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "common/check.h"
#include "common/clock.h"

namespace herald::storage {
namespace {
int64_t mono_ms() { return mono_ns() / 1000000; }
}  // namespace

Flusher::Flusher() : thread_([this] { run(); }) {}

Flusher::~Flusher() {
  {
    std::lock_guard lock(mu_);
    HERALD_CHECK(targets_.empty(), "flusher destroyed with {} logs still registered", targets_.size());
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Flusher::add(FlushTarget* t, int64_t interval_ms) {
  std::lock_guard lock(mu_);
  Entry& e = targets_[t];
  if (e.interval_ms > 0) --interval_targets_;
  e.interval_ms = interval_ms;
  e.next_due_ms = mono_ms() + interval_ms;
  if (interval_ms > 0) ++interval_targets_;
  cv_.notify_all();
}

void Flusher::set_interval(FlushTarget* t, int64_t interval_ms) {
  std::lock_guard lock(mu_);
  auto it = targets_.find(t);
  if (it == targets_.end()) return;
  if (it->second.interval_ms > 0) --interval_targets_;
  it->second.interval_ms = interval_ms;
  it->second.next_due_ms = mono_ms() + interval_ms;
  if (interval_ms > 0) ++interval_targets_;
  cv_.notify_all();
}

void Flusher::remove(FlushTarget* t) {
  std::unique_lock lock(mu_);
  auto it = targets_.find(t);
  if (it != targets_.end()) {
    if (it->second.interval_ms > 0) --interval_targets_;
    targets_.erase(it);
  }
  idle_cv_.wait(lock, [&] { return busy_ != t; });
}

void Flusher::notify(FlushTarget* t) {
  std::lock_guard lock(mu_);
  auto it = targets_.find(t);
  if (it == targets_.end() || it->second.dirty) return;
  it->second.dirty = true;
  dirty_.push_back(t);
  cv_.notify_one();
}

uint64_t Flusher::rounds() const {
  std::lock_guard lock(mu_);
  return rounds_;
}

void Flusher::run() {
  std::unique_lock lock(mu_);
  std::vector<FlushTarget*> ready;
  while (!stop_) {
    const int64_t now = mono_ms();
    int64_t next_due = INT64_MAX;
    ready.clear();
    // Notified targets (kAlways logs): O(dirty), not O(registered).
    for (FlushTarget* t : dirty_) {
      auto it = targets_.find(t);
      if (it == targets_.end() || !it->second.dirty) continue;  // removed, or already taken
      it->second.dirty = false;
      ready.push_back(t);
    }
    dirty_.clear();
    // Interval targets (kInterval logs): scanned only when there are some.
    if (interval_targets_ > 0) {
      for (auto& [t, e] : targets_) {
        if (e.interval_ms <= 0) continue;
        if (e.next_due_ms <= now) {
          if (std::find(ready.begin(), ready.end(), t) == ready.end()) ready.push_back(t);
          e.dirty = false;
          e.next_due_ms = now + e.interval_ms;
        }
        next_due = std::min(next_due, e.next_due_ms);
      }
    }
    if (ready.empty()) {
      if (next_due == INT64_MAX) {
        cv_.wait(lock);
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(next_due - now, 1)));
      }
      continue;
    }
    for (FlushTarget* t : ready) {
      if (stop_) break;
      if (targets_.find(t) == targets_.end()) continue;  // removed meanwhile
      busy_ = t;
      ++rounds_;
      lock.unlock();
      t->flusher_sync();
      lock.lock();
      busy_ = nullptr;
      idle_cv_.notify_all();
    }
  }
}
}  // namespace herald::storage
