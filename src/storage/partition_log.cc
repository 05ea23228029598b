#include "storage/partition_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "record/records.h"

namespace herald::storage {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// On kCorruption *good is the length of the slice's leading whole batches that check out.
Result<void> verify_batches(const FileSlice& slice, const uint8_t* data, uint64_t* good) {
  uint64_t& pos = *good;
  pos = 0;
  while (pos < slice.size) {
    ByteSpan rest(data + pos, static_cast<size_t>(slice.size - pos));
    auto h = record::parse_header(rest);
    if (!h) {
      return Error{Errc::kCorruption, fmt::format("{}: {} at byte {}", slice.file->path().string(),
                                                  h.error().message, slice.position + pos)};
    }
    const uint64_t size = h->size_bytes();
    if (size > rest.size()) {
      return Error{Errc::kCorruption, fmt::format("{}: batch at byte {} runs past the slice",
                                                  slice.file->path().string(), slice.position + pos)};
    }
    auto c = record::check_integrity(rest.subspan(0, static_cast<size_t>(size)));
    if (!c) {
      return Error{Errc::kCorruption, fmt::format("{}: {} at byte {}", slice.file->path().string(),
                                                  c.error().message, slice.position + pos)};
    }
    pos += size;
  }
  return ok();
}

}  // namespace

Result<void> read_slice_unchecked(const FileSlice& slice, uint8_t* dst) {
  return slice.file->read_exact(slice.position, MutableByteSpan(dst, static_cast<size_t>(slice.size)));
}

Result<void> read_slice(const FileSlice& slice, uint8_t* dst, uint64_t* good_prefix) {
  HERALD_TRY(read_slice_unchecked(slice, dst));
  const uint64_t end = slice.position + slice.size;
  if (slice.verified && slice.verified->covers(slice.position, end)) return ok();
  uint64_t good = 0;
  if (auto v = verify_batches(slice, dst, &good); !v) {
    if (good_prefix != nullptr) *good_prefix = good;
    return v;
  }
  if (slice.verified) slice.verified->checked(slice.position, end);
  return ok();
}

PartitionLog::PartitionLog(std::filesystem::path dir, LogConfig config, Flusher* flusher, FileSystem& fs,
                           std::function<int64_t()> clock, uint64_t recovery_step_bytes)
    : dir_(std::move(dir)),
      fs_(fs),
      flusher_(flusher),
      clock_(std::move(clock)),
      recovery_step_bytes_(recovery_step_bytes),
      config_(config) {
  always_.store(config.flush_policy == FlushPolicy::kAlways);
}

Result<std::unique_ptr<PartitionLog>> PartitionLog::open(const std::filesystem::path& dir, LogConfig config,
                                                         Flusher* flusher, OpenOptions options) {
  FileSystem& fs = options.fs != nullptr ? *options.fs : FileSystem::posix();
  std::function<int64_t()> clock = options.clock ? std::move(options.clock) : std::function<int64_t()>(now_ms);
  // index_interval_bytes 0 (Kafka allows it) indexes every batch.
  if (config.index_interval_bytes < 0 || config.segment_bytes <= 0) {
    return Error{Errc::kInvalidArgument, "index_interval_bytes must be >= 0 and segment_bytes positive"};
  }
  std::unique_ptr<PartitionLog> log(
      new PartitionLog(dir, config, flusher, fs, std::move(clock), std::max<uint64_t>(options.recovery_step_bytes, 1)));
  HERALD_TRY(fs.create_dirs(dir));
  const int64_t t0 = mono_ns();
  if (auto r = log->recover(); !r) {
    std::lock_guard lock(log->append_mu_);
    log->closed_ = true;  // the destructor must not write a checkpoint over a half recovery
    return std::move(r).error();
  }
  HLOG_DEBUG("{}: opened in {:.1f} ms: offsets [{}, {}), {} segments", dir.string(), static_cast<double>(mono_ns() - t0) / 1e6,
             log->log_start_offset(), log->log_end_offset(), log->segment_count());
  if (flusher != nullptr) {
    flusher->add(log.get(), config.flush_policy == FlushPolicy::kInterval ? config.flush_interval_ms : 0);
  }
  return log;
}

PartitionLog::~PartitionLog() {
  auto r = close();
  if (!r) HLOG_WARN("{}: close: {}", dir_.string(), r.error().to_string());
}

// ---------------------------------------------------------------- recovery

Result<void> PartitionLog::finish_interrupted_swap() {
  const auto marker = dir_ / kSwapMarkerName;
  HERALD_ASSIGN_OR_RETURN(bool has_marker, fs_.exists(marker));
  if (!has_marker) return ok();
  HERALD_ASSIGN_OR_RETURN(Bytes bytes, fs_.read_all(marker));
  auto entries = decode_swap_marker(bytes);
  if (entries) {
    HLOG_WARN("{}: finishing an interrupted compaction swap of {} segments", dir_.string(), entries->size());
    for (const SwapEntry& e : *entries) {
      for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
        const auto target = dir_ / segment_file_name(e.base, suffix);
        auto cleaned = target;
        cleaned += kCleanedSuffix;
        HERALD_ASSIGN_OR_RETURN(bool has, fs_.exists(cleaned));
        if (has) HERALD_TRY(fs_.rename(cleaned, target));
      }
      if (e.absorbed.empty()) continue;
      // Their records are in the replacement now (it was renamed in, here or before the crash).
      // If it is not there (only damage does that), neither deleting them nor keeping them next
      // to whatever the name holds is safe: the log is not opened, and nothing is touched.
      auto replaced = fs_.open(dir_ / segment_file_name(e.base, kLogSuffix), OpenMode::kRead);
      auto size = replaced ? (*replaced)->size() : Result<uint64_t>(std::move(replaced).error());
      if (!size || *size != e.log_size) {
        return Error{Errc::kCorruption,
                     fmt::format("{}: {} names segment {} as the merged replacement of {} segments, but its .log is "
                                 "{}; left as it is for inspection",
                                 dir_.string(), kSwapMarkerName, e.base, e.absorbed.size(),
                                 size ? fmt::format("{} bytes, not {}", *size, e.log_size) : size.error().to_string())};
      }
      for (int64_t base : e.absorbed) {
        for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
          auto r = fs_.remove(dir_ / segment_file_name(base, suffix));
          if (!r && r.error().code != Errc::kNotFound) return r;
        }
      }
    }
    HERALD_TRY(fs_.sync_dir(dir_));
  } else {
    HLOG_ERROR("{}: ignoring unreadable compaction swap marker ({})", dir_.string(), entries.error().to_string());
  }
  HERALD_TRY(fs_.remove(marker));
  return fs_.sync_dir(dir_);
}

