// ProcessedIds: the ce_ids a consumer group has applied, for deduplication.
//
// UUIDv7 ids (what the SDK's producers create: 48 bits of milliseconds first)
// are grouped into buckets by their first 36 bits (ms >> 12: ~4 s) and
// recorded as ONE row per bucket per transaction in
//   herald_processed_ids(group_id, bucket, ids, processed_at)
// where `ids` concatenates the 36-character ids and `bucket` is the id's
// first 10 characters (9 hex digits and a dash). Checks are answered from
// memory: the first check of an id of a bucket loads that bucket's rows, and
// ids join their bucket once their transaction commits. The cache holds up
// to `cache_limit` ids; beyond that the least recently used buckets are
// dropped (and loaded again when needed), except those used by the last
// `keep_transactions` transactions: a catch-up that interleaves partitions
// keeps its few busy buckets (each up to ~4 s of the topic's ids) even when
// they hold more ids than the limit, instead of reloading them over and
// over. Every other id takes one row in herald_processed (mark_processed()).
//
// The cache is this process's view of the group: drop it (clear()) whenever
// another instance may have written for the group, i.e. on every rebalance and
// when a commit was fenced. A duplicate that reaches the partition of its
// original (same key: what an outbox re-publish does) is then always caught;
// two instances applying the SAME id from two different partitions at the
// same moment are not serialized by the database as one row per id would be.
//
//   Tx& tx = ...;  ProcessedIds::Pending pending;
//   HERALD_ASSIGN_OR_RETURN(bool fresh, ids.mark(tx, ev.id, now, pending));
//   if (fresh) { ...apply... }
//   HERALD_TRY(ids.write(tx, pending, now)); HERALD_TRY(tx.commit()); ids.committed(pending);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "sdk/store/store.h"

namespace herald::sdk {

// A UUIDv7 in canonical text form (lowercase hex, dashes at 8, 13, 18, 23,
// version digit 7) as two 64-bit halves; nullopt for any other string.
struct Uuid7 {
  uint64_t hi = 0, lo = 0;
  static std::optional<Uuid7> parse(std::string_view text);
  std::string text() const;
  void append_text(std::string& out) const;  // text() without a temporary
  uint64_t bucket() const { return hi >> 28; }  // the first 9 hex digits: ms >> 12
  bool operator==(const Uuid7&) const = default;
};

// Open-addressing set of UUIDv7 (never all-zero, so zero marks a free slot).
class Uuid7Set {
 public:
  bool contains(const Uuid7& id) const;
  bool insert(const Uuid7& id);  // false when already present
  size_t size() const { return size_; }

 private:
  size_t slot_of(const Uuid7& id) const;
  std::vector<Uuid7> slots_;  // size 0 or a power of two
  size_t size_ = 0;
};

class ProcessedIds {
 public:
  // This transaction's ids, not yet committed.
  struct Pending {
    Uuid7Set seen;
    std::vector<Uuid7> ids;
  };

  ProcessedIds(std::string group, size_t cache_limit, uint64_t keep_transactions = 64)
      : group_(std::move(group)), limit_(cache_limit), keep_(keep_transactions) {}

  // Within `tx`: true when `id` is new (it is then part of `pending`, or
  // recorded in herald_processed for a non-UUIDv7 id); false when it was
  // applied before, by a committed transaction or earlier in `pending`.
  Result<bool> mark(Tx& tx, std::string_view id, int64_t now_ms, Pending& pending);
  // The same for an id already parsed.
  Result<bool> mark(Tx& tx, const Uuid7& id, Pending& pending);
  // Writes pending's UUIDv7 ids into tx (one row per bucket); call before commit.
  Result<void> write(Tx& tx, const Pending& pending, int64_t now_ms);
  // The transaction of `pending` committed: its ids join the cache.
  void committed(const Pending& pending);
  // Forgets the cache (another instance may have written for the group).
  void clear();
  // Deletes both tables' entries older than older_than_ms; returns how many
  // rows went. The cache keeps what it holds (ids live at least the window).
  Result<int64_t> prune(Tx& tx, int64_t older_than_ms);

  size_t cached() const { return total_; }

 private:
  struct Bucket {
    Uuid7Set ids;
    uint64_t used = 0;
  };
  Result<Bucket*> bucket(Tx& tx, uint64_t b);
  void evict();

  std::string group_;
  size_t limit_;
  uint64_t keep_;
  std::unordered_map<uint64_t, Bucket> buckets_;
  size_t total_ = 0;  // ids in buckets_ (an empty bucket counts as one)
  uint64_t tick_ = 0;
};

}  // namespace herald::sdk
