// segment.h: one segment of a partition log: NNNNNNNNNNNNNNNNNNNN.log (Kafka
// v2 batches back to back, exactly as appended) plus its .index and
// .timeindex. Formats: docs/storage-format.md sections 2-4.
//
// Lifecycle: PartitionLog creates a segment on roll (create) or finds it on
// start (open); the last one is the active segment and takes appends; the
// others are closed and immutable until retention deletes them or compaction
// replaces them. Segments are shared_ptr-owned: readers keep a snapshot.
//
//   auto seg = Segment::create(fs, dir, 42);
//   HERALD_TRY((*seg)->append(batch_bytes, header, 4096));  // appender thread only
//   HERALD_ASSIGN_OR_RETURN(uint64_t pos, (*seg)->lookup(50));  // any thread
//
// Threading: append() and truncate() are called by one thread at a time (the
// PartitionLog append lock); size() is an atomic that grows only after the
// bytes are written, so readers never see a partial batch. Index access is
// guarded by an internal mutex. The index of a closed segment is loaded from
// its files on first use, and rebuilt by scanning the .log if the files are
// missing, corrupt or describe a different size. Once sealed, a segment's
// loaded index is tracked by the IndexCache, which drops it (keeping the
// summary) when the process holds too many.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"
#include "storage/file.h"
#include "storage/index.h"

namespace herald::storage {

inline constexpr const char* kLogSuffix = ".log";
inline constexpr const char* kIndexSuffix = ".index";
inline constexpr const char* kTimeIndexSuffix = ".timeindex";
inline constexpr const char* kCleanedSuffix = ".cleaned";

// "00000000000000000042" + suffix.
std::string segment_file_name(int64_t base_offset, std::string_view suffix);
// The base offset of "NNNNNNNNNNNNNNNNNNNN.log" (exactly 20 digits), or nullopt.
std::optional<int64_t> parse_segment_log_name(std::string_view name);

// Which bytes of a segment's .log passed a CRC check in this process, so that
// read_slice checks each byte once per process lifetime.
struct VerifiedMark {
  std::atomic<uint64_t> prefix{0};                  // [0, prefix): recovery scan or an earlier read_slice
  std::atomic<uint64_t> appended_from{UINT64_MAX};  // [appended_from, size): validated by append()
  bool covers(uint64_t position, uint64_t end) const {
    return end <= prefix.load(std::memory_order_acquire) ||
           position >= appended_from.load(std::memory_order_acquire);
  }
  // Records that [position, end) checked out; extends the prefix if contiguous.
  void checked(uint64_t position, uint64_t end) {
    uint64_t cur = prefix.load(std::memory_order_acquire);
    while (cur >= position && cur < end && !prefix.compare_exchange_weak(cur, end, std::memory_order_acq_rel)) {
    }
  }
};

// Outcome of a scan of a segment's log from byte 0.
struct ScanResult {
  SegmentIndex index;                  // covers the valid prefix
  uint64_t valid_bytes = 0;            // end of the last batch that checked out
  uint64_t file_bytes = 0;             // size of the file when scanned
  uint64_t start = 0;                  // where the scan began (0, or the end of a trusted prefix)
  std::optional<Error> stop;           // why the scan stopped before file_bytes, if it did
};

class Segment : public std::enable_shared_from_this<Segment> {
 public:
  // A new, empty segment (truncates an existing file of that name).
  static Result<std::shared_ptr<Segment>> create(FileSystem& fs, const std::filesystem::path& dir,
                                                 int64_t base_offset, int32_t index_interval);
  // An existing .log; size from the file; index loaded lazily.
  static Result<std::shared_ptr<Segment>> open(FileSystem& fs, const std::filesystem::path& dir,
                                               int64_t base_offset, int32_t index_interval);

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  int64_t base_offset() const { return base_offset_; }
  const std::shared_ptr<File>& file() const { return file_; }
  // Bytes readers may see: whole batches only.
  uint64_t size() const { return size_.load(std::memory_order_acquire); }
  std::filesystem::path path(std::string_view suffix) const;

  // --- appender thread only ---
  // Writes one whole batch at size(). On error truncates the file back to the
  // old size; if that also fails the file may hold a partial batch beyond
  // size() (the caller must fail the log). `truncated_back` says which.
  Result<void> append(ByteSpan batch, const record::BatchHeader& h, bool* truncated_back);
  // Cuts the log to `size` bytes (recovery), fdatasyncs it and drops the index.
  Result<void> truncate_to(uint64_t size);

