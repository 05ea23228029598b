// Test fixture for the group coordinator: a temp data dir with a flusher, a
// topic manager (topic "t", 4 partitions), one io_context thread, and a
// coordinator with short timeouts so that sessions and barriers expire fast.
// fault_offsets_partition() puts a group's __consumer_offsets partition on a
// FaultFileSystem, to fail its writes or syncs.
#pragma once

#include <gtest/gtest.h>

#include <asio.hpp>

#include <chrono>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "broker/group/group_coordinator.h"
#include "broker/group/offsets_format.h"
#include "broker/topics/topic_manager.h"
#include "protocol/error_code.h"
#include "storage/fault_file_system.h"
#include "storage/flusher.h"

namespace herald::broker::group::testing {

using namespace std::chrono_literals;
using protocol::ErrorCode;

inline int16_t code(ErrorCode e) { return static_cast<int16_t>(e); }

// A "consumer" protocol subscription (ConsumerProtocolSubscription v0) to `topics`.
inline Bytes subscription(const std::vector<std::string>& topics) {
  Writer w(32);
  w.put_i16(0);
  w.put_i32(static_cast<int32_t>(topics.size()));
  for (const auto& t : topics) {
    w.put_i16(static_cast<int16_t>(t.size()));
    w.put_bytes(t);
  }
  w.put_i32(-1);  // user data
  return w.take();
}

inline Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

inline GroupConfig fast_config() {
  GroupConfig c;
  c.min_session_timeout_ms = 10;
  c.initial_rebalance_delay_ms = 40;
  c.offsets_topic_partitions = 2;
  c.cleanup_interval_ms = 0;  // tests call run_cleanup() themselves
  return c;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("herald-group-test-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    open();
  }
  void TearDown() override {
    close();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void open(GroupConfig cfg = fast_config(), bool start = true) {
    cfg_ = cfg;
    flusher_ = std::make_unique<storage::Flusher>();
    auto tm = TopicManager::open(dir_, TopicConfig{}, flusher_.get());
    ASSERT_TRUE(tm) << tm.error().to_string();
    topics_ = std::move(*tm);
    if (!topics_->find("t")) {
      ASSERT_TRUE(topics_->create("t", 4, {}));
    }
    io_ = std::make_unique<asio::io_context>(1);
    work_.emplace(asio::make_work_guard(*io_));
    thread_ = std::thread([this] { io_->run(); });
    coord_ = std::make_unique<GroupCoordinator>(cfg, *topics_, io_->get_executor());
    if (start) {
      auto r = coord_->start();
      ASSERT_TRUE(r) << r.error().to_string();
    }
  }

  void close() {
    if (!coord_) return;
    coord_->stop();
    work_.reset();
    io_->stop();
    thread_.join();
    coord_.reset();
    topics_->close();
    io_.reset();
    topics_.reset();
    flusher_.reset();
    fault_fs_.reset();
  }

  // Reopens the __consumer_offsets partition that holds `group` (creating the
  // topic if need be) through a FaultFileSystem, which it returns: e.g.
  //   fault_offsets_partition("g").fail_nth(storage::FaultOp::kSync, 1, EIO, false, ".log");
  // fails the next fdatasync of that partition's data. Call it with no request in
  // flight; the partition stays on it until close() (reopen() opens it normally).
  storage::FaultFileSystem& fault_offsets_partition(const std::string& group) {
    if (!fault_fs_) fault_fs_ = std::make_unique<storage::FaultFileSystem>();
    auto topic = coord_->offsets_topic();
    if (!topic) {
      ADD_FAILURE() << topic.error().to_string();
      return *fault_fs_;
    }
    auto part = (*topic)->partition(partition_for(group, coord_->offsets_partition_count()));
    const storage::LogConfig config = part->log->config();  // as the coordinator set it (flush.policy=always)
    if (auto r = part->log->close(); !r) ADD_FAILURE() << r.error().to_string();
    storage::OpenOptions o;
    o.fs = fault_fs_.get();
    auto log = storage::PartitionLog::open(dir_ / "topics" / std::string(kOffsetsTopic) / std::to_string(part->index),
                                           config, flusher_.get(), o);
    if (!log) {
      ADD_FAILURE() << log.error().to_string();
      return *fault_fs_;
    }
    part->log = std::move(*log);
    return *fault_fs_;
  }

  // Polls `pred` until it holds or `timeout` passes; returns whether it held.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds timeout = 3000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(2ms);
    }
    return true;
  }

