#include "storage/index.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"

namespace herald::storage {
namespace {

constexpr uint8_t kOffsetMagic[4] = {'H', 'I', 'D', 'X'};
constexpr uint8_t kTimeMagic[4] = {'H', 'T', 'I', 'X'};
constexpr size_t kCrcPos = 68;

void put_header(uint8_t* p, const uint8_t magic[4], uint16_t entry_size, const SegmentSummary& s,
                uint32_t count) {
  std::memcpy(p, magic, 4);
  p[4] = kIndexVersion;
  p[5] = s.has_tombstones ? 1 : 0;
  store_be16(p + 6, entry_size);
  store_be64(p + 8, static_cast<uint64_t>(s.base_offset));
  store_be64(p + 16, static_cast<uint64_t>(s.next_offset));
  store_be64(p + 24, s.log_size);
  store_be64(p + 32, static_cast<uint64_t>(s.max_timestamp));
  store_be64(p + 40, static_cast<uint64_t>(s.max_timestamp_batch));
  store_be64(p + 48, static_cast<uint64_t>(s.first_timestamp));
  store_be64(p + 56, static_cast<uint64_t>(s.cleaned_at_ms));
  store_be32(p + 64, count);
}

void seal(Bytes& b) {
  uint32_t crc = crc32c::value(ByteSpan(b.data(), kCrcPos));
  crc = crc32c::extend(crc, ByteSpan(b.data() + kIndexHeaderSize, b.size() - kIndexHeaderSize));
  store_be32(b.data() + kCrcPos, crc);
}

struct Parsed {
  SegmentSummary summary;
  uint32_t count = 0;
  ByteSpan entries;
};

Result<Parsed> parse(ByteSpan b, const uint8_t magic[4], uint16_t entry_size, const char* what) {
  if (b.size() < kIndexHeaderSize) {
    return Error{Errc::kTruncated, fmt::format("{}: {} bytes, header needs {}", what, b.size(), kIndexHeaderSize)};
  }
  const uint8_t* p = b.data();
  if (std::memcmp(p, magic, 4) != 0) return Error{Errc::kCorruption, fmt::format("{}: bad magic", what)};
  if (p[4] != kIndexVersion) {
    return Error{Errc::kCorruption, fmt::format("{}: unknown version {}", what, p[4])};
  }
  if (load_be16(p + 6) != entry_size) return Error{Errc::kCorruption, fmt::format("{}: bad entry size", what)};
  if ((p[5] & ~1u) != 0) return Error{Errc::kCorruption, fmt::format("{}: unknown flags {}", what, p[5])};
  Parsed out;
  out.summary.has_tombstones = (p[5] & 1) != 0;
  out.summary.base_offset = static_cast<int64_t>(load_be64(p + 8));
  out.summary.next_offset = static_cast<int64_t>(load_be64(p + 16));
  out.summary.log_size = load_be64(p + 24);
  out.summary.max_timestamp = static_cast<int64_t>(load_be64(p + 32));
  out.summary.max_timestamp_batch = static_cast<int64_t>(load_be64(p + 40));
  out.summary.first_timestamp = static_cast<int64_t>(load_be64(p + 48));
  out.summary.cleaned_at_ms = static_cast<int64_t>(load_be64(p + 56));
  out.count = load_be32(p + 64);
  if (b.size() != kIndexHeaderSize + uint64_t{out.count} * entry_size) {
    return Error{Errc::kCorruption,
                 fmt::format("{}: {} bytes for {} entries", what, b.size(), out.count)};
  }
  uint32_t crc = crc32c::value(ByteSpan(p, kCrcPos));
  crc = crc32c::extend(crc, b.subspan(kIndexHeaderSize));
  if (crc != load_be32(p + kCrcPos)) return Error{Errc::kCorruption, fmt::format("{}: crc mismatch", what)};
  out.entries = b.subspan(kIndexHeaderSize);
  return out;
}

}  // namespace

SegmentIndex::SegmentIndex(int64_t base_offset) {
  summary_.base_offset = base_offset;
  summary_.next_offset = base_offset;
}

void SegmentIndex::on_batch(const record::BatchHeader& h, uint64_t position, int32_t interval) {
  const uint64_t size = h.size_bytes();
  if (position > 0 && bytes_since_entry_ >= static_cast<uint64_t>(std::max(interval, 1))) {
    const auto rel = static_cast<uint32_t>(h.base_offset - summary_.base_offset);
    offsets_.push_back(OffsetEntry{rel, static_cast<uint32_t>(position)});
    if (running_max_ts_ >= 0 && (times_.empty() || running_max_ts_ > times_.back().timestamp)) {
      times_.push_back(TimeEntry{running_max_ts_, rel});
    }
    bytes_since_entry_ = 0;
  }
  bytes_since_entry_ += size;
  if (summary_.log_size == 0 && position == 0) summary_.first_timestamp = h.max_timestamp;
  summary_.log_size = position + size;
  summary_.next_offset = h.last_offset() + 1;
  if (h.max_timestamp > summary_.max_timestamp) {
    summary_.max_timestamp = h.max_timestamp;
    summary_.max_timestamp_batch = h.base_offset;
  }
  running_max_ts_ = std::max(running_max_ts_, h.max_timestamp);
}

uint64_t SegmentIndex::lookup(int64_t offset) const {
  if (offset <= summary_.base_offset || offsets_.empty()) return 0;
  const int64_t rel64 = offset - summary_.base_offset;
  const auto rel = rel64 > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(rel64);
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), rel,
                             [](uint32_t r, const OffsetEntry& e) { return r < e.relative_offset; });
  if (it == offsets_.begin()) return 0;
  return std::prev(it)->position;
}

