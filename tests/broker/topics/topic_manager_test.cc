// TopicManager: what is on disk (topic.json) and what clients can use agree.
#include "broker/topics/topic_manager.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

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
    auto tm = TopicManager::open(dir_, TopicConfig{}, &flusher_);
    ASSERT_TRUE(tm) << tm.error().to_string();
    tm_ = std::move(*tm);
  }
  void reopen() {
    tm_->close();
    open();
  }

  fs::path dir_;
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

}  // namespace
}  // namespace herald::broker
