// TopicManager: what is on disk (topic.json) and what clients can use agree.
#include "broker/topics/topic_manager.h"

#include <gtest/gtest.h>

#include <fstream>

#include <filesystem>
#include <random>

#include "common/fs.h"
#include "record/builder.h"
#include "storage/flusher.h"

namespace herald::broker {
namespace {

namespace fs = std::filesystem;

class TopicManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("herald-topics-test-" + std::to_string(rd()));
    open();
  }
  void TearDown() override {
    tm_->close();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void open() {
    auto tm = TopicManager::open(dir_, TopicConfig{}, &flusher_, internal_);
    ASSERT_TRUE(tm) << tm.error().to_string();
    tm_ = std::move(*tm);
  }
  void reopen() {
    tm_->close();
    open();
  }
  // An unclean restart: closed, its producer snapshots gone; returns partition 0 of `topic`.
  std::shared_ptr<Partition> reopen_without_producer_snapshot(const std::string& topic) {
    tm_->close();
    for (const auto& e : fs::directory_iterator(dir_ / "topics" / topic)) {
      if (e.path().extension() == ".producers") fs::remove(e.path());
    }
    open();
    return tm_->find(topic)->partition(0);
  }

  // A crash right after this point: the producer snapshot on disk now is what the next start
  // reads (close() writes a fresh one, so it is copied here and put back after).
  std::shared_ptr<Partition> reopen_with_snapshot_as_it_is_now(const std::string& topic) {
    const fs::path snap = dir_ / "topics" / topic / "0.producers";
    const fs::path saved = dir_ / "saved.producers";
    const bool had = fs::exists(snap);
    if (had) fs::copy_file(snap, saved, fs::copy_options::overwrite_existing);
    tm_->close();
    fs::remove(snap);
    if (had) fs::rename(saved, snap);
    open();
    return tm_->find(topic)->partition(0);
  }

  // Producer `pid`'s batch 0 is no longer in topic "t", yet after a crash now its retry is a duplicate.
  void expect_retry_is_a_duplicate_after_a_crash(std::shared_ptr<Partition> p, int64_t pid) {
    bool on_disk = false;
    ASSERT_TRUE(p->log->for_each_batch(0, [&](const record::BatchHeader& h) { on_disk |= h.producer_id == pid; }));
    ASSERT_FALSE(on_disk) << "the test needs the producer's segment deleted";
    p.reset();
    p = reopen_with_snapshot_as_it_is_now("t");
    std::lock_guard lock(p->append_mu);
    EXPECT_EQ(p->producers.check(pid, 0, 0, 0).verdict, SeqVerdict::kDuplicate);
  }

  fs::path dir_;
  TopicManager::InternalTopics internal_;
  storage::Flusher flusher_;
  std::unique_ptr<TopicManager> tm_;
};

TEST_F(TopicManagerTest, AddedPartitionsGoLiveOnlyOnceTheirCountIsOnDisk) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  // topic.json cannot be rewritten: its temp file's path is taken by a directory.
  const fs::path blocker = dir_ / "topics" / "t" / "topic.json.tmp";
  fs::create_directories(blocker);
  EXPECT_FALSE(tm_->add_partitions("t", 3, false));
  EXPECT_EQ(tm_->find("t")->partition_count(), 1);
  EXPECT_EQ(tm_->find("t")->partition(1), nullptr) << "no client may write to a partition a restart would drop";
  fs::remove(blocker);
  ASSERT_TRUE(tm_->add_partitions("t", 3, false));
  EXPECT_EQ(tm_->find("t")->partition_count(), 3);
  reopen();
  EXPECT_EQ(tm_->find("t")->partition_count(), 3);
}

TEST_F(TopicManagerTest, AConfigChangeThatCannotBeStoredIsNotApplied) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  TopicConfig changed = tm_->find("t")->config();
  ASSERT_TRUE(changed.set("retention.ms", "1234"));
  const fs::path blocker = dir_ / "topics" / "t" / "topic.json.tmp";
  fs::create_directories(blocker);
  EXPECT_FALSE(tm_->set_config("t", changed));
  EXPECT_EQ(tm_->find("t")->config().get("retention.ms"), "-1") << "what runs is what a restart would load";
  EXPECT_EQ(tm_->find("t")->partition(0)->log->config().retention_ms, -1);
  fs::remove(blocker);
  ASSERT_TRUE(tm_->set_config("t", changed));
  EXPECT_EQ(tm_->find("t")->partition(0)->log->config().retention_ms, 1234);
  reopen();
  EXPECT_EQ(tm_->find("t")->config().get("retention.ms"), "1234");
}

