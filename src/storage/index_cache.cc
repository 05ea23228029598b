#include "storage/index_cache.h"

#include <vector>

#include "storage/segment.h"

namespace herald::storage {

IndexCache& IndexCache::global() {
  static IndexCache cache;
  return cache;
}

void IndexCache::set_budget(size_t bytes) {
  std::lock_guard lock(mu_);
  budget_ = bytes;
}

void IndexCache::touch(const Segment& segment, size_t bytes) {
  std::vector<std::shared_ptr<const Segment>> release_later;  // destroyed after the lock is released
  std::lock_guard lock(mu_);
  if (auto it = where_.find(&segment); it != where_.end()) {
    bytes_ -= it->second->bytes;
    it->second->bytes = bytes;
    lru_.splice(lru_.begin(), lru_, it->second);
  } else {
    lru_.push_front(Entry{&segment, segment.weak_from_this(), bytes});
    where_.emplace(&segment, lru_.begin());
  }
  bytes_ += bytes;
  while (bytes_ > budget_ && lru_.size() > 1) {
    Entry& victim = lru_.back();
    auto seg = victim.segment.lock();
    bytes_ -= victim.bytes;
    where_.erase(victim.key);
    lru_.pop_back();
    if (seg && seg->drop_index()) ++dropped_;
    if (seg) release_later.push_back(std::move(seg));
  }
}

void IndexCache::forget(const Segment* segment) {
  std::lock_guard lock(mu_);
  auto it = where_.find(segment);
  if (it == where_.end()) return;
  bytes_ -= it->second->bytes;
  lru_.erase(it->second);
  where_.erase(it);
}

IndexCache::Stats IndexCache::stats() const {
  std::lock_guard lock(mu_);
  return Stats{bytes_, lru_.size(), dropped_};
}

}  // namespace herald::storage
