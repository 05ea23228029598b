// Segment: file names, append + scan, header reader, truncation.
#include "storage/segment.h"

#include <gtest/gtest.h>

#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::make_batch;
using testing::TempDir;

TEST(SegmentNames, TwentyDigitBaseOffset) {
  EXPECT_EQ(segment_file_name(0, ".log"), "00000000000000000000.log");
  EXPECT_EQ(segment_file_name(1234567, ".index"), "00000000000001234567.index");
  EXPECT_EQ(parse_segment_log_name("00000000000001234567.log"), 1234567);
  EXPECT_FALSE(parse_segment_log_name("0000000000001234567.log"));   // 19 digits
  EXPECT_FALSE(parse_segment_log_name("00000000000001234567.index"));
  EXPECT_FALSE(parse_segment_log_name("0000000000000123456x.log"));
  EXPECT_FALSE(parse_segment_log_name("99999999999999999999.log"));  // > INT64_MAX
}

std::shared_ptr<Segment> with_batches(const std::filesystem::path& dir, int n, std::vector<Bytes>* out) {
  auto seg = Segment::create(FileSystem::posix(), dir, 100, 200).value();
  int64_t next = 100;
  for (int i = 0; i < n; ++i) {
    Bytes b = make_batch(1 + i % 3, 50);
    record::set_base_offset(b, next);
    auto h = record::parse_header(b).value();
    bool truncated = false;
    EXPECT_TRUE(seg->append(b, h, &truncated));
    next = h.last_offset() + 1;
    if (out != nullptr) out->push_back(b);
  }
  return seg;
}

TEST(Segment, ScanValidatesEveryBatchAndRebuildsTheIndex) {
  TempDir dir;
  std::vector<Bytes> batches;
  auto seg = with_batches(dir.path(), 30, &batches);
  auto scan = seg->scan(100).value();
  EXPECT_FALSE(scan.stop);
  EXPECT_EQ(scan.valid_bytes, seg->size());
  EXPECT_EQ(scan.index.summary(), seg->summary().value());
  EXPECT_EQ(scan.index.offsets(), [&] {
    SegmentIndex idx(100);
    uint64_t pos = 0;
    for (const auto& b : batches) {
      idx.on_batch(record::parse_header(b).value(), pos, 200);
      pos += b.size();
    }
    return idx.offsets();
  }());
  // Offsets that go backwards are invalid.
  auto bad = seg->scan(100000).value();
  EXPECT_TRUE(bad.stop);
  EXPECT_EQ(bad.valid_bytes, 0u);
}

TEST(Segment, ScanStopsAtATornOrDamagedBatch) {
  TempDir dir;
  std::vector<Bytes> batches;
  auto seg = with_batches(dir.path(), 5, &batches);
  const uint64_t full = seg->size();
  const uint64_t four = full - batches.back().size();
  ASSERT_TRUE(seg->file()->truncate(full - 1));
  auto scan = seg->scan(100).value();
  ASSERT_TRUE(scan.stop);
  EXPECT_EQ(scan.stop->code, Errc::kTruncated);
  EXPECT_EQ(scan.valid_bytes, four);
  ASSERT_TRUE(seg->file()->write_at(four, batches.back()));
  ASSERT_TRUE(seg->file()->truncate(full + 100));  // a zero-filled tail: batch length 0
  scan = seg->scan(100).value();
  ASSERT_TRUE(scan.stop);
  EXPECT_EQ(scan.stop->code, Errc::kCorruption);
  EXPECT_EQ(scan.valid_bytes, full);
  ASSERT_TRUE(seg->truncate_to(four));
  EXPECT_EQ(seg->size(), four);
  EXPECT_EQ(std::filesystem::file_size(seg->path(kLogSuffix)), four);
}

TEST(Segment, IndexFilesPersistAndReload) {
  TempDir dir;
  auto seg = with_batches(dir.path(), 40, nullptr);
  ASSERT_TRUE(seg->persist_index(true));
  auto reopened = Segment::open(FileSystem::posix(), dir.path(), 100, 200).value();
  EXPECT_EQ(reopened->size(), seg->size());
  EXPECT_EQ(reopened->summary().value(), seg->summary().value());
  EXPECT_EQ(reopened->lookup(150).value(), seg->lookup(150).value());
}

TEST(BatchHeaderReader, ReportsGarbageAsCorruptionWithFileAndPosition) {
  TempDir dir;
  std::vector<Bytes> batches;
  auto seg = with_batches(dir.path(), 3, &batches);
  BatchHeaderReader r(*seg, seg->size());
  auto h = r.at(0);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->base_offset, 100);
  auto h2 = r.at(batches[0].size());
  ASSERT_TRUE(h2);
  EXPECT_EQ(h2->base_offset, 101);
  auto bad = r.at(7);  // not a batch boundary
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kCorruption);
  EXPECT_NE(bad.error().message.find("00000000000000000100.log"), std::string::npos);
  EXPECT_NE(bad.error().message.find("at byte 7"), std::string::npos);
  EXPECT_FALSE(r.at(seg->size() - 10));  // header past the end
}

}  // namespace
}  // namespace herald::storage