// One batch of one record (key "k") from producer `pid` with sequence `seq`, as an idempotent client sends it.
Bytes producer_batch(int64_t pid, int32_t seq, int64_t ts) {
  record::BatchBuilder b;
  b.set_producer(pid, 0, seq);
  const std::string key = "k", value(60, 'v');
  EXPECT_TRUE(b.add(ByteSpan(reinterpret_cast<const uint8_t*>(key.data()), key.size()),
                    ByteSpan(reinterpret_cast<const uint8_t*>(value.data()), value.size()), ts));
  return *b.build();
}

int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Appends producer `pid`'s batch `seq` to `p` and records it, as the Produce handler does.
void append_as_producer(Partition& p, int64_t pid, int32_t seq, int64_t ts) {
  Bytes b = producer_batch(pid, seq, ts);
  std::lock_guard lock(p.append_mu);
  auto info = p.log->append(b);
  ASSERT_TRUE(info) << info.error().to_string();
  p.producers.record(pid, 0, seq, seq, info->base_offset, info->base_offset, ts);
}

// A topic created again under a deleted one's name starts empty, even when
// the old directory could not be removed (here: put back after the delete,
// without its topic.json, as a failed removal leaves it).
TEST_F(TopicManagerTest, ATopicCreatedAgainStartsEmptyWhateverTheOldDirectoryStillHolds) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  append_as_producer(*tm_->find("t")->partition(0), 7, 0, wall_now_ms());
  ASSERT_EQ(tm_->find("t")->partition(0)->log->log_end_offset(), 1);
  const fs::path topics = dir_ / "topics";
  const fs::path copy = dir_ / "copy-of-t";
  fs::copy(topics / "t", copy, fs::copy_options::recursive);
  fs::remove(copy / "topic.json");
  ASSERT_TRUE(tm_->remove("t"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(topics)) left.push_back(e.path().filename().string());
  EXPECT_TRUE(left.empty()) << left.front();
  fs::rename(copy, topics / "t");
  ASSERT_TRUE(tm_->create("t", 1, {}));
  EXPECT_EQ(tm_->find("t")->partition(0)->log->log_end_offset(), 0);
  reopen();
  EXPECT_EQ(tm_->find("t")->partition(0)->log->log_end_offset(), 0);
}

