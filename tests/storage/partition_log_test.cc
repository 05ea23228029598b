// PartitionLog: append, read, durability, checkpoint and recovery, roll, time lookups.
#include "storage/partition_log.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "storage/index_cache.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::build_batch;
using testing::header_of;
using testing::kTs;
using testing::make_batch;
using testing::read_all_batches;
using testing::TempDir;

LogConfig small_config() {
  LogConfig c;
  c.segment_bytes = 4096;
  c.index_interval_bytes = 256;
  return c;
}

// XORs the byte at `pos` of `path` with `mask`.
void flip_byte(const std::filesystem::path& path, long pos, int mask) {
  std::FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, pos, SEEK_SET);
  int c = std::fgetc(f);
  std::fseek(f, pos, SEEK_SET);
  std::fputc(c ^ mask, f);
  std::fclose(f);
}

std::unique_ptr<PartitionLog> open_log(const std::filesystem::path& dir, LogConfig c = {}, Flusher* f = nullptr,
                                       OpenOptions o = {}) {
  auto log = PartitionLog::open(dir, c, f, std::move(o));
  EXPECT_TRUE(log.has_value()) << log.error().to_string();
  return std::move(log).value();
}

TEST(PartitionLog, EmptyLogStartsAtZero) {
  TempDir dir;
  auto log = open_log(dir.path());
  EXPECT_EQ(log->log_start_offset(), 0);
  EXPECT_EQ(log->log_end_offset(), 0);
  EXPECT_EQ(log->high_watermark(), 0);
  auto rr = log->read(0, 1000, INT64_MAX);
  ASSERT_TRUE(rr);
  EXPECT_TRUE(rr->slices.empty());
  EXPECT_EQ(log->read(1, 1000, INT64_MAX).error().code, Errc::kOutOfRange);
  EXPECT_EQ(log->segment_count(), 1u);
  EXPECT_TRUE(std::filesystem::exists(dir / "00000000000000000000.log"));
}

TEST(PartitionLog, AppendAssignsDenseOffsetsAndStoresBytesAsGiven) {
  TempDir dir;
  auto log = open_log(dir.path());
  std::vector<Bytes> appended;
  int64_t expect = 0;
  for (int i = 1; i <= 5; ++i) {
    Bytes b = make_batch(i);
    auto info = log->append(b);
    ASSERT_TRUE(info) << info.error().to_string();
    EXPECT_EQ(info->base_offset, expect);
    EXPECT_EQ(info->last_offset, expect + i - 1);
    EXPECT_EQ(header_of(b).base_offset, expect);  // written into the caller's buffer
    expect += i;
    appended.push_back(b);
  }
  EXPECT_EQ(log->log_end_offset(), 15);
  EXPECT_EQ(read_all_batches(*log), appended);
}

TEST(PartitionLog, CorruptBatchIsRefusedAndNothingWritten) {
  TempDir dir;
  auto log = open_log(dir.path());
  Bytes good = make_batch(3);
  Bytes bad = good;
  bad[bad.size() - 1] ^= 0x40;  // CRC no longer matches
  EXPECT_EQ(log->append(bad).error().code, Errc::kCorruption);
  Bytes truncated(good.begin(), good.end() - 1);
  EXPECT_FALSE(log->append(truncated));
  Bytes too_long = good;
  too_long.push_back(0);
  EXPECT_EQ(log->append(too_long).error().code, Errc::kCorruption);
  EXPECT_EQ(log->log_end_offset(), 0);
  EXPECT_EQ(log->size_bytes(), 0u);
  ASSERT_TRUE(log->append(good));
  EXPECT_EQ(log->log_end_offset(), 3);
}

TEST(PartitionLog, ReadReturnsBatchContainingOffsetAndHonoursLimits) {
  TempDir dir;
  auto log = open_log(dir.path());
  std::vector<Bytes> b;
  for (int i = 0; i < 10; ++i) {
    b.push_back(make_batch(10, 50));  // offsets 10i .. 10i+9
    ASSERT_TRUE(log->append(b.back()));
  }
  const uint64_t one = b[0].size();
  // Offset in the middle of batch 3: starts with batch 3.
  auto rr = log->read(35, one * 2, INT64_MAX);
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->total_bytes, one * 2);
  ASSERT_EQ(rr->slices.size(), 1u);
  Bytes got(rr->total_bytes);
  ASSERT_TRUE(read_slice(rr->slices[0], got.data()));
  EXPECT_EQ(header_of(got).base_offset, 30);
  // KIP-74: the first batch is returned even if larger than max_bytes.
  rr = log->read(0, 1, INT64_MAX);
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->total_bytes, one);
  // max_bytes between one and two batches -> one batch.
  rr = log->read(0, one * 2 - 1, INT64_MAX);
  EXPECT_EQ(rr->total_bytes, one);
  // max_offset: no batch whose base offset >= 40.
  rr = log->read(0, 1 << 20, 40);
  EXPECT_EQ(rr->total_bytes, one * 4);
  rr = log->read(40, 1 << 20, 40);
  EXPECT_EQ(rr->total_bytes, 0u);
  // End and beyond.
  EXPECT_TRUE(log->read(100, 100, INT64_MAX)->slices.empty());
  EXPECT_EQ(log->read(101, 100, INT64_MAX).error().code, Errc::kOutOfRange);
  EXPECT_EQ(log->read(-1, 100, INT64_MAX).error().code, Errc::kOutOfRange);
}