namespace {

// What recovery writes (indexes, the checkpoint) is not needed to read what is
// acknowledged: with the disk full it is logged and skipped (false) rather
// than keep the partition closed. A torn index fails its checks at the next
// start and is rebuilt from the log; so an index file that cannot be written
// for any reason (made a directory, immutable) is skipped too (`any_error`).
template <class T>
Result<bool> unless_disk_full(const Result<T>& r, const std::filesystem::path& dir, std::string_view what,
                              bool any_error = false) {
  if (r) return true;
  if (r.error().code != Errc::kNoSpace && !any_error) return r.error();
  HLOG_WARN("{}: {} not written at open ({}); the log stays readable", dir.string(), what, r.error().message);
  return false;
}

}  // namespace

Result<void> PartitionLog::recover() {
  const LogConfig cfg = config();
  HERALD_TRY(finish_interrupted_swap());
  HERALD_ASSIGN_OR_RETURN(auto names, fs_.list_dir(dir_));
  std::vector<int64_t> bases;
  std::vector<std::string> index_files;
  bool removed_any = false;
  for (const auto& name : names) {
    if (ends_with(name, ".tmp") || ends_with(name, kCleanedSuffix)) {
      HERALD_TRY(fs_.remove(dir_ / name));  // an unfinished checkpoint or an uncommitted compaction
      removed_any = true;
    } else if (auto base = parse_segment_log_name(name)) {
      bases.push_back(*base);
    } else if (ends_with(name, kIndexSuffix) || ends_with(name, kTimeIndexSuffix)) {
      index_files.push_back(name);
    }
  }
  std::sort(bases.begin(), bases.end());
  for (const auto& name : index_files) {  // orphans of a deleted segment
    const std::string stem = name.substr(0, name.rfind('.'));
    if (!parse_segment_log_name(stem + kLogSuffix) ||
        !std::binary_search(bases.begin(), bases.end(), *parse_segment_log_name(stem + kLogSuffix))) {
      HERALD_TRY(fs_.remove(dir_ / name));
      removed_any = true;
    }
  }
  HERALD_ASSIGN_OR_RETURN(std::optional<Checkpoint> cp, read_checkpoint(fs_, dir_));

  for (int64_t base : bases) {
    HERALD_ASSIGN_OR_RETURN(auto seg, Segment::open(fs_, dir_, base, cfg.index_interval_bytes));
    segments_.emplace(base, std::move(seg));
  }
  if (segments_.empty()) {
    const int64_t base = cp ? std::max<int64_t>(cp->log_start_offset, 0) : 0;
    HERALD_ASSIGN_OR_RETURN(auto seg, Segment::create(fs_, dir_, base, cfg.index_interval_bytes));
    segments_.emplace(base, seg);
    HERALD_TRY(fs_.sync_dir(dir_));
    seg->dir_entry_synced = true;
    active_ = seg;
    log_start_ = log_end_ = durable_ = base;
    set_recovery_point(base, 0);
    cleaner_offset_ = base;
    return write_checkpoint_now(false);
  }

  auto last = segments_.rbegin()->second;
  if (cp && cp->clean && cp->active_base == last->base_offset() && cp->active_size > last->size()) {
    HLOG_ERROR("{}: {} has {} bytes, the clean shutdown left {} (log end {}): synced records are missing; "
               "recovering what is left",
               dir_.string(), last->path(kLogSuffix).filename().string(), last->size(), cp->active_size,
               cp->log_end_offset);
  }
  bool clean = cp && cp->clean && cp->active_base == last->base_offset() && cp->active_size == last->size();
  if (clean) {
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, last->summary());
    if (s.log_size != last->size() || s.next_offset != cp->log_end_offset) {
      HLOG_WARN("{}: clean checkpoint disagrees with the active segment; recovering", dir_.string());
      clean = false;
    }
  }
  if (clean) {
    log_end_ = cp->log_end_offset;
  } else {
    // Scan from the segment holding the recovery point (at least the last one).
    int64_t rp = cp ? cp->recovery_point : segments_.begin()->first;
    auto it = segments_.upper_bound(rp);
    if (it != segments_.begin()) --it;
    const int64_t t0 = mono_ns();
    uint64_t scanned = 0;
    std::vector<std::shared_ptr<Segment>> scanned_segments;
    int64_t min_offset = it->first;
    bool first_scanned = true;
    const std::string aside = fmt::format(".set-aside-{}", clock_());  // names what recovery does not trust
    for (; it != segments_.end(); ++it) {
      auto& seg = it->second;
      if (!first_scanned && seg->base_offset() != min_offset) {
        // Each segment starts where the previous one ends (compaction keeps
        // every segment's last batch, if need be empty). A gap means the
        // previous one lost its tail in the crash, or a segment file was lost:
        // nothing from here on is trusted, but it is set aside, not deleted.
        HLOG_ERROR("{}: segment {} does not follow the previous one (ends at {}); it and later ones are set aside "
                   "as *{}, the log continues from {}",
                   dir_.string(), seg->base_offset(), min_offset, aside, min_offset);
        for (auto later = it; later != segments_.end(); ++later) HERALD_TRY(later->second->set_aside(aside));
        segments_.erase(it, segments_.end());
        removed_any = true;
        break;
      }
      std::optional<SegmentIndex> prefix;
      if (first_scanned && cp && cp->recovery_position > seg->size() && seg->base_offset() == cp->recovery_point &&
          !(cp->clean && cp->active_base == seg->base_offset())) {  // (a clean one was logged above)
        HLOG_ERROR("{}: {} has {} bytes, {} of them were synced before the crash: synced records are missing; "
                   "recovering what is left",
                   dir_.string(), seg->path(kLogSuffix).filename().string(), seg->size(), cp->recovery_position);
      }
      if (first_scanned && cp && cp->recovery_position > 0 && seg->base_offset() == cp->recovery_point) {
        // The checkpoint vouches for a synced prefix whose index is on disk: scan only after it.
        auto idx = seg->read_index_files();
        if (idx && idx->summary().log_size == cp->recovery_position && cp->recovery_position <= seg->size()) {
          prefix.emplace(std::move(*idx));
        }
      }
      first_scanned = false;
      HERALD_ASSIGN_OR_RETURN(ScanResult scan, seg->scan(min_offset, std::move(prefix)));
      scanned += scan.valid_bytes - scan.start;
      scanned_segments.push_back(seg);
      if (scan.stop || scan.valid_bytes != scan.file_bytes) {
        HLOG_WARN("{}: truncating {} at byte {} of {} ({})", dir_.string(), seg->path(kLogSuffix).filename().string(),
                  scan.valid_bytes, scan.file_bytes, scan.stop ? scan.stop->to_string() : "");
        HERALD_TRY(seg->truncate_to(scan.valid_bytes));
        if (scan.start == 0) seg->mark_verified(scan.valid_bytes);
        seg->set_index(std::move(scan.index));
        // Nothing after the first invalid byte is trusted: later segments are set aside.
        for (auto later = std::next(it); later != segments_.end(); ++later) {
          HLOG_ERROR("{}: {} lies after the truncation point; set aside as {}{}", dir_.string(),
                     later->second->path(kLogSuffix).filename().string(),
                     later->second->path(kLogSuffix).filename().string(), aside);
          HERALD_TRY(later->second->set_aside(aside));
        }
        segments_.erase(std::next(it), segments_.end());
        removed_any = true;
        break;
      }
      min_offset = scan.index.summary().next_offset;
      if (scan.start == 0) seg->mark_verified(scan.valid_bytes);
      seg->set_index(std::move(scan.index));
    }
    last = segments_.rbegin()->second;
    // What survived the crash may sit only in the page cache: make it durable
    // before it counts as such, and persist the indexes of closed segments.
    for (auto& seg : scanned_segments) {
      if (!segments_.count(seg->base_offset())) continue;
      HERALD_TRY(seg->file()->sync());
      seg->synced_size = seg->size();
      if (seg != last) HERALD_TRY(unless_disk_full(seg->persist_index(true), dir_, "index", true));
    }
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, last->summary());
    log_end_ = s.next_offset;
    HLOG_INFO("{}: recovered {} bytes in {} segments in {:.1f} ms, log end {}", dir_.string(), scanned,
              scanned_segments.size(), static_cast<double>(mono_ns() - t0) / 1e6, log_end_.load());
  }
  if (removed_any) HERALD_TRY(fs_.sync_dir(dir_));
  for (auto& [base, seg] : segments_) {
    if (seg != last) seg->seal();
  }
  active_ = last;
  active_->synced_size = active_->size();
  active_->dir_entry_synced = true;
  if (active_->size() > 0) {
    // segment.ms after a restart: the first batch's timestamp, never in the future.
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, active_->summary());
    active_roll_ms_ = s.first_timestamp >= 0 ? std::min(s.first_timestamp, clock_()) : clock_();
  }

  int64_t start = segments_.begin()->first;
  if (cp) start = std::max(start, cp->log_start_offset);
  if (start > log_end_.load()) {
    // The log start was raised past what survived (kInterval + crash). Every
    // segment lies below it; offsets are never reused, so start afresh there
    // (Kafka's truncateFullyAndStartAt).
    HLOG_WARN("{}: log start {} beyond recovered end {}; starting an empty log there", dir_.string(), start,
              log_end_.load());
    for (auto& [base, seg] : segments_) HERALD_TRY(seg->remove_files());
    segments_.clear();
    HERALD_ASSIGN_OR_RETURN(auto seg, Segment::create(fs_, dir_, start, cfg.index_interval_bytes));
    HERALD_TRY(fs_.sync_dir(dir_));
    seg->dir_entry_synced = true;
    segments_.emplace(start, seg);
    active_ = seg;
    log_end_ = start;
  }
  log_start_ = start;
  durable_ = log_end_.load();
  if (clean) {
    // The index files just loaded describe the whole active segment.
    indexed_upto_ = active_->size();
  } else {
    auto persisted = active_->persist_index(true);
    HERALD_ASSIGN_OR_RETURN(bool written, unless_disk_full(persisted, dir_, "index", true));
    indexed_upto_ = written ? *persisted : 0;  // 0: the next start rescans the active segment
  }
  set_recovery_point(active_->base_offset(), indexed_upto_);
  cleaner_offset_ = cp ? std::max(cp->cleaner_offset, start) : start;
  // Segments wholly below the log start (a crash between checkpoint and unlink).
  std::vector<std::shared_ptr<Segment>> below;
  for (auto it = segments_.begin(); it != segments_.end() && std::next(it) != segments_.end(); ++it) {
    if (std::next(it)->first > start) break;
    below.push_back(it->second);
  }
  for (auto& seg : below) {
    HERALD_TRY(seg->remove_files());
    segments_.erase(seg->base_offset());
  }
  if (!below.empty()) HERALD_TRY(fs_.sync_dir(dir_));
  // From now on a crash must not trust the clean flag. On a full disk the log
  // opens readable, and append() writes this checkpoint before anything else.
  HERALD_ASSIGN_OR_RETURN(bool written, unless_disk_full(write_checkpoint_now(false), dir_, "checkpoint"));
  checkpoint_pending_.store(!written);
  return ok();
}


