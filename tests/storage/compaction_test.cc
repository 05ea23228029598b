// Compaction: latest record per key, offsets kept, tombstones, all codecs,
// the active segment untouched, min lag, reads across a swap, crash safety.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "common/log.h"
#include "record/builder.h"
#include "record/records.h"
#include "storage/fault_file_system.h"
#include "storage/partition_log.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::build_batch;
using testing::header_of;
using testing::kTs;
using testing::read_all_batches;
using testing::RecordSpec;
using testing::TempDir;

const bool kQuiet = [] {
  if (std::getenv("HERALD_LOG_LEVEL") == nullptr) log::set_level("error");
  return true;
}();

struct Rec {
  int64_t offset;
  std::optional<std::string> key;
  std::optional<std::string> value;
  int64_t timestamp;
  std::vector<std::pair<std::string, std::string>> headers;
  bool operator==(const Rec&) const = default;
};

std::optional<std::string> str(const std::optional<ByteSpan>& b) {
  if (!b) return std::nullopt;
  return std::string(as_string_view(*b));
}

std::vector<Rec> decode_all(const PartitionLog& log, std::vector<record::BatchHeader>* headers = nullptr) {
  std::vector<Rec> out;
  for (const Bytes& b : read_all_batches(log)) {
    auto h = header_of(b);
    if (headers != nullptr) headers->push_back(h);
    Bytes scratch;
    auto recs = record::decode_records(b, scratch);
    EXPECT_TRUE(recs) << recs.error().to_string();
    for (const auto& r : *recs) {
      Rec x{h.base_offset + r.offset_delta, str(r.key), str(r.value), h.base_timestamp + r.timestamp_delta, {}};
      for (const auto& hd : r.headers) x.headers.emplace_back(std::string(hd.key), str(hd.value).value_or("<null>"));
      out.push_back(x);
    }
  }
  return out;
}

LogConfig compact_config() {
  LogConfig c;
  c.compact = true;
  c.delete_retention = false;
  c.segment_bytes = 1200;
  c.index_interval_bytes = 128;
  c.delete_retention_ms = 1000;
  return c;
}

std::unique_ptr<PartitionLog> open_log(const std::filesystem::path& dir, LogConfig c = compact_config(),
                                       OpenOptions o = {}) {
  auto log = PartitionLog::open(dir, c, nullptr, std::move(o));
  EXPECT_TRUE(log) << log.error().to_string();
  return std::move(log).value();
}

// Appends one batch per record of `recs` (keys k<i % nkeys>), then flush()
// so the closed segments are sealed and eligible.
std::vector<Rec> fill(PartitionLog& log, int n, int nkeys, int64_t ts = kTs) {
  std::vector<Rec> all;
  for (int i = 0; i < n; ++i) {
    std::string k = "k" + std::to_string(i % nkeys);
    std::string v = "v" + std::to_string(i) + std::string(40, 'x');
    auto info = testing::append(log, build_batch({{k, v, ts + i}}));
    EXPECT_TRUE(info);
    all.push_back(Rec{info->base_offset, k, v, ts + i, {}});
  }
  EXPECT_TRUE(log.flush());
  return all;
}

// What compaction must leave: in segments below `active_base`, the latest
// record per key; from `active_base` on, everything.
std::vector<Rec> expected_after(const std::vector<Rec>& all, int64_t active_base, bool keep_tombstones = true) {
  std::map<std::string, int64_t> latest;
  for (const auto& r : all) {
    if (r.offset < active_base && r.key) latest[*r.key] = r.offset;
  }
  std::vector<Rec> out;
  for (const auto& r : all) {
    if (r.offset >= active_base) {
      out.push_back(r);
      continue;
    }
    if (!r.key || latest[*r.key] != r.offset) continue;  // superseded, or no key to keep it by
    if (!r.value && !keep_tombstones) continue;
    out.push_back(r);
  }
  return out;
}

// Records in segments below the active base, the rest is untouched by a pass.
// Superseded-by-active records stay until the active segment is closed.
int64_t active_base(const std::filesystem::path& dir) {
  int64_t best = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (auto b = parse_segment_log_name(e.path().filename().string())) best = std::max(best, *b);
  }
  return best;
}

// The segment files of `dir`, by base offset, and their .log sizes.
std::map<int64_t, uint64_t> segment_files(const std::filesystem::path& dir) {
  std::map<int64_t, uint64_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (auto b = parse_segment_log_name(e.path().filename().string())) out[*b] = e.file_size();
  }
  return out;
}

// A log in `dir`, closed, holding 80 records over 6 keys: the records and
// the base of its active segment.
std::pair<std::vector<Rec>, int64_t> closed_log_of_80(const std::filesystem::path& dir) {
  auto log = open_log(dir);
  auto all = fill(*log, 80, 6);
  return {all, active_base(dir)};
}

TEST(Compaction, KeepsLatestRecordPerKeyAndOriginalOffsets) {
  TempDir dir;
  auto log = open_log(dir.path());
  auto all = fill(*log, 100, 7);
  ASSERT_GT(log->segment_count(), 3u);
  const int64_t active = active_base(dir.path());
  const uint64_t before = log->size_bytes();
  auto stats = log->compact(kTs + 1000);
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_GT(stats->segments_cleaned, 0u);
  EXPECT_LT(log->size_bytes(), before);
  auto got = decode_all(*log);
  EXPECT_EQ(got, expected_after(all, active));
  EXPECT_EQ(log->log_end_offset(), 100);
  // A read from an offset that compaction removed starts at the next kept batch.
  auto rr = log->read(0, 1, INT64_MAX);
  ASSERT_TRUE(rr);
  Bytes b(rr->total_bytes);
  ASSERT_TRUE(read_slice(rr->slices[0], b.data()));
  if (header_of(b).base_offset != got.front().offset) {
    // A segment whose records all went keeps its last batch, empty, with that batch's max timestamp.
    EXPECT_EQ(header_of(b).records_count, 0);
    EXPECT_LT(header_of(b).base_offset, got.front().offset);
    EXPECT_EQ(header_of(b).max_timestamp, kTs + header_of(b).base_offset);
  }
  // Every segment still ends where the next one begins.
  std::vector<int64_t> bases;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (auto base = parse_segment_log_name(e.path().filename().string())) bases.push_back(*base);
  }
  std::sort(bases.begin(), bases.end());
  for (size_t i = 0; i + 1 < bases.size(); ++i) {
    int64_t next = bases[i];
    for (const Bytes& batch : read_all_batches(*log, bases[i], bases[i + 1])) next = header_of(batch).last_offset() + 1;
    EXPECT_EQ(next, bases[i + 1]) << "segment " << bases[i];
  }
  // Offsets stay monotonic and below the next segment's base; a second pass changes nothing.
  auto again = log->compact(kTs + 2000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->segments_cleaned, 0u);
  EXPECT_EQ(decode_all(*log), got);
  // Survives a restart.
  ASSERT_TRUE(log->close());
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), got);
  EXPECT_EQ(log->log_end_offset(), 100);
  // And a full recovery scan without a checkpoint (every segment checked for
  // continuity) keeps every compacted segment.
  log.reset();
  std::filesystem::remove(dir / "checkpoint");
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), got);
  EXPECT_EQ(log->log_end_offset(), 100);
}

