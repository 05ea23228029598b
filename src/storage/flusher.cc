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

Flusher::Flusher(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { run(); });
}

Flusher::~Flusher() {
  {
    std::lock_guard lock(mu_);
    HERALD_CHECK(targets_.empty(), "flusher destroyed with {} logs still registered", targets_.size());
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Flusher::add(FlushTarget* t, int64_t interval_ms) {
  std::lock_guard lock(mu_);
  Entry& e = targets_[t];
  if (e.interval_ms > 0) --interval_targets_;
  e.interval_ms = interval_ms;
  e.next_due_ms = mono_ms() + interval_ms;
  if (interval_ms > 0) {
    ++interval_targets_;
    next_interval_due_ms_ = std::min(next_interval_due_ms_, e.next_due_ms);
  }
  cv_.notify_all();
}

void Flusher::set_interval(FlushTarget* t, int64_t interval_ms) {
  std::lock_guard lock(mu_);
  auto it = targets_.find(t);
  if (it == targets_.end()) return;
  if (it->second.interval_ms > 0) --interval_targets_;
  it->second.interval_ms = interval_ms;
  it->second.next_due_ms = mono_ms() + interval_ms;
  if (interval_ms > 0) {
    ++interval_targets_;
    next_interval_due_ms_ = std::min(next_interval_due_ms_, it->second.next_due_ms);
  }
  cv_.notify_all();
}

void Flusher::remove(FlushTarget* t) {
  std::unique_lock lock(mu_);
  auto it = targets_.find(t);
  if (it != targets_.end()) {
    if (it->second.interval_ms > 0) --interval_targets_;
    targets_.erase(it);
  }
  idle_cv_.wait(lock, [&] { return std::find(busy_.begin(), busy_.end(), t) == busy_.end(); });
}

void Flusher::notify(FlushTarget* t) {
  std::lock_guard lock(mu_);
  auto it = targets_.find(t);
  if (it == targets_.end() || it->second.dirty) return;
  it->second.dirty = true;
  dirty_.push_back(t);
  // A target being synced is taken again by the thread syncing it, when it is done: waking
  // another one would only have it find the target busy and go back to sleep.
  if (std::find(busy_.begin(), busy_.end(), t) == busy_.end()) cv_.notify_one();
}

uint64_t Flusher::rounds() const {
  std::lock_guard lock(mu_);
  return rounds_;
}

int64_t Flusher::queue_due_intervals(int64_t now_ms) {
  if (interval_targets_ == 0) return INT64_MAX;
  if (now_ms < next_interval_due_ms_) return next_interval_due_ms_;  // nothing due: no scan per sync
  int64_t next_due = INT64_MAX;
  for (auto& [t, e] : targets_) {
    if (e.interval_ms <= 0) continue;
    if (e.next_due_ms <= now_ms) {
      if (!e.dirty) {
        e.dirty = true;
        dirty_.push_back(t);
      }
      e.next_due_ms = now_ms + e.interval_ms;
    }
    next_due = std::min(next_due, e.next_due_ms);
  }
  next_interval_due_ms_ = next_due;
  return next_due;
}

FlushTarget* Flusher::take_ready() {
  for (size_t i = 0; i < dirty_.size();) {
    FlushTarget* t = dirty_[i];
    auto e = targets_.find(t);
    if (e == targets_.end() || !e->second.dirty) {  // removed (and maybe re-added) meanwhile
      dirty_.erase(dirty_.begin() + static_cast<ptrdiff_t>(i));
      continue;
    }
    // A target being synced stays queued for the thread that finishes it (or the next one free).
    if (std::find(busy_.begin(), busy_.end(), t) != busy_.end()) {
      ++i;
      continue;
    }
    e->second.dirty = false;
    dirty_.erase(dirty_.begin() + static_cast<ptrdiff_t>(i));
    return t;
  }
  return nullptr;
}

void Flusher::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    const int64_t now = mono_ms();
    const int64_t next_due = queue_due_intervals(now);
    FlushTarget* t = take_ready();
    if (t == nullptr) {
      if (next_due == INT64_MAX) {
        cv_.wait(lock);
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(next_due - now, 1)));
      }
      continue;
    }
    busy_.push_back(t);
    ++rounds_;
    lock.unlock();
    t->flusher_sync();
    lock.lock();
    busy_.erase(std::find(busy_.begin(), busy_.end(), t));
    idle_cv_.notify_all();
  }
}
}  // namespace herald::storage
