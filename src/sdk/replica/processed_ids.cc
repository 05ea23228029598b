#include "sdk/replica/processed_ids.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace herald::sdk {

namespace {

constexpr size_t kIdLen = 36;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// "tttttttt-t": the first 10 characters of every id of bucket b (9 hex digits).
std::string bucket_text(uint64_t b) { return fmt::format("{:08x}-{:x}", b >> 4, b & 0xf); }

}  // namespace

std::optional<Uuid7> Uuid7::parse(std::string_view text) {
  if (text.size() != kIdLen || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-' || text[14] != '7') {
    return std::nullopt;
  }
  Uuid7 id;
  int digits = 0;
  for (char c : text) {
    if (c == '-') continue;
    int v = hex_value(c);
    if (v < 0) return std::nullopt;
    uint64_t& half = digits < 16 ? id.hi : id.lo;
    half = (half << 4) | static_cast<uint64_t>(v);
    ++digits;
  }
  return id;
}

std::string Uuid7::text() const {
  std::string out(kIdLen, '-');
  static constexpr char kHex[] = "0123456789abcdef";
  int digit = 0;
  for (size_t i = 0; i < kIdLen; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    uint64_t half = digit < 16 ? hi : lo;
    out[i] = kHex[(half >> (60 - 4 * (digit % 16))) & 0xf];
    ++digit;
  }
  return out;
}

// ---------------------------------------------------------------- Uuid7Set

size_t Uuid7Set::slot_of(const Uuid7& id) const {
  return static_cast<size_t>(((id.lo ^ (id.hi * 31)) * 0x9E3779B97F4A7C15ULL) >> 32) &
         (slots_.size() - 1);
}

bool Uuid7Set::contains(const Uuid7& id) const {
  if (slots_.empty()) return false;
  for (size_t i = slot_of(id);; i = (i + 1) & (slots_.size() - 1)) {
    if (slots_[i] == id) return true;
    if (slots_[i] == Uuid7{}) return false;
  }
}

bool Uuid7Set::insert(const Uuid7& id) {
  if (2 * (size_ + 1) > slots_.size()) {  // keep the load factor <= 1/2
    std::vector<Uuid7> old =
        std::exchange(slots_, std::vector<Uuid7>(std::max<size_t>(16, 2 * slots_.size())));
    size_ = 0;
    for (const auto& o : old) {
      if (!(o == Uuid7{})) insert(o);
    }
  }
  for (size_t i = slot_of(id);; i = (i + 1) & (slots_.size() - 1)) {
    if (slots_[i] == id) return false;
    if (slots_[i] == Uuid7{}) {
      slots_[i] = id;
      ++size_;
      return true;
    }
  }
}

// ---------------------------------------------------------------- ProcessedIds

Result<ProcessedIds::Bucket*> ProcessedIds::bucket(Tx& tx, uint64_t b) {
  if (auto it = buckets_.find(b); it != buckets_.end()) {
    it->second.used = tick_;
    return &it->second;
  }
  HERALD_ASSIGN_OR_RETURN(
      auto rows, tx.query("SELECT ids FROM herald_processed_ids WHERE group_id = ? AND bucket = ?",
                          {group_, bucket_text(b)}));
  Bucket fresh;
  fresh.used = tick_;
  for (const auto& row : rows) {
    const std::string& ids = row.text(0);
    if (ids.size() % kIdLen != 0) {
      return Error{Errc::kCorruption,
                   fmt::format("herald_processed_ids: a row of bucket {} holds {} bytes, not a "
                               "multiple of {}",
                               bucket_text(b), ids.size(), kIdLen)};
    }
    for (size_t at = 0; at < ids.size(); at += kIdLen) {
      auto id = Uuid7::parse(std::string_view(ids).substr(at, kIdLen));
      if (!id)
        return Error{Errc::kCorruption,
                     fmt::format("herald_processed_ids: bad id in bucket {}", bucket_text(b))};
      fresh.ids.insert(*id);
    }
  }
  total_ += std::max<size_t>(1, fresh.ids.size());
  return &buckets_.emplace(b, std::move(fresh)).first->second;
}

Result<bool> ProcessedIds::mark(Tx& tx, std::string_view id, int64_t now_ms, Pending& pending) {
  auto v7 = Uuid7::parse(id);
  if (!v7) return mark_processed(tx, group_, id, now_ms);
  if (pending.seen.contains(*v7)) return false;
  HERALD_ASSIGN_OR_RETURN(Bucket * b, bucket(tx, v7->bucket()));
  if (b->ids.contains(*v7)) return false;
  pending.seen.insert(*v7);
  pending.ids.push_back(*v7);
  return true;
}

Result<void> ProcessedIds::write(Tx& tx, const Pending& pending, int64_t now_ms) {
  if (pending.ids.empty()) return ok();
  std::vector<Uuid7> ids = pending.ids;
  std::sort(ids.begin(), ids.end(),
            [](const Uuid7& a, const Uuid7& b) { return a.bucket() < b.bucket(); });
  for (size_t lo = 0; lo < ids.size();) {
    size_t hi = lo;
    std::string text;
    text.reserve(kIdLen * (ids.size() - lo));
    while (hi < ids.size() && ids[hi].bucket() == ids[lo].bucket()) text += ids[hi++].text();
    HERALD_TRY(tx.exec(
        "INSERT INTO herald_processed_ids (group_id, bucket, ids, processed_at) VALUES (?, ?, ?, "
        "?)",
        {group_, bucket_text(ids[lo].bucket()), std::move(text), static_cast<long long>(now_ms)}));
    lo = hi;
  }
  return ok();
}

void ProcessedIds::committed(const Pending& pending) {
  for (const auto& id : pending.ids) {
    auto it = buckets_.find(id.bucket());
    if (it == buckets_.end()) continue;  // not cached: loaded again, with these, when needed
    size_t before = it->second.ids.size();
    it->second.ids.insert(id);
    if (before > 0)
      total_ += it->second.ids.size() - before;  // an empty bucket already counted one
  }
  ++tick_;
  if (total_ > limit_) evict();
}

void ProcessedIds::evict() {
  // Drop the least recently used buckets until the cache is half full.
  std::vector<std::pair<uint64_t, uint64_t>> by_use;  // (used, bucket)
  by_use.reserve(buckets_.size());
  for (const auto& [b, bucket] : buckets_) by_use.emplace_back(bucket.used, b);
  std::sort(by_use.begin(), by_use.end());
  for (const auto& [used, b] : by_use) {
    if (total_ <= limit_ / 2 || used == tick_ - 1)
      break;  // never the buckets of the last transaction
    auto it = buckets_.find(b);
    total_ -= std::max<size_t>(1, it->second.ids.size());
    buckets_.erase(it);
  }
}

void ProcessedIds::clear() {
  buckets_.clear();
  total_ = 0;
}

Result<int64_t> ProcessedIds::prune(Tx& tx, int64_t older_than_ms) {
  HERALD_ASSIGN_OR_RETURN(int64_t rows,
                          tx.exec("DELETE FROM herald_processed_ids WHERE group_id = ? AND "
                                  "processed_at < ?",
                                  {group_, static_cast<long long>(older_than_ms)}));
  HERALD_ASSIGN_OR_RETURN(int64_t legacy, prune_processed(tx, group_, older_than_ms));
  return rows + legacy;
}

}  // namespace herald::sdk