  // --- any thread ---
  Result<SegmentSummary> summary() const;
  // Position of the last indexed batch with base offset <= offset (scan start).
  Result<uint64_t> lookup(int64_t offset) const;
  // Offset to start a timestamp scan from (index.h lookup_time).
  Result<int64_t> lookup_time(int64_t ts) const;
  // Installs an index built by a scan (recovery, compaction); `in_files`:
  // the segment's index files already hold exactly this index.
  void set_index(SegmentIndex index, bool in_files = false);
  void set_index_interval(int32_t interval);
  // Writes .index and .timeindex from the in-memory index (and fdatasyncs them
  // when `sync`). The index must be loaded. Returns the log size the written
  // index describes.
  Result<uint64_t> persist_index(bool sync) const;
  // Decodes the index files as they are on disk (no size check).
  Result<SegmentIndex> read_index_files() const;
  // Frees the in-memory entries of a closed segment whose index is on disk
  // (keeps the summary); the next lookup loads them again.
  void release_index();
  // The segment takes no more appends: from now on its loaded index is
  // tracked by the IndexCache.
  void seal() { sealed_.store(true, std::memory_order_release); }
  // IndexCache: release_index() if the segment is sealed and its index is
  // what its files hold (or can be rebuilt from the log). False if not.
  bool drop_index() const;

  // Reads every batch from byte 0 (or from the end of `prefix`, an index of a
  // synced, already checked prefix), checking length, magic, CRC and that
  // offsets increase from min_offset; stops at the first failure.
  Result<ScanResult> scan(int64_t min_offset, std::optional<SegmentIndex> prefix = std::nullopt) const;

  // Unlinks .log, .index, .timeindex (missing files are fine) and retires
  // the segment. Open File handles stay readable.
  Result<void> remove_files();
  // Renames .log, .index, .timeindex to NAME + `suffix` (missing files are
  // fine), where nothing reads them again, and retires the segment: what
  // recovery cannot trust is kept for the operator, not deleted.
  Result<void> set_aside(std::string_view suffix);
  // The file names now belong to someone else (deleted, or replaced by
  // compaction): never write index files for this object again. Taken under
  // the index lock, so a reader rebuilding this segment's index (which writes
  // it back under that lock) has finished before the files are replaced.
  void retire() {
    std::lock_guard lock(index_mu_);
    retired_.store(true);
  }

  // What read_slice need not CRC-check again (see VerifiedMark).
  const std::shared_ptr<VerifiedMark>& verified_mark() const { return verified_; }
  void mark_verified(uint64_t upto) { verified_->prefix.store(upto, std::memory_order_release); }

  // --- flusher bookkeeping (PartitionLog sync lock) ---
  uint64_t synced_size = 0;
  bool dir_entry_synced = false;

 private:
  Segment(FileSystem& fs, std::filesystem::path dir, int64_t base_offset, std::shared_ptr<File> file,
          uint64_t size, int32_t index_interval);
  Result<void> load_index_locked() const;
  // Runs fn(index) with the index loaded, then reports the use to the IndexCache.
  template <typename Fn>
  auto with_index(Fn fn) const -> Result<decltype(fn(std::declval<const SegmentIndex&>()))>;
  void changed_index_locked() const { ++index_version_; }

  FileSystem& fs_;
  const std::filesystem::path dir_;
  const int64_t base_offset_;
  const std::shared_ptr<File> file_;
  std::atomic<uint64_t> size_;
  std::atomic<int32_t> index_interval_;
  std::atomic<bool> retired_{false};
  std::atomic<bool> sealed_{false};
  const std::shared_ptr<VerifiedMark> verified_ = std::make_shared<VerifiedMark>();

  mutable std::mutex index_mu_;
  mutable std::optional<SegmentIndex> index_;  // GUARDED_BY(index_mu_)
  mutable std::optional<SegmentSummary> summary_;  // kept while index_ is released; GUARDED_BY(index_mu_)
  // index_ differs from the files unless index_version_ == files_version_ (GUARDED_BY(index_mu_)).
  mutable uint64_t index_version_ = 0;
  mutable uint64_t files_version_ = 0;
};

// Reads batch headers at given positions of one segment through a small
// window, so that a walk over many small batches costs few preads.
// Validates what a reader relies on: magic 2, batch_length >= 49, the batch
// ends within `end`; anything else is kCorruption naming file and position.
class BatchHeaderReader {
 public:
  BatchHeaderReader(const Segment& segment, uint64_t end) : segment_(segment), end_(end) {}
  Result<record::BatchHeader> at(uint64_t position);
  uint64_t end() const { return end_; }

 private:
  const Segment& segment_;
  uint64_t end_;
  uint8_t buf_[4096];
  uint64_t buf_pos_ = 0;
  size_t buf_len_ = 0;
  size_t last_batch_size_ = 0;
};

}  // namespace herald::storage