Result<void> PartitionLog::write_checkpoint_now(bool clean) {
  Checkpoint c;
  c.clean = clean;
  {
    std::lock_guard lock(append_mu_);
    c.active_base = active_->base_offset();
    c.active_size = active_->size();
  }
  std::lock_guard lock(checkpoint_mu_);
  c.log_start_offset = log_start_.load();
  c.log_end_offset = log_end_.load();
  c.recovery_point = recovery_point_.load();
  c.recovery_position = recovery_position_;
  c.cleaner_offset = cleaner_offset_.load();
  return write_checkpoint(fs_, dir_, c);
}

// ---------------------------------------------------------------- append

Result<AppendInfo> PartitionLog::append(MutableByteSpan batch, record::Crc crc) {
  HERALD_ASSIGN_OR_RETURN(record::BatchHeader h, record::check_integrity(batch, crc));
  if (h.records_count <= 0 || h.last_offset_delta != h.records_count - 1) {
    return Error{Errc::kCorruption, fmt::format("batch: records_count {} does not match last_offset_delta {}",
                                                h.records_count, h.last_offset_delta)};
  }
  if (checkpoint_pending_.load()) {  // recover() could not write it: the disk was full
    HERALD_TRY(write_checkpoint_now(false));
    checkpoint_pending_.store(false);
  }
  LogConfig cfg = config();
  std::unique_lock lock(append_mu_);
  if (closed_) return Error{Errc::kClosed, fmt::format("{}: log is closed", dir_.string())};
  if (failed_.load()) return failure_;
  const int64_t base = log_end_.load(std::memory_order_relaxed);
  const uint64_t size = active_->size();
  if (size > 0) {
    bool roll = size + batch.size() > static_cast<uint64_t>(cfg.segment_bytes);
    if (!roll) {
      // Kafka rolls a compacted log by max.compaction.lag.ms too, so that compaction can reach the records.
      const int64_t roll_ms = cfg.compact ? std::min(cfg.segment_ms, cfg.max_compaction_lag_ms) : cfg.segment_ms;
      roll = (active_roll_ms_ >= 0 && clock_() - active_roll_ms_ > roll_ms) ||
             base + h.last_offset_delta - active_->base_offset() > static_cast<int64_t>(UINT32_MAX) ||
             size + batch.size() > UINT32_MAX;
    }
    if (roll) HERALD_TRY(roll_locked(base));
  }
  record::set_base_offset(batch, base);
  record::set_partition_leader_epoch(batch, 0);
  h.base_offset = base;
  h.partition_leader_epoch = 0;
  bool truncated_back = true;
  auto w = active_->append(batch, h, &truncated_back);
  if (!w) {
    if (!truncated_back) {
      failure_ = Error{Errc::kIoError,
                       fmt::format("{}: log failed: an append failed ({}) and the file could not be truncated "
                                   "back to its size before it; the partition takes no writes until a restart",
                                   dir_.string(), w.error().to_string())};
      failed_.store(true);
      Error f = failure_;
      lock.unlock();
      fail_waiters(f);  // nothing appended before the failure is acknowledged any more
    }
    return std::move(w).error();
  }
  if (active_roll_ms_ < 0) active_roll_ms_ = clock_();
  log_end_.store(base + h.last_offset_delta + 1, std::memory_order_release);
  lock.unlock();
  if (flusher_ != nullptr && always_.load(std::memory_order_relaxed)) flusher_->notify(this);
  return AppendInfo{base, base + h.last_offset_delta};
}

