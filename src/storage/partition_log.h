// partition_log.h: the durable log of one topic-partition: a directory of
// segments (segment.h), a checkpoint (checkpoint.h), recovery, retention and
// compaction. On-disk formats: docs/storage-format.md.
//
//   storage::Flusher flusher;                              // one per process
//   HERALD_ASSIGN_OR_RETURN(auto log, storage::PartitionLog::open(dir, config, &flusher));
//   HERALD_ASSIGN_OR_RETURN(auto info, log->append(batch));     // any thread
//   log->wait_durable(info.last_offset, [](Result<void> r) { /* answer acks=all */ });
//   HERALD_ASSIGN_OR_RETURN(auto rr, log->read(offset, 1 << 20, log->high_watermark()));
//   for (const auto& s : rr.slices) HERALD_TRY(storage::read_slice(s, dst));
//   HERALD_TRY(log->close());
//
// Lifecycle: open() recovers the directory (O(1) after a clean close, a scan
// from the recovery point after a crash) and registers with the flusher;
// close() (or the destructor) flushes, persists the indexes and writes a clean
// checkpoint. The object is owned by the caller (the broker's topic manager);
// `flusher` must outlive it.
//
// Threading: every method is thread-safe. Appends from several threads
// serialize on the append lock, which covers only a pwrite and in-memory
// bookkeeping: no fsync ever runs under it. Reads run concurrently with
// appends, retention and compaction; a FileSlice keeps its file open even if
// the segment is deleted or replaced meanwhile. Under kAlways the caller's
// thread never fsyncs (the flusher does), except in flush() and close().
//
// Lock order (outer to inner; never acquired the other way round):
//   maintenance_mu_  retention, delete_records_before, compaction, close
//   sync_mu_         one sync of this log at a time (flusher thread, flush(), close())
//   append_mu_       appends and rolls
//   segments_mu_     the segment map (shared for readers)
//   Segment::index_mu_, waiters_mu_, checkpoint_mu_, config_mu_, Flusher::mu_  (leaves)
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "record/batch.h"
#include "storage/checkpoint.h"
#include "storage/file.h"
#include "storage/flusher.h"
#include "storage/log_config.h"
#include "storage/segment.h"

namespace herald::storage {

// A byte range of a segment file holding whole batches.
struct FileSlice {
  std::shared_ptr<const File> file;  // keeps the file open even if the segment is deleted meanwhile
  uint64_t position = 0;
  uint64_t size = 0;
  // The segment's "CRC-checked prefix" mark (null: always check). Bytes below
  // it were verified in this process, so read_slice need not check them again.
  std::shared_ptr<VerifiedMark> verified = nullptr;
};

struct ReadResult {
  std::vector<FileSlice> slices;
  uint64_t total_bytes = 0;
};

// preads the whole slice into dst[0..slice.size) and checks every batch in it
// (length, magic, CRC-32C): a batch damaged on disk is kCorruption naming the
// file and position, never served. kTruncated if the file is shorter.
// Each byte is CRC-checked once per process: bytes appended (validated at
// append), scanned by recovery or already checked by an earlier read_slice
// are not checked again (FileSlice::verified). On kCorruption, *good_prefix
// (if given) is how many leading bytes of dst hold whole batches that check out.
Result<void> read_slice(const FileSlice& slice, uint8_t* dst, uint64_t* good_prefix = nullptr);
// The same without the CRC check (for callers that verify themselves).
Result<void> read_slice_unchecked(const FileSlice& slice, uint8_t* dst);

struct AppendInfo {
  int64_t base_offset;
  int64_t last_offset;
};

struct TimestampOffset {
  int64_t timestamp;
  int64_t offset;
  bool operator==(const TimestampOffset&) const = default;
};

struct CompactionStats {
  size_t segments_cleaned = 0;     // segments rewritten
  size_t segments_merged = 0;      // of them, merged into the segment before them (their files deleted)
  size_t batches_read = 0;
  size_t records_read = 0;
  size_t records_kept = 0;
  size_t tombstones_dropped = 0;
  size_t keyless_dropped = 0;      // records without a key (from before the log became compacted)
  uint64_t bytes_before = 0;       // of the rewritten segments
  uint64_t bytes_after = 0;
};

// Hooks for tests and tools; production passes nothing.
struct OpenOptions {
  FileSystem* fs = nullptr;              // default FileSystem::posix()
  std::function<int64_t()> clock;        // wall clock in ms for segment.ms; default now_ms()
  // The flusher persists the active segment's index (and moves the recovery
  // position) after this many newly synced bytes, so that crash recovery
  // scans at most this much synced data plus the unsynced tail.
  uint64_t recovery_step_bytes = uint64_t{64} << 20;
};

class PartitionLog final : private FlushTarget {
 public:
  // Opens or creates the log in `dir` (recovers as needed). `flusher` must
  // outlive the log; may be null, then nothing syncs in the background and
  // callers use flush().
  static Result<std::unique_ptr<PartitionLog>> open(const std::filesystem::path& dir, LogConfig config,
                                                    Flusher* flusher, OpenOptions options = {});
  ~PartitionLog() override;  // close() if not closed
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  // `batch` is exactly one v2 batch. Checked here: length, magic, CRC,
  // records_count == last_offset_delta + 1 > 0 (kCorruption, nothing written).
  // Writes the assigned base offset and partition leader epoch 0 into `batch`,
  // appends it and returns its offsets. Errors: kNoSpace / kIoError from the
  // disk (the partial write is truncated away; the log stays usable unless the
  // truncate failed too), kIoError once a sync has failed (the log refuses
  // appends until reopened), kClosed after close(). Not durable yet under
  // kAlways: see wait_durable. record::Crc::kSkip is for a caller that has
  // just verified the batch's CRC itself (the broker's produce validation);
  // length, magic and counts are still checked.
  Result<AppendInfo> append(MutableByteSpan batch, record::Crc crc = record::Crc::kCheck);

