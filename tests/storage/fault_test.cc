// I/O faults and simulated power loss through FaultFileSystem (SQLite
// malloc_common.tcl / crash tests, leveldb fault_injection_test.cc):
//   - EIO / ENOSPC on the N-th write, sync, dir sync, open, rename, truncate
//     for N = 1, 2, ... until the workload runs without meeting the fault:
//     the operation reports an error, and after a crash that drops every
//     unsynced byte, every acknowledged batch is there, byte-identical;
//   - power loss at random moments with group commit running;
//   - a disk that stays full (sticky ENOSPC, and a real RLIMIT_FSIZE).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cerrno>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include "common/fs.h"
#include "common/log.h"
#include "storage/fault_file_system.h"
#include "storage/partition_log.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::header_of;
using testing::make_batch;
using testing::read_all_batches;
using testing::TempDir;

const bool kQuiet = [] {
  if (std::getenv("HERALD_LOG_LEVEL") == nullptr) log::set_level("off");
  return true;
}();

LogConfig small_config() {
  LogConfig c;
  c.segment_bytes = 1500;
  c.index_interval_bytes = 200;
  return c;
}

// Reopens `dir` on a fault-free file system and checks: the log is a dense
// sequence of batches, each identical to the one appended at that offset, and
// every acknowledged offset is present.
void verify_after_restart(const std::filesystem::path& dir, const std::map<int64_t, Bytes>& appended,
                          int64_t acked_end, const std::string& ctx) {
  FaultFileSystem clean_fs;
  OpenOptions o;
  o.fs = &clean_fs;
  auto log = PartitionLog::open(dir, small_config(), nullptr, o);
  ASSERT_TRUE(log) << ctx << ": " << log.error().to_string();
  EXPECT_GE((*log)->log_end_offset(), acked_end) << ctx;
  auto batches = read_all_batches(**log);
  int64_t next = 0;
  for (const auto& b : batches) {
    auto h = header_of(b);
    ASSERT_EQ(h.base_offset, next) << ctx;
    auto it = appended.find(h.base_offset);
    ASSERT_NE(it, appended.end()) << ctx << ": unknown batch at " << h.base_offset;
    ASSERT_EQ(b, it->second) << ctx << ": batch at " << h.base_offset << " differs";
    next = h.last_offset() + 1;
  }
  EXPECT_GE(next, acked_end) << ctx << ": acknowledged batches lost";
  EXPECT_EQ(next, (*log)->log_end_offset()) << ctx;
  // The reopened log accepts appends right after what survived.
  Bytes b = make_batch(1);
  auto info = (*log)->append(b);
  ASSERT_TRUE(info) << ctx;
  EXPECT_EQ(info->base_offset, next) << ctx;
}

struct FaultCase {
  FaultOp op;
  int err;
  const char* name;
  bool truncate_fails_too = false;  // the truncate that undoes a failed write fails as well
};

class NthFault : public ::testing::TestWithParam<FaultCase> {};