TEST(PartitionLog, RollsAtSegmentBytesAndReadsAcrossSegmentBoundaries) {
  TempDir dir;
  auto log = open_log(dir.path(), small_config());
  std::vector<Bytes> all;
  for (int i = 0; i < 60; ++i) {
    all.push_back(make_batch(3, 100, kTs + i));
    ASSERT_TRUE(log->append(all.back()));
  }
  EXPECT_GT(log->segment_count(), 5u);
  ASSERT_TRUE(log->flush());
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (e.path().extension() == ".log") {
      EXPECT_LE(e.file_size(), 4096u);
    }
  }
  // Every offset reads back its own batch, including the first and last of each segment.
  for (int64_t o = 0; o < log->log_end_offset(); ++o) {
    auto rr = log->read(o, 1, INT64_MAX);
    ASSERT_TRUE(rr) << rr.error().to_string();
    ASSERT_EQ(rr->slices.size(), 1u);
    Bytes got(rr->total_bytes);
    ASSERT_TRUE(read_slice(rr->slices[0], got.data()));
    EXPECT_EQ(got, all[static_cast<size_t>(o / 3)]) << "offset " << o;
  }
  EXPECT_EQ(read_all_batches(*log), all);
}

TEST(PartitionLog, RollsWhenFirstBatchIsOlderThanSegmentMs) {
  TempDir dir;
  int64_t now = kTs;
  OpenOptions o;
  o.clock = [&] { return now; };
  LogConfig c;
  c.segment_ms = 1000;
  auto log = open_log(dir.path(), c, nullptr, o);
  ASSERT_TRUE(testing::append(*log, make_batch(1, 10, now)));
  now += 500;
  ASSERT_TRUE(testing::append(*log, make_batch(1, 10, now)));
  EXPECT_EQ(log->segment_count(), 1u);
  now += 600;  // first batch now 1100 ms old
  ASSERT_TRUE(testing::append(*log, make_batch(1, 10, now)));
  EXPECT_EQ(log->segment_count(), 2u);
  EXPECT_TRUE(std::filesystem::exists(dir / "00000000000000000002.log"));
}

TEST(PartitionLog, WaitDurableFiresAfterFlusherSync) {
  TempDir dir;
  Flusher flusher;
  auto log = open_log(dir.path(), {}, &flusher);
  std::mutex mu;
  std::condition_variable cv;
  int fired = 0;
  for (int i = 0; i < 20; ++i) {
    auto info = testing::append(*log, make_batch(2));
    ASSERT_TRUE(info);
    log->wait_durable(info->last_offset, [&](Result<void> r) {
      EXPECT_TRUE(r.has_value());
      std::lock_guard l(mu);
      ++fired;
      cv.notify_all();
    });
  }
  std::unique_lock l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(10), [&] { return fired == 20; }));
  EXPECT_EQ(log->durable_offset(), 40);
  EXPECT_EQ(log->high_watermark(), 40);
  l.unlock();
  ASSERT_TRUE(log->close());
}

TEST(PartitionLog, HighWatermarkIsDurableOffsetUnderAlwaysAndLogEndUnderInterval) {
  TempDir dir;
  auto log = open_log(dir.path());  // no flusher: nothing syncs until flush()
  ASSERT_TRUE(testing::append(*log, make_batch(5)));
  EXPECT_EQ(log->log_end_offset(), 5);
  EXPECT_EQ(log->durable_offset(), 0);
  EXPECT_EQ(log->high_watermark(), 0);
  bool fired = false;
  log->wait_durable(4, [&](Result<void> r) { fired = r.has_value(); });
  EXPECT_FALSE(fired);
  ASSERT_TRUE(log->flush());
  EXPECT_TRUE(fired);
  EXPECT_EQ(log->high_watermark(), 5);

  LogConfig c;
  c.flush_policy = FlushPolicy::kInterval;
  log->set_config(c);
  ASSERT_TRUE(testing::append(*log, make_batch(5)));
  EXPECT_EQ(log->high_watermark(), 10);
  EXPECT_EQ(log->durable_offset(), 5);
  fired = false;
  log->wait_durable(9, [&](Result<void> r) { fired = r.has_value(); });
  EXPECT_TRUE(fired);

  // Back to always: what consumers could read stays readable (it is synced now).
  ASSERT_TRUE(testing::append(*log, make_batch(5)));
  EXPECT_EQ(log->high_watermark(), 15);
  log->set_config(LogConfig{});
  EXPECT_EQ(log->durable_offset(), 15);
  EXPECT_EQ(log->high_watermark(), 15);
}