Result<void> PartitionLog::roll_locked(int64_t new_base) {
  HERALD_ASSIGN_OR_RETURN(auto seg, Segment::create(fs_, dir_, new_base, config().index_interval_bytes));
  {
    std::unique_lock lock(segments_mu_);
    segments_[new_base] = seg;
  }
  pending_seal_.push_back(active_);
  active_ = std::move(seg);
  active_roll_ms_ = -1;
  return ok();
}

// ---------------------------------------------------------------- durability

void PartitionLog::flusher_sync() {
  auto r = sync_now();
  if (!r) HLOG_ERROR("{}: background sync: {}", dir_.string(), r.error().to_string());
}

Result<void> PartitionLog::flush() { return sync_now(); }

Result<void> PartitionLog::sync_now() {
  std::lock_guard sync_lock(sync_mu_);
  if (failed_.load()) {
    Error f = [&] {
      std::lock_guard lock(append_mu_);
      return failure_;
    }();
    fail_waiters(f);
    return f;
  }
  int64_t target;
  std::vector<std::shared_ptr<Segment>> segs;
  std::vector<uint64_t> sizes;
  {
    std::lock_guard lock(append_mu_);
    target = log_end_.load();
    segs = pending_seal_;
    segs.push_back(active_);
  }
  for (auto& s : segs) sizes.push_back(s->size());  // never below what `target` covers
  bool need_dir_sync = false;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i]->synced_size < sizes[i]) {
      const auto start = std::chrono::steady_clock::now();
      auto r = segs[i]->file()->sync();
      if (!r) return fail_log(r.error());
      if (flusher_ != nullptr) flusher_->sync_latency().observe(std::chrono::steady_clock::now() - start);
      segs[i]->synced_size = sizes[i];
    }
    need_dir_sync |= !segs[i]->dir_entry_synced;
  }
  if (need_dir_sync) {
    auto r = fs_.sync_dir(dir_);
    if (!r && r.error().code == Errc::kExhausted) {
      // No descriptor (or memory) to open the directory with: nothing reached the disk wrongly, so
      // the log stays usable. The acknowledgements wait; the flusher tries again 10 ms later.
      if (!dir_sync_waiting_.exchange(true)) {
        HLOG_WARN("{}: directory sync waits: {}", dir_.string(), r.error().to_string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (flusher_ != nullptr) flusher_->notify(this);
      return r.error();
    }
    if (!r) return fail_log(r.error());
    if (dir_sync_waiting_.exchange(false)) HLOG_INFO("{}: directory sync works again", dir_.string());
    for (auto& s : segs) s->dir_entry_synced = true;
  }
  if (target > durable_.load()) {
    durable_.store(target, std::memory_order_release);
  }
  fire_waiters(durable_.load());

  // Seal rolled segments: their data is synced; persist their indexes, then
  // move the recovery point past them.
  if (segs.size() > 1) {
    size_t sealed = 0;
    for (size_t i = 0; i + 1 < segs.size(); ++i) {
      auto r = segs[i]->persist_index(true);
      if (r) {
        segs[i]->seal();
        segs[i]->release_index();  // on disk now; reloaded on first lookup
      }
      if (!r) {
        HLOG_WARN("{}: could not persist index of {}: {}", dir_.string(), segs[i]->base_offset(),
                  r.error().to_string());
        break;
      }
      ++sealed;
    }
    if (sealed > 0) {
      {
        std::lock_guard lock(append_mu_);
        pending_seal_.erase(pending_seal_.begin(), pending_seal_.begin() + static_cast<ptrdiff_t>(sealed));
        set_recovery_point(pending_seal_.empty() ? active_->base_offset() : pending_seal_.front()->base_offset(), 0);
      }
      indexed_upto_ = 0;
      auto r = write_checkpoint_now(false);
      if (!r) HLOG_WARN("{}: checkpoint: {}", dir_.string(), r.error().to_string());
    }
  }
  advance_recovery_position();
  if (failed_.load()) {
    std::lock_guard lock(append_mu_);
    return failure_;
  }
  return ok();
}

Error PartitionLog::fail_log(const Error& cause) {
  Error f{Errc::kIoError, fmt::format("{}: log failed: {}", dir_.string(), cause.to_string())};
  {
    std::lock_guard lock(append_mu_);
    if (!failed_.load()) {
      failure_ = f;
      failed_.store(true);
    }
  }
  fail_waiters(f);
  return f;
}

Result<void> PartitionLog::while_open(const std::function<Result<void>()>& fn) {
  std::lock_guard maintenance(maintenance_mu_);
  HERALD_TRY(check_open());
  return fn();
}

Result<void> PartitionLog::check_open() {
  std::lock_guard lock(append_mu_);
  if (closed_) return Error{Errc::kClosed, fmt::format("{}: log is closed", dir_.string())};
  return ok();
}

void PartitionLog::set_recovery_point(int64_t base, uint64_t position) {
  std::lock_guard lock(checkpoint_mu_);
  recovery_point_.store(base);
  recovery_position_ = position;
}

void PartitionLog::advance_recovery_position() {
  std::shared_ptr<Segment> active;
  {
    std::lock_guard lock(append_mu_);
    if (!pending_seal_.empty()) return;  // the recovery point is an older segment
    active = active_;
  }
  if (active->synced_size < indexed_upto_ + recovery_step_bytes_) return;
  // Index snapshot first, then a sync that covers everything it describes,
  // then the checkpoint that points at both.
  auto indexed = active->persist_index(true);
  if (!indexed) {
    HLOG_WARN("{}: recovery point: {}", dir_.string(), indexed.error().to_string());
    return;
  }
  if (auto synced = active->file()->sync(); !synced) {
    (void)fail_log(synced.error());
    return;
  }
  indexed_upto_ = *indexed;
  set_recovery_point(active->base_offset(), *indexed);
  auto c = write_checkpoint_now(false);
  if (!c) HLOG_WARN("{}: checkpoint: {}", dir_.string(), c.error().to_string());
}

void PartitionLog::fire_waiters(int64_t durable) {
  std::vector<std::function<void(Result<void>)>> ready;
  {
    std::lock_guard lock(waiters_mu_);
    auto end = waiters_.lower_bound(durable);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (auto& done : ready) done(ok());
}

void PartitionLog::fail_waiters(const Error& e) {
  std::multimap<int64_t, std::function<void(Result<void>)>> failed;
  {
    std::lock_guard lock(waiters_mu_);
    failed.swap(waiters_);
  }
  for (auto& [offset, done] : failed) done(e);
}

void PartitionLog::wait_durable(int64_t offset, std::function<void(Result<void>)> done) {
  if (!always_.load(std::memory_order_relaxed)) {
    done(ok());
    return;
  }
  std::optional<Error> err;
  {
    std::lock_guard lock(waiters_mu_);
    if (failed_.load()) {
      err = Error{Errc::kIoError, fmt::format("{}: log failed; offset {} is not durable", dir_.string(), offset)};
    } else if (durable_.load(std::memory_order_acquire) <= offset) {
      waiters_.emplace(offset, std::move(done));
      return;
    }
  }
  if (err) {
    done(*err);
  } else {
    done(ok());
  }
}

int64_t PartitionLog::log_start_offset() const { return log_start_.load(std::memory_order_acquire); }
int64_t PartitionLog::log_end_offset() const { return log_end_.load(std::memory_order_acquire); }
int64_t PartitionLog::durable_offset() const { return durable_.load(std::memory_order_acquire); }
int64_t PartitionLog::high_watermark() const {
  // The policy read again after the value: a reader that saw interval must not return a log end
  // holding appends made after set_config() switched to always (which they could not see after).
  for (;;) {
    const bool always = always_.load(std::memory_order_acquire);
    const int64_t hw = always ? std::max(durable_offset(), always_floor_.load(std::memory_order_acquire))
                              : log_end_offset();
    if (always_.load(std::memory_order_acquire) == always) return hw;
  }
}

Result<void> PartitionLog::close() {
  std::lock_guard maintenance(maintenance_mu_);
  {
    std::lock_guard lock(append_mu_);
    if (closed_) return ok();
    closed_ = true;
    if (!active_) return ok();  // open() failed before the log was usable
  }
  if (flusher_ != nullptr) flusher_->remove(this);
  auto r = sync_now();
  Result<void> result;
  if (!r) {
    result = r;
  } else {
    std::shared_ptr<Segment> active;
    {
      std::lock_guard lock(append_mu_);
      active = active_;
    }
    auto p = active->persist_index(true);
    if (!p) {
      result = p.error();
    } else {
      bool all_sealed;
      {
        std::lock_guard lock(append_mu_);
        all_sealed = pending_seal_.empty();
        if (all_sealed) set_recovery_point(active_->base_offset(), *p);
      }
      auto c = write_checkpoint_now(all_sealed);
      if (!c) result = c;
    }
  }
  fail_waiters(Error{Errc::kClosed, fmt::format("{}: log closed", dir_.string())});
  return result;
}

// ---------------------------------------------------------------- config

void PartitionLog::set_config(const LogConfig& config) {
  {
    std::lock_guard lock(config_mu_);
    config_ = config;
  }
  const bool always = config.flush_policy == FlushPolicy::kAlways;
  if (always && !always_.load()) {
    // From interval to always: the high watermark becomes the durable offset.
    // Consumers may already read up to the log end: the flip happens with
    // appends held, and the high watermark stays at least that log end
    // (always_floor_) until the second sync has made it durable, so it never
    // goes back. The first sync makes the second one short.
    auto sync = [this] {
      auto r = sync_now();
      if (!r) HLOG_ERROR("{}: sync for flush.policy=always: {}", dir_.string(), r.error().to_string());
    };
    sync();
    {
      std::lock_guard lock(append_mu_);
      always_floor_.store(log_end_.load());
      always_.store(true);
    }
    sync();
  }
  always_.store(always);
  {
    std::shared_lock lock(segments_mu_);
    for (auto& [base, seg] : segments_) seg->set_index_interval(config.index_interval_bytes);
  }
  if (flusher_ != nullptr) {
    flusher_->set_interval(this, config.flush_policy == FlushPolicy::kInterval ? config.flush_interval_ms : 0);
  }
  if (!always_.load()) fire_waiters(INT64_MAX);
}

LogConfig PartitionLog::config() const {
  std::lock_guard lock(config_mu_);
  return config_;
}

uint64_t PartitionLog::size_bytes() const {
  std::shared_lock lock(segments_mu_);
  uint64_t total = 0;
  for (const auto& [base, seg] : segments_) total += seg->size();
  return total;
}

size_t PartitionLog::segment_count() const {
  std::shared_lock lock(segments_mu_);
  return segments_.size();
}

PartitionLog::SegmentMap PartitionLog::snapshot() const {
  std::shared_lock lock(segments_mu_);
  return segments_;
}

std::vector<std::shared_ptr<Segment>> PartitionLog::persisted_closed_segments() const {
  const int64_t rp = recovery_point_.load();
  std::vector<std::shared_ptr<Segment>> out;
  std::shared_lock lock(segments_mu_);
  for (auto it = segments_.begin(); it != segments_.end() && std::next(it) != segments_.end(); ++it) {
    if (it->first >= rp) break;
    out.push_back(it->second);
  }
  return out;
}

// ---------------------------------------------------------------- reads

namespace {

// The segment holding `offset` (greatest base <= offset), else the first.
std::shared_ptr<Segment> floor_segment(const std::map<int64_t, std::shared_ptr<Segment>>& m, int64_t offset) {
  if (m.empty()) return nullptr;
  auto it = m.upper_bound(offset);
  if (it != m.begin()) --it;
  return it->second;
}

}  // namespace

Result<ReadResult> PartitionLog::read(int64_t offset, uint64_t max_bytes, int64_t max_offset) const {
  const int64_t start = log_start_offset();
  const int64_t end = log_end_offset();
  if (offset < start || offset > end) {
    return Error{Errc::kOutOfRange,
                 fmt::format("{}: offset {} outside [{}, {}]", dir_.string(), offset, start, end)};
  }
  ReadResult out;
  if (offset == end || offset >= max_offset) return out;

  // The segment to read `from` in, after `done` (null: the first): normally the next one. A
  // compaction may have swapped segments meanwhile, merging `done` (an object no longer in the
  // map) with its neighbours: then the segment now holding `from` is read from `from` on.
  auto segment_for = [this](int64_t from, const Segment* done) -> std::shared_ptr<Segment> {
    std::shared_lock lock(segments_mu_);
    auto seg = floor_segment(segments_, from);
    if (done == nullptr || seg.get() != done) return seg;
    auto it = segments_.upper_bound(done->base_offset());
    return it == segments_.end() ? nullptr : it->second;
  };
  std::shared_ptr<Segment> seg = segment_for(offset, nullptr);
  if (offset < log_start_offset()) {  // retention ran meanwhile
    return Error{Errc::kOutOfRange, fmt::format("{}: offset {} below log start", dir_.string(), offset)};
  }
  int64_t next = offset;  // the first offset not yet passed
  bool done = false;
  bool has_records = false;
  bool served = false;
  while (seg && !done) {
    const uint64_t seg_end = seg->size();
    BatchHeaderReader headers(*seg, seg_end);
    uint64_t pos = 0;
    if (next > seg->base_offset()) {
      HERALD_ASSIGN_OR_RETURN(pos, seg->lookup(next));
    }
    int64_t prev_last = -1;
    FileSlice* slice = nullptr;
    while (pos < seg_end) {
      auto hr = headers.at(pos);
      // A batch's base offset is the log end when it was appended, and the log end only grows;
      // offsets increase within a segment, and a batch served never overlaps the one before it.
      if (hr && (hr->base_offset < seg->base_offset() || hr->base_offset <= prev_last ||
                 hr->base_offset > log_end_offset() ||
                 (served && hr->base_offset < next && hr->last_offset() >= next))) {
        hr = Error{Errc::kCorruption, fmt::format("{}: batch at byte {} has offset {} out of sequence",
                                                  seg->file()->path().string(), pos, hr->base_offset)};
      }
      if (!hr) {
        // A damaged header: the batches before it are served; a read that starts at it gets the error.
        if (out.total_bytes > 0) return out;
        return std::move(hr).error();
      }
      const record::BatchHeader& h = *hr;
      prev_last = h.last_offset();
      const uint64_t size = h.size_bytes();
      if (h.last_offset() < next) {  // before the requested offset, or already served
        pos += size;
        continue;
      }
      // The limit counts from the first batch with records: leading empty batches (kept by
      // compaction) never leave a read holding nothing else, which clients such as
      // kafka-python 2.0 cannot get past.
      if (h.base_offset >= max_offset || (has_records && out.total_bytes + size > max_bytes)) {
        done = true;
        break;
      }
      if (slice == nullptr) {
        out.slices.push_back(FileSlice{seg->file(), pos, 0, seg->verified_mark()});
        slice = &out.slices.back();
      }
      slice->size += size;
      out.total_bytes += size;
      pos += size;
      next = h.last_offset() + 1;
      served = true;
      has_records |= h.records_count > 0;
      if (has_records && out.total_bytes >= max_bytes) {
        done = true;
        break;
      }
    }
    // The active segment may have grown (and rolled) since seg_end was taken: go on in it first.
    if (!done && seg->size() == seg_end) seg = segment_for(next, seg.get());
  }
  return out;
}

Result<void> PartitionLog::for_each_batch(int64_t from,
                                          const std::function<void(const record::BatchHeader&)>& fn) const {
  auto segs = snapshot();
  auto first = floor_segment(segs, from);
  if (!first) return ok();
  for (auto it = segs.find(first->base_offset()); it != segs.end(); ++it) {
    const auto& seg = it->second;
    const uint64_t seg_end = seg->size();
    BatchHeaderReader headers(*seg, seg_end);
    uint64_t pos = 0;
    if (from > seg->base_offset()) {
      HERALD_ASSIGN_OR_RETURN(pos, seg->lookup(from));
    }
    while (pos < seg_end) {
      HERALD_ASSIGN_OR_RETURN(record::BatchHeader h, headers.at(pos));
      if (h.last_offset() >= from) fn(h);
      pos += h.size_bytes();
    }
  }
  return ok();
}

Result<std::optional<TimestampOffset>> PartitionLog::find_in_batch_for_timestamp(const Segment& seg, uint64_t pos,
                                                                                 const record::BatchHeader& h,
                                                                                 int64_t ts, int64_t start) const {
  if (h.timestamp_type() == record::TimestampType::kLogAppendTime) {
    return std::optional<TimestampOffset>(TimestampOffset{h.max_timestamp, std::max(h.base_offset, start)});
  }
  Bytes batch(h.size_bytes());
  FileSlice slice{seg.file(), pos, batch.size(), seg.verified_mark()};
  HERALD_TRY(read_slice(slice, batch.data()));
  Bytes scratch;
  std::optional<TimestampOffset> found;
  HERALD_TRY(record::for_each_record(batch, scratch, [&](const record::Record& r) -> Result<void> {
    const int64_t t = h.base_timestamp + r.timestamp_delta;
    const int64_t o = h.base_offset + r.offset_delta;
    if (!found && t >= ts && o >= start) found = TimestampOffset{t, o};
    return ok();
  }));
  return found;
}

Result<std::optional<TimestampOffset>> PartitionLog::offset_for_timestamp(int64_t ts) const {
  const int64_t start = log_start_offset();
  auto segs = snapshot();
  auto first = floor_segment(segs, start);
  if (!first) return std::optional<TimestampOffset>();
  for (auto it = segs.find(first->base_offset()); it != segs.end(); ++it) {
    const auto& seg = it->second;
    const uint64_t seg_end = seg->size();
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, seg->summary());
    if (s.max_timestamp < ts) continue;
    HERALD_ASSIGN_OR_RETURN(int64_t from, seg->lookup_time(ts));
    from = std::max(from, start);
    HERALD_ASSIGN_OR_RETURN(uint64_t pos, seg->lookup(from));
    BatchHeaderReader headers(*seg, seg_end);
    while (pos < seg_end) {
      HERALD_ASSIGN_OR_RETURN(record::BatchHeader h, headers.at(pos));
      if (h.last_offset() >= start && h.max_timestamp >= ts) {
        HERALD_ASSIGN_OR_RETURN(auto found, find_in_batch_for_timestamp(*seg, pos, h, ts, start));
        if (found) return found;
      }
      pos += h.size_bytes();
    }
  }
  return std::optional<TimestampOffset>();
}

std::optional<TimestampOffset> PartitionLog::max_timestamp() const {
  const int64_t start = log_start_offset();
  auto segs = snapshot();
  std::shared_ptr<Segment> best_seg;
  SegmentSummary best;
  for (const auto& [base, seg] : segs) {
    auto s = seg->summary();
    if (!s || s->log_size == 0 || s->next_offset <= start) continue;
    if (!best_seg || s->max_timestamp > best.max_timestamp) {
      best = *s;
      best_seg = seg;
    }
  }
  if (!best_seg || best.max_timestamp < 0) return std::nullopt;
  // Find the exact record inside the batch that holds the maximum.
  auto exact = [&]() -> Result<std::optional<TimestampOffset>> {
    HERALD_ASSIGN_OR_RETURN(uint64_t pos, best_seg->lookup(best.max_timestamp_batch));
    BatchHeaderReader headers(*best_seg, best_seg->size());
    while (pos < headers.end()) {
      HERALD_ASSIGN_OR_RETURN(record::BatchHeader h, headers.at(pos));
      if (h.base_offset == best.max_timestamp_batch) {
        // Kafka pairs the maximum with its own record even below the log start: never with another's.
        return find_in_batch_for_timestamp(*best_seg, pos, h, best.max_timestamp, h.base_offset);
      }
      pos += h.size_bytes();
    }
    return std::optional<TimestampOffset>();
  };
  auto r = exact();
  if (r && *r) return **r;
  return TimestampOffset{best.max_timestamp, std::max(best.max_timestamp_batch, start)};
}

// ---------------------------------------------------------------- deletion

Result<void> PartitionLog::delete_segments(const std::vector<std::shared_ptr<Segment>>& doomed,
                                           int64_t new_log_start) {
  const int64_t old_start = log_start_.load();
  if (new_log_start > old_start) {
    log_start_.store(new_log_start);
    auto c = write_checkpoint_now(false);
    if (!c) {
      log_start_.store(old_start);
      return c;
    }
  }
  if (doomed.empty()) return ok();
  {
    std::unique_lock lock(segments_mu_);
    for (const auto& seg : doomed) segments_.erase(seg->base_offset());
  }
  if (swap_incomplete_) {
    // After a compaction swap failed half-way, a doomed segment's name may hold the merged
    // replacement of later, live segments: the files wait for open(), which finishes the swap
    // and then deletes what lies wholly below the log start.
    HLOG_WARN("{}: {} segments below the log start stay on disk until the log is reopened (a compaction swap "
              "is unfinished)",
              dir_.string(), doomed.size());
    return ok();
  }
  for (const auto& seg : doomed) {
    HLOG_INFO("{}: deleting segment {}", dir_.string(), seg->base_offset());
    auto r = seg->remove_files();
    if (!r) HLOG_WARN("{}: {}", dir_.string(), r.error().to_string());  // deleted again at next open
  }
  return fs_.sync_dir(dir_);
}

Result<int64_t> PartitionLog::delete_records_before(int64_t offset) {
  std::lock_guard maintenance(maintenance_mu_);
  HERALD_TRY(check_open());
  (void)remove_leftover_swap_marker();  // if it stays, delete_segments() keeps the files until a reopen
  if (offset == -1) offset = high_watermark();
  if (offset < 0 || offset > log_end_offset()) {
    return Error{Errc::kOutOfRange, fmt::format("{}: delete records before {}: log end is {}", dir_.string(),
                                                offset, log_end_offset())};
  }
  if (offset <= log_start_offset()) return log_start_offset();
  auto closed = persisted_closed_segments();
  std::vector<std::shared_ptr<Segment>> doomed;
  auto segs = snapshot();
  for (const auto& seg : closed) {
    auto next = segs.upper_bound(seg->base_offset());
    if (next == segs.end() || next->first > offset) break;
    doomed.push_back(seg);
  }
  HERALD_TRY(delete_segments(doomed, offset));
  return log_start_offset();
}

Result<void> PartitionLog::roll_expired_active(int64_t now, int64_t retention_ms) {
  {
    std::lock_guard lock(append_mu_);
    if (failed_.load() || active_->size() == 0) return ok();
    HERALD_ASSIGN_OR_RETURN(SegmentSummary s, active_->summary());
    if (s.max_timestamp < 0 || s.max_timestamp >= now - retention_ms) return ok();
    HERALD_TRY(roll_locked(log_end_.load()));
  }
  return sync_now();  // seals it and moves the recovery point past it
}

Result<void> PartitionLog::apply_retention(int64_t now) {
  std::lock_guard maintenance(maintenance_mu_);
  HERALD_TRY(check_open());
  (void)remove_leftover_swap_marker();  // if it stays, delete_segments() keeps the files until a reopen
  const LogConfig cfg = config();
  // As Kafka, the active segment expires too: segments roll only on append, so an idle partition
  // would keep records past retention.ms for ever. Rolled here, it is deleted below with the rest.
  if (cfg.delete_retention && cfg.retention_ms >= 0) HERALD_TRY(roll_expired_active(now, cfg.retention_ms));
  auto closed = persisted_closed_segments();
  auto segs = snapshot();
  const int64_t start = log_start_offset();
  std::vector<std::shared_ptr<Segment>> doomed;
  size_t i = 0;
  // Segments wholly below the log start (left by delete_records_before while unsealed).
  for (; i < closed.size(); ++i) {
    auto next = segs.upper_bound(closed[i]->base_offset());
    if (next == segs.end() || next->first > start) break;
    doomed.push_back(closed[i]);
  }
  if (cfg.delete_retention && cfg.retention_ms >= 0) {
    for (; i < closed.size(); ++i) {
      HERALD_ASSIGN_OR_RETURN(SegmentSummary s, closed[i]->summary());
      int64_t newest = s.max_timestamp;
      if (newest < 0) {
        // No record has a timestamp (all NO_TIMESTAMP, or only batches compaction emptied): as Kafka
        // does, the segment's age is that of its file's last change.
        std::error_code ec;
        const auto changed = std::filesystem::last_write_time(closed[i]->path(kLogSuffix), ec);
        if (ec) break;  // age unknown: kept, and so is everything after it
        newest = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::file_clock::to_sys(changed).time_since_epoch())
                     .count();
      }
      if (newest >= now - cfg.retention_ms) break;
      doomed.push_back(closed[i]);
    }
  }
  if (cfg.delete_retention && cfg.retention_bytes >= 0) {
    int64_t diff = static_cast<int64_t>(size_bytes()) - cfg.retention_bytes;
    for (const auto& seg : doomed) diff -= static_cast<int64_t>(seg->size());
    for (; i < closed.size(); ++i) {
      const auto size = static_cast<int64_t>(closed[i]->size());
      if (diff - size < 0) break;
      diff -= size;
      doomed.push_back(closed[i]);
    }
  }
  if (doomed.empty()) return ok();
  auto next = segs.upper_bound(doomed.back()->base_offset());
  const int64_t new_start = std::max(start, next->first);
  return delete_segments(doomed, new_start);
}

Result<void> PartitionLog::remove(const std::filesystem::path& dir, FileSystem* fs_opt) {
  FileSystem& fs = fs_opt != nullptr ? *fs_opt : FileSystem::posix();
  HERALD_ASSIGN_OR_RETURN(auto names, fs.list_dir(dir));
  for (const auto& name : names) HERALD_TRY(fs.remove(dir / name));
  HERALD_TRY(fs.remove_dir(dir));
  return fs.sync_dir(dir.parent_path());
}

}  // namespace herald::storage