TEST_F(TopicManagerTest, CompactionKeepsEachProducersLastBatchSoARestartStillKnowsItsSequence) {
  ASSERT_TRUE(tm_->create("t", 1,
                          {{"cleanup.policy", "compact"}, {"segment.bytes", "400"}, {"min.cleanable.dirty.ratio", "0"}}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  // Producer 7's only batch, then producer 8 overwrites key "k" 20 times: every record of 7 is superseded.
  auto append = [&](int64_t pid, int32_t seq) { append_as_producer(*p, pid, seq, ts); };
  append(7, 0);
  for (int i = 0; i < 20; ++i) append(8, i);
  ASSERT_TRUE(p->log->flush());
  ASSERT_GT(p->log->segment_count(), 3u);
  tm_->run_maintenance(ts + 1000);
  bool kept = false;
  ASSERT_TRUE(p->log->for_each_batch(0, [&](const record::BatchHeader& h) {
    if (h.producer_id == 7) kept = h.records_count == 0 && h.base_sequence == 0 && h.last_sequence() == 0;
  }));
  EXPECT_TRUE(kept) << "producer 7's last batch must stay, empty";
  // An unclean restart (no producer snapshot) rebuilds the state from the log: a retry of 7's batch
  // is still a duplicate, not appended a second time.
  p.reset();
  p = reopen_without_producer_snapshot("t");
  std::lock_guard lock(p->append_mu);
  EXPECT_EQ(p->producers.check(7, 0, 0, 0).verdict, SeqVerdict::kDuplicate);
  EXPECT_EQ(p->producers.check(7, 0, 1, 1).verdict, SeqVerdict::kAppend);
}

TEST_F(TopicManagerTest, TheMaintenanceSweepSnapshotsProducerStateWhenTheLogHasGrown) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  auto append = [&](int64_t pid, int32_t seq) { append_as_producer(*p, pid, seq, ts); };
  for (int i = 0; i < 3; ++i) append(7, i);
  const fs::path snap = dir_ / "topics" / "t" / "0.producers";
  tm_->run_maintenance(ts);
  auto read_snapshot = [&](ProducerStateTable& table) -> int64_t {
    auto bytes = read_whole_file(snap);
    if (!bytes) {
      ADD_FAILURE() << "no producer snapshot: " << bytes.error().to_string();
      return -1;
    }
    auto upto = table.decode_snapshot(*bytes);
    EXPECT_TRUE(upto) << upto.error().to_string();
    return upto ? *upto : -1;
  };
  ProducerStateTable first;
  EXPECT_EQ(read_snapshot(first), 3);
  EXPECT_EQ(first.check(7, 0, 2, 2).verdict, SeqVerdict::kDuplicate);
  // Nothing appended since: the next sweep writes nothing.
  fs::remove(snap);
  tm_->run_maintenance(ts);
  EXPECT_FALSE(fs::exists(snap));
  append(7, 3);
  tm_->run_maintenance(ts);
  ProducerStateTable second;
  EXPECT_EQ(read_snapshot(second), 4);
  EXPECT_EQ(second.check(7, 0, 3, 3).verdict, SeqVerdict::kDuplicate);
}

// DeleteRecords moves the log start past a producer's batches but leaves them
// in their segment: an unclean restart (no snapshot) still reads them, so a
// retry of the producer's last batch stays a duplicate.
TEST_F(TopicManagerTest, AfterDeleteRecordsAnUncleanRestartStillKnowsTheProducersSequence) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  for (int i = 0; i < 3; ++i) append_as_producer(*p, 7, i, ts);
  append_as_producer(*p, 8, 0, ts);
  ASSERT_TRUE(p->log->delete_records_before(4));
  ASSERT_EQ(p->log->log_start_offset(), 4);
  ASSERT_EQ(p->log->segment_count(), 1u);
  p.reset();
  p = reopen_without_producer_snapshot("t");
  std::lock_guard lock(p->append_mu);
  EXPECT_EQ(p->producers.check(7, 0, 2, 2).verdict, SeqVerdict::kDuplicate);
  EXPECT_EQ(p->producers.check(7, 0, 3, 3).verdict, SeqVerdict::kAppend);
}

// A producer snapshot that covers more than the log holds (the log's tail was
// lost) is removed at open, not merely ignored: once appends passed its offset
// again it would look valid and describe other batches.
TEST_F(TopicManagerTest, AProducerSnapshotBeyondTheLogEndIsRemovedAtOpen) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  for (int i = 0; i < 3; ++i) append_as_producer(*p, 7, i, ts);
  p.reset();
  tm_->close();
  // A snapshot of a longer log: producer 9 at offsets the log never had.
  ProducerStateTable other;
  other.record(9, 0, 0, 4, 40, 44, ts);
  const fs::path snap = dir_ / "topics" / "t" / "0.producers";
  ASSERT_TRUE(atomic_write_file(snap, other.encode_snapshot(50)));
  open();
  EXPECT_FALSE(fs::exists(snap));
  p = tm_->find("t")->partition(0);
  {
    std::lock_guard lock(p->append_mu);
    EXPECT_EQ(p->producers.check(7, 0, 2, 2).verdict, SeqVerdict::kDuplicate);  // from the log
    EXPECT_NE(p->producers.check(9, 0, 4, 4).verdict, SeqVerdict::kDuplicate);  // not from the snapshot
  }
  // Appends past offset 50 and an unclean restart: still nothing of producer 9.
  for (int i = 0; i < 60; ++i) append_as_producer(*p, 8, i, ts);
  p.reset();
  tm_->close();
  open();
  p = tm_->find("t")->partition(0);
  std::lock_guard lock(p->append_mu);
  EXPECT_NE(p->producers.check(9, 0, 4, 4).verdict, SeqVerdict::kDuplicate);
  EXPECT_EQ(p->producers.check(8, 0, 59, 59).verdict, SeqVerdict::kDuplicate);
}

