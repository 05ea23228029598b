// Log compaction (cleanup.policy=compact): PartitionLog::compact.
//
// One pass:
//   1. The dirty range: closed, persisted segments (below the recovery point,
//      never the active one) from the cleaner offset on, as long as each is
//      older than min_compaction_lag_ms. Stops early if the key map grows past
//      kMaxMapBytes (the next pass continues). The range is compacted only
//      when it is due, as Kafka's log cleaner decides: its bytes are at least
//      min_cleanable_dirty_ratio of it plus the clean segments before it, or
//      its first segment's first batch is older than max_compaction_lag_ms.
//   2. Key map: key -> offset of its latest record in the dirty range.
//   3. Every closed segment from the log start to the end of the dirty range
//      is filtered: a keyed record survives if the map has no newer offset
//      for its key; a tombstone (null value) also survives unless it sits in a
//      segment first cleaned more than delete_retention_ms ago. Batches whose
//      records all survive are copied byte for byte; batches that lose some are
//      re-encoded with BatchBuilder (same base offset, offset deltas,
//      timestamps, headers, producer fields, codec and last_offset_delta);
//      batches left without records are dropped, except a segment's last batch,
//      kept empty (with its max timestamp, which retention.ms goes by) so
//      segments stay contiguous. Offsets never change: gaps appear.
//   4. Consecutive filtered segments are merged into one while their sizes add
//      up to at most segment.bytes (so a log that rolls small segments does not
//      keep one file per roll), as long as no tombstone would get a later clock.
//   5. Changed segments are swapped in crash-safely (docs/storage-format.md
//      section 6): write NNN.{log,index,timeindex}.cleaned, fdatasync them,
//      fsync the directory, write the swap marker (the commit point), rename
//      each .cleaned over its original and delete the segments merged into it,
//      fsync the directory, delete the marker. open() finishes a swap whose
//      marker exists and deletes .cleaned files without one, so a crash leaves
//      the old or the new set.
//   6. The in-memory segment map switches to the new files; readers holding
//      a FileSlice of an old file keep reading it (it stays open).
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

#include "common/log.h"
#include "record/builder.h"
#include "record/records.h"
#include "storage/partition_log.h"

namespace herald::storage {
namespace {

constexpr size_t kMaxMapBytes = size_t{64} << 20;
constexpr size_t kIoChunk = size_t{1} << 20;

// Sequential whole-batch reader over the first `size` bytes of a segment file (validates CRC).
class BatchIterator {
 public:
  BatchIterator(const File& file, uint64_t size) : file_(file), end_(size) {}
  explicit BatchIterator(const Segment& seg) : BatchIterator(*seg.file(), seg.size()) {}

  // Next whole batch, or an empty span at the end.
  Result<ByteSpan> next(record::BatchHeader& h) {
    if (pos_ >= end_) return ByteSpan();
    if (end_ - pos_ < record::kBatchHeaderSize) return corrupt("partial batch header");
    HERALD_TRY(ensure(record::kBatchHeaderSize));
    HERALD_ASSIGN_OR_RETURN(h, record::parse_header(ByteSpan(buf_.data() + (pos_ - buf_pos_), record::kBatchHeaderSize)));
    const uint64_t size = h.size_bytes();
    if (size > end_ - pos_) return corrupt("batch runs past the end");
    HERALD_TRY(ensure(size));
    ByteSpan batch(buf_.data() + (pos_ - buf_pos_), static_cast<size_t>(size));
    auto checked = record::check_integrity(batch);
    if (!checked) return corrupt(checked.error().message);
    position_ = pos_;
    pos_ += size;
    return batch;
  }
  uint64_t position() const { return position_; }
  bool at_end() const { return pos_ >= end_; }

 private:
  Error corrupt(const std::string& why) const {
    return Error{Errc::kCorruption, fmt::format("{}: {} at byte {}", file_.path().string(), why, pos_)};
  }
  Result<void> ensure(uint64_t n) {
    if (pos_ >= buf_pos_ && pos_ + n <= buf_pos_ + buf_.size()) return ok();
    const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(n, kIoChunk), end_ - pos_);
    buf_.resize(static_cast<size_t>(want));
    HERALD_TRY(file_.read_exact(pos_, buf_));
    buf_pos_ = pos_;
    return ok();
  }