int64_t SegmentIndex::lookup_time(int64_t ts) const {
  // times_ is increasing in timestamp: find the last entry with timestamp < ts.
  auto it = std::lower_bound(times_.begin(), times_.end(), ts,
                             [](const TimeEntry& e, int64_t t) { return e.timestamp < t; });
  if (it == times_.begin()) return summary_.base_offset;
  return summary_.base_offset + std::prev(it)->relative_offset;
}

Bytes SegmentIndex::encode_offset_index() const {
  Bytes b(kIndexHeaderSize + offsets_.size() * kOffsetEntrySize);
  put_header(b.data(), kOffsetMagic, kOffsetEntrySize, summary_, static_cast<uint32_t>(offsets_.size()));
  uint8_t* p = b.data() + kIndexHeaderSize;
  for (const auto& e : offsets_) {
    store_be32(p, e.relative_offset);
    store_be32(p + 4, e.position);
    p += kOffsetEntrySize;
  }
  seal(b);
  return b;
}

Bytes SegmentIndex::encode_time_index() const {
  Bytes b(kIndexHeaderSize + times_.size() * kTimeEntrySize);
  put_header(b.data(), kTimeMagic, kTimeEntrySize, summary_, static_cast<uint32_t>(times_.size()));
  uint8_t* p = b.data() + kIndexHeaderSize;
  for (const auto& e : times_) {
    store_be64(p, static_cast<uint64_t>(e.timestamp));
    store_be32(p + 8, e.relative_offset);
    p += kTimeEntrySize;
  }
  seal(b);
  return b;
}

Result<SegmentIndex> SegmentIndex::decode(ByteSpan offset_file, ByteSpan time_file, int64_t base_offset) {
  HERALD_ASSIGN_OR_RETURN(Parsed o, parse(offset_file, kOffsetMagic, kOffsetEntrySize, "offset index"));
  HERALD_ASSIGN_OR_RETURN(Parsed t, parse(time_file, kTimeMagic, kTimeEntrySize, "time index"));
  if (o.summary.base_offset != base_offset) {
    return Error{Errc::kCorruption, fmt::format("offset index: base {} in a segment named {}",
                                                o.summary.base_offset, base_offset)};
  }
  if (!(o.summary == t.summary)) {
    return Error{Errc::kCorruption, "offset and time index headers disagree"};
  }
  SegmentIndex idx(base_offset);
  idx.summary_ = o.summary;
  idx.offsets_.reserve(o.count);
  uint32_t prev_rel = 0;
  uint32_t prev_pos = 0;
  for (uint32_t i = 0; i < o.count; ++i) {
    const uint8_t* p = o.entries.data() + size_t{i} * kOffsetEntrySize;
    OffsetEntry e{load_be32(p), load_be32(p + 4)};
    if ((i > 0 && (e.relative_offset <= prev_rel || e.position <= prev_pos)) || e.position >= o.summary.log_size) {
      return Error{Errc::kCorruption, fmt::format("offset index: entry {} out of order", i)};
    }
    prev_rel = e.relative_offset;
    prev_pos = e.position;
    idx.offsets_.push_back(e);
  }
  idx.times_.reserve(t.count);
  for (uint32_t i = 0; i < t.count; ++i) {
    const uint8_t* p = t.entries.data() + size_t{i} * kTimeEntrySize;
    TimeEntry e{static_cast<int64_t>(load_be64(p)), load_be32(p + 8)};
    if (i > 0 && e.timestamp <= idx.times_.back().timestamp) {
      return Error{Errc::kCorruption, fmt::format("time index: entry {} out of order", i)};
    }
    idx.times_.push_back(e);
  }
  idx.running_max_ts_ = o.summary.max_timestamp;
  // bytes_since_entry_: distance from the last entry to the end, so appends continue the cadence.
  idx.bytes_since_entry_ = o.summary.log_size - (idx.offsets_.empty() ? 0 : idx.offsets_.back().position);
  return idx;
}

}  // namespace herald::storage