  void reopen(GroupConfig cfg) {
    close();
    open(cfg);
  }
  void reopen() { reopen(cfg_); }

  template <class T>
  std::future<T> spawn(asio::awaitable<T> a) {
    return asio::co_spawn(io_->get_executor(), std::move(a), asio::use_future);
  }

  // Waits for a held request; fails the test (and returns a default) after `timeout`.
  template <class T>
  T get(std::future<T>& f, std::chrono::milliseconds timeout = 3000ms) {
    if (f.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "request still held after " << timeout.count() << " ms";
      return T{};
    }
    return f.get();
  }
  template <class T>
  bool held(std::future<T>& f, std::chrono::milliseconds for_at_least = 60ms) {
    return f.wait_for(for_at_least) != std::future_status::ready;
  }

  static ClientInfo client(int16_t version, std::string client_id = "cli") {
    return ClientInfo{std::move(client_id), "/127.0.0.1", version};
  }

  static protocol::JoinGroupRequest join_req(const std::string& group, const std::string& member_id,
                                             int32_t session_ms = 300, int32_t rebalance_ms = 300,
                                             std::optional<std::string> instance = std::nullopt,
                                             std::vector<std::string> protocols = {"range"},
                                             std::string protocol_type = "consumer") {
    protocol::JoinGroupRequest r;
    r.group_id = group;
    r.member_id = member_id;
    r.session_timeout_ms = session_ms;
    r.rebalance_timeout_ms = rebalance_ms;
    r.group_instance_id = std::move(instance);
    r.protocol_type = std::move(protocol_type);
    for (const auto& p : protocols) {
      protocol::JoinGroupRequest::JoinGroupRequestProtocol jp;
      jp.name = p;
      jp.metadata = subscription({"t"});
      r.protocols.push_back(std::move(jp));
    }
    return r;
  }

  std::future<protocol::JoinGroupResponse> join(const protocol::JoinGroupRequest& r, int16_t version = 5,
                                                std::string client_id = "cli") {
    return spawn(coord_->join_group(client(version, std::move(client_id)), r));
  }

  // Joins with the KIP-394 round trip (v5) and waits for the barrier.
  protocol::JoinGroupResponse join_now(const protocol::JoinGroupRequest& r) {
    auto first = join(r);
    auto resp = get(first);
    if (resp.error_code != code(ErrorCode::kMemberIdRequired)) return resp;
    auto again = r;
    again.member_id = resp.member_id;
    auto second = join(again);
    return get(second);
  }

  static protocol::SyncGroupRequest sync_req(const std::string& group, int32_t generation, const std::string& member,
                                             std::vector<std::pair<std::string, Bytes>> assignments = {},
                                             std::optional<std::string> instance = std::nullopt) {
    protocol::SyncGroupRequest r;
    r.group_id = group;
    r.generation_id = generation;
    r.member_id = member;
    r.group_instance_id = std::move(instance);
    for (auto& [m, a] : assignments) {
      protocol::SyncGroupRequest::SyncGroupRequestAssignment sa;
      sa.member_id = m;
      sa.assignment = a;
      r.assignments.push_back(std::move(sa));
    }
    return r;
  }
  std::future<protocol::SyncGroupResponse> sync(const protocol::SyncGroupRequest& r, int16_t version = 3) {
    return spawn(coord_->sync_group(client(version), r));
  }

  int16_t heartbeat(const std::string& group, int32_t generation, const std::string& member,
                    std::optional<std::string> instance = std::nullopt) {
    protocol::HeartbeatRequest r;
    r.group_id = group;
    r.generation_id = generation;
    r.member_id = member;
    r.group_instance_id = std::move(instance);
    return coord_->heartbeat(client(3), r).error_code;
  }