// Records without a key (written before the log became compacted; the
// broker refuses them on a compacted topic) go at the first pass, as Kafka's
// cleaner drops them, also from a batch whose keyed records all stay.
TEST(Compaction, RecordsWithoutAKeyGo) {
  TempDir dir;
  std::vector<Rec> all;
  {
    LogConfig c = compact_config();
    c.compact = false;
    c.delete_retention = true;
    auto log = open_log(dir.path(), c);
    for (int i = 0; i < 60; ++i) {
      std::optional<std::string> k;
      if (i % 3 != 0) k = "k" + std::to_string(i % 5);
      std::string v = "v" + std::to_string(i) + std::string(40, 'x');
      std::optional<std::string> k2;
      if (i % 7 != 0) k2 = "u" + std::to_string(i);
      auto info = testing::append(*log, build_batch({{k, v, kTs + i}, {k2, v, kTs + i}}));
      ASSERT_TRUE(info);
      all.push_back(Rec{info->base_offset, k, v, kTs + i, {}});
      all.push_back(Rec{info->base_offset + 1, k2, v, kTs + i, {}});
    }
    ASSERT_TRUE(log->flush());
    ASSERT_TRUE(log->close());
  }
  auto log = open_log(dir.path());  // now compacted
  const int64_t active = active_base(dir.path());
  auto stats = log->compact(kTs + 1000);
  ASSERT_TRUE(stats) << stats.error().to_string();
  size_t keyless_closed = 0;
  for (const auto& r : all) keyless_closed += r.offset < active && !r.key;
  ASSERT_GT(keyless_closed, 10u);
  EXPECT_EQ(stats->keyless_dropped, keyless_closed);
  EXPECT_EQ(decode_all(*log), expected_after(all, active));
  ASSERT_TRUE(log->close());
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), expected_after(all, active));
}

// A read that starts at an emptied batch (a segment's last, kept so that
// segments stay contiguous) also returns the next batch with records, however
// small max_bytes is: a response holding only empty batches stops kafka-python
// 2.0 (IndexError), which cannot advance past one.
TEST(Compaction, AReadStartingAtAnEmptyBatchAlsoReturnsTheNextBatchWithRecords) {
  TempDir dir;
  auto log = open_log(dir.path());
  fill(*log, 100, 7);
  ASSERT_TRUE(log->compact(kTs + 1000));
  std::vector<record::BatchHeader> batches;
  for (const Bytes& b : read_all_batches(*log)) batches.push_back(header_of(b));
  size_t checked = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (batches[i].records_count != 0) continue;
    auto next = std::find_if(batches.begin() + static_cast<ptrdiff_t>(i), batches.end(),
                             [](const record::BatchHeader& h) { return h.records_count > 0; });
    ASSERT_NE(next, batches.end());
    for (int64_t offset : {batches[i].base_offset, batches[i].last_offset()}) {
      auto rr = log->read(offset, 1, INT64_MAX);
      ASSERT_TRUE(rr) << rr.error().to_string();
      Bytes got(rr->total_bytes);
      uint64_t pos = 0;
      for (const auto& sl : rr->slices) {
        ASSERT_TRUE(read_slice(sl, got.data() + pos));
        pos += sl.size;
      }
      std::vector<record::BatchHeader> in_read;
      for (pos = 0; pos < got.size();) {
        in_read.push_back(record::parse_header(ByteSpan(got.data() + pos, got.size() - pos)).value());
        pos += in_read.back().size_bytes();
      }
      ASSERT_FALSE(in_read.empty());
      EXPECT_EQ(in_read.front().base_offset, batches[i].base_offset);
      EXPECT_EQ(in_read.back().base_offset, next->base_offset) << "read from " << offset;
      EXPECT_GT(in_read.back().records_count, 0);
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u) << "no segment was emptied: the test checked nothing";
}

// An empty batch marked compressed (compaction wrote them for a compressing
// producer before empty batches were always uncompressed) is rewritten or
// dropped by the next pass that filters its segment: librdkafka cannot read
// past one.
TEST(Compaction, AnEmptyBatchMarkedCompressedDoesNotSurviveAPass) {
  TempDir dir;
  auto log = open_log(dir.path());
  (void)fill(*log, 100, 7);
  ASSERT_TRUE(log->compact(kTs + 1000));
  ASSERT_TRUE(log->close());
  // Mark the empty batches lz4, as the old compaction left them.
  int marked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (!parse_segment_log_name(e.path().filename().string())) continue;
    std::string bytes;
    {
      std::ifstream in(e.path(), std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto* p = reinterpret_cast<uint8_t*>(bytes.data());
    for (size_t pos = 0; pos + record::kBatchHeaderSize <= bytes.size();) {
      const size_t len = record::kBatchLengthOverhead + load_be32(p + pos + record::kBatchLengthOffset);
      if (load_be32(p + pos + record::kRecordsCountOffset) == 0) {
        store_be16(p + pos + record::kAttributesOffset, static_cast<uint16_t>(record::Compression::kLz4));
        store_be32(p + pos + record::kCrcOffset, record::compute_crc(ByteSpan(p + pos, len)));
        ++marked;
      }
      pos += len;
    }
    std::ofstream(e.path(), std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  ASSERT_GT(marked, 0);
  log = open_log(dir.path());
  (void)fill(*log, 100, 7, kTs + 100);  // new dirty records: the next pass filters every segment before them
  auto stats = log->compact(kTs + 2000);
  ASSERT_TRUE(stats) << stats.error().to_string();
  std::vector<record::BatchHeader> headers;
  decode_all(*log, &headers);
  int empty = 0;
  for (const auto& h : headers) {
    if (h.records_count != 0) continue;
    ++empty;
    EXPECT_EQ(h.compression(), record::Compression::kNone) << "batch " << h.base_offset;
  }
  EXPECT_GT(empty, 0);
}

TEST(Compaction, NeverTouchesTheActiveSegment) {
  TempDir dir;
  LogConfig c = compact_config();
  c.segment_bytes = 1 << 20;  // everything stays in the active segment
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 50, 3);
  auto stats = log->compact(kTs + 1000);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->segments_cleaned, 0u);
  EXPECT_EQ(decode_all(*log), all);
}

TEST(Compaction, DoesNothingUnlessConfigured) {
  TempDir dir;
  LogConfig c = compact_config();
  c.compact = false;
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 100, 3);
  ASSERT_TRUE(log->compact(kTs + 1000));
  EXPECT_EQ(decode_all(*log), all);
}