// Batches replayed at open count as appended then, not at their records' time: a producer that
// wrote records stamped three days ago (a backfill keeping the original times) just before a
// crash is not expired by the restart, and its retry is still a duplicate.
TEST_F(TopicManagerTest, AnUncleanRestartKeepsAProducerWhoseRecordsCarryOldTimestamps) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  auto p = tm_->find("t")->partition(0);
  const int64_t three_days_ago = wall_now_ms() - 3 * 86400000LL;
  for (int i = 0; i < 2; ++i) append_as_producer(*p, 7, i, three_days_ago);
  p.reset();
  p = reopen_without_producer_snapshot("t");
  std::lock_guard lock(p->append_mu);
  EXPECT_EQ(p->producers.check(7, 0, 1, 1).verdict, SeqVerdict::kDuplicate);
  EXPECT_EQ(p->producers.check(7, 0, 2, 2).verdict, SeqVerdict::kAppend);
}

// DeleteRecords and retention delete segments holding a producer's only batches; the producer
// snapshot is written first, so a crash right after (the older snapshot would not know the
// producer, and its batches are gone) still answers a retry as a duplicate.
TEST_F(TopicManagerTest, DeleteRecordsSnapshotsProducersBeforeDeletingTheirSegments) {
  ASSERT_TRUE(tm_->create("t", 1, {{"segment.bytes", "200"}}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  tm_->run_maintenance(ts);  // a snapshot of the empty log
  append_as_producer(*p, 7, 0, ts);
  for (int i = 0; i < 3; ++i) append_as_producer(*p, 8 + i, 0, ts);  // rolls segments
  ASSERT_TRUE(p->log->flush());
  ASSERT_GT(p->log->segment_count(), 2u);
  auto low = tm_->delete_records_before(*tm_->find("t"), *p, p->log->high_watermark());
  ASSERT_TRUE(low) << low.error().to_string();
  expect_retry_is_a_duplicate_after_a_crash(std::move(p), 7);
}

TEST_F(TopicManagerTest, RetentionSnapshotsProducersBeforeDeletingTheirSegments) {
  ASSERT_TRUE(tm_->create("t", 1, {{"segment.bytes", "200"}, {"retention.bytes", "1"}}));
  auto p = tm_->find("t")->partition(0);
  const int64_t ts = wall_now_ms();
  append_as_producer(*p, 9, 0, ts);
  tm_->run_maintenance(ts);  // a snapshot (producer 9), retention: nothing to delete yet
  append_as_producer(*p, 7, 0, ts);
  for (int i = 0; i < 3; ++i) append_as_producer(*p, 10 + i, 0, ts);
  ASSERT_TRUE(p->log->flush());
  tm_->run_maintenance(ts);
  expect_retry_is_a_duplicate_after_a_crash(std::move(p), 7);
}

// A topic directory whose topic.json is missing is removed at open only when it
// holds no records (a create that crashed); one with records is set aside.
// The broker's own topics (the offsets topic) have a topic.json the broker can write again:
// lost or unreadable, it is rebuilt, partitions counted from the directories, and every
// record stays served.
TEST_F(TopicManagerTest, AnInternalTopicsLostOrDamagedMetadataIsWrittenAgain) {
  internal_ = {{"__offsets", {{"cleanup.policy", "compact"}}}};
  reopen();
  ASSERT_TRUE(tm_->create("__offsets", 3, {{"cleanup.policy", "compact"}}, false, /*internal=*/true));
  append_as_producer(*tm_->find("__offsets")->partition(2), 7, 0, wall_now_ms());
  const fs::path meta = dir_ / "topics" / "__offsets" / "topic.json";
  for (const std::string damage : {"deleted", "garbage", "no id"}) {
    tm_->close();
    if (damage == "deleted") {
      fs::remove(meta);
    } else {
      const char* text = damage == "garbage" ? "{\"na" : R"({"name": "__offsets", "partitions": 3})";
      std::ofstream(meta, std::ios::trunc) << text;
    }
    open();
    auto t = tm_->find("__offsets");
    ASSERT_NE(t, nullptr) << damage;
    EXPECT_TRUE(t->internal()) << damage;
    EXPECT_EQ(t->partition_count(), 3) << damage;
    EXPECT_TRUE(t->config().log.compact) << damage;
    EXPECT_EQ(t->partition(2)->log->log_end_offset(), 1) << damage;
  }
  // A user topic's lost metadata is not guessed (its configs may have kept records longer).
  tm_->close();
  internal_.clear();
  fs::remove(meta);
  open();
  EXPECT_EQ(tm_->find("__offsets"), nullptr);
  EXPECT_TRUE(fs::exists(dir_ / "topics" / "__offsets.no-metadata"));
}

TEST_F(TopicManagerTest, ATopicDirectoryWithRecordsButNoMetadataIsSetAsideNotDeleted) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  ASSERT_TRUE(tm_->create("empty", 1, {}));
  append_as_producer(*tm_->find("t")->partition(0), 7, 0, wall_now_ms());
  tm_->close();
  const fs::path topics = dir_ / "topics";
  fs::remove(topics / "t" / "topic.json");
  fs::remove(topics / "empty" / "topic.json");
  open();
  EXPECT_EQ(tm_->find("t"), nullptr);
  EXPECT_EQ(tm_->find("empty"), nullptr);
  EXPECT_FALSE(fs::exists(topics / "empty"));
  EXPECT_FALSE(fs::exists(topics / "t"));
  EXPECT_GT(fs::file_size(topics / "t.no-metadata" / "0" / "00000000000000000000.log"), 0u);
  reopen();  // stays set aside
  EXPECT_TRUE(fs::exists(topics / "t.no-metadata"));
  EXPECT_EQ(tm_->find("t"), nullptr);
  // A new topic under the same name loses its metadata too: set aside beside the first.
  ASSERT_TRUE(tm_->create("t", 1, {}));
  append_as_producer(*tm_->find("t")->partition(0), 7, 0, wall_now_ms());
  tm_->close();
  fs::remove(topics / "t" / "topic.json");
  open();
  EXPECT_EQ(tm_->find("t"), nullptr);
  EXPECT_TRUE(fs::exists(topics / "t.no-metadata"));
  EXPECT_GT(fs::file_size(topics / "t.2.no-metadata" / "0" / "00000000000000000000.log"), 0u);
  reopen();
  EXPECT_TRUE(fs::exists(topics / "t.2.no-metadata"));
  EXPECT_FALSE(fs::exists(topics / "t.2.no-metadata.no-metadata"));
}

// A delete renames the directory in one step; a crash after that leaves a
// directory (topic.json included) that the next start removes, not serves.
TEST_F(TopicManagerTest, ADeletedTopicsDirectoryLeftByACrashIsRemovedAtOpen) {
  ASSERT_TRUE(tm_->create("t", 1, {}));
  append_as_producer(*tm_->find("t")->partition(0), 7, 0, wall_now_ms());
  tm_->close();
  const fs::path topics = dir_ / "topics";
  fs::rename(topics / "t", topics / "t~deleted-0123");
  open();
  EXPECT_EQ(tm_->find("t"), nullptr);
  EXPECT_FALSE(fs::exists(topics / "t~deleted-0123"));
  ASSERT_TRUE(tm_->create("t", 1, {}));
  ASSERT_TRUE(tm_->remove("t"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(topics)) left.push_back(e.path().filename().string());
  EXPECT_TRUE(left.empty()) << left.front();
}

// The longest topic name (249 characters): its delete goes through the one-step rename (the
// marked name is shortened to fit NAME_MAX, where the full one did not fit), and one whose
// topic.json is lost is set aside instead of stopping the open on "File name too long".
TEST_F(TopicManagerTest, TheLongestTopicNameIsDeletedAndSetAsideWithinNameMax) {
  const std::string name(249, 'Q');
  const fs::path topics = dir_ / "topics";
  ASSERT_TRUE(tm_->create(name, 1, {}));
  append_as_producer(*tm_->find(name)->partition(0), 7, 0, wall_now_ms());
  ASSERT_TRUE(tm_->remove(name));
  EXPECT_TRUE(fs::is_empty(topics));
  ASSERT_TRUE(tm_->create(name, 1, {}));
  append_as_producer(*tm_->find(name)->partition(0), 7, 0, wall_now_ms());
  tm_->close();
  fs::remove(topics / name / "topic.json");
  open();
  EXPECT_EQ(tm_->find(name), nullptr);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(topics)) left.push_back(e.path().filename().string());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_TRUE(left[0].ends_with(".no-metadata") && left[0].size() <= 255) << left[0];
}

}  // namespace
}  // namespace herald::broker
