// Retention (retention.ms, retention.bytes) and DeleteRecords: whole closed
// segments only, never the active one, log start persisted.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/log.h"
#include "storage/partition_log.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::kTs;
using testing::make_batch;
using testing::read_all_batches;
using testing::TempDir;

const bool kQuiet = [] {
  if (std::getenv("HERALD_LOG_LEVEL") == nullptr) log::set_level("error");
  return true;
}();

LogConfig config(int64_t retention_ms, int64_t retention_bytes) {
  LogConfig c;
  c.segment_bytes = 2000;
  c.index_interval_bytes = 256;
  c.retention_ms = retention_ms;
  c.retention_bytes = retention_bytes;
  return c;
}

// 40 batches of ~500 bytes (3 per segment), batch i has timestamps kTs + 1000*i (+0..1).
std::unique_ptr<PartitionLog> filled(const std::filesystem::path& dir, LogConfig c) {
  auto log = PartitionLog::open(dir, c, nullptr).value();
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(testing::append(*log, make_batch(2, 200, kTs + 1000 * i)));
  EXPECT_TRUE(log->flush());  // seal the closed segments
  return log;
}

std::vector<int64_t> segment_bases(const std::filesystem::path& dir) {
  std::vector<int64_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (auto b = parse_segment_log_name(e.path().filename().string())) out.push_back(*b);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Retention, DefaultKeepsEverythingForever) {
  TempDir dir;
  auto log = filled(dir.path(), LogConfig{.segment_bytes = 2000});
  const size_t n = log->segment_count();
  ASSERT_TRUE(log->apply_retention(kTs + 1000LL * 1000 * 1000 * 1000));
  EXPECT_EQ(log->segment_count(), n);
  EXPECT_EQ(log->log_start_offset(), 0);
}

TEST(Retention, ByTimeDeletesOldClosedSegmentsByTheirLargestTimestamp) {
  TempDir dir;
  auto log = filled(dir.path(), config(10000, -1));
  const size_t n = log->segment_count();
  ASSERT_GT(n, 5u);
  // now - retention = kTs + 9000: segments whose max timestamp < that go.
  ASSERT_TRUE(log->apply_retention(kTs + 19000));
  const int64_t start = log->log_start_offset();
  EXPECT_GT(start, 0);
  auto bases = segment_bases(dir.path());
  EXPECT_EQ(bases.front(), start);
  auto batches = read_all_batches(*log);
  // The first remaining batch may be older (segments go whole), but no segment
  // whose records are all older than the limit survives.
  EXPECT_LE(testing::header_of(batches.front()).max_timestamp, kTs + 9000 + 2000);
  EXPECT_GE(testing::header_of(batches.front()).base_offset, start);
  for (const auto& b : batches) EXPECT_GE(testing::header_of(b).base_offset, start);
  EXPECT_EQ(log->read(start - 1, 100, INT64_MAX).error().code, Errc::kOutOfRange);
  // The log start survives a restart (persisted in the checkpoint).
  ASSERT_TRUE(log->close());
  log = PartitionLog::open(dir.path(), config(10000, -1), nullptr).value();
  EXPECT_EQ(log->log_start_offset(), start);
}

TEST(Retention, ASegmentWithoutTimestampsAgesByItsFilesLastChange) {
  TempDir dir;
  auto log = PartitionLog::open(dir.path(), config(10000, -1), nullptr).value();
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(testing::append(*log, make_batch(1, 600, -1)));  // NO_TIMESTAMP
  ASSERT_TRUE(log->flush());
  const size_t n = log->segment_count();
  ASSERT_GT(n, 3u);
  const int64_t wall_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  // Timestamp -1 is not "older than any limit": the files were written just now.
  ASSERT_TRUE(log->apply_retention(wall_now));
  EXPECT_EQ(log->segment_count(), n);
  EXPECT_EQ(log->log_start_offset(), 0);
  // The first segment's file last changed a minute ago: it goes, the others stay.
  const auto bases = segment_bases(dir.path());
  std::filesystem::last_write_time(dir.path() / segment_file_name(bases[0], kLogSuffix),
                                   std::filesystem::file_time_type::clock::now() - std::chrono::minutes(1));
  ASSERT_TRUE(log->apply_retention(wall_now));
  EXPECT_EQ(log->segment_count(), n - 1);
  EXPECT_EQ(log->log_start_offset(), bases[1]);
}

// The active segment goes too once its newest record is past retention.ms
// (segments roll only on append, so an idle partition would keep it for ever):
// it is rolled first, as Kafka does, and the log is left empty at its end.
TEST(Retention, AnExpiredActiveSegmentIsRolledAndDeleted) {
  TempDir dir;
  auto log = filled(dir.path(), config(10000, -1));
  // Its newest batch (kTs + 39000) is within 10 s of now: the active segment stays.
  ASSERT_TRUE(log->apply_retention(kTs + 45000));
  const auto bases = segment_bases(dir.path());
  EXPECT_EQ(log->log_start_offset(), bases.front());
  EXPECT_FALSE(read_all_batches(*log).empty());
  // Now every record is past retention.
  ASSERT_TRUE(log->apply_retention(kTs + 1000LL * 1000 * 1000));
  EXPECT_EQ(log->segment_count(), 1u);
  EXPECT_EQ(log->log_end_offset(), 80);
  EXPECT_EQ(log->log_start_offset(), 80);
  EXPECT_TRUE(read_all_batches(*log).empty());
  // Appends continue; a restart keeps the empty log's offsets.
  auto info = testing::append(*log, make_batch(1));
  EXPECT_EQ(info->base_offset, 80);
  ASSERT_TRUE(log->close());
  log = PartitionLog::open(dir.path(), config(10000, -1), nullptr).value();
  EXPECT_EQ(log->log_start_offset(), 80);
  EXPECT_EQ(log->log_end_offset(), 81);
}