TEST(Compaction, RespectsMinCompactionLag) {
  TempDir dir;
  LogConfig c = compact_config();
  c.min_compaction_lag_ms = 10000;
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 100, 3);
  auto stats = log->compact(kTs + 5000);  // every segment is younger than the lag
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->segments_cleaned, 0u);
  EXPECT_EQ(decode_all(*log), all);
  stats = log->compact(kTs + 20000);
  EXPECT_GT(stats->segments_cleaned, 0u);
}

// Without a min.compaction.lag.ms, timestamps do not matter: records stamped ten minutes ahead of
// the broker's clock (CreateTime accepts up to an hour by default) are compacted like any others.
TEST(Compaction, RecordsStampedAheadOfTheClockAreCompactedWithoutALag) {
  TempDir dir;
  auto log = open_log(dir.path());
  auto all = fill(*log, 100, 3, kTs + 600000);
  auto stats = log->compact(kTs);
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_GT(stats->segments_cleaned, 0u);
  EXPECT_EQ(decode_all(*log), expected_after(all, active_base(dir.path())));
}

// Appends `n` records of keys k0..k<5> (timestamps kTs + offset, as fill() gives them).
void append_more(PartitionLog& log, std::vector<Rec>& all, int n) {
  for (int i = 0; i < n; ++i) {
    const int64_t ts = kTs + static_cast<int64_t>(all.size());
    std::string k = "k" + std::to_string(all.size() % 6), v = "w" + std::to_string(all.size()) + std::string(40, 'y');
    auto info = testing::append(log, build_batch({{k, v, ts}}));
    ASSERT_TRUE(info);
    all.push_back(Rec{info->base_offset, k, v, ts, {}});
  }
  ASSERT_TRUE(log.flush());
}

// A pass at `now` that is not due: it reads and changes nothing.
void expect_no_pass(PartitionLog& log, int64_t now) {
  const auto before = decode_all(log);
  auto stats = log.compact(now);
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_EQ(stats->segments_cleaned, 0u);
  EXPECT_EQ(stats->records_read, 0u);
  EXPECT_EQ(decode_all(log), before);
}

// A pass at `now` that is due: it leaves the latest record per key of `all` in the closed segments.
void expect_pass(PartitionLog& log, int64_t now, const std::vector<Rec>& all, const std::filesystem::path& dir) {
  auto stats = log.compact(now);
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_GT(stats->segments_cleaned, 0u);
  EXPECT_EQ(decode_all(log), expected_after(all, active_base(dir)));
}

TEST(Compaction, WaitsUntilTheDirtyBytesReachMinCleanableDirtyRatio) {
  TempDir dir;
  LogConfig c = compact_config();
  c.min_cleanable_dirty_ratio = 0.9;
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 80, 6);
  expect_pass(*log, kTs + 100000, all, dir.path());  // nothing clean yet: the whole log is dirty (ratio 1)
  // A few more segments: dirty, but well below 90% of the log.
  append_more(*log, all, 25);
  expect_no_pass(*log, kTs + 100000);
  // Once they are, the pass runs.
  append_more(*log, all, 400);
  expect_pass(*log, kTs + 100000, all, dir.path());
  // Ratio 0: any dirty segment is due.
  append_more(*log, all, 25);
  c.min_cleanable_dirty_ratio = 0;
  log->set_config(c);
  expect_pass(*log, kTs + 100000, all, dir.path());
}

TEST(Compaction, MaxCompactionLagMakesADirtySegmentDueWhateverTheRatio) {
  TempDir dir;
  LogConfig c = compact_config();
  c.min_cleanable_dirty_ratio = 1;  // the ratio alone never makes a second pass due
  c.max_compaction_lag_ms = 10000;
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 80, 6);
  ASSERT_TRUE(log->compact(kTs + 100));
  // The first dirty segment will be today's active one: its first record has timestamp kTs + its base.
  const int64_t first_dirty_ts = kTs + active_base(dir.path());
  append_more(*log, all, 25);
  expect_no_pass(*log, first_dirty_ts + 9999);  // not yet max.compaction.lag.ms old
  expect_pass(*log, first_dirty_ts + 10000, all, dir.path());
}

TEST(Compaction, MaxCompactionLagRollsTheActiveSegment) {
  TempDir dir;
  LogConfig c = compact_config();
  c.segment_bytes = 1 << 20;
  c.max_compaction_lag_ms = 5000;  // segment.ms stays at its 7 days
  int64_t now = kTs;
  OpenOptions o;
  o.clock = [&] { return now; };
  auto log = open_log(dir.path(), c, o);
  std::vector<Rec> all;
  append_more(*log, all, 3);
  EXPECT_EQ(log->segment_count(), 1u);
  now += 5001;
  append_more(*log, all, 1);
  EXPECT_EQ(log->segment_count(), 2u);
  // Not for a log that is not compacted.
  TempDir dir2;
  c.compact = false;
  now = kTs;
  auto plain = open_log(dir2.path(), c, o);
  std::vector<Rec> all2;
  append_more(*plain, all2, 3);
  now += 5001;
  append_more(*plain, all2, 1);
  EXPECT_EQ(plain->segment_count(), 1u);
}