// The same switch while another thread appends: the high watermark a reader
// sees never goes back (appends between the switch's first sync and the flip
// were readable under interval, then hidden until the next sync).
TEST(PartitionLog, SwitchingToAlwaysUnderAppendsNeverMovesTheHighWatermarkBack) {
  TempDir dir;
  Flusher flusher;
  LogConfig interval;
  interval.flush_policy = FlushPolicy::kInterval;
  interval.flush_interval_ms = 100000;
  auto log = open_log(dir.path(), interval, &flusher);
  std::atomic<bool> stop{false};
  std::atomic<int> backwards{0};
  std::thread writer([&] {
    while (!stop) ASSERT_TRUE(testing::append(*log, make_batch(1)));
  });
  std::thread reader([&] {
    int64_t last = 0;
    while (!stop) {
      const int64_t hw = log->high_watermark();
      if (hw < last) backwards++;
      last = std::max(last, hw);
    }
  });
  while (log->log_end_offset() < 1000) std::this_thread::yield();
  for (int i = 0; i < 100; ++i) {
    log->set_config(LogConfig{});
    std::this_thread::sleep_for(std::chrono::microseconds(500));
    log->set_config(interval);
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  stop = true;
  writer.join();
  reader.join();
  EXPECT_EQ(backwards.load(), 0);
  ASSERT_TRUE(log->close());
}

TEST(PartitionLog, IntervalPolicySyncsInTheBackground) {
  TempDir dir;
  Flusher flusher;
  LogConfig c;
  c.flush_policy = FlushPolicy::kInterval;
  c.flush_interval_ms = 20;
  auto log = open_log(dir.path(), c, &flusher);
  ASSERT_TRUE(testing::append(*log, make_batch(5)));
  for (int i = 0; i < 500 && log->durable_offset() < 5; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(log->durable_offset(), 5);
}

TEST(PartitionLog, CleanReopenRestoresEverythingWithoutScanning) {
  TempDir dir;
  std::vector<Bytes> all;
  {
    auto log = open_log(dir.path(), small_config());
    for (int i = 0; i < 40; ++i) {
      all.push_back(make_batch(4, 60, kTs + i * 10));
      ASSERT_TRUE(log->append(all.back()));
    }
    ASSERT_TRUE(log->close());
    auto cp = read_checkpoint(FileSystem::posix(), dir.path());
    ASSERT_TRUE(cp && *cp);
    EXPECT_TRUE((*cp)->clean);
    EXPECT_EQ((*cp)->log_end_offset, 160);
  }
  auto log = open_log(dir.path(), small_config());
  EXPECT_EQ(log->log_end_offset(), 160);
  EXPECT_EQ(log->durable_offset(), 160);
  EXPECT_EQ(read_all_batches(*log), all);
  // The clean flag is cleared once opened: a crash now must recover.
  auto cp = read_checkpoint(FileSystem::posix(), dir.path());
  EXPECT_FALSE((*cp)->clean);
  // Appends continue after the last offset.
  auto info = testing::append(*log, make_batch(1));
  EXPECT_EQ(info->base_offset, 160);
}

// Copies the directory of an open log: what a SIGKILL leaves (page cache survives).
void copy_dir(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    std::filesystem::copy_file(e.path(), to / e.path().filename());
  }
}

// 40 batches of 4 records (several segments with small_config()), flushed after the 21st, and
// the directory copied while the log is open: what a crash leaves. `all` gets the batches.
void write_crash_image(const std::filesystem::path& live, const std::filesystem::path& image,
                       std::vector<Bytes>& all) {
  auto log = open_log(live, small_config());
  for (int i = 0; i < 40; ++i) {
    all.push_back(make_batch(4, 60, kTs + i));
    ASSERT_TRUE(log->append(all.back()));
    if (i == 20) {
      ASSERT_TRUE(log->flush());
    }
  }
  copy_dir(live, image);
}

TEST(PartitionLog, ReopenAfterCrashRecoversEveryWrittenBatch) {
  TempDir dir;
  TempDir crashed;
  std::vector<Bytes> all;
  write_crash_image(dir.path(), crashed.path() / "p", all);
  auto log2 = open_log(crashed.path() / "p", small_config());
  EXPECT_EQ(log2->log_end_offset(), 160);
  EXPECT_EQ(read_all_batches(*log2), all);
}

TEST(PartitionLog, RecoveryScansOnlyAfterThePersistedRecoveryPosition) {
  TempDir base;
  std::vector<Bytes> all;
  OpenOptions o;
  o.recovery_step_bytes = 2000;
  LogConfig c;  // one big segment
  auto log = open_log(base / "src", c, nullptr, o);
  for (int i = 0; i < 40; ++i) {
    all.push_back(make_batch(2, 100, kTs + i));
    ASSERT_TRUE(log->append(all.back()));
    ASSERT_TRUE(log->flush());  // the recovery position follows in 2000-byte steps
  }
  auto cp = read_checkpoint(FileSystem::posix(), base / "src").value().value();
  EXPECT_FALSE(cp.clean);
  EXPECT_GT(cp.recovery_position, 0u);
  EXPECT_LE(cp.recovery_position, log->size_bytes());
  // "Crash": copy the files, then damage a byte inside the vouched-for prefix
  // and tear the tail.
  copy_dir(base / "src", base / "p");
  const auto seg = base / "p" / "00000000000000000000.log";
  {
    std::FILE* f = std::fopen(seg.c_str(), "r+b");
    std::fseek(f, 100, SEEK_SET);
    std::fputc(0xEE, f);
    std::fclose(f);
  }
  std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - 7);
  auto log2 = open_log(base / "p", c, nullptr, o);
  // The tail was scanned and cut; the prefix was not scanned (the damage at
  // byte 100 did not truncate it), so reads find it instead.
  EXPECT_EQ(log2->log_end_offset(), 78);
  auto rr = log2->read(0, 1, INT64_MAX);
  ASSERT_TRUE(rr);
  Bytes buf(rr->total_bytes);
  EXPECT_EQ(read_slice(rr->slices[0], buf.data()).error().code, Errc::kCorruption);
  auto tail = read_all_batches(*log2, 2);
  EXPECT_EQ(tail, std::vector<Bytes>(all.begin() + 1, all.end() - 1));
}