  const File& file_;
  const uint64_t end_;
  uint64_t pos_ = 0;
  uint64_t position_ = 0;
  Bytes buf_;
  uint64_t buf_pos_ = 0;
};

// Appends to a new file through a buffer.
class BufferedWriter {
 public:
  explicit BufferedWriter(std::shared_ptr<File> f) : file_(std::move(f)) {}
  Result<void> append(ByteSpan b) {
    buf_.insert(buf_.end(), b.begin(), b.end());
    if (buf_.size() >= kIoChunk) return flush();
    return ok();
  }
  Result<void> flush() {
    if (buf_.empty()) return ok();
    HERALD_TRY(file_->write_at(written_, buf_));
    written_ += buf_.size();
    buf_.clear();
    return ok();
  }
  uint64_t size() const { return written_ + buf_.size(); }

 private:
  std::shared_ptr<File> file_;
  Bytes buf_;
  uint64_t written_ = 0;
};

std::filesystem::path cleaned_path(const Segment& seg, const char* suffix) {
  auto p = seg.path(suffix);
  p += kCleanedSuffix;
  return p;
}

// Where a merged group is written before it is renamed to its first segment's
// .cleaned names (".tmp": deleted by open()).
std::filesystem::path merging_path(const Segment& seg, const char* suffix) {
  auto p = cleaned_path(seg, suffix);
  p += ".tmp";
  return p;
}

// One segment after filtering: its .cleaned .log holds the result when `changed`.
struct Filtered {
  std::shared_ptr<Segment> old;
  SegmentIndex index;
  int64_t end = 0;  // the next segment's base
  bool changed = false;
};

// Consecutive filtered segments written as one (first == last: not merged).
struct Group {
  size_t first = 0, last = 0;
  uint64_t bytes = 0;
  int64_t cleaned_at = 0;   // the latest of the members' tombstone clocks
  bool tombstones = false;  // some member keeps tombstones, all of them with the clock cleaned_at
};

// A segment replaced by its .cleaned files, which also hold the absorbed ones.
struct Replacement {
  std::shared_ptr<Segment> old;
  std::vector<std::shared_ptr<Segment>> absorbed;
  SegmentIndex index;
};

// Writes an index's two files at `path(suffix)`, fdatasync'ed.
template <class PathOf>
Result<void> write_index_files(FileSystem& fs, const SegmentIndex& index, PathOf path) {
  for (auto [suffix, bytes] : {std::pair<const char*, Bytes>{kIndexSuffix, index.encode_offset_index()},
                               {kTimeIndexSuffix, index.encode_time_index()}}) {
    HERALD_ASSIGN_OR_RETURN(auto f, fs.open(path(suffix), OpenMode::kTruncate));
    HERALD_TRY(f->write_at(0, bytes));
    HERALD_TRY(f->sync());
  }
  return ok();
}

}  // namespace

Result<void> PartitionLog::remove_leftover_swap_marker() {
  if (!marker_left_) return ok();
  auto removed = fs_.remove(dir_ / kSwapMarkerName);
  if (!removed && removed.error().code != Errc::kNotFound) return removed;
  HERALD_TRY(fs_.sync_dir(dir_));
  marker_left_ = false;
  swap_incomplete_ = false;
  return ok();
}