TEST(Compaction, TombstonesDeleteKeysAndGoAfterDeleteRetention) {
  TempDir dir;
  auto log = open_log(dir.path());
  std::vector<Rec> all;
  auto add = [&](const std::string& k, std::optional<std::string> v, int64_t ts) {
    auto info = testing::append(*log, build_batch({{k, v, ts}}));
    ASSERT_TRUE(info);
    all.push_back(Rec{info->base_offset, k, v, ts, {}});
  };
  for (int i = 0; i < 30; ++i) add("k" + std::to_string(i % 5), std::string(60, 'a' + i % 26), kTs + i);
  add("k1", std::nullopt, kTs + 30);  // delete k1
  add("k2", std::nullopt, kTs + 31);  // delete k2 ...
  add("k2", std::string("back"), kTs + 32);  // ... and write it again
  for (int i = 0; i < 30; ++i) add("filler" + std::to_string(i), std::string(60, 'f'), kTs + 40 + i);
  ASSERT_TRUE(log->flush());
  const int64_t active = active_base(dir.path());
  ASSERT_GT(active, 33);
  // First pass: the tombstone for k1 stays (it must reach consumers), older k1 values go.
  const int64_t t1 = kTs + 100000;
  ASSERT_TRUE(log->compact(t1));
  auto got = decode_all(*log);
  EXPECT_EQ(got, expected_after(all, active, /*keep_tombstones=*/true));
  int k1 = 0;
  for (const auto& r : got) k1 += r.key == "k1";
  EXPECT_EQ(k1, 1);  // just the tombstone
  // Before delete_retention_ms has passed since that first clean: still there.
  ASSERT_TRUE(log->compact(t1 + 500));
  EXPECT_EQ(decode_all(*log), got);
  // After: gone, and nothing of k1 is left.
  auto stats = log->compact(t1 + 1001);
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->tombstones_dropped, 1u);
  got = decode_all(*log);
  EXPECT_EQ(got, expected_after(all, active, /*keep_tombstones=*/false));
  for (const auto& r : got) EXPECT_NE(r.key, "k1");
  // The tombstone clock survives a restart.
  ASSERT_TRUE(log->close());
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), got);
}

class CompactionCodec : public ::testing::TestWithParam<record::Compression> {};

// Multi-record compressed batches: the rewritten batch keeps the codec, base
// offset, offset deltas, timestamps, headers and producer fields.
TEST_P(CompactionCodec, RewritesCompressedBatchesKeepingEverythingButTheDroppedRecords) {
  const record::Compression codec = GetParam();
  TempDir dir;
  auto log = open_log(dir.path());
  std::vector<Rec> all;
  for (int b = 0; b < 30; ++b) {
    record::BatchBuilder builder(codec);
    builder.set_producer(4242, 3, b * 5);
    std::vector<Rec> recs;
    for (int i = 0; i < 5; ++i) {
      std::string k = "key" + std::to_string((b * 5 + i) % 11);
      std::string v = "value-" + std::to_string(b * 5 + i) + std::string(30, 'z');
      std::string hv = "h" + std::to_string(i);
      const int64_t ts = kTs + b * 10 + (i * 7) % 5;  // not monotonic inside the batch
      ASSERT_TRUE(builder.add(as_bytes(k), as_bytes(v), ts, {{"trace", as_bytes(hv)}}));
      recs.push_back(Rec{0, k, v, ts, {{"trace", hv}}});
    }
    auto built = builder.build();
    ASSERT_TRUE(built);
    auto info = testing::append(*log, *built);
    ASSERT_TRUE(info);
    for (int i = 0; i < 5; ++i) recs[static_cast<size_t>(i)].offset = info->base_offset + i;
    all.insert(all.end(), recs.begin(), recs.end());
  }
  ASSERT_TRUE(log->flush());
  const int64_t active = active_base(dir.path());
  ASSERT_GT(active, 0);
  LogConfig unmerged = compact_config();
  unmerged.segment_bytes = 100;  // no two segments fit: each keeps its last batch, emptied
  log->set_config(unmerged);
  auto stats = log->compact(kTs + 100000);
  ASSERT_TRUE(stats) << stats.error().to_string();
  EXPECT_GT(stats->segments_cleaned, 0u);
  EXPECT_EQ(stats->segments_merged, 0u);
  std::vector<record::BatchHeader> headers;
  auto got = decode_all(*log, &headers);
  EXPECT_EQ(got, expected_after(all, active));
  int empty = 0;
  for (const auto& h : headers) {
    // An empty batch (a segment's last, emptied) is uncompressed, as in Kafka: librdkafka cannot
    // decompress a zero-byte records area.
    empty += h.records_count == 0;
    EXPECT_EQ(h.compression(), h.records_count == 0 ? record::Compression::kNone : codec);
    EXPECT_EQ(h.producer_id, 4242);
    EXPECT_EQ(h.producer_epoch, 3);
    EXPECT_EQ(h.base_sequence, static_cast<int32_t>(h.base_offset));  // base sequence b*5 == base offset
    EXPECT_EQ(h.last_offset_delta, 4);  // kept even when the last record was dropped
  }
  EXPECT_GT(empty, 0);
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CompactionCodec,
                         ::testing::Values(record::Compression::kNone, record::Compression::kGzip,
                                           record::Compression::kSnappy, record::Compression::kLz4,
                                           record::Compression::kZstd),
                         [](const ::testing::TestParamInfo<record::Compression>& p) {
                           return record::compression_name(p.param);
                         });

TEST(Compaction, ReadsStartedBeforeTheSwapKeepWorking) {
  TempDir dir;
  auto log = open_log(dir.path());
  fill(*log, 100, 4);
  auto rr = log->read(0, 1 << 20, INT64_MAX);  // slices of the old files
  ASSERT_TRUE(rr);
  std::vector<Bytes> old_bytes;
  for (const auto& s : rr->slices) {
    Bytes b(s.size);
    ASSERT_TRUE(read_slice(s, b.data()));
    old_bytes.push_back(b);
  }
  ASSERT_TRUE(log->compact(kTs + 1000));
  for (size_t i = 0; i < rr->slices.size(); ++i) {
    Bytes b(rr->slices[i].size);
    ASSERT_TRUE(read_slice(rr->slices[i], b.data()));  // the replaced file is still open
    EXPECT_EQ(b, old_bytes[i]);
  }
}