TEST(PartitionLog, TruncatedTailAtEveryByteOfTheLastBatchIsCutAtTheLastValidBatch) {
  TempDir base;
  std::vector<Bytes> all;
  {
    auto log = open_log(base / "src", small_config());
    for (int i = 0; i < 5; ++i) {
      all.push_back(make_batch(2, 30, kTs + i));
      ASSERT_TRUE(log->append(all.back()));
    }
    ASSERT_TRUE(log->close());
  }
  const auto seg = std::filesystem::path("00000000000000000000.log");
  const uint64_t full = std::filesystem::file_size(base / "src" / seg.string());
  const uint64_t last_size = all.back().size();
  for (uint64_t cut = full - last_size; cut < full; ++cut) {
    TempDir d;
    copy_dir(base / "src", d / "p");
    std::filesystem::resize_file(d / "p" / seg.string(), cut);
    std::filesystem::remove(d / "p" / "checkpoint");  // as after a crash: no clean checkpoint
    auto log = open_log(d / "p", small_config());
    EXPECT_EQ(log->log_end_offset(), 8) << "cut at " << cut;
    EXPECT_EQ(std::filesystem::file_size(d / "p" / seg.string()), full - last_size);
    auto got = read_all_batches(*log);
    EXPECT_EQ(got, std::vector<Bytes>(all.begin(), all.end() - 1));
    auto info = testing::append(*log, make_batch(1));
    EXPECT_EQ(info->base_offset, 8);  // offsets of the torn batch are reassigned: they were never acked
  }
}

TEST(PartitionLog, FlippedByteInTheTailIsTruncatedOnRecovery) {
  TempDir base;
  std::vector<Bytes> all;
  {
    auto log = open_log(base / "p", small_config());
    for (int i = 0; i < 5; ++i) {
      all.push_back(make_batch(2, 30, kTs + i));
      ASSERT_TRUE(log->append(all.back()));
    }
  }  // destructor closes cleanly
  const auto seg = base / "p" / "00000000000000000000.log";
  const uint64_t full = std::filesystem::file_size(seg);
  {
    std::FILE* f = std::fopen(seg.c_str(), "r+b");
    std::fseek(f, static_cast<long>(full - 5), SEEK_SET);
    std::fputc(0x5a, f);
    std::fclose(f);
  }
  std::filesystem::remove(base / "p" / "checkpoint");
  auto log = open_log(base / "p", small_config());
  EXPECT_EQ(log->log_end_offset(), 8);
  EXPECT_EQ(read_all_batches(*log), std::vector<Bytes>(all.begin(), all.end() - 1));
}

// 60 batches of 3 records (offsets 0..179, several segments with small_config()), closed; `all`
// gets the batches as appended.
void write_closed_log(const std::filesystem::path& dir, std::vector<Bytes>& all) {
  auto log = open_log(dir, small_config());
  for (int i = 0; i < 60; ++i) {
    all.push_back(make_batch(3, 100, kTs + i));
    ASSERT_TRUE(log->append(all.back()));
  }
  ASSERT_TRUE(log->close());
}