Result<CompactionStats> PartitionLog::compact(int64_t now, std::span<const int64_t> keep_batches) {
  std::lock_guard maintenance(maintenance_mu_);
  HERALD_TRY(check_open());
  CompactionStats stats;
  const LogConfig cfg = config();
  if (!cfg.compact) return stats;
  (void)remove_leftover_swap_marker();
  if (swap_incomplete_) {
    return Error{Errc::kIoError, fmt::format("{}: an earlier compaction swap failed half-way; reopen the log to "
                                             "finish it", dir_.string())};
  }
  const auto closed = persisted_closed_segments();
  if (closed.empty()) return stats;
  auto segs = snapshot();
  auto end_of = [&](const std::shared_ptr<Segment>& s) { return segs.upper_bound(s->base_offset())->first; };

  // 1 + 2. Dirty range and key map.
  const int64_t cleaner = cleaner_offset_.load();
  // A segment holding records younger than min.compaction.lag.ms ends the compactable range. Only
  // with a lag: at 0 a record stamped ahead of the broker's clock (CreateTime allows an hour by
  // default) would stop compaction of the partition until that time, as it never does in Kafka.
  auto too_young = [&](const SegmentSummary& s) {
    return cfg.min_compaction_lag_ms > 0 && s.max_timestamp > now - cfg.min_compaction_lag_ms;
  };
  bool due = false;
  {
    uint64_t clean_bytes = 0, dirty_bytes = 0;
    bool first = true, overdue = false;
    for (const auto& seg : closed) {
      HERALD_ASSIGN_OR_RETURN(SegmentSummary s, seg->summary());
      if (end_of(seg) <= cleaner) {
        clean_bytes += s.log_size;
        continue;
      }
      if (too_young(s)) break;
      if (first && s.first_timestamp >= 0 && now - s.first_timestamp >= cfg.max_compaction_lag_ms) overdue = true;
      first = false;
      dirty_bytes += s.log_size;
    }
    due = !first && (overdue || static_cast<double>(dirty_bytes) >=
                                    cfg.min_cleanable_dirty_ratio * static_cast<double>(clean_bytes + dirty_bytes));
  }
  std::unordered_map<std::string, int64_t> latest;
  size_t map_bytes = 0;
  size_t first_dirty = closed.size();
  size_t end_dirty = closed.size();
  Bytes scratch;
  for (size_t i = 0; i < closed.size(); ++i) {
    if (end_of(closed[i]) <= cleaner) continue;
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, closed[i]->summary());
    if (too_young(s)) {
      end_dirty = i;
      break;
    }
    if (first_dirty == closed.size()) first_dirty = i;
    if (!due || (map_bytes > kMaxMapBytes && i > first_dirty)) {
      end_dirty = i;
      break;
    }
    BatchIterator it(*closed[i]);
    record::BatchHeader h;
    for (;;) {
      HERALD_ASSIGN_OR_RETURN(ByteSpan batch, it.next(h));
      if (batch.empty()) break;
      if (h.is_control()) continue;
      HERALD_TRY(record::for_each_record(batch, scratch, [&](const record::Record& r) -> Result<void> {
        if (!r.key) return ok();
        const int64_t offset = h.base_offset + r.offset_delta;
        auto [slot, inserted] = latest.try_emplace(std::string(as_string_view(*r.key)), offset);
        if (inserted) {
          map_bytes += r.key->size() + 64;
        } else {
          slot->second = offset;
        }
        return ok();
      }));
    }
  }
  if (first_dirty == closed.size()) end_dirty = first_dirty;  // nothing dirty
  // Without dirty segments, a pass is still due if a cleaned segment holds
  // tombstones whose delete_retention_ms has run out.
  bool tombstones_due = false;
  for (size_t i = 0; i < std::min(first_dirty, closed.size()); ++i) {
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, closed[i]->summary());
    if (s.has_tombstones && s.cleaned_at_ms >= 0 && now - s.cleaned_at_ms >= cfg.delete_retention_ms) {
      tombstones_due = true;
    }
  }
  if (first_dirty == end_dirty && !tombstones_due) return stats;
  const size_t range_end = std::max(end_dirty, std::min(first_dirty, closed.size()));

  // 3. Filter every segment of [0, range_end).
  auto keep_batch = [&](int64_t base) { return std::binary_search(keep_batches.begin(), keep_batches.end(), base); };
  auto discard_cleaned = [&](const Segment& seg) {
    for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
      (void)fs_.remove(cleaned_path(seg, suffix));
      (void)fs_.remove(merging_path(seg, suffix));
    }
  };
  // Before the commit point an error leaves the old set: drop the .cleaned files.
  bool committed = false;
  struct Cleanup {
    std::function<void()> fn;
    ~Cleanup() { fn(); }
  } cleanup{[&] {
    if (committed) return;
    for (size_t i = 0; i < range_end; ++i) discard_cleaned(*closed[i]);
  }};
  // A segment's tombstone clock starts at its first clean, rounded up to an eighth of
  // delete.retention.ms: segments first cleaned by the passes of one such window share a clock
  // and may be merged (step 4). Tombstones stay at most that eighth longer.
  const int64_t grain = std::max<int64_t>(1, cfg.delete_retention_ms / 8);
  const int64_t clock_now = now > 0 && now % grain != 0 ? now - now % grain + grain : now;
  std::vector<Filtered> filtered;
  for (size_t i = 0; i < range_end; ++i) {
    const auto& seg = closed[i];
    const bool dirty = i >= first_dirty && i < end_dirty;
    HERALD_ASSIGN_OR_RETURN(SegmentSummary old_summary, seg->summary());
    const int64_t cleaned_at = old_summary.cleaned_at_ms >= 0 ? old_summary.cleaned_at_ms : clock_now;
    const bool drop_tombstones = !dirty && old_summary.cleaned_at_ms >= 0 &&
                                 now - old_summary.cleaned_at_ms >= cfg.delete_retention_ms;
    HERALD_ASSIGN_OR_RETURN(auto out_file, fs_.open(cleaned_path(*seg, kLogSuffix), OpenMode::kTruncate));
    BufferedWriter out(out_file);
    Filtered result{seg, SegmentIndex(seg->base_offset()), end_of(seg), false};
    bool kept_tombstones = false;
    BatchIterator it(*seg);
    record::BatchHeader h;
    std::vector<record::Record> kept;
    for (;;) {
      HERALD_ASSIGN_OR_RETURN(ByteSpan batch, it.next(h));
      if (batch.empty()) break;
      ++stats.batches_read;
      stats.bytes_before += batch.size();
      bool all_kept = true;
      kept.clear();
      if (!h.is_control()) {
        HERALD_ASSIGN_OR_RETURN(kept, record::decode_records(batch, scratch));
        stats.records_read += kept.size();
        const size_t before = kept.size();
        std::erase_if(kept, [&](const record::Record& r) {
          if (!r.key) {  // written before the topic became compacted: no key to keep it by (as Kafka's cleaner)
            ++stats.keyless_dropped;
            return true;
          }
          auto f = latest.find(std::string(as_string_view(*r.key)));
          if (f != latest.end() && f->second != h.base_offset + r.offset_delta) return true;  // superseded
          if (!r.value && drop_tombstones) {
            ++stats.tombstones_dropped;
            return true;
          }
          return false;
        });
        // A batch left without records goes, except the segment's last one, which stays as an
        // empty batch (records_count 0, as Kafka keeps them) so that every segment still ends
        // where the next one begins: recovery relies on that to detect a lost tail; and except
        // those in keep_batches (a live producer's last batch, as Kafka's cleaner keeps).
        if (kept.empty() && !it.at_end() && !keep_batch(h.base_offset)) {
          result.changed = true;
          continue;
        }
        // An empty batch marked compressed (written before empty batches were
        // always uncompressed) is rebuilt: librdkafka cannot read past it.
        all_kept = kept.size() == before && !(before == 0 && h.compression() != record::Compression::kNone);
        stats.records_kept += kept.size();
        for (const auto& r : kept) kept_tombstones |= (r.key && !r.value);
      }
      Bytes rebuilt;
      ByteSpan write = batch;
      if (!all_kept) {
        result.changed = true;
        record::BatchBuilder b(h.compression());
        b.set_base_offset(h.base_offset)
            .set_partition_leader_epoch(h.partition_leader_epoch)
            .set_producer(h.producer_id, h.producer_epoch, h.base_sequence)
            .set_transactional(h.is_transactional())
            .set_last_offset_delta(h.last_offset_delta);
        if (h.timestamp_type() == record::TimestampType::kLogAppendTime) b.set_log_append_time(h.max_timestamp);
        b.set_empty_max_timestamp(h.max_timestamp);
        for (const auto& r : kept) HERALD_TRY(b.add(r, h.base_timestamp));
        HERALD_ASSIGN_OR_RETURN(rebuilt, b.build());
        write = rebuilt;
      }
      HERALD_ASSIGN_OR_RETURN(record::BatchHeader wh, record::parse_header(write));
      result.index.on_batch(wh, out.size(), cfg.index_interval_bytes);
      HERALD_TRY(out.append(write));
      stats.bytes_after += write.size();
    }
    auto& summary = result.index.mutable_summary();
    summary.cleaned_at_ms = cleaned_at;
    summary.has_tombstones = kept_tombstones;
    if (!result.changed && (summary.cleaned_at_ms != old_summary.cleaned_at_ms ||
                            summary.has_tombstones != old_summary.has_tombstones)) {
      // Same records; only the tombstone clock changes: update the index in
      // place (losing it to a crash just restarts the clock: conservative).
      seg->set_index(result.index);
      HERALD_TRY(seg->persist_index(true));
    }
    if (!result.changed) {
      out_file.reset();
      discard_cleaned(*seg);
      filtered.push_back(std::move(result));
      continue;
    }
    // Synced, with its index files, only if it is swapped in as it is (step 4): a segment merged
    // into a group is read back from the page cache and rewritten.
    HERALD_TRY(out.flush());
    filtered.push_back(std::move(result));
  }

  // 4. Merge consecutive segments while their filtered sizes add up to at most segment.bytes,
  // their offsets fit the index's 32-bit relative offsets, and no member's tombstones would get
  // a later clock than their own. Segments wholly below the log start (retention deletes them)
  // are not merged with later ones.
  std::vector<Group> groups;
  const int64_t start = log_start_offset();
  for (size_t i = 0; i < filtered.size(); ++i) {
    const SegmentSummary& s = filtered[i].index.summary();
    if (!groups.empty()) {
      Group& g = groups.back();
      const int64_t clock = std::max(g.cleaned_at, s.cleaned_at_ms);
      const bool fits = g.bytes + s.log_size <= static_cast<uint64_t>(cfg.segment_bytes) &&
                        filtered[i].end - 1 - filtered[g.first].old->base_offset() <= int64_t{UINT32_MAX} &&
                        (filtered[i].end <= start) == (filtered[g.first].end <= start);
      if (fits && (!g.tombstones || g.cleaned_at == clock) && (!s.has_tombstones || s.cleaned_at_ms == clock)) {
        g.last = i;
        g.bytes += s.log_size;
        g.cleaned_at = clock;
        g.tombstones |= s.has_tombstones;
        continue;
      }
    }
    groups.push_back(Group{i, i, s.log_size, s.cleaned_at_ms, s.has_tombstones});
  }
  std::vector<Replacement> replacements;
  for (const Group& g : groups) {
    Filtered& head = filtered[g.first];
    if (g.first == g.last) {
      if (!head.changed) continue;
      HERALD_ASSIGN_OR_RETURN(auto log_file, fs_.open(cleaned_path(*head.old, kLogSuffix), OpenMode::kReadWrite));
      HERALD_TRY(log_file->sync());
      HERALD_TRY(write_index_files(fs_, head.index, [&](const char* suffix) { return cleaned_path(*head.old, suffix); }));
      replacements.push_back(Replacement{head.old, {}, std::move(head.index)});
      continue;
    }
    // The members' filtered batches one after another, in head's .cleaned.tmp files, then
    // renamed to head's .cleaned names. Each member's last batch is only there to end it where
    // the next begins: inside the group, an empty one goes.
    HERALD_ASSIGN_OR_RETURN(auto out_file, fs_.open(merging_path(*head.old, kLogSuffix), OpenMode::kTruncate));
    BufferedWriter out(out_file);
    Replacement merged{head.old, {}, SegmentIndex(head.old->base_offset())};
    for (size_t i = g.first; i <= g.last; ++i) {
      const Filtered& f = filtered[i];
      std::shared_ptr<File> source = f.old->file();
      if (f.changed) {
        HERALD_ASSIGN_OR_RETURN(source, fs_.open(cleaned_path(*f.old, kLogSuffix), OpenMode::kRead));
      }
      BatchIterator it(*source, f.index.summary().log_size);
      record::BatchHeader h;
      for (;;) {
        HERALD_ASSIGN_OR_RETURN(ByteSpan batch, it.next(h));
        if (batch.empty()) break;
        if (it.at_end() && i != g.last && h.records_count == 0 && !h.is_control() && !keep_batch(h.base_offset)) {
          stats.bytes_after -= batch.size();
          continue;
        }
        merged.index.on_batch(h, out.size(), cfg.index_interval_bytes);
        HERALD_TRY(out.append(batch));
      }
      if (i > g.first) merged.absorbed.push_back(f.old);
    }
    auto& summary = merged.index.mutable_summary();
    summary.cleaned_at_ms = g.cleaned_at;
    summary.has_tombstones = g.tombstones;
    HERALD_TRY(out.flush());
    HERALD_TRY(out_file->sync());
    HERALD_TRY(write_index_files(fs_, merged.index, [&](const char* suffix) { return merging_path(*head.old, suffix); }));
    for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
      HERALD_TRY(fs_.rename(merging_path(*head.old, suffix), cleaned_path(*head.old, suffix)));
    }
    for (const auto& a : merged.absorbed) discard_cleaned(*a);
    replacements.push_back(std::move(merged));
  }

  for (const auto& r : replacements) {
    stats.segments_cleaned += 1 + r.absorbed.size();
    stats.segments_merged += r.absorbed.size();
  }

  // 5. Commit and swap.
  if (!replacements.empty()) {
    std::vector<SwapEntry> entries;
    for (const auto& r : replacements) {
      SwapEntry& e = entries.emplace_back(SwapEntry{r.old->base_offset(), r.index.summary().log_size, {}});
      for (const auto& a : r.absorbed) e.absorbed.push_back(a->base_offset());
    }
    HERALD_TRY(fs_.sync_dir(dir_));
    auto marker = fs_.atomic_write(dir_ / kSwapMarkerName, encode_swap_marker(entries));  // commit point
    if (!marker) {
      // The marker may or may not be durable: only open() can tell which set wins. Unless it is
      // surely gone, no later pass may write .cleaned files that open() would then swap in.
      auto removed = fs_.remove(dir_ / kSwapMarkerName);
      const bool gone = (removed || removed.error().code == Errc::kNotFound) && fs_.sync_dir(dir_);
      if (!gone) {
        swap_incomplete_ = true;
        marker_left_ = true;  // removing it later restores the old set (the one in memory)
        committed = true;     // until then open() may swap them in: the .cleaned files stay
      }
      return std::move(marker).error();
    }
    committed = true;
    swap_incomplete_ = true;  // until the renames are done
    for (auto& r : replacements) {
      r.old->retire();
      for (auto& a : r.absorbed) a->retire();
    }
    for (const auto& r : replacements) {
      for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
        HERALD_TRY(fs_.rename(cleaned_path(*r.old, suffix), r.old->path(suffix)));
      }
      for (const auto& a : r.absorbed) HERALD_TRY(a->remove_files());
    }
    HERALD_TRY(fs_.sync_dir(dir_));
    // 6. Switch the in-memory map to the new files.
    std::vector<std::shared_ptr<Segment>> fresh;
    for (auto& r : replacements) {
      HERALD_ASSIGN_OR_RETURN(auto seg, Segment::open(fs_, dir_, r.old->base_offset(), cfg.index_interval_bytes));
      seg->mark_verified(seg->size());  // written from CRC-checked batches just now
      seg->set_index(std::move(r.index), /*in_files=*/true);
      seg->seal();
      fresh.push_back(std::move(seg));
    }
    {
      std::unique_lock lock(segments_mu_);
      for (size_t i = 0; i < fresh.size(); ++i) {
        segments_[fresh[i]->base_offset()] = fresh[i];
        for (const auto& a : replacements[i].absorbed) segments_.erase(a->base_offset());
      }
    }
    // The marker goes before the next pass may start: left on disk, it would
    // make open() swap in that pass's unfinished .cleaned files.
    marker_left_ = true;
    HERALD_TRY(remove_leftover_swap_marker());
  }
  if (end_dirty > first_dirty) {
    cleaner_offset_.store(std::max(cleaner, end_of(closed[end_dirty - 1])));
    HERALD_TRY(write_checkpoint_now(false));
  }
  HLOG_INFO("{}: compacted {} segments ({} merged into others): {} of {} records kept, {} tombstones and {} records "
            "without a key dropped, {} -> {} bytes",
            dir_.string(), stats.segments_cleaned, stats.segments_merged, stats.records_kept, stats.records_read,
            stats.tombstones_dropped, stats.keyless_dropped, stats.bytes_before, stats.bytes_after);
  return stats;
}

}  // namespace herald::storage