  int64_t log_start_offset() const;
  int64_t log_end_offset() const;   // next offset to assign
  int64_t durable_offset() const;   // every offset < this is fdatasync'ed
  // What consumers may read: durable_offset() under kAlways, log_end_offset() under kInterval.
  int64_t high_watermark() const;

  // Calls done(ok) once durable_offset() > offset, or done(error) if the sync
  // failed or the log closed first. Under kInterval calls done(ok) at once.
  // Runs on the flusher thread or inline; must be cheap and must not call back
  // into this log synchronously.
  void wait_durable(int64_t offset, std::function<void(Result<void>)> done);

  // Whole batches, starting with the batch that contains `offset` (the first
  // batch whose last offset >= offset), none whose base_offset >= max_offset,
  // stopping before max_bytes is exceeded except that the first batch with
  // records, and any empty batches before it, are always returned (KIP-74).
  // offset < log start or > log end ->
  // kOutOfRange; offset == end -> empty. A damaged batch header on the way is
  // kCorruption (the batch CRCs are checked by read_slice).
  Result<ReadResult> read(int64_t offset, uint64_t max_bytes, int64_t max_offset) const;

  // First record with timestamp >= ts (ListOffsets by timestamp), or nullopt.
  Result<std::optional<TimestampOffset>> offset_for_timestamp(int64_t ts) const;
  // The record with the largest timestamp (ListOffsets -3), nullopt when empty. As in Kafka, that
  // record may lie below the log start offset when its segment still holds later records.
  std::optional<TimestampOffset> max_timestamp() const;

  // DeleteRecords: raises the log start offset to `offset` (persisted before
  // returning) and deletes the closed segments entirely below it. offset -1
  // means the high watermark. offset > log end -> kOutOfRange. Returns the new
  // log start offset (never lowered).
  Result<int64_t> delete_records_before(int64_t offset);
  // retention.ms (by each segment's largest timestamp) and retention.bytes on
  // closed segments, oldest first; the active segment is rolled and goes too
  // once its newest record is past retention.ms. No-op unless
  // config.delete_retention.
  Result<void> apply_retention(int64_t now_ms);
  // Runs `fn` while the log is open, excluding close(), retention and
  // compaction (kClosed without running it once the log is closed): for
  // files the owner keeps beside the log, which must never land in the
  // directory of a log that replaced this one.
  Result<void> while_open(const std::function<Result<void>()>& fn);
  // If config.compact: cleans the closed segments (see compaction.cc).
  // `keep_batches` (ascending base offsets): batches that stay even when every
  // record in them is superseded, as empty batches (the broker passes each
  // live idempotent producer's last batch, so its sequence survives a restart).
  Result<CompactionStats> compact(int64_t now_ms, std::span<const int64_t> keep_batches = {});

  // fdatasync now on the caller's thread (and fire waiters).
  Result<void> flush();
  // flush + persist indexes + clean-shutdown checkpoint. Idempotent. Later
  // appends return kClosed; reads keep working.
  Result<void> close();

  void set_config(const LogConfig& config);
  LogConfig config() const;
  uint64_t size_bytes() const;
  size_t segment_count() const;
  const std::filesystem::path& dir() const { return dir_; }

  // Calls fn with the header of every batch on disk whose last_offset >=
  // from, in offset order, also those below the log start that are still in
  // its segment (rebuilds idempotent-producer state at start: DeleteRecords
  // does not forget producers). Errors: I/O, or kCorruption for a damaged
  // batch header.
  Result<void> for_each_batch(int64_t from, const std::function<void(const record::BatchHeader&)>& fn) const;

  // Deletes the partition directory (the log must be closed / not open).
  static Result<void> remove(const std::filesystem::path& dir, FileSystem* fs = nullptr);

 private:
  using SegmentMap = std::map<int64_t, std::shared_ptr<Segment>>;
  struct Waiter {
    int64_t offset;
    std::function<void(Result<void>)> done;
  };

  PartitionLog(std::filesystem::path dir, LogConfig config, Flusher* flusher, FileSystem& fs,
               std::function<int64_t()> clock, uint64_t recovery_step_bytes);