// Appends 24 batches (several segment rolls), flush() after every other one.
TEST_P(NthFault, ErrorIsReportedAndAcknowledgedDataSurvivesCrash) {
  const FaultCase fc = GetParam();
  uint64_t n = 1;
  for (; n < 2000; ++n) {
    const std::string ctx = fmt::format("{} fault #{}", fc.name, n);
    TempDir dir;
    FaultFileSystem fs;
    fs.fail_nth(fc.op, n, fc.err);
    if (fc.truncate_fails_too) fs.fail_nth(FaultOp::kTruncate, 1, EIO, /*sticky=*/true);
    OpenOptions o;
    o.fs = &fs;
    std::map<int64_t, Bytes> appended;
    int64_t acked_end = 0;
    {
      auto opened = PartitionLog::open(dir.path(), small_config(), nullptr, o);
      if (!opened) {
        EXPECT_EQ(fs.faults_injected(), 1u) << ctx << ": " << opened.error().to_string();
      } else {
        auto& log = *opened;
        bool failed = false;
        for (int i = 0; i < 24 && !failed; ++i) {
          Bytes b = make_batch(1 + i % 3, 100, testing::kTs + i, i);
          auto r = log->append(b);
          if (!r) {
            if (!fc.truncate_fails_too) {
              EXPECT_EQ(r.error().code,
                        fc.err == ENOSPC && fc.op == FaultOp::kWrite ? Errc::kNoSpace : Errc::kIoError)
                  << ctx << ": " << r.error().to_string();
            }
            EXPECT_GE(fs.faults_injected(), 1u) << ctx;
            if (r.error().code == Errc::kIoError && fc.op != FaultOp::kWrite && fc.op != FaultOp::kOpen) failed = true;
            continue;  // a failed write is truncated back: the log stays usable
          }
          appended[r->base_offset] = b;
          if (i % 2 == 1) {
            auto f = log->flush();
            if (f) {
              acked_end = log->durable_offset();
              EXPECT_EQ(acked_end, log->log_end_offset()) << ctx;
            } else {
              EXPECT_GE(fs.faults_injected(), 1u) << ctx;
              // A failed sync fails the log: nothing more is accepted or reported durable.
              Bytes more = make_batch(1);
              auto again = log->append(more);
              ASSERT_FALSE(again) << ctx;
              EXPECT_EQ(again.error().code, Errc::kIoError) << ctx;
              EXPECT_LE(log->durable_offset(), acked_end) << ctx;
              failed = true;
            }
          }
        }
        // Power loss: every unsynced byte and directory entry is gone.
        fs.crash(n % 2 == 0 ? CrashMode::kDropUnsynced : CrashMode::kRandom, n);
      }
    }
    verify_after_restart(dir.path(), appended, acked_end, ctx);
    if (::testing::Test::HasFailure()) break;
    if (fs.faults_injected() == 0) break;  // the workload no longer reaches the N-th operation
  }
  EXPECT_GT(n, 3u) << "the fault never hit the workload";
  std::printf("%s: fault injected at operation N = 1..%llu\n", fc.name, static_cast<unsigned long long>(n - 1));
}

INSTANTIATE_TEST_SUITE_P(
    Faults, NthFault,
    ::testing::Values(FaultCase{FaultOp::kWrite, EIO, "write_EIO"}, FaultCase{FaultOp::kWrite, ENOSPC, "write_ENOSPC"},
                      FaultCase{FaultOp::kSync, EIO, "sync_EIO"}, FaultCase{FaultOp::kSync, ENOSPC, "sync_ENOSPC"},
                      FaultCase{FaultOp::kSyncDir, EIO, "syncdir_EIO"}, FaultCase{FaultOp::kOpen, EIO, "open_EIO"},
                      FaultCase{FaultOp::kRename, EIO, "rename_EIO"},
                      FaultCase{FaultOp::kWrite, EIO, "write_and_truncate_EIO", true}),
    [](const ::testing::TestParamInfo<FaultCase>& p) { return std::string(p.param.name); });

TEST(FaultFileSystem, CrashDropsUnsyncedBytesAndUndoesUnsyncedRenames) {
  TempDir dir;
  FaultFileSystem fs;
  {
    auto f = fs.open(dir / "a", OpenMode::kCreate).value();
    ASSERT_TRUE(f->write_at(0, as_bytes("synced")));
    ASSERT_TRUE(f->sync());
    ASSERT_TRUE(fs.sync_dir(dir.path()));
    ASSERT_TRUE(f->write_at(6, as_bytes("-lost")));
    ASSERT_TRUE(fs.atomic_write(dir / "b", as_bytes("durable")));
    auto g = fs.open(dir / "b.new", OpenMode::kCreate).value();
    ASSERT_TRUE(g->write_at(0, as_bytes("new")));
    ASSERT_TRUE(g->sync());
    ASSERT_TRUE(fs.rename(dir / "b.new", dir / "b"));  // no sync_dir: may be undone
    fs.crash(CrashMode::kDropUnsynced, 1);
    EXPECT_FALSE(f->write_at(0, as_bytes("x")));  // dead handle
    EXPECT_FALSE(fs.open(dir / "c", OpenMode::kCreate));  // the machine is down
  }
  FaultFileSystem rebooted;
  EXPECT_EQ(std::filesystem::file_size(dir / "a"), 6u);
  auto b = rebooted.read_all(dir / "b");
  ASSERT_TRUE(b);
  EXPECT_EQ(std::string(as_string_view(*b)), "durable");
  EXPECT_FALSE(std::filesystem::exists(dir / "b.new"));
  auto names = rebooted.list_dir(dir.path()).value();
  EXPECT_EQ(names.size(), 2u);
}