// A log that rolls small segments over a few hot keys: compaction merges
// consecutive segments up to segment.bytes, so the files do not grow with
// every roll; every segment still ends where the next begins.
TEST(Compaction, MergesSmallSegmentsUpToSegmentBytes) {
  TempDir dir;
  auto log = open_log(dir.path());
  std::vector<Rec> all;
  for (int round = 0; round < 5; ++round) {
    auto more = fill(*log, 200, 4, kTs + round * 1000);
    for (auto& r : more) all.push_back(r);
    const size_t before = log->segment_count();
    auto stats = log->compact(kTs + 100000 + round);
    ASSERT_TRUE(stats) << stats.error().to_string();
    EXPECT_GT(stats->segments_merged, 0u) << round;
    EXPECT_LT(log->segment_count(), before) << round;
    // Each round appends ~25 segments; compaction leaves a handful whatever the rounds.
    EXPECT_LE(log->segment_count(), 6u) << round;
    const int64_t active = active_base(dir.path());
    EXPECT_EQ(decode_all(*log), expected_after(all, active)) << round;
  }
  const auto files = segment_files(dir.path());
  EXPECT_EQ(files.size(), log->segment_count());
  for (auto it = files.begin(); it != files.end(); ++it) {
    const auto next = std::next(it);
    if (next == files.end()) break;
    EXPECT_LE(it->second, 1200u) << it->first;  // segment.bytes
    int64_t end = it->first;
    for (const Bytes& batch : read_all_batches(*log, it->first, next->first)) end = header_of(batch).last_offset() + 1;
    EXPECT_EQ(end, next->first) << "segment " << it->first;
  }
  // Inside a merged segment, only its last batch may be empty.
  std::vector<record::BatchHeader> headers;
  const auto got = decode_all(*log, &headers);
  for (const auto& h : headers) {
    if (h.records_count == 0) {
      EXPECT_TRUE(files.count(h.last_offset() + 1)) << h.base_offset;
    }
  }
  // Lookups by offset and by time inside a merged segment.
  for (const Rec& r : got) {
    auto rr = log->read(r.offset, 1, INT64_MAX);
    ASSERT_TRUE(rr);
    Bytes b(rr->total_bytes);
    ASSERT_TRUE(read_slice(rr->slices[0], b.data()));
    EXPECT_LE(header_of(b).base_offset, r.offset);
    EXPECT_GE(header_of(b).last_offset(), r.offset);
  }
  // Clean restart, and a full recovery without a checkpoint, keep the merged set.
  ASSERT_TRUE(log->close());
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), got);
  log.reset();
  std::filesystem::remove(dir / "checkpoint");
  log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), got);
  EXPECT_EQ(log->log_end_offset(), 1000);
  EXPECT_EQ(segment_files(dir.path()), files);
}

// Merging never postpones a tombstone: segments whose tombstones were first
// cleaned in different eighths of delete.retention.ms stay apart, and each
// tombstone goes once its own clock has run out.
TEST(Compaction, MergingKeepsEachTombstonesClock) {
  TempDir dir;
  LogConfig c = compact_config();
  c.delete_retention_ms = 8000;  // clocks round up to whole seconds
  auto log = open_log(dir.path(), c);
  std::vector<Rec> all;
  auto add = [&](const std::string& k, std::optional<std::string> v, int64_t ts) {
    auto info = testing::append(*log, build_batch({{k, v, ts}}));
    ASSERT_TRUE(info);
    all.push_back(Rec{info->base_offset, k, v, ts, {}});
  };
  auto count = [&](const std::string& key) {
    int n = 0;
    for (const auto& r : decode_all(*log)) n += r.key == key;
    return n;
  };
  const int64_t t0 = kTs + 100000;  // a whole second
  for (int i = 0; i < 20; ++i) add("a" + std::to_string(i % 3), std::string(60, 'a'), kTs + i);
  add("a1", std::nullopt, kTs + 20);
  for (int i = 0; i < 20; ++i) add("b" + std::to_string(i), std::string(60, 'b'), kTs + 30 + i);
  ASSERT_TRUE(log->flush());
  ASSERT_TRUE(log->compact(t0));  // a1's tombstone: clock t0
  EXPECT_EQ(count("a1"), 1);
  for (int i = 0; i < 20; ++i) add("c" + std::to_string(i % 3), std::string(60, 'c'), kTs + 60 + i);
  add("c2", std::nullopt, kTs + 80);
  for (int i = 0; i < 20; ++i) add("d" + std::to_string(i), std::string(60, 'd'), kTs + 90 + i);
  ASSERT_TRUE(log->flush());
  auto second = log->compact(t0 + 3000);  // c2's tombstone: clock t0 + 3000, not merged with a1's
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_GT(second->segments_merged, 0u);  // the segments without tombstones still merge
  EXPECT_EQ(count("a1"), 1);
  EXPECT_EQ(count("c2"), 1);
  auto tick = [&](int64_t now) {  // a pass needs dirty bytes: one more record per pass
    for (int i = 0; i < 12; ++i) add("e" + std::to_string(i), std::string(60, 'e'), kTs + 200 + i);
    ASSERT_TRUE(log->flush());
    auto r = log->compact(now);
    ASSERT_TRUE(r) << r.error().to_string();
  };
  tick(t0 + 7999);
  EXPECT_EQ(count("a1"), 1);
  tick(t0 + 8000);
  EXPECT_EQ(count("a1"), 0);  // on time, although merging could have joined it with c2's
  EXPECT_EQ(count("c2"), 1);
  tick(t0 + 10999);
  EXPECT_EQ(count("c2"), 1);
  tick(t0 + 11000);
  EXPECT_EQ(count("c2"), 0);
  EXPECT_EQ(decode_all(*log), expected_after(all, active_base(dir.path()), /*keep_tombstones=*/false));
}