// An index file that cannot be written (here a directory in its place) is
// only logged: the index is rebuilt from the log, and every start works.
TEST(PartitionLog, AnIndexFileThatCannotBeWrittenStopsNoStart) {
  TempDir dir;
  TempDir crashed;
  std::vector<Bytes> all;
  write_crash_image(dir.path(), crashed.path() / "p", all);
  std::vector<std::filesystem::path> logs;
  for (const auto& e : std::filesystem::directory_iterator(crashed.path() / "p")) {
    if (e.path().extension() == ".log") logs.push_back(e.path());
  }
  std::sort(logs.begin(), logs.end());
  ASSERT_GE(logs.size(), 2u);
  for (auto idx : {logs.front(), logs.back()}) {  // a closed segment's and the active one's
    idx.replace_extension(".index");
    std::filesystem::remove(idx);
    std::filesystem::create_directory(idx);
  }
  for (int start = 0; start < 3; ++start) {  // after a crash, then after clean closes
    auto log = PartitionLog::open(crashed.path() / "p", small_config(), nullptr);
    ASSERT_TRUE(log) << "start " << start << ": " << log.error().to_string();
    EXPECT_EQ(read_all_batches(**log), all);
    (void)(*log)->close();  // fails on the index it cannot write; the log is closed either way
  }
}

// A segment file lost with the checkpoint: recovery cannot trust what follows
// the gap, and sets those segments aside (renamed, never read again) instead
// of deleting them.
TEST(PartitionLog, SegmentsAfterAGapAreSetAsideNotDeleted) {
  TempDir base;
  std::vector<Bytes> all;
  write_closed_log(base / "p", all);
  std::vector<std::string> logs;
  for (const auto& e : std::filesystem::directory_iterator(base / "p")) {
    if (e.path().extension() == ".log") logs.push_back(e.path().filename().string());
  }
  std::sort(logs.begin(), logs.end());
  ASSERT_GE(logs.size(), 4u);
  std::filesystem::remove(base / "p" / logs[1]);
  std::filesystem::remove(base / "p" / "checkpoint");
  const int64_t first_end = std::stoll(logs[1].substr(0, 20));
  for (int reopen = 0; reopen < 2; ++reopen) {
    auto log = open_log(base / "p", small_config());
    EXPECT_EQ(log->log_end_offset(), first_end);
    EXPECT_EQ(read_all_batches(*log), std::vector<Bytes>(all.begin(), all.begin() + first_end / 3));
  }
  size_t aside = 0;
  for (const auto& e : std::filesystem::directory_iterator(base / "p")) {
    const std::string name = e.path().filename().string();
    if (name.find(".log.set-aside-") != std::string::npos) {
      ++aside;
      EXPECT_GT(std::filesystem::file_size(e.path()), 0u) << name;
    }
  }
  EXPECT_EQ(aside, logs.size() - 2);  // every segment after the lost one, with its bytes
}

TEST(PartitionLog, FlippedByteInTheMiddleOfAClosedSegmentIsReportedNotServed) {
  TempDir base;
  std::vector<Bytes> all;
  ASSERT_NO_FATAL_FAILURE(write_closed_log(base / "p", all));
  // Damage a record byte of the 2nd batch of the first (closed) segment.
  const auto seg = base / "p" / "00000000000000000000.log";
  const long pos = static_cast<long>(all[0].size() + all[1].size() - 10);
  flip_byte(seg, pos, 0xff);
  auto log = open_log(base / "p", small_config());
  EXPECT_EQ(log->log_end_offset(), 180);  // a closed segment is not truncated
  auto rr = log->read(3, 1, INT64_MAX);   // the damaged batch
  ASSERT_TRUE(rr);
  Bytes buf(rr->total_bytes);
  auto r = read_slice(rr->slices[0], buf.data());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCorruption);
  EXPECT_NE(r.error().message.find("00000000000000000000.log"), std::string::npos) << r.error().message;
  // A read that spans it: the batch before it checks out, and the caller is told how far.
  rr = log->read(0, 1 << 20, INT64_MAX);
  ASSERT_TRUE(rr);
  buf.resize(rr->total_bytes);
  uint64_t good = 12345;
  r = read_slice(rr->slices[0], buf.data(), &good);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCorruption);
  EXPECT_EQ(good, all[0].size());
  // The batches around it are still served.
  rr = log->read(0, 1, INT64_MAX);
  buf.resize(rr->total_bytes);
  EXPECT_TRUE(read_slice(rr->slices[0], buf.data()));
  rr = log->read(6, 1, INT64_MAX);
  buf.resize(rr->total_bytes);
  EXPECT_TRUE(read_slice(rr->slices[0], buf.data()));
}