  // A Stable group of `n` dynamic members; returns their (member id, generation) in join order
  // (the first is the leader). Each member is assigned the bytes "a<i>".
  std::vector<std::string> stable_group(const std::string& group, int n, int32_t* generation,
                                        int32_t session_ms = 300, int32_t rebalance_ms = 300) {
    std::vector<std::future<protocol::JoinGroupResponse>> joins;
    for (int i = 0; i < n; ++i) joins.push_back(join(join_req(group, "", session_ms, rebalance_ms), 3));
    std::vector<std::string> ids(static_cast<size_t>(n));
    std::string leader;
    int32_t gen = -1;
    for (int i = 0; i < n; ++i) {
      auto r = get(joins[static_cast<size_t>(i)]);
      EXPECT_EQ(r.error_code, 0);
      ids[static_cast<size_t>(i)] = r.member_id;
      leader = r.leader;
      gen = r.generation_id;
    }
    std::vector<std::pair<std::string, Bytes>> assignment;
    for (int i = 0; i < n; ++i) assignment.emplace_back(ids[static_cast<size_t>(i)], bytes_of("a" + std::to_string(i)));
    std::vector<std::future<protocol::SyncGroupResponse>> syncs;
    for (const auto& id : ids) {
      syncs.push_back(sync(sync_req(group, gen, id, id == leader ? assignment : decltype(assignment){})));
    }
    for (auto& s : syncs) EXPECT_EQ(get(s).error_code, 0);
    // Leader first, as the test helpers expect.
    std::stable_partition(ids.begin(), ids.end(), [&](const std::string& id) { return id == leader; });
    if (generation) *generation = gen;
    return ids;
  }

  protocol::OffsetCommitResponse commit(const std::string& group, int32_t generation, const std::string& member,
                                        std::vector<std::tuple<std::string, int32_t, int64_t>> offsets,
                                        std::string metadata = "m", int16_t version = 7,
                                        std::optional<std::string> instance = std::nullopt) {
    protocol::OffsetCommitRequest r;
    r.group_id = group;
    r.generation_id_or_member_epoch = generation;
    r.member_id = member;
    r.group_instance_id = std::move(instance);
    for (auto& [t, p, o] : offsets) {
      if (r.topics.empty() || r.topics.back().name != t) {
        r.topics.emplace_back();
        r.topics.back().name = t;
      }
      protocol::OffsetCommitRequest::OffsetCommitRequestPartition cp;
      cp.partition_index = p;
      cp.committed_offset = o;
      cp.committed_leader_epoch = 0;
      cp.committed_metadata = metadata;
      r.topics.back().partitions.push_back(cp);
    }
    auto f = spawn(coord_->offset_commit(client(version), std::move(r)));
    return get(f);
  }

  protocol::OffsetFetchResponse fetch(const protocol::OffsetFetchRequest& r, int16_t version = 7) {
    auto f = spawn(coord_->offset_fetch(client(version), r));
    return get(f);
  }

  // Committed offset of one partition (-1 if none), via OffsetFetch v7.
  int64_t committed(const std::string& group, const std::string& topic, int32_t partition) {
    protocol::OffsetFetchRequest r;
    r.group_id = group;
    r.topics.emplace();
    r.topics->emplace_back();
    r.topics->back().name = topic;
    r.topics->back().partition_indexes = {partition};
    auto resp = fetch(r);
    EXPECT_EQ(resp.error_code, 0);
    if (resp.topics.size() != 1 || resp.topics[0].partitions.size() != 1) return -2;
    return resp.topics[0].partitions[0].committed_offset;
  }

  static int16_t first_error(const protocol::OffsetCommitResponse& r) {
    return r.topics.empty() || r.topics[0].partitions.empty() ? -100 : r.topics[0].partitions[0].error_code;
  }

  std::filesystem::path dir_;
  GroupConfig cfg_;
  std::unique_ptr<storage::FaultFileSystem> fault_fs_;  // outlives the logs opened through it
  std::unique_ptr<storage::Flusher> flusher_;
  std::unique_ptr<TopicManager> topics_;
  std::unique_ptr<asio::io_context> io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::unique_ptr<GroupCoordinator> coord_;
};

}  // namespace herald::broker::group::testing