// A read that is half-way through a segment when a pass merges it with the
// next ones goes on in the merged segment: it skips nothing.
TEST(Compaction, AReadInASegmentMergedMeanwhileContinuesInTheMergedOne) {
  TempDir dir;
  const auto [all, active] = closed_log_of_80(dir.path());
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = open_log(dir.path(), compact_config(), o);
  const size_t segments_before = log->segment_count();
  bool compacted = false;
  fs.before_read([&](const std::string& path) {
    if (compacted || !path.ends_with(".log")) return;
    compacted = true;  // first, as the pass reads through this hook too
    auto stats = log->compact(kTs + 1000);
    ASSERT_TRUE(stats) << stats.error().to_string();
    EXPECT_GT(stats->segments_merged, 0u);
  });
  auto rr = log->read(0, 1 << 20, INT64_MAX);  // starts in the first segment, then the swap runs
  fs.before_read(nullptr);
  ASSERT_TRUE(rr) << rr.error().to_string();
  ASSERT_TRUE(compacted);
  ASSERT_LT(log->segment_count(), segments_before);
  std::vector<Rec> got;
  for (const auto& slice : rr->slices) {
    Bytes b(slice.size);
    ASSERT_TRUE(read_slice(slice, b.data()));
    for (size_t pos = 0; pos < b.size();) {
      const auto h = record::parse_header(ByteSpan(b.data() + pos, b.size() - pos)).value();
      Bytes scratch;
      auto recs = record::decode_records(ByteSpan(b.data() + pos, h.size_bytes()), scratch);
      ASSERT_TRUE(recs);
      for (const auto& r : *recs) got.push_back(Rec{h.base_offset + r.offset_delta, str(r.key), str(r.value), 0, {}});
      pos += h.size_bytes();
    }
  }
  // The first segment as it was, then the compacted rest: every latest value, offsets increasing.
  std::map<int64_t, Rec> have;
  for (size_t i = 0; i < got.size(); ++i) {
    if (i > 0) {
      ASSERT_GT(got[i].offset, got[i - 1].offset);
    }
    have[got[i].offset] = got[i];
  }
  for (const auto& r : expected_after(all, active)) EXPECT_TRUE(have.count(r.offset)) << "skipped " << r.offset;
  EXPECT_EQ(got.back().offset, 79);
}

// A read of the active segment that sees it grow and roll meanwhile serves
// the batches appended to it before the roll too.
TEST(PartitionLogRead, GoesOnInTheActiveSegmentWhenItGrewAndRolledDuringTheRead) {
  TempDir dir;
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  LogConfig c = compact_config();
  c.compact = false;
  auto log = open_log(dir.path(), c, o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(testing::append(*log, build_batch({{"k", "v" + std::to_string(i), kTs}})));
  bool appended = false;
  fs.before_read([&](const std::string& path) {
    if (appended || !path.ends_with(kLogSuffix)) return;
    appended = true;
    ASSERT_TRUE(testing::append(*log, build_batch({{"k", "v3", kTs}})));                     // offset 3, same segment
    ASSERT_TRUE(testing::append(*log, build_batch({{"k", std::string(1300, 'x'), kTs}})));  // rolls: offset 4
  });
  auto rr = log->read(2, 1 << 20, INT64_MAX);
  fs.before_read(nullptr);
  ASSERT_TRUE(rr) << rr.error().to_string();
  ASSERT_TRUE(appended);
  EXPECT_EQ(log->segment_count(), 2u);
  std::vector<int64_t> offsets;
  for (const auto& slice : rr->slices) {
    Bytes b(slice.size);
    ASSERT_TRUE(read_slice(slice, b.data()));
    for (size_t pos = 0; pos < b.size();) {
      const auto h = record::parse_header(ByteSpan(b.data() + pos, b.size() - pos)).value();
      offsets.push_back(h.base_offset);
      pos += h.size_bytes();
    }
  }
  EXPECT_EQ(offsets, (std::vector<int64_t>{2, 3, 4}));
}

TEST(Compaction, RetentionAndCompactionTogether) {
  TempDir dir;
  LogConfig c = compact_config();
  c.delete_retention = true;
  c.retention_ms = 50;
  auto log = open_log(dir.path(), c);
  auto all = fill(*log, 100, 7);
  c.segment_bytes = 100;  // no merging: a merged segment would go only once its newest record expired
  log->set_config(c);
  ASSERT_TRUE(log->compact(kTs + 1000));
  ASSERT_TRUE(log->apply_retention(kTs + 100 + 50 - 30));  // deletes segments whose max ts < kTs+70
  EXPECT_GT(log->log_start_offset(), 0);
  for (const auto& r : decode_all(*log)) EXPECT_GE(r.offset, log->log_start_offset());
}

// A fault at the N-th file operation of a compaction, then a power loss:
// after reopening, the log holds either the old or the new segment set:
// the same latest value per key, only original records at original offsets.
TEST(Compaction, CrashAtAnyStepLeavesOldOrNewSet) {
  for (int op_kind = 0; op_kind < 5; ++op_kind) {
    const FaultOp op = std::array{FaultOp::kWrite, FaultOp::kSync, FaultOp::kRename, FaultOp::kSyncDir,
                                  FaultOp::kRemove}[static_cast<size_t>(op_kind)];
    for (uint64_t n = 1; n < 500; ++n) {
      const std::string ctx = fmt::format("op {} n {}", op_kind, n);
      TempDir dir;
      const auto [all, active] = closed_log_of_80(dir.path());
      FaultFileSystem fs;
      OpenOptions o;
      o.fs = &fs;
      bool hit = false;
      {
        auto log = open_log(dir.path(), compact_config(), o);
        fs.fail_nth(op, n, EIO);
        auto r = log->compact(kTs + 1000);
        hit = fs.faults_injected() > 0;
        if (hit && op != FaultOp::kRemove) {  // a .cleaned file left before the commit is deleted by open()
          EXPECT_FALSE(r) << ctx;
        }
        fs.crash(CrashMode::kRandom, n);
      }
      auto log = open_log(dir.path());
      auto got = decode_all(*log);
      const auto compacted = expected_after(all, active);
      if (got != all && got != compacted) {
        // Must be a valid mix: original records at original offsets, all latest values present.
        std::map<int64_t, Rec> orig;
        for (const auto& r : all) orig[r.offset] = r;
        for (const auto& r : got) ASSERT_EQ(orig.at(r.offset), r) << ctx;
        std::map<int64_t, Rec> have;
        for (const auto& r : got) have[r.offset] = r;
        for (const auto& r : compacted) ASSERT_TRUE(have.count(r.offset)) << ctx << " lost " << r.offset;
      }
      EXPECT_EQ(log->log_end_offset(), 80) << ctx;
      // A later pass completes the job.
      ASSERT_TRUE(log->compact(kTs + 2000)) << ctx;
      EXPECT_EQ(decode_all(*log), compacted) << ctx;
      if (::testing::Test::HasFailure() || !hit) break;
    }
  }
}

TEST(Compaction, InterruptedSwapIsFinishedOnOpen) {
  TempDir dir;
  const auto [all, active] = closed_log_of_80(dir.path());
  const size_t segments_before = segment_files(dir.path()).size();
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  {
    auto log = open_log(dir.path(), compact_config(), o);
    // The second rename of a .cleaned file over its segment's (after the commit point) fails.
    fs.fail_nth(FaultOp::kRename, 2, EIO, /*sticky=*/false, kCleanedSuffix);
    auto r = log->compact(kTs + 1000);
    ASSERT_FALSE(r);
    EXPECT_TRUE(std::filesystem::exists(dir / "compaction.swap"));
    // The live log still serves the old files consistently, and refuses another pass.
    EXPECT_EQ(decode_all(*log), all);
    EXPECT_FALSE(log->compact(kTs + 1000));
    fs.crash(CrashMode::kKeepUnsynced, 1);
  }
  auto log = open_log(dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir / "compaction.swap"));
  EXPECT_EQ(decode_all(*log), expected_after(all, active));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().string().find(".cleaned"), std::string::npos) << e.path();
  }
  // The segments merged into others are gone too.
  EXPECT_LT(segment_files(dir.path()).size(), segments_before);
  EXPECT_EQ(segment_files(dir.path()).size(), log->segment_count());
}