// Power loss at seeded random moments while producers append and the flusher
// group-commits. Every batch whose wait_durable callback said ok must survive.
TEST(PowerLoss, AcknowledgedBatchesSurviveRandomCrashes) {
  const char* env_seed = std::getenv("HERALD_SEED");
  const uint64_t base_seed = env_seed != nullptr ? std::stoull(env_seed) : std::random_device{}();
  std::printf("PowerLoss base seed %llu (HERALD_SEED=... to repeat)\n", static_cast<unsigned long long>(base_seed));
  for (uint64_t trial = 0; trial < (env_seed != nullptr ? 1u : 40u); ++trial) {
    const uint64_t seed = base_seed + trial;
    const std::string ctx = fmt::format("seed {}", seed);
    std::mt19937_64 rng(seed);
    TempDir dir;
    FaultFileSystem fs;
    OpenOptions o;
    o.fs = &fs;
    std::mutex mu;
    std::map<int64_t, Bytes> appended;
    int64_t acked_end = 0;
    {
      Flusher flusher;
      auto log = PartitionLog::open(dir.path(), small_config(), &flusher, o).value();
      const int n = 5 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; ++i) {
        Bytes b = make_batch(1 + static_cast<int>(rng() % 4), rng() % 300, testing::kTs + i, i);
        auto r = log->append(b);
        ASSERT_TRUE(r) << ctx;
        {
          std::lock_guard l(mu);
          appended[r->base_offset] = b;
        }
        log->wait_durable(r->last_offset, [&, end = r->last_offset + 1](Result<void> ok) {
          if (!ok) return;
          std::lock_guard l(mu);
          acked_end = std::max(acked_end, end);
        });
        if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
      }
      fs.crash(CrashMode::kRandom, seed);
      (void)log->close();  // fails: its files died in the crash
    }
    verify_after_restart(dir.path(), appended, acked_end, ctx);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(DiskFull, StickyEnospcFailsAppendsKeepsDataReadableAndRecovers) {
  TempDir dir;
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
  std::vector<Bytes> ok_batches;
  for (int i = 0; i < 10; ++i) {
    ok_batches.push_back(make_batch(2, 100));
    ASSERT_TRUE(log->append(ok_batches.back()));
  }
  ASSERT_TRUE(log->flush());
  fs.fail_nth(FaultOp::kWrite, 1, ENOSPC, /*sticky=*/true);
  for (int i = 0; i < 5; ++i) {
    Bytes b = make_batch(2, 100);
    auto r = log->append(b);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kNoSpace) << r.error().to_string();
  }
  EXPECT_EQ(log->log_end_offset(), 20);
  EXPECT_EQ(read_all_batches(*log), ok_batches);  // everything acknowledged stays readable
  fs.clear_faults();                              // space freed
  ok_batches.push_back(make_batch(2, 100));
  auto r = log->append(ok_batches.back());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->base_offset, 20);
  ASSERT_TRUE(log->close());
  log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
  EXPECT_EQ(read_all_batches(*log), ok_batches);
}

