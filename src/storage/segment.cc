#include "storage/segment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "storage/index_cache.h"

namespace herald::storage {

std::string segment_file_name(int64_t base_offset, std::string_view suffix) {
  return fmt::format("{:020d}{}", base_offset, suffix);
}

std::optional<int64_t> parse_segment_log_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() != 20 + kSuffix.size() || name.substr(20) != kSuffix) return std::nullopt;
  int64_t v = 0;
  for (size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    if (v > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

Segment::Segment(FileSystem& fs, std::filesystem::path dir, int64_t base_offset, std::shared_ptr<File> file,
                 uint64_t size, int32_t index_interval)
    : fs_(fs),
      dir_(std::move(dir)),
      base_offset_(base_offset),
      file_(std::move(file)),
      size_(size),
      index_interval_(index_interval) {}

Segment::~Segment() { IndexCache::global().forget(this); }

Result<std::shared_ptr<Segment>> Segment::create(FileSystem& fs, const std::filesystem::path& dir,
                                                 int64_t base_offset, int32_t index_interval) {
  HERALD_ASSIGN_OR_RETURN(auto file, fs.open(dir / segment_file_name(base_offset, kLogSuffix), OpenMode::kTruncate));
  std::shared_ptr<Segment> seg(new Segment(fs, dir, base_offset, std::move(file), 0, index_interval));
  seg->index_.emplace(base_offset);
  seg->changed_index_locked();  // no index files yet
  seg->verified_->appended_from.store(0);
  return seg;
}

Result<std::shared_ptr<Segment>> Segment::open(FileSystem& fs, const std::filesystem::path& dir,
                                               int64_t base_offset, int32_t index_interval) {
  HERALD_ASSIGN_OR_RETURN(auto file, fs.open(dir / segment_file_name(base_offset, kLogSuffix), OpenMode::kReadWrite));
  HERALD_ASSIGN_OR_RETURN(uint64_t size, file->size());
  std::shared_ptr<Segment> seg(new Segment(fs, dir, base_offset, std::move(file), size, index_interval));
  seg->synced_size = size;
  seg->dir_entry_synced = true;
  seg->verified_->appended_from.store(size);  // batches appended from now on were validated by append()
  return seg;
}

std::filesystem::path Segment::path(std::string_view suffix) const {
  return dir_ / segment_file_name(base_offset_, suffix);
}

Result<void> Segment::append(ByteSpan batch, const record::BatchHeader& h, bool* truncated_back) {
  *truncated_back = true;
  const uint64_t pos = size_.load(std::memory_order_relaxed);
  auto w = file_->write_at(pos, batch);
  if (!w) {
    auto t = file_->truncate(pos);
    if (!t) {
      *truncated_back = false;
      HLOG_ERROR("{}: could not truncate back a failed append: {}", file_->path().string(), t.error().to_string());
    }
    return w;
  }
  {
    std::lock_guard lock(index_mu_);
    HERALD_CHECK(index_.has_value(), "append to segment {} without an index", base_offset_);
    index_->on_batch(h, pos, index_interval_.load(std::memory_order_relaxed));
    changed_index_locked();
  }
  size_.store(pos + batch.size(), std::memory_order_release);
  return ok();
}

Result<void> Segment::truncate_to(uint64_t size) {
  HERALD_TRY(file_->truncate(size));
  HERALD_TRY(file_->sync());
  size_.store(size, std::memory_order_release);
  if (verified_->prefix.load() > size) verified_->prefix.store(size);
  if (verified_->appended_from.load() > size) verified_->appended_from.store(size);
  synced_size = std::min(synced_size, size);
  std::lock_guard lock(index_mu_);
  index_.reset();
  summary_.reset();
  return ok();
}

Result<void> Segment::load_index_locked() const {
  if (index_) return ok();
  files_version_ = index_version_;  // what is loaded below is what the files (or the log) give
  const uint64_t size = this->size();
  // A retired segment's file names belong to its replacement: it scans its own log.
  const bool retired = retired_.load();
  if (!retired) {
    auto o = fs_.read_all(path(kIndexSuffix));
    auto t = o ? fs_.read_all(path(kTimeIndexSuffix)) : Result<Bytes>(o.error());
    if (o && t) {
      auto idx = SegmentIndex::decode(*o, *t, base_offset_);
      if (idx && idx->summary().log_size == size) {
        index_.emplace(std::move(*idx));
        return ok();
      }
      HLOG_WARN("{}: rebuilding index ({})", path(kLogSuffix).string(),
                idx ? fmt::format("describes {} bytes, log has {}", idx->summary().log_size, size)
                    : idx.error().to_string());
    } else {
      HLOG_WARN("{}: rebuilding index ({})", path(kLogSuffix).string(), (o ? t.error() : o.error()).to_string());
    }
  }
  HERALD_ASSIGN_OR_RETURN(ScanResult scan, this->scan(base_offset_));
  if (scan.stop || scan.valid_bytes != size) {
    // A closed segment that does not check out: index what is valid and let
    // reads past that point fail with kCorruption (BatchHeaderReader / read_slice).
    HLOG_ERROR("{}: corrupt at byte {} of {}: {}", path(kLogSuffix).string(), scan.valid_bytes, size,
               scan.stop ? scan.stop->to_string() : "size changed");
    index_.emplace(std::move(scan.index));
    return ok();
  }
  index_.emplace(std::move(scan.index));
  if (retired) return ok();
  // Best effort: a rebuilt index is written back so the next start is fast.
  Bytes ob = index_->encode_offset_index();
  Bytes tb = index_->encode_time_index();
  auto w1 = fs_.atomic_write(path(kIndexSuffix), ob);
  auto w2 = w1 ? fs_.atomic_write(path(kTimeIndexSuffix), tb) : w1;
  if (!w2) HLOG_WARN("{}: could not write rebuilt index: {}", path(kLogSuffix).string(), w2.error().to_string());
  return ok();
}

template <typename Fn>
auto Segment::with_index(Fn fn) const -> Result<decltype(fn(std::declval<const SegmentIndex&>()))> {
  decltype(fn(std::declval<const SegmentIndex&>())) out;
  size_t bytes = 0;
  {
    std::lock_guard lock(index_mu_);
    HERALD_TRY(load_index_locked());
    out = fn(*index_);
    bytes = index_->memory_bytes();
  }
  if (sealed_.load(std::memory_order_acquire)) IndexCache::global().touch(*this, bytes);
  return out;
}

Result<SegmentSummary> Segment::summary() const {
  {
    std::lock_guard lock(index_mu_);
    if (index_) return index_->summary();
    if (summary_ && summary_->log_size == size()) return *summary_;
  }
  return with_index([](const SegmentIndex& idx) { return idx.summary(); });
}

void Segment::release_index() {
  std::lock_guard lock(index_mu_);
  if (!index_) return;
  summary_ = index_->summary();
  index_.reset();
}

bool Segment::drop_index() const {
  std::lock_guard lock(index_mu_);
  if (!sealed_.load(std::memory_order_acquire) || !index_ || index_version_ != files_version_) return false;
  summary_ = index_->summary();
  index_.reset();
  return true;
}

Result<uint64_t> Segment::lookup(int64_t offset) const {
  return with_index([offset](const SegmentIndex& idx) { return idx.lookup(offset); });
}

Result<int64_t> Segment::lookup_time(int64_t ts) const {
  return with_index([ts](const SegmentIndex& idx) { return idx.lookup_time(ts); });
}

void Segment::set_index(SegmentIndex index, bool in_files) {
  std::lock_guard lock(index_mu_);
  index_.emplace(std::move(index));
  summary_.reset();
  changed_index_locked();
  if (in_files) files_version_ = index_version_;
}

void Segment::set_index_interval(int32_t interval) { index_interval_.store(interval, std::memory_order_relaxed); }

Result<SegmentIndex> Segment::read_index_files() const {
  HERALD_ASSIGN_OR_RETURN(Bytes o, fs_.read_all(path(kIndexSuffix)));
  HERALD_ASSIGN_OR_RETURN(Bytes t, fs_.read_all(path(kTimeIndexSuffix)));
  return SegmentIndex::decode(o, t, base_offset_);
}

Result<uint64_t> Segment::persist_index(bool sync) const {
  Bytes ob, tb;
  uint64_t described;
  uint64_t version;
  {
    std::lock_guard lock(index_mu_);
    HERALD_CHECK(index_.has_value(), "persist_index of segment {} without an index", base_offset_);
    described = index_->summary().log_size;
    if (retired_.load()) return described;
    ob = index_->encode_offset_index();
    tb = index_->encode_time_index();
    version = index_version_;
  }
  // Written in place, not via rename: a torn index fails its CRC or its
  // log_size check and is rebuilt from the log, which is the source of truth.
  for (auto [suffix, bytes] : {std::pair<const char*, const Bytes*>{kIndexSuffix, &ob}, {kTimeIndexSuffix, &tb}}) {
    HERALD_ASSIGN_OR_RETURN(auto f, fs_.open(path(suffix), OpenMode::kTruncate));
    HERALD_TRY(f->write_at(0, *bytes));
    if (sync) HERALD_TRY(f->sync());
  }
  std::lock_guard lock(index_mu_);
  files_version_ = std::max(files_version_, version);
  return described;
}

Result<ScanResult> Segment::scan(int64_t min_offset, std::optional<SegmentIndex> prefix) const {
  ScanResult out{SegmentIndex(base_offset_), 0, 0, 0, std::nullopt};
  HERALD_ASSIGN_OR_RETURN(out.file_bytes, file_->size());
  if (prefix) {
    HERALD_CHECK(prefix->summary().log_size <= out.file_bytes, "scan prefix beyond the end of segment {}",
                 base_offset_);
    out.start = prefix->summary().log_size;
    min_offset = std::max(min_offset, prefix->summary().next_offset);
    out.index = std::move(*prefix);
  }
  const uint64_t end = out.file_bytes;
  const int32_t interval = index_interval_.load(std::memory_order_relaxed);
  constexpr size_t kChunk = size_t{1} << 20;
  Bytes buf;
  uint64_t buf_pos = 0;  // file position of buf[0]
  auto ensure = [&](uint64_t pos, uint64_t n) -> Result<void> {
    if (pos >= buf_pos && pos + n <= buf_pos + buf.size()) return ok();
    const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(n, kChunk), end - pos);
    buf.resize(want);
    HERALD_TRY(file_->read_exact(pos, MutableByteSpan(buf.data(), want)));
    buf_pos = pos;
    return ok();
  };
  uint64_t pos = out.start;
  int64_t next_min = std::max(min_offset, base_offset_);
  auto stop = [&](Errc code, std::string why) {
    out.stop = Error{code, fmt::format("{}: {} at byte {}", path(kLogSuffix).string(), why, pos)};
  };
  while (pos < end) {
    if (end - pos < record::kBatchHeaderSize) {
      stop(Errc::kTruncated, "partial batch header");
      break;
    }
    HERALD_TRY(ensure(pos, record::kBatchHeaderSize));
    auto h = record::parse_header(ByteSpan(buf.data() + (pos - buf_pos), record::kBatchHeaderSize));
    if (!h) {
      stop(h.error().code, h.error().message);
      break;
    }
    const uint64_t size = h->size_bytes();
    if (size > end - pos) {
      stop(Errc::kTruncated, fmt::format("batch of {} bytes runs past the end", size));
      break;
    }
    HERALD_TRY(ensure(pos, size));
    auto checked = record::check_integrity(ByteSpan(buf.data() + (pos - buf_pos), size));
    if (!checked) {
      stop(checked.error().code, checked.error().message);
      break;
    }
    if (h->base_offset < next_min || h->last_offset_delta < 0 ||
        h->last_offset() - base_offset_ > static_cast<int64_t>(UINT32_MAX)) {
      stop(Errc::kCorruption, fmt::format("batch offsets {}..{} out of sequence (expected >= {})", h->base_offset,
                                          h->last_offset(), next_min));
      break;
    }
    out.index.on_batch(*h, pos, interval);
    next_min = h->last_offset() + 1;
    pos += size;
  }
  out.valid_bytes = pos;
  return out;
}

Result<void> Segment::remove_files() {
  retire();
  for (const char* suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
    auto r = fs_.remove(path(suffix));
    if (!r && r.error().code != Errc::kNotFound) return r;
  }
  return ok();
}

Result<void> Segment::set_aside(std::string_view suffix) {
  retire();
  for (const char* kind : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
    auto from = path(kind);
    auto to = from;
    to += suffix;
    auto r = fs_.rename(from, to);
    if (!r && r.error().code != Errc::kNotFound) return r;
  }
  return ok();
}

Result<record::BatchHeader> BatchHeaderReader::at(uint64_t position) {
  auto corrupt = [&](std::string why) {
    return Error{Errc::kCorruption,
                 fmt::format("{}: {} at byte {}", segment_.file()->path().string(), why, position)};
  };
  if (position + record::kBatchHeaderSize > end_) return corrupt("batch header runs past the end");
  if (position < buf_pos_ || position + record::kBatchHeaderSize > buf_pos_ + buf_len_) {
    // Big batches: read just the header. Small ones: a window covering several.
    const size_t window = last_batch_size_ >= 2048 ? 64 : sizeof(buf_);
    const size_t want = static_cast<size_t>(std::min<uint64_t>(window, end_ - position));
    HERALD_ASSIGN_OR_RETURN(size_t n, segment_.file()->read_at(position, MutableByteSpan(buf_, want)));
    if (n < record::kBatchHeaderSize) return corrupt("short read of batch header");
    buf_pos_ = position;
    buf_len_ = n;
  }
  auto h = record::parse_header(ByteSpan(buf_ + (position - buf_pos_), record::kBatchHeaderSize));
  if (!h) return corrupt(h.error().message);
  if (h->magic != record::kMagicV2) return corrupt(fmt::format("magic {}", h->magic));
  if (h->size_bytes() > end_ - position) return corrupt("batch runs past the end of the segment");
  if (h->last_offset_delta < 0) return corrupt("negative last offset delta");
  last_batch_size_ = h->size_bytes();
  return h;
}

}  // namespace herald::storage