// The swap is done but the marker cannot be removed: no later pass may run
// while it is on disk (open() would swap that pass's unfinished .cleaned
// files in). A later pass, retention or DeleteRecords that can remove it
// ends the wait; so does a reopen.
TEST(Compaction, MarkerThatCannotBeRemovedBlocksLaterPassesUntilItIs) {
  TempDir dir;
  auto [all, active] = closed_log_of_80(dir.path());
  const auto compacted = expected_after(all, active);
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  {
    auto log = open_log(dir.path(), compact_config(), o);
    fs.fail_nth(FaultOp::kRemove, 1, EIO, /*sticky=*/true, "compaction.swap");
    EXPECT_FALSE(log->compact(kTs + 1000));
    EXPECT_TRUE(std::filesystem::exists(dir / "compaction.swap"));
    EXPECT_EQ(decode_all(*log), compacted);  // the swap itself went through
    auto more = fill(*log, 40, 6);
    all.insert(all.end(), more.begin(), more.end());
    auto again = log->compact(kTs + 2000);
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().to_string().find("reopen"), std::string::npos) << again.error().to_string();
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      EXPECT_EQ(e.path().string().find(".cleaned"), std::string::npos) << e.path();
    }
    fs.clear_faults();  // the disk recovers: the next pass removes the marker and runs
    ASSERT_TRUE(log->compact(kTs + 3000));
    EXPECT_FALSE(std::filesystem::exists(dir / "compaction.swap"));
    EXPECT_EQ(decode_all(*log), expected_after(all, active_base(dir.path())));
  }
  auto log = open_log(dir.path());
  EXPECT_EQ(decode_all(*log), expected_after(all, active_base(dir.path())));
}

// The marker's commit fails (its directory sync), and removing it fails too:
// it may be on disk. Until it is removed, no pass runs, and the .cleaned files
// stay for open(), which then swaps them in.
TEST(Compaction, AMarkerThatFailedToCommitAndCannotBeRemovedBlocksLaterPasses) {
  TempDir dir;
  auto [all, active] = closed_log_of_80(dir.path());
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = open_log(dir.path(), compact_config(), o);
  const auto before = decode_all(*log);
  // The marker's directory sync fails (the 2nd of the pass: the marker is renamed into place but not
  // durable), and so does removing it.
  fs.fail_nth(FaultOp::kSyncDir, 2, EIO, /*sticky=*/false);
  fs.fail_nth(FaultOp::kRemove, 1, EIO, /*sticky=*/true, "compaction.swap");
  EXPECT_FALSE(log->compact(kTs + 1000));
  EXPECT_TRUE(std::filesystem::exists(dir / "compaction.swap"));
  EXPECT_EQ(decode_all(*log), before);  // not committed in this process: the old set is read
  auto again = log->compact(kTs + 2000);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().to_string().find("reopen"), std::string::npos) << again.error().to_string();
  EXPECT_TRUE(std::filesystem::exists(dir / segment_file_name(0, ".log.cleaned")));
  log.reset();
  log = open_log(dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir / "compaction.swap"));
  EXPECT_EQ(decode_all(*log), expected_after(all, active));
}

// The same, but the marker can be removed at the next pass: that restores the
// old set on disk too, and the pass runs.
TEST(Compaction, AMarkerThatFailedToCommitIsRemovedByTheNextPass) {
  TempDir dir;
  auto [all, active] = closed_log_of_80(dir.path());
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  auto log = open_log(dir.path(), compact_config(), o);
  fs.fail_nth(FaultOp::kSyncDir, 2, EIO, /*sticky=*/false);
  fs.fail_nth(FaultOp::kRemove, 1, EIO, /*sticky=*/false, "compaction.swap");
  EXPECT_FALSE(log->compact(kTs + 1000));
  EXPECT_TRUE(std::filesystem::exists(dir / "compaction.swap"));
  ASSERT_TRUE(log->compact(kTs + 2000));
  EXPECT_FALSE(std::filesystem::exists(dir / "compaction.swap"));
  EXPECT_EQ(decode_all(*log), expected_after(all, active));
  log.reset();
  EXPECT_EQ(decode_all(*open_log(dir.path())), expected_after(all, active));
}

// A closed segment cut short inside its first batch header (damage a clean
// start does not scan for): the pass reports corruption instead of reading
// past the bytes it has (found under ASan).
TEST(Compaction, ASegmentShorterThanABatchHeaderIsCorruption) {
  TempDir dir;
  closed_log_of_80(dir.path());
  const auto files = segment_files(dir.path());
  const auto victim = std::next(files.begin());
  std::filesystem::resize_file(dir / fmt::format("{:020d}.log", victim->first), 30);
  auto log = open_log(dir.path(), compact_config());
  auto r = log->compact(kTs + 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kCorruption);
  EXPECT_NE(r.error().message.find("partial batch header"), std::string::npos) << r.error().message;
}

