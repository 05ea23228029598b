#include "sdk/replica/processed_ids.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

namespace herald::sdk {

namespace {

constexpr size_t kIdLen = 36;

// Lowercase hex digit -> value; 0xff for every other byte.
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  t.fill(0xff);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  return t;
}();

// The 32 digit positions of a canonical UUID (dashes at 8, 13, 18, 23).
constexpr std::array<uint8_t, 32> kDigitAt = [] {
  std::array<uint8_t, 32> at{};
  size_t n = 0;
  for (uint8_t i = 0; i < kIdLen; ++i) {
    if (i != 8 && i != 13 && i != 18 && i != 23) at[n++] = i;
  }
  return at;
}();

// "tttttttt-t": the first 10 characters of every id of bucket b (9 hex digits).
std::string bucket_text(uint64_t b) { return fmt::format("{:08x}-{:x}", b >> 4, b & 0xf); }

}  // namespace

std::optional<Uuid7> Uuid7::parse(std::string_view text) {
  if (text.size() != kIdLen || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-' || text[14] != '7') {
    return std::nullopt;
  }
  uint64_t half[2] = {0, 0};
  uint8_t bad = 0;
  for (size_t d = 0; d < 32; ++d) {
    const uint8_t v = kHexValue[static_cast<uint8_t>(text[kDigitAt[d]])];
    bad |= v;
    half[d / 16] = (half[d / 16] << 4) | (v & 0xf);
  }
  if (bad & 0xf0) return std::nullopt;
  return Uuid7{half[0], half[1]};
}

void Uuid7::append_text(std::string& out) const {
  static constexpr char kHex[] = "0123456789abcdef";
  const size_t at = out.size();
  out.resize(at + kIdLen, '-');
  for (size_t d = 0; d < 32; ++d) {
    const uint64_t half = d < 16 ? hi : lo;
    out[at + kDigitAt[d]] = kHex[(half >> (60 - 4 * (d % 16))) & 0xf];
  }
}

std::string Uuid7::text() const {
  std::string out;
  append_text(out);
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
  return mark(tx, *v7, pending);
}

Result<bool> ProcessedIds::mark(Tx& tx, const Uuid7& id, Pending& pending) {
  HERALD_ASSIGN_OR_RETURN(Bucket * b, bucket(tx, id.bucket()));
  if (b->ids.contains(id)) return false;
  if (!pending.seen.insert(id)) return false;
  pending.ids.push_back(id);
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
    while (hi < ids.size() && ids[hi].bucket() == ids[lo].bucket()) ids[hi++].append_text(text);
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
    if (total_ <= limit_ / 2 || used + keep_ >= tick_) break;  // never the buckets in current use
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