// The base offset and length of a batch are outside its CRC: damage there shows in the header walk.
TEST(PartitionLog, DamagedBatchHeaderInAClosedSegmentEndsReadsBeforeIt) {
  for (int field : {0, 8}) {  // the high byte of the base offset; of the length
    SCOPED_TRACE(field);
    TempDir base;
    std::vector<Bytes> all;
    ASSERT_NO_FATAL_FAILURE(write_closed_log(base / "p", all));
    const auto seg = base / "p" / "00000000000000000000.log";
    const long pos = static_cast<long>(all[0].size() + all[1].size()) + field;  // the 3rd batch (offsets 6..8)
    flip_byte(seg, pos, 0x7f);
    auto log = open_log(base / "p", small_config());
    EXPECT_EQ(log->log_end_offset(), 180);
    // A read spanning it serves the two batches before it, and they check out.
    auto rr = log->read(0, 1 << 20, INT64_MAX);
    ASSERT_TRUE(rr) << rr.error().to_string();
    EXPECT_EQ(rr->total_bytes, all[0].size() + all[1].size());
    Bytes buf(rr->total_bytes);
    ASSERT_EQ(rr->slices.size(), 1u);
    EXPECT_TRUE(read_slice(rr->slices[0], buf.data()));
    // A read that starts at it is an error.
    rr = log->read(6, 1 << 20, INT64_MAX);
    ASSERT_FALSE(rr);
    EXPECT_EQ(rr.error().code, Errc::kCorruption) << rr.error().to_string();
  }
}

TEST(PartitionLog, MissingOrCorruptIndexFilesAreRebuilt) {
  TempDir base;
  std::vector<Bytes> all;
  {
    auto log = open_log(base / "p", small_config());
    for (int i = 0; i < 60; ++i) {
      all.push_back(make_batch(3, 100, kTs + i));
      ASSERT_TRUE(log->append(all.back()));
    }
    ASSERT_TRUE(log->close());
  }
  std::filesystem::remove(base / "p" / "00000000000000000000.index");
  {
    std::FILE* f = std::fopen((base / "p" / "00000000000000000000.timeindex").c_str(), "r+b");
    std::fputc('X', f);
    std::fclose(f);
  }
  auto log = open_log(base / "p", small_config());
  EXPECT_EQ(read_all_batches(*log), all);
  auto t = log->offset_for_timestamp(kTs + 5);  // batch i holds timestamps kTs+i .. kTs+i+2
  ASSERT_TRUE(t && *t);
  EXPECT_EQ((*t)->offset, 3 * 3 + 2);
  EXPECT_TRUE(std::filesystem::exists(base / "p" / "00000000000000000000.index"));
}

TEST(PartitionLog, OffsetForTimestampFindsFirstRecordAtOrAfter) {
  TempDir dir;
  auto log = open_log(dir.path(), small_config());
  // Batch i holds records with timestamps 100i, 100i+10, 100i+20 (CreateTime).
  for (int i = 0; i < 50; ++i) {
    std::vector<testing::RecordSpec> recs;
    for (int j = 0; j < 3; ++j) recs.push_back({"k", std::string(80, 'x'), kTs + 100 * i + 10 * j});
    ASSERT_TRUE(testing::append(*log, build_batch(recs)));
  }
  for (int i = 0; i < 50; ++i) {
    for (int j = 0; j < 3; ++j) {
      auto t = log->offset_for_timestamp(kTs + 100 * i + 10 * j);
      ASSERT_TRUE(t && *t);
      EXPECT_EQ((*t)->offset, 3 * i + j);
      EXPECT_EQ((*t)->timestamp, kTs + 100 * i + 10 * j);
      t = log->offset_for_timestamp(kTs + 100 * i + 10 * j - 5);  // between records
      EXPECT_EQ((*t)->offset, 3 * i + j);
    }
  }
  auto t = log->offset_for_timestamp(0);
  EXPECT_EQ((*t)->offset, 0);
  t = log->offset_for_timestamp(kTs + 100 * 49 + 21);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->has_value());
  auto m = log->max_timestamp();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->timestamp, kTs + 100 * 49 + 20);
  EXPECT_EQ(m->offset, 149);
}

TEST(PartitionLog, OffsetForTimestampWithNonMonotonicTimestamps) {
  TempDir dir;
  auto log = open_log(dir.path(), small_config());
  // Timestamps go up and down; the answer is the first record (by offset) with ts >= target.
  std::vector<int64_t> ts = {50, 10, 70, 20, 90, 30, 60, 40, 80, 100};
  for (int64_t t : ts) {
    ASSERT_TRUE(testing::append(*log, build_batch({{"k", std::string(300, 'v'), kTs + t}})));
  }
  for (int64_t target = 0; target <= 110; target += 5) {
    std::optional<int64_t> want;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (ts[i] >= target) {
        want = static_cast<int64_t>(i);
        break;
      }
    }
    auto got = log->offset_for_timestamp(kTs + target);
    ASSERT_TRUE(got);
    if (!want) {
      EXPECT_FALSE(got->has_value()) << target;
    } else {
      ASSERT_TRUE(got->has_value()) << target;
      EXPECT_EQ((*got)->offset, *want) << target;
    }
  }
  EXPECT_EQ(log->max_timestamp()->offset, 9);
}