// A marker whose merged replacement is not on disk (only damage can do
// that): open() fails with a message and touches no file.
TEST(Compaction, OpenRefusesAMarkerWhoseMergedReplacementIsMissing) {
  TempDir dir;
  const auto [all, active] = closed_log_of_80(dir.path());
  const auto files = segment_files(dir.path());
  const int64_t second = std::next(files.begin())->first;
  const Bytes marker = encode_swap_marker({{0, files.begin()->second + 1, {second}}});  // a wrong size
  std::ofstream(dir / "compaction.swap", std::ios::binary)
      .write(reinterpret_cast<const char*>(marker.data()), static_cast<std::streamsize>(marker.size()));
  auto refused = PartitionLog::open(dir.path(), compact_config(), nullptr, {});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kCorruption);
  EXPECT_NE(refused.error().message.find("merged replacement"), std::string::npos) << refused.error().message;
  EXPECT_TRUE(std::filesystem::exists(dir / "compaction.swap"));
  EXPECT_EQ(segment_files(dir.path()), files);
  std::filesystem::remove(dir / "compaction.swap");  // here the first segment is the old one: the old set
  EXPECT_EQ(decode_all(*open_log(dir.path())), all);
}

// A swap that failed half-way leaves the in-memory map with the old segments
// while the first one's name holds the merged replacement: retention (or
// DeleteRecords) that expires that old segment moves the log start but deletes
// no file until a reopen has finished the swap.
TEST(Compaction, RetentionAfterAHalfDoneSwapDeletesNoFileUntilReopen) {
  TempDir dir;
  LogConfig c = compact_config();
  c.delete_retention = true;
  c.retention_ms = 1000;
  std::vector<Rec> all;
  {
    auto log = open_log(dir.path(), c);
    all = fill(*log, 80, 6);
  }
  const auto files = segment_files(dir.path());
  const int64_t second = std::next(files.begin())->first;  // the first segment holds [0, second)
  const int64_t active = active_base(dir.path());
  FaultFileSystem fs;
  OpenOptions o;
  o.fs = &fs;
  {
    auto log = open_log(dir.path(), c, o);
    fs.fail_nth(FaultOp::kRename, 2, EIO, /*sticky=*/false, kCleanedSuffix);
    ASSERT_FALSE(log->compact(kTs + 100));
    // Only the first segment's records (timestamps kTs + offset) are older than retention.ms.
    ASSERT_TRUE(log->apply_retention(kTs + second + 1000));
    EXPECT_EQ(log->log_start_offset(), second);
    EXPECT_TRUE(std::filesystem::exists(dir / segment_file_name(0, kLogSuffix)));
  }
  auto log = open_log(dir.path(), c);
  EXPECT_EQ(log->log_start_offset(), second);
  std::vector<Rec> want;
  for (const auto& r : expected_after(all, active)) {
    if (r.offset >= second) want.push_back(r);
  }
  EXPECT_EQ(decode_all(*log), want);
}

// A maintenance pass may hold a log that was closed meanwhile (its topic
// deleted, and maybe re-created in the same directory): retention, compaction
// and DeleteRecords refuse with kClosed and touch no file.
TEST(Compaction, ClosedLogLeavesTheDirectoryToItsSuccessor) {
  TempDir dir;
  LogConfig c = compact_config();
  c.delete_retention = true;
  c.retention_ms = 0;  // everything closed is expired
  auto old_log = open_log(dir.path(), c);
  fill(*old_log, 80, 6);
  ASSERT_TRUE(old_log->close());
  std::filesystem::remove_all(dir.path());
  auto new_log = open_log(dir.path(), compact_config());
  auto fresh = fill(*new_log, 80, 6);
  auto retention = old_log->apply_retention(kTs + 100000);
  auto compaction = old_log->compact(kTs + 100000);
  auto deletion = old_log->delete_records_before(40);
  ASSERT_FALSE(retention);
  ASSERT_FALSE(compaction);
  ASSERT_FALSE(deletion);
  EXPECT_EQ(retention.error().code, Errc::kClosed) << retention.error().to_string();
  EXPECT_EQ(compaction.error().code, Errc::kClosed) << compaction.error().to_string();
  EXPECT_EQ(deletion.error().code, Errc::kClosed) << deletion.error().to_string();
  EXPECT_EQ(decode_all(*new_log), fresh);
  EXPECT_EQ(new_log->log_start_offset(), 0);
  new_log.reset();
  EXPECT_EQ(decode_all(*open_log(dir.path())), fresh);
}

}  // namespace
}  // namespace herald::storage

namespace herald::storage {
namespace {

// Appenders, readers, retention and compaction at the same time: readers only
// ever see whole, valid batches with increasing offsets.
TEST(Concurrency, AppendsReadsRetentionAndCompactionTogether) {
  TempDir dir;
  LogConfig c = compact_config();
  c.delete_retention = true;
  c.retention_bytes = 20000;
  Flusher flusher;
  auto log = PartitionLog::open(dir.path(), c, &flusher).value();
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      // Start once the reader has read at least once, so that it really runs alongside: 800
      // appends can finish before a freshly started thread is first scheduled.
      while (reads.load() == 0) std::this_thread::yield();
      for (int i = 0; i < 400; ++i) {
        std::string k = "k" + std::to_string((i * 7 + t) % 13);
        auto info = testing::append(*log, build_batch({{k, std::string(50 + i % 40, 'v'), kTs + i}}));
        ASSERT_TRUE(info) << info.error().to_string();
      }
    });
  }
  std::thread reader([&] {
    while (!stop.load()) {
      const int64_t start = log->log_start_offset();
      auto rr = log->read(start, 1 << 16, log->high_watermark());
      if (!rr) {
        ASSERT_EQ(rr.error().code, Errc::kOutOfRange);  // retention overtook us
        continue;
      }
      int64_t prev = -1;
      for (const auto& s : rr->slices) {
        Bytes buf(s.size);
        ASSERT_TRUE(read_slice(s, buf.data()));
        auto split = record::split_batches(buf);
        ASSERT_TRUE(split);
        for (ByteSpan b : *split) {
          auto h = record::parse_header(b).value();
          ASSERT_GT(h.base_offset, prev);
          prev = h.last_offset();
        }
      }
      reads++;
    }
  });
  std::thread maintenance([&] {
    while (!stop.load()) {
      ASSERT_TRUE(log->apply_retention(kTs + 1000));
      auto r = log->compact(kTs + 1000);
      ASSERT_TRUE(r) << r.error().to_string();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  maintenance.join();
  EXPECT_EQ(log->log_end_offset(), 800);
  EXPECT_GT(reads.load(), 0);
  ASSERT_TRUE(log->close());
  log = PartitionLog::open(dir.path(), c, nullptr).value();
  EXPECT_EQ(log->log_end_offset(), 800);
  for (const auto& b : read_all_batches(*log)) EXPECT_TRUE(record::check_integrity(b));
}

}  // namespace
}  // namespace herald::storage