// Out of file descriptors when a new segment's directory entry is synced
// (EMFILE from opening the directory): that sync fails and is tried again,
// the log stays usable, and nothing counts as durable until it worked.
TEST(Exhausted, ADirectorySyncWithoutADescriptorIsRetriedNotFatal) {
  TempDir dir;
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
  Bytes first = make_batch(2, 100);
  ASSERT_TRUE(log->append(first));
  ASSERT_TRUE(log->flush());
  const int64_t durable = log->durable_offset();
  for (int i = 0; i < 20; ++i) {  // rolls: new segment files
    Bytes b = make_batch(2, 100);
    ASSERT_TRUE(log->append(b));
  }
  fs.fail_nth(FaultOp::kSyncDir, 1, EMFILE, /*sticky=*/true);
  auto r = log->flush();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kExhausted) << r.error().to_string();
  EXPECT_EQ(log->durable_offset(), durable);
  fs.clear_faults();  // descriptors freed
  ASSERT_TRUE(log->flush());
  EXPECT_EQ(log->durable_offset(), log->log_end_offset());
  auto more = make_batch(2, 100);
  ASSERT_TRUE(log->append(more));
  ASSERT_TRUE(log->close());
}

// A write fails and so does the truncate that would undo it: the log fails,
// and a producer already waiting for an earlier batch to become durable is
// answered with the error instead of waiting forever.
TEST(PartialAppend, FailsWaitersOfEarlierBatches) {
  TempDir dir;
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
  Bytes first = make_batch(2, 100);
  auto info = log->append(first);
  ASSERT_TRUE(info);
  std::optional<Result<void>> answer;
  log->wait_durable(info->last_offset, [&](Result<void> r) { answer = r; });
  ASSERT_FALSE(answer.has_value());  // no flusher: not synced yet
  fs.fail_nth(FaultOp::kWrite, 1, EIO);
  fs.fail_nth(FaultOp::kTruncate, 1, EIO, /*sticky=*/true);
  Bytes second = make_batch(2, 100);
  ASSERT_FALSE(log->append(second));
  ASSERT_TRUE(answer.has_value());
  ASSERT_FALSE(*answer);
  EXPECT_EQ(answer->error().code, Errc::kIoError) << answer->error().to_string();
  bool later = false;
  log->wait_durable(info->last_offset, [&](Result<void> r) { later = !r; });
  EXPECT_TRUE(later);  // a new waiter is refused at once
  EXPECT_FALSE(log->flush());
}

// fdatasync of the segment data fails in the step that moves the recovery
// point (after the round's own sync succeeded). Linux reports a writeback
// error once and may have dropped the pages, so a later successful sync would
// prove nothing: the log must fail, not log a warning and go on.
TEST(SyncFailure, InTheRecoveryPointStepFailsTheLog) {
  TempDir dir;
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  o.recovery_step_bytes = 1;  // every flush also moves the recovery point
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
  Bytes first = make_batch(2, 100);
  auto info = log->append(first);
  ASSERT_TRUE(info);
  // Data syncs of this flush: 1 = the round's (it acknowledges `first`), 2 = the recovery step's.
  fs.fail_nth(FaultOp::kSync, 2, EIO, /*sticky=*/false, ".log");
  auto flushed = log->flush();
  ASSERT_EQ(fs.faults_injected(), 1u);
  ASSERT_FALSE(flushed);
  EXPECT_EQ(flushed.error().code, Errc::kIoError) << flushed.error().to_string();
  Bytes second = make_batch(2, 100);
  auto refused = log->append(second);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kIoError);
  EXPECT_FALSE(log->flush());
  bool failed = false;
  log->wait_durable(info->last_offset + 1, [&](Result<void> r) { failed = !r; });
  EXPECT_TRUE(failed);
  // What the successful first sync covered is still there after a restart.
  log.reset();
  verify_after_restart(dir.path(), {{0, first}}, info->last_offset + 1, "recovery-step sync failure");
}

// open() fails half-way through recovery (here: the fdatasync of what it
// scanned; an index it cannot write is only logged): nothing is written on the
// way out, in particular no "clean" checkpoint that would make the next open
// trust a half-recovered log.
TEST(OpenFailure, HalfRecoveredLogWritesNoCheckpoint) {
  TempDir dir;
  {
    FaultFileSystem fs;
    OpenOptions o;
    o.fs = &fs;
    auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(testing::append(*log, make_batch(2, 100)));
    ASSERT_TRUE(log->flush());
    fs.crash(CrashMode::kKeepUnsynced, 1);  // no clean close: the next open recovers
  }
  const auto checkpoint = dir.path() / "checkpoint";
  auto before = read_whole_file(checkpoint).value();
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  fs.fail_nth(FaultOp::kSync, 1, EIO, /*sticky=*/false, ".log");
  auto failed = PartitionLog::open(dir.path(), small_config(), nullptr, o);
  ASSERT_FALSE(failed);
  ASSERT_GT(fs.faults_injected(), 0u);
  EXPECT_EQ(read_whole_file(checkpoint).value(), before);
  fs.clear_faults();
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o);
  ASSERT_TRUE(log) << log.error().to_string();
  EXPECT_EQ(read_all_batches(**log).size(), 6u);
}

