// index_cache.h: bounds the memory held by the in-memory indexes of closed
// segments, process-wide.
//
// A closed segment's index is loaded from its files on first use (a fetch's
// offset lookup, a timestamp lookup) and is otherwise not needed: its
// summary stays in memory without it. Without a bound, a consumer replaying
// a long log would leave every segment's index loaded (about 5 MiB per GiB
// of log at the default index.interval.bytes). The cache keeps the loaded
// indexes of sealed segments in least-recently-used order and drops the
// oldest ones while their total exceeds the budget. An index that differs
// from its files (not yet persisted) is never dropped; the active segment's
// index is never tracked.
//
//   IndexCache::global().set_budget(64 << 20);
//   // Segment::lookup() and friends call touch() after each use.
//
// Lock order: the cache mutex, then a segment's index mutex (never the reverse:
// segments call touch() after releasing their own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace herald::storage {

class Segment;

inline constexpr size_t kDefaultIndexCacheBytes = size_t{128} << 20;

class IndexCache {
 public:
  static IndexCache& global();

  void set_budget(size_t bytes);

  // `segment`'s index, of `bytes`, was just used: make it the most recent
  // and drop the least recent others while over budget.
  void touch(const Segment& segment, size_t bytes);
  // The segment is going away.
  void forget(const Segment* segment);

  struct Stats {
    size_t bytes = 0;        // accounted to loaded indexes
    size_t indexes = 0;      // sealed segments with a loaded index
    uint64_t dropped = 0;    // indexes dropped for the budget, ever
  };
  Stats stats() const;

 private:
  struct Entry {
    const Segment* key;
    std::weak_ptr<const Segment> segment;
    size_t bytes;
  };
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently used
  std::unordered_map<const Segment*, std::list<Entry>::iterator> where_;
  size_t budget_ = kDefaultIndexCacheBytes;
  size_t bytes_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace herald::storage