// ListOffsets -3 after DeleteRecords into the batch holding the maximum: Kafka's answer, the
// maximum with its own record's offset, not paired with the log start's record.
TEST(PartitionLog, MaxTimestampBelowTheLogStartKeepsItsOwnOffset) {
  TempDir dir;
  auto log = open_log(dir.path(), LogConfig{});
  ASSERT_TRUE(testing::append(*log, build_batch({{"k", "a", kTs}, {"k", "b", kTs + 5000}, {"k", "c", kTs + 1000}})));
  ASSERT_TRUE(testing::append(*log, build_batch({{"k", "d", kTs + 2000}, {"k", "e", kTs + 3000}})));
  ASSERT_TRUE(log->flush());
  ASSERT_EQ(log->max_timestamp()->offset, 1);
  auto del = log->delete_records_before(2);
  ASSERT_TRUE(del) << del.error().to_string();
  ASSERT_EQ(log->log_start_offset(), 2);
  auto m = log->max_timestamp();
  ASSERT_TRUE(m);
  EXPECT_EQ(m->timestamp, kTs + 5000);
  EXPECT_EQ(m->offset, 1) << "the record with that timestamp (offset 2 has " << kTs + 1000 << ")";
}

TEST(PartitionLog, ConcurrentAppendersGetDenseUniqueOffsets) {
  TempDir dir;
  Flusher flusher;
  auto log = open_log(dir.path(), small_config(), &flusher);
  constexpr int kThreads = 4, kPer = 200;
  std::atomic<int> durable_acks{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPer; ++i) {
        Bytes b = make_batch(2, 20, kTs, t);
        auto info = log->append(b);
        ASSERT_TRUE(info);
        log->wait_durable(info->last_offset, [&](Result<void> r) {
          if (r) durable_acks++;
        });
      }
    });
  }
  // A reader running alongside.
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) {
      auto rr = log->read(0, 1 << 16, log->high_watermark());
      ASSERT_TRUE(rr);
      for (const auto& s : rr->slices) {
        Bytes buf(s.size);
        ASSERT_TRUE(read_slice(s, buf.data()));
      }
    }
  });
  for (auto& t : threads) t.join();
  reader.join();
  ASSERT_TRUE(log->flush());
  EXPECT_EQ(durable_acks.load(), kThreads * kPer);
  auto all = read_all_batches(*log);
  ASSERT_EQ(all.size(), size_t{kThreads * kPer});
  int64_t next = 0;
  for (const auto& b : all) {
    EXPECT_EQ(header_of(b).base_offset, next);
    next = header_of(b).last_offset() + 1;
  }
  ASSERT_TRUE(log->close());
}

TEST(PartitionLog, ForEachBatchVisitsHeadersFromOffset) {
  TempDir dir;
  auto log = open_log(dir.path(), small_config());
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(testing::append(*log, make_batch(2, 100)));
  std::vector<int64_t> bases;
  ASSERT_TRUE(log->for_each_batch(31, [&](const record::BatchHeader& h) { bases.push_back(h.base_offset); }));
  ASSERT_EQ(bases.size(), 15u);
  EXPECT_EQ(bases.front(), 30);
  EXPECT_EQ(bases.back(), 58);
}

TEST(PartitionLog, AppendAfterCloseIsRefused) {
  TempDir dir;
  auto log = open_log(dir.path());
  ASSERT_TRUE(log->close());
  Bytes b = make_batch(1);
  EXPECT_EQ(log->append(b).error().code, Errc::kClosed);
  EXPECT_TRUE(log->close());  // idempotent
}

TEST(PartitionLog, RemoveDeletesTheDirectory) {
  TempDir dir;
  {
    auto log = open_log(dir / "p");
    ASSERT_TRUE(testing::append(*log, make_batch(1)));
  }
  ASSERT_TRUE(PartitionLog::remove(dir / "p"));
  EXPECT_FALSE(std::filesystem::exists(dir / "p"));
}

// The process-wide index budget for one test.
struct IndexBudget {
  explicit IndexBudget(size_t bytes) { IndexCache::global().set_budget(bytes); }
  ~IndexBudget() { IndexCache::global().set_budget(kDefaultIndexCacheBytes); }
  IndexBudget(const IndexBudget&) = delete;
  IndexBudget& operator=(const IndexBudget&) = delete;
};

// Batch i holds 2 records with timestamps kTs + 10 i and kTs + 10 i + 1.
struct ManySegments {
  std::vector<Bytes> batches;
  std::vector<int64_t> bases;
};

ManySegments append_many(PartitionLog& log, int n, int first = 0) {
  ManySegments out;
  for (int i = first; i < first + n; ++i) {
    Bytes b = make_batch(2, 40, kTs + 10 * i, i % 3);
    auto info = log.append(b);
    EXPECT_TRUE(info) << info.error().to_string();
    if (!info) break;
    out.bases.push_back(info->base_offset);
    out.batches.push_back(std::move(b));
    if (i % 16 == 15) {
      EXPECT_TRUE(log.flush());  // seals the segments rolled meanwhile
    }
  }
  EXPECT_TRUE(log.flush());
  return out;
}