TEST(Retention, ByBytesKeepsTheNewestSegmentsWithinTheLimit) {
  TempDir dir;
  auto log = filled(dir.path(), config(-1, 5000));
  const uint64_t before = log->size_bytes();
  ASSERT_GT(before, 5000u);
  ASSERT_TRUE(log->apply_retention(kTs));
  EXPECT_LE(log->size_bytes(), 5000u + 2000u);  // within one segment of the limit
  EXPECT_GT(log->size_bytes(), 5000u - 2000u);
  EXPECT_GT(log->log_start_offset(), 0);
  EXPECT_EQ(segment_bases(dir.path()).front(), log->log_start_offset());
}

TEST(Retention, DoesNothingWhenDeletePolicyIsOff) {
  TempDir dir;
  LogConfig c = config(1, 1);
  c.delete_retention = false;
  c.compact = true;
  auto log = filled(dir.path(), c);
  const size_t n = log->segment_count();
  ASSERT_TRUE(log->apply_retention(kTs + 1000LL * 1000 * 1000));
  EXPECT_EQ(log->segment_count(), n);
}

TEST(DeleteRecords, RaisesLogStartAndDropsWholeSegmentsBelowIt) {
  TempDir dir;
  auto log = filled(dir.path(), config(-1, -1));
  const auto bases = segment_bases(dir.path());
  ASSERT_GT(bases.size(), 4u);
  const int64_t target = bases[3] + 1;  // inside the 4th segment
  auto r = log->delete_records_before(target);
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, target);
  EXPECT_EQ(log->log_start_offset(), target);
  auto now_bases = segment_bases(dir.path());
  EXPECT_EQ(now_bases.front(), bases[3]);  // the segment holding the new start stays
  EXPECT_EQ(log->read(target - 1, 100, INT64_MAX).error().code, Errc::kOutOfRange);
  auto rr = log->read(target, 1, INT64_MAX);
  ASSERT_TRUE(rr);
  EXPECT_EQ(rr->slices.size(), 1u);  // the batch containing `target`
  // Never lowered; beyond the end is refused; -1 = high watermark.
  EXPECT_EQ(*log->delete_records_before(2), target);
  EXPECT_EQ(log->delete_records_before(81).error().code, Errc::kOutOfRange);
  EXPECT_EQ(*log->delete_records_before(-1), 80);
  // Persisted.
  ASSERT_TRUE(log->close());
  log = PartitionLog::open(dir.path(), config(-1, -1), nullptr).value();
  EXPECT_EQ(log->log_start_offset(), 80);
  EXPECT_EQ(log->log_end_offset(), 80);
  EXPECT_TRUE(read_all_batches(*log).empty());
}

// offset_for_timestamp answers from the log start on; for_each_batch (the
// producer-state rebuild) also sees the batches below it still on disk.
TEST(DeleteRecords, OffsetForTimestampRespectsLogStartAndForEachBatchSeesWhatIsOnDisk) {
  TempDir dir;
  auto log = filled(dir.path(), config(-1, -1));
  ASSERT_TRUE(log->delete_records_before(11));
  auto t = log->offset_for_timestamp(0);
  ASSERT_TRUE(t && *t);
  EXPECT_EQ((*t)->offset, 11);
  std::vector<int64_t> bases;
  ASSERT_TRUE(log->for_each_batch(0, [&](const record::BatchHeader& h) { bases.push_back(h.base_offset); }));
  ASSERT_FALSE(bases.empty());
  EXPECT_LT(bases.front(), 11);  // the first batch of the segment holding offset 11
  EXPECT_NE(std::find(bases.begin(), bases.end(), 10), bases.end());  // the batch holding offset 11
  EXPECT_EQ(bases.back(), log->log_end_offset() - 2);
  bases.clear();
  ASSERT_TRUE(log->for_each_batch(11, [&](const record::BatchHeader& h) { bases.push_back(h.base_offset); }));
  EXPECT_EQ(bases.front(), 10);  // from an offset: the batch holding it
}

TEST(DeleteRecords, CrashAfterCheckpointBeforeUnlinkDeletesLeftoversOnOpen) {
  TempDir dir;
  std::vector<int64_t> bases;
  {
    auto log = filled(dir.path(), config(-1, -1));
    bases = segment_bases(dir.path());
    ASSERT_TRUE(log->close());
  }
  // Simulate: the checkpoint says log start = bases[2] but the segment files are still there.
  auto cp = read_checkpoint(FileSystem::posix(), dir.path()).value().value();
  cp.log_start_offset = bases[2];
  cp.clean = false;
  ASSERT_TRUE(write_checkpoint(FileSystem::posix(), dir.path(), cp));
  auto log = PartitionLog::open(dir.path(), config(-1, -1), nullptr).value();
  EXPECT_EQ(log->log_start_offset(), bases[2]);
  EXPECT_EQ(segment_bases(dir.path()).front(), bases[2]);
}

}  // namespace
}  // namespace herald::storage