  Result<void> recover();
  Result<void> finish_interrupted_swap();
  // With marker_left_: removes the swap marker durably, which ends swap_incomplete_. Called under
  // maintenance_mu_ by every pass of compaction, retention and DeleteRecords.
  Result<void> remove_leftover_swap_marker();
  void flusher_sync() override;
  Result<void> sync_now();
  Result<void> roll_locked(int64_t new_base);
  // Rolls the active segment when it holds records and its newest timestamp
  // is older than now - retention_ms, then syncs so that it is sealed.
  Result<void> roll_expired_active(int64_t now, int64_t retention_ms);
  Result<void> write_checkpoint_now(bool clean);
  // Sets the recovery point (segment base) and the byte position inside it
  // up to which data is synced and its index persisted.
  void set_recovery_point(int64_t base, uint64_t position);
  // Flusher: every kRecoveryStepBytes of synced active segment, persist its
  // index and move the recovery position there (bounds crash recovery).
  void advance_recovery_position();
  Result<void> delete_segments(const std::vector<std::shared_ptr<Segment>>& doomed, int64_t new_log_start);
  void fail_waiters(const Error& e);
  // A sync of the log's data failed: the kernel may have dropped the dirty
  // pages, so a later fdatasync returning 0 proves nothing. The log refuses
  // every append and sync from now on; waiters get the error. Returns it.
  Error fail_log(const Error& cause);
  // kClosed once close() ran. Maintenance (retention, compaction, DeleteRecords)
  // checks it under maintenance_mu_: a pass that listed this log before it was
  // closed must not touch files a re-created topic may own by now.
  Result<void> check_open();
  void fire_waiters(int64_t durable);
  SegmentMap snapshot() const;
  // Segments with base < recovery point: synced, indexed, closed (safe for retention/compaction).
  std::vector<std::shared_ptr<Segment>> persisted_closed_segments() const;
  // The first record of the batch at `pos` with timestamp >= ts and offset >= min_offset.
  Result<std::optional<TimestampOffset>> find_in_batch_for_timestamp(const Segment& seg, uint64_t pos,
                                                                     const record::BatchHeader& h, int64_t ts,
                                                                     int64_t min_offset) const;

  const std::filesystem::path dir_;
  FileSystem& fs_;
  Flusher* const flusher_;
  const std::function<int64_t()> clock_;
  const uint64_t recovery_step_bytes_;

  mutable std::mutex config_mu_;
  LogConfig config_;  // GUARDED_BY(config_mu_)
  std::atomic<bool> always_{true};
  std::atomic<int64_t> always_floor_{0};
  std::atomic<bool> dir_sync_waiting_{false};  // the directory could not be opened to sync (EMFILE): retried  // the log end when flush.policy last became always (set_config)

  std::mutex maintenance_mu_;
  // A compaction swap failed after its commit point (or may have): until a reopen finishes it (or
  // the marker is removed, below), no compaction pass runs and retention and DeleteRecords delete
  // no file. GUARDED_BY(maintenance_mu_)
  bool swap_incomplete_ = false;
  // ... and all that is left of it is the marker, which may be on disk: either the swap is done in
  // memory and in the files, or its commit failed and memory holds the old set. GUARDED_BY(maintenance_mu_)
  bool marker_left_ = false;
  std::mutex sync_mu_;

  std::mutex append_mu_;
  std::shared_ptr<Segment> active_;                     // GUARDED_BY(append_mu_)
  std::vector<std::shared_ptr<Segment>> pending_seal_;  // rolled, not yet synced+indexed; GUARDED_BY(append_mu_)
  bool closed_ = false;                                 // GUARDED_BY(append_mu_)
  int64_t active_roll_ms_ = -1;  // wall clock of the active segment's first append (segment.ms); GUARDED_BY(append_mu_)
  std::atomic<bool> checkpoint_pending_{false};  // recover() could not write it (disk full): append() does first
  std::atomic<bool> failed_{false};
  Error failure_{Errc::kIoError, ""};                   // GUARDED_BY(append_mu_), set once with failed_

  mutable std::shared_mutex segments_mu_;
  SegmentMap segments_;  // GUARDED_BY(segments_mu_)

  std::atomic<int64_t> log_start_{0};
  std::atomic<int64_t> log_end_{0};
  std::atomic<int64_t> durable_{0};
  std::atomic<int64_t> recovery_point_{0};
  std::atomic<int64_t> cleaner_offset_{0};

  std::mutex waiters_mu_;
  std::multimap<int64_t, std::function<void(Result<void>)>> waiters_;  // GUARDED_BY(waiters_mu_)

  std::mutex checkpoint_mu_;
  uint64_t recovery_position_ = 0;  // GUARDED_BY(checkpoint_mu_), with recovery_point_
  uint64_t indexed_upto_ = 0;       // active segment bytes whose index is on disk; GUARDED_BY(sync_mu_)
};

}  // namespace herald::storage