// Reads each batch at its own offset (an index lookup in its segment) and
// finds it by its first timestamp (a time-index lookup).
void expect_each_batch_readable(const PartitionLog& log, const ManySegments& m) {
  for (size_t i = 0; i < m.bases.size(); ++i) {
    auto rr = log.read(m.bases[i], 1, INT64_MAX);
    ASSERT_TRUE(rr) << rr.error().to_string();
    ASSERT_FALSE(rr->slices.empty());
    Bytes got(m.batches[i].size());
    ASSERT_TRUE(rr->slices[0].size >= got.size());
    ASSERT_TRUE(read_slice(FileSlice{rr->slices[0].file, rr->slices[0].position, got.size(), rr->slices[0].verified},
                           got.data()));
    EXPECT_EQ(got, m.batches[i]) << "batch " << i;
    auto t = log.offset_for_timestamp(header_of(m.batches[i]).base_timestamp);
    ASSERT_TRUE(t && t->has_value());
    EXPECT_EQ((*t)->offset, m.bases[i]) << "batch " << i;
  }
}

TEST(IndexCache, ReplayKeepsTheIndexesOfClosedSegmentsWithinTheBudget) {
  TempDir dir;
  LogConfig c;
  c.segment_bytes = 4096;
  c.index_interval_bytes = 64;
  auto log = open_log(dir.path(), c);
  const ManySegments m = append_many(*log, 600);
  const size_t segments = log->segment_count();
  ASSERT_GE(segments, 20u);

  size_t all_bytes = 0;
  {
    IndexBudget unbounded(SIZE_MAX);
    expect_each_batch_readable(*log, m);
    auto st = IndexCache::global().stats();
    EXPECT_EQ(st.indexes, segments - 1);  // every closed segment's index stays loaded
    all_bytes = st.bytes;
  }
  // Now a budget of about 1/8 of them: reading everything again (and after a
  // restart, which loads each index from its files) keeps within it.
  IndexBudget small(all_bytes / 8);
  const uint64_t dropped_before = IndexCache::global().stats().dropped;
  expect_each_batch_readable(*log, m);
  auto st = IndexCache::global().stats();
  EXPECT_LE(st.bytes, all_bytes / 8);
  EXPECT_LE(st.indexes, (segments - 1) / 8 + 1);
  EXPECT_GE(st.dropped - dropped_before, segments - 1 - st.indexes);

  ASSERT_TRUE(log->close());
  log.reset();
  EXPECT_EQ(IndexCache::global().stats().indexes, 0u);  // closed logs leave nothing behind
  log = open_log(dir.path(), c);
  expect_each_batch_readable(*log, m);
  EXPECT_LE(IndexCache::global().stats().bytes, all_bytes / 8);
  ASSERT_TRUE(log->close());
}

TEST(IndexCache, ReadersAppendsAndCompactionWithATinyBudget) {
  // Every use of a closed segment's index drops another one's: readers,
  // the appender's seals, retention and compaction's index rewrites race.
  TempDir dir;
  LogConfig c;
  c.segment_bytes = 4096;
  c.index_interval_bytes = 64;
  c.compact = true;
  c.min_cleanable_dirty_ratio = 0.01;
  auto log = open_log(dir.path(), c);
  IndexBudget tiny(1);
  ManySegments first = append_many(*log, 200);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t));
      while (!stop.load()) {
        const int64_t end = log->log_end_offset();
        const int64_t offset = std::uniform_int_distribution<int64_t>(0, end - 1)(rng);
        auto rr = log->read(offset, 256, INT64_MAX);
        if (!rr || rr->slices.empty()) failures.fetch_add(1);
        auto ts = log->offset_for_timestamp(kTs + std::uniform_int_distribution<int64_t>(0, 1999)(rng));
        if (!ts) failures.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 5; ++round) {
    append_many(*log, 200, 200 * (round + 1));
    auto r = log->compact(kTs + 100000);
    EXPECT_TRUE(r) << r.error().to_string();
  }
  stop.store(true);
  for (auto& th : readers) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(IndexCache::global().stats().indexes, 1u);
  // Compaction ran (2,400 records over 6 keys, k0-0 .. k2-1) and the log still reads whole.
  std::set<std::string> keys;
  size_t records = 0;
  Bytes scratch;
  for (const Bytes& b : read_all_batches(*log)) {
    ASSERT_TRUE(record::for_each_record(b, scratch, [&](const record::Record& r) -> Result<void> {
      keys.insert(std::string(r.key->begin(), r.key->end()));
      ++records;
      return ok();
    }));
  }
  EXPECT_EQ(keys.size(), 6u);
  EXPECT_LT(records, 600u);
  ASSERT_TRUE(log->close());
}

}  // namespace
}  // namespace herald::storage