// The disk is full when the log is opened after a crash: recovery cannot
// write its indexes or its checkpoint. The log opens anyway, everything
// acknowledged is readable, appends fail with kNoSpace; once space is freed
// they work (the checkpoint is written first) and survive the next recovery.
TEST(DiskFull, LogOpensReadableWhenRecoveryCannotWrite) {
  TempDir dir;
  std::vector<Bytes> ok_batches;
  {
    FaultFileSystem fs;
    OpenOptions o;
    o.fs = &fs;
    auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o).value();
    for (int i = 0; i < 6; ++i) {
      ok_batches.push_back(make_batch(2, 100));
      ASSERT_TRUE(log->append(ok_batches.back()));
    }
    ASSERT_TRUE(log->flush());
    fs.crash(CrashMode::kKeepUnsynced, 1);  // no clean close: the next open recovers
  }
  {
    FaultFileSystem fs;
    OpenOptions o;
    o.fs = &fs;
    fs.fail_nth(FaultOp::kWrite, 1, ENOSPC, /*sticky=*/true);
    auto log = PartitionLog::open(dir.path(), small_config(), nullptr, o);
    ASSERT_TRUE(log) << log.error().to_string();
    EXPECT_GT(fs.faults_injected(), 0u);
    EXPECT_EQ(read_all_batches(**log), ok_batches);
    Bytes refused = make_batch(2, 100);
    auto r = (*log)->append(refused);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kNoSpace) << r.error().to_string();
    fs.clear_faults();  // space freed
    ok_batches.push_back(make_batch(2, 100));
    auto again = (*log)->append(ok_batches.back());
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(again->base_offset, 12);
    ASSERT_TRUE((*log)->flush());
    fs.crash(CrashMode::kKeepUnsynced, 2);
  }
  auto log = PartitionLog::open(dir.path(), small_config(), nullptr, OpenOptions{});
  ASSERT_TRUE(log) << log.error().to_string();
  EXPECT_EQ(read_all_batches(**log), ok_batches);
}

// A real "disk full": RLIMIT_FSIZE makes write(2) fail with EFBIG past a size.
TEST(DiskFull, FileSizeLimitFailsAppendWithNoSpaceAndNothingPartialSurvives) {
  TempDir dir;
  LogConfig c;  // one big segment
  auto log = PartitionLog::open(dir.path(), c, nullptr).value();
  std::vector<Bytes> ok_batches;
  for (int i = 0; i < 4; ++i) {
    ok_batches.push_back(make_batch(4, 1000));
    ASSERT_TRUE(log->append(ok_batches.back()));
  }
  ASSERT_TRUE(log->flush());
  const uint64_t used = log->size_bytes();
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = used + ok_batches[0].size() / 2;  // the next batch fits only half-way
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  Bytes b = make_batch(4, 1000);
  auto r = log->append(b);
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNoSpace) << r.error().to_string();
  EXPECT_EQ(log->size_bytes(), used);  // the partial write was cut off
  EXPECT_EQ(std::filesystem::file_size(dir / "00000000000000000000.log"), used);
  EXPECT_EQ(read_all_batches(*log), ok_batches);
  // Space again: appends continue at the same offset.
  ok_batches.push_back(make_batch(4, 1000));
  auto r2 = log->append(ok_batches.back());
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->base_offset, 16);
  log.reset();
  log = PartitionLog::open(dir.path(), c, nullptr).value();
  EXPECT_EQ(read_all_batches(*log), ok_batches);
}

}  // namespace
}  // namespace herald::storage
