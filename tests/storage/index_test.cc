// SegmentIndex (sparse offset + time index) and the checkpoint / swap-marker codecs.
#include "storage/index.h"

#include <gtest/gtest.h>

#include "common/crc32c.h"
#include "storage/checkpoint.h"

namespace herald::storage {
namespace {

record::BatchHeader batch(int64_t base, int32_t records, int64_t max_ts, int32_t size) {
  record::BatchHeader h;
  h.base_offset = base;
  h.batch_length = size - 12;
  h.last_offset_delta = records - 1;
  h.records_count = records;
  h.max_timestamp = max_ts;
  h.magic = 2;
  return h;
}

// 100 batches of 100 bytes, 2 records each, base offset 1000 + 2i, max ts 10i.
SegmentIndex build(int32_t interval) {
  SegmentIndex idx(1000);
  for (int i = 0; i < 100; ++i) idx.on_batch(batch(1000 + 2 * i, 2, 10 * i, 100), 100u * i, interval);
  return idx;
}

TEST(SegmentIndex, TakesAnEntryEveryIntervalBytes) {
  auto idx = build(1000);
  // Entries at positions 1000, 2000, ... (every 10 batches); none at 0 (implicit).
  ASSERT_EQ(idx.offsets().size(), 9u);
  EXPECT_EQ(idx.offsets()[0], (OffsetEntry{20, 1000}));
  EXPECT_EQ(idx.offsets()[8], (OffsetEntry{180, 9000}));
  EXPECT_EQ(idx.summary().next_offset, 1200);
  EXPECT_EQ(idx.summary().log_size, 10000u);
  EXPECT_EQ(idx.summary().max_timestamp, 990);
  EXPECT_EQ(idx.summary().max_timestamp_batch, 1198);
  EXPECT_EQ(idx.summary().first_timestamp, 0);
}

TEST(SegmentIndex, LookupAtBoundaries) {
  auto idx = build(1000);
  EXPECT_EQ(idx.lookup(0), 0u);       // before the segment
  EXPECT_EQ(idx.lookup(1000), 0u);    // the base offset
  EXPECT_EQ(idx.lookup(1019), 0u);    // just before the first entry
  EXPECT_EQ(idx.lookup(1020), 1000u); // exactly the first entry
  EXPECT_EQ(idx.lookup(1021), 1000u);
  EXPECT_EQ(idx.lookup(1199), 9000u); // last offset of the segment
  EXPECT_EQ(idx.lookup(5000), 9000u); // beyond
  SegmentIndex empty(7);
  EXPECT_EQ(empty.lookup(100), 0u);
}

TEST(SegmentIndex, TimeLookupGivesAStartAtOrBeforeTheFirstMatchingBatch) {
  auto idx = build(1000);
  // Time entries: (max ts before the entry's batch, that batch). Entry at batch 10 has ts 90.
  ASSERT_FALSE(idx.times().empty());
  EXPECT_EQ(idx.times()[0], (TimeEntry{90, 20}));
  for (int64_t ts = 0; ts <= 1000; ts += 7) {
    const int64_t from = idx.lookup_time(ts);
    const int64_t first_batch = 1000 + 2 * ((ts + 9) / 10);  // first batch with max ts >= ts
    EXPECT_LE(from, first_batch) << ts;
    EXPECT_GE(from, std::max<int64_t>(1000, first_batch - 2 * 10)) << ts;  // within one interval
  }
}

TEST(SegmentIndex, FilesRoundTripAndRejectDamage) {
  auto idx = build(300);
  idx.mutable_summary().cleaned_at_ms = 12345;
  idx.mutable_summary().has_tombstones = true;
  Bytes o = idx.encode_offset_index();
  Bytes t = idx.encode_time_index();
  EXPECT_EQ(o.size(), kIndexHeaderSize + idx.offsets().size() * kOffsetEntrySize);
  auto back = SegmentIndex::decode(o, t, 1000);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->summary(), idx.summary());
  EXPECT_EQ(back->offsets(), idx.offsets());
  EXPECT_EQ(back->times(), idx.times());
  EXPECT_EQ(back->lookup(1100), idx.lookup(1100));
  EXPECT_FALSE(SegmentIndex::decode(o, t, 999));  // wrong segment
  for (size_t i = 0; i < o.size(); i += 3) {      // every flipped byte is caught
    Bytes bad = o;
    bad[i] ^= 0x10;
    EXPECT_FALSE(SegmentIndex::decode(bad, t, 1000)) << i;
  }
  Bytes cut(o.begin(), o.end() - 1);
  EXPECT_FALSE(SegmentIndex::decode(cut, t, 1000));
  EXPECT_FALSE(SegmentIndex::decode(t, o, 1000));  // swapped files
}

TEST(SegmentIndex, AppendingAfterDecodeContinuesTheCadence) {
  auto full = build(1000);
  SegmentIndex half(1000);
  for (int i = 0; i < 55; ++i) half.on_batch(batch(1000 + 2 * i, 2, 10 * i, 100), 100u * i, 1000);
  auto back = SegmentIndex::decode(half.encode_offset_index(), half.encode_time_index(), 1000).value();
  for (int i = 55; i < 100; ++i) back.on_batch(batch(1000 + 2 * i, 2, 10 * i, 100), 100u * i, 1000);
  EXPECT_EQ(back.offsets(), full.offsets());
  EXPECT_EQ(back.summary(), full.summary());
}

TEST(Checkpoint, RoundTripsAndRejectsDamage) {
  Checkpoint c{true, 5, 900, 640, 640, 12345, 100, 4096};
  Bytes b = encode_checkpoint(c);
  ASSERT_EQ(b.size(), kCheckpointSize);
  EXPECT_EQ(decode_checkpoint(b).value(), c);
  for (size_t i = 0; i < b.size(); ++i) {
    Bytes bad = b;
    bad[i] ^= 0x01;
    EXPECT_FALSE(decode_checkpoint(bad)) << i;
  }
  EXPECT_EQ(decode_checkpoint(ByteSpan(b.data(), 10)).error().code, Errc::kTruncated);
  b[4] = 2;  // a future version
  EXPECT_FALSE(decode_checkpoint(b));
}

TEST(SwapMarker, RoundTripsAndRejectsDamage) {
  std::vector<SwapEntry> entries = {{0, 70, {}}, {100, 5000, {250, 400}}, {2000000000000, 1 << 30, {2000000000100}}};
  Bytes b = encode_swap_marker(entries);
  EXPECT_EQ(decode_swap_marker(b).value(), entries);
  EXPECT_EQ(decode_swap_marker(encode_swap_marker({})).value(), std::vector<SwapEntry>{});
  for (size_t i = 0; i < b.size(); ++i) {
    Bytes bad = b;
    bad[i] ^= 0x80;
    EXPECT_FALSE(decode_swap_marker(bad)) << i;
  }
  for (size_t n = 0; n < b.size(); ++n) EXPECT_FALSE(decode_swap_marker(ByteSpan(b.data(), n))) << n;
}

// Version 1 (before segments were merged): count, then bare base offsets.
TEST(SwapMarker, DecodesVersion1) {
  Bytes b = {'H', 'S', 'W', 'P', 1, 0, 0, 0, 0, 0, 0, 2};
  for (int64_t base : {7, 900}) {
    for (int s = 56; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(base >> s));
  }
  const uint32_t crc = crc32c::value(b);
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(crc >> s));
  EXPECT_EQ(decode_swap_marker(b).value(), (std::vector<SwapEntry>{{7, 0, {}}, {900, 0, {}}}));
}

}  // namespace
}  // namespace herald::storage
