// Committed offsets: validation, durability in __consumer_offsets (Kafka's
// layout), replay after a restart, deletion, expiry.
#include <cerrno>
#include <climits>
#include <fstream>

#include "broker/group/coordinator_fixture.h"
#include "broker/group/offsets_format.h"
#include "record/records.h"

namespace herald::broker::group::testing {
namespace {

using GroupOffsetsTest = CoordinatorTest;

TEST_F(GroupOffsetsTest, SimpleCommitToANewGroupIsStoredAndFetched) {
  auto r = commit("g", -1, "", {{"t", 0, 42}, {"t", 3, 7}}, "meta");
  ASSERT_EQ(r.topics.size(), 1u);
  EXPECT_EQ(r.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(r.topics[0].partitions[1].error_code, 0);
  EXPECT_EQ(committed("g", "t", 0), 42);
  EXPECT_EQ(committed("g", "t", 3), 7);
  EXPECT_EQ(committed("g", "t", 1), -1) << "no commit: -1";
  EXPECT_EQ(committed("nobody", "t", 0), -1) << "unknown group: -1, no error";

  protocol::OffsetFetchRequest all;
  all.group_id = "g";
  all.topics.reset();  // null: every committed offset (v2+)
  auto resp = fetch(all);
  ASSERT_EQ(resp.topics.size(), 1u);
  ASSERT_EQ(resp.topics[0].partitions.size(), 2u);
  EXPECT_EQ(resp.topics[0].partitions[0].metadata, "meta");
  EXPECT_EQ(resp.topics[0].partitions[0].committed_leader_epoch, 0);
}

TEST_F(GroupOffsetsTest, OffsetFetchV8AnswersSeveralGroups) {
  commit("a", -1, "", {{"t", 0, 1}});
  commit("b", -1, "", {{"t", 1, 2}});
  protocol::OffsetFetchRequest r;
  r.groups.emplace_back();
  r.groups.back().group_id = "a";
  r.groups.back().topics.reset();
  r.groups.emplace_back();
  r.groups.back().group_id = "b";
  r.groups.back().topics.emplace();
  r.groups.back().topics->emplace_back();
  r.groups.back().topics->back().name = "t";
  r.groups.back().topics->back().partition_indexes = {0, 1};
  auto resp = fetch(r, 8);
  ASSERT_EQ(resp.groups.size(), 2u);
  ASSERT_EQ(resp.groups[0].topics.size(), 1u);
  EXPECT_EQ(resp.groups[0].topics[0].partitions[0].committed_offset, 1);
  ASSERT_EQ(resp.groups[1].topics[0].partitions.size(), 2u);
  EXPECT_EQ(resp.groups[1].topics[0].partitions[0].committed_offset, -1);
  EXPECT_EQ(resp.groups[1].topics[0].partitions[1].committed_offset, 2);
}

TEST_F(GroupOffsetsTest, CommitValidation) {
  auto r = commit("g", -1, "", {{"nosuch", 0, 1}});
  EXPECT_EQ(first_error(r), code(ErrorCode::kUnknownTopicOrPartition));
  EXPECT_EQ(first_error(commit("g", -1, "", {{"t", 4, 1}})), code(ErrorCode::kUnknownTopicOrPartition));
  EXPECT_EQ(first_error(commit("g", -1, "", {{"t", 0, 1}}, std::string(4097, 'x'))),
            code(ErrorCode::kOffsetMetadataTooLarge));
  EXPECT_EQ(first_error(commit("g", -1, "", {{"t", 0, 1}}, std::string(4096, 'x'))), 0);
  EXPECT_EQ(first_error(commit("g2", 3, "someone", {{"t", 0, 1}})), code(ErrorCode::kIllegalGeneration))
      << "a generation for a group that does not exist";
  EXPECT_EQ(first_error(commit("g2", 3, "someone", {{"t", 0, 1}}, "m", 9)), code(ErrorCode::kGroupIdNotFound))
      << "the same from v9 (Kafka's answer since that version)";
}

TEST_F(GroupOffsetsTest, CommitsAreFencedByMemberAndGeneration) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  EXPECT_EQ(first_error(commit("g", gen, ids[1], {{"t", 0, 10}})), 0);
  EXPECT_EQ(committed("g", "t", 0), 10);
  EXPECT_EQ(first_error(commit("g", gen - 1, ids[1], {{"t", 0, 11}})), code(ErrorCode::kIllegalGeneration));
  EXPECT_EQ(first_error(commit("g", gen, "stranger", {{"t", 0, 11}})), code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(first_error(commit("g", -1, "", {{"t", 0, 11}})), code(ErrorCode::kUnknownMemberId))
      << "only members commit to a group with members";
  EXPECT_EQ(committed("g", "t", 0), 10);

  // During PreparingRebalance the current generation may still commit...
  auto lj = join(join_req("g", ids[0]), 3);
  EXPECT_TRUE(held(lj));
  EXPECT_EQ(first_error(commit("g", gen, ids[1], {{"t", 0, 12}})), 0);
  // ...but not during CompletingRebalance.
  auto fj = join(join_req("g", ids[1]), 3);
  auto rl = get(lj);
  get(fj);
  EXPECT_EQ(first_error(commit("g", rl.generation_id, ids[1], {{"t", 0, 13}})), code(ErrorCode::kRebalanceInProgress));
  EXPECT_EQ(committed("g", "t", 0), 12);
}

TEST_F(GroupOffsetsTest, CommitsGoToTheGroupsPartitionInKafkasLayout) {
  commit("billing", -1, "", {{"t", 2, 99}}, "hello");
  const int32_t p = partition_for("billing", coord_->offsets_partition_count());
  auto topic = topics_->find("__consumer_offsets");
  ASSERT_TRUE(topic);
  EXPECT_TRUE(topic->internal());
  EXPECT_EQ(topic->partition_count(), 2);
  EXPECT_TRUE(topic->config().log.compact) << "stored as the topic's cleanup.policy";
  EXPECT_TRUE(topic->partition(0)->log->config().compact);
  EXPECT_FALSE(topic->partition(0)->log->config().delete_retention);
  auto& log = *topic->partition(p)->log;
  ASSERT_EQ(log.log_end_offset(), 1);
  auto rr = log.read(0, 1 << 20, 1);
  ASSERT_TRUE(rr);
  Bytes buf(rr->total_bytes);
  ASSERT_TRUE(storage::read_slice(rr->slices[0], buf.data()));
  Bytes scratch;
  auto recs = record::decode_records(buf, scratch);
  ASSERT_TRUE(recs);
  ASSERT_EQ(recs->size(), 1u);
  auto key = decode_key(*(*recs)[0].key);
  ASSERT_TRUE(key);
  EXPECT_EQ(std::get<OffsetKey>(*key), (OffsetKey{"billing", "t", 2}));
  EXPECT_EQ(load_be16((*(*recs)[0].key).data()), 1) << "key version 1";
  EXPECT_EQ(load_be16((*(*recs)[0].value).data()), 3) << "value version 3";
  auto v = decode_offset_value(*(*recs)[0].value);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->offset, 99);
  EXPECT_EQ(v->metadata, "hello");
}

TEST_F(GroupOffsetsTest, OffsetsGenerationAndMembersSurviveARestart) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  for (int64_t o = 1; o <= 5; ++o) ASSERT_EQ(first_error(commit("g", gen, ids[0], {{"t", 0, o}, {"t", 1, o * 10}})), 0);
  ASSERT_EQ(first_error(commit("simple", -1, "", {{"t", 2, 77}})), 0);
  auto before = *coord_->snapshot("g");
  reopen();
  EXPECT_EQ(committed("g", "t", 0), 5);
  EXPECT_EQ(committed("g", "t", 1), 50);
  EXPECT_EQ(committed("simple", "t", 2), 77);
  auto after = coord_->snapshot("g");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->state, "Stable");
  EXPECT_EQ(after->generation, gen);
  EXPECT_EQ(after->leader, before.leader);
  ASSERT_EQ(after->members.size(), 2u);
  EXPECT_EQ(after->members[0].assignment, before.members[0].assignment);
  // Members carry on with the same id and generation.
  EXPECT_EQ(heartbeat("g", gen, ids[1]), 0);
  EXPECT_EQ(first_error(commit("g", gen, ids[1], {{"t", 0, 6}})), 0);
  // A new join continues the generation counter.
  auto c = join(join_req("g", ""), 3);
  auto a = join(join_req("g", ids[0]), 3);
  auto b = join(join_req("g", ids[1]), 3);
  EXPECT_EQ(get(c).generation_id, gen + 1);
  get(a);
  get(b);
}

// A damaged batch in the group's __consumer_offsets partition (a flipped byte on disk) costs the
// records in it, not the partition: the batches before and after it are replayed, and a commit
// made after the restart survives the next one.
TEST_F(GroupOffsetsTest, ADamagedOffsetsBatchIsSkippedAtLoad) {
  for (int64_t o = 1; o <= 5; ++o) ASSERT_EQ(first_error(commit("gc", -1, "", {{"t", 0, o}})), 0);
  ASSERT_EQ(first_error(commit("other", -1, "", {{"t", 0, 7}})), 0);
  const int32_t p = partition_for("gc", coord_->offsets_partition_count());
  close();
  const auto seg = dir_ / "topics" / std::string(kOffsetsTopic) / std::to_string(p) / "00000000000000000000.log";
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f);
    uint8_t head[12];
    ASSERT_TRUE(f.read(reinterpret_cast<char*>(head), sizeof head));
    const uint64_t first = 12 + load_be32(head + 8);
    f.seekg(static_cast<std::streamoff>(first));
    ASSERT_TRUE(f.read(reinterpret_cast<char*>(head), sizeof head));
    const uint64_t second_end = first + 12 + load_be32(head + 8);
    char c = 0;
    f.seekg(static_cast<std::streamoff>(second_end - 1));
    ASSERT_TRUE(f.read(&c, 1));
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(second_end - 1));
    ASSERT_TRUE(f.write(&c, 1));
  }
  open(cfg_);
  EXPECT_EQ(committed("gc", "t", 0), 5) << "the commits after the damaged batch are lost";
  EXPECT_EQ(committed("other", "t", 0), 7);
  ASSERT_EQ(first_error(commit("gc", -1, "", {{"t", 0, 100}})), 0);
  reopen();
  EXPECT_EQ(committed("gc", "t", 0), 100);
}

TEST_F(GroupOffsetsTest, EmptyGroupKeepsItsGenerationAcrossRestart) {
  int32_t gen = 0;
  auto ids = stable_group("g", 1, &gen);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "g";
  leave.member_id = ids[0];
  coord_->leave_group(client(1), leave);
  ASSERT_EQ(coord_->snapshot("g")->state, "Empty");
  ASSERT_EQ(first_error(commit("g", -1, "", {{"t", 0, 3}})), 0) << "an Empty group accepts simple commits";
  reopen();
  auto s = coord_->snapshot("g");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, "Empty");
  EXPECT_EQ(s->generation, gen + 1);
  EXPECT_EQ(s->protocol_type, "consumer");
}

TEST_F(GroupOffsetsTest, DeleteGroups) {
  int32_t gen = 0;
  stable_group("busy", 1, &gen);
  commit("idle", -1, "", {{"t", 0, 5}});
  protocol::DeleteGroupsRequest r;
  r.groups_names = {"busy", "idle", "missing"};
  auto f = spawn(coord_->delete_groups(client(2), r));
  auto resp = get(f);
  ASSERT_EQ(resp.results.size(), 3u);
  EXPECT_EQ(resp.results[0].error_code, code(ErrorCode::kNonEmptyGroup));
  EXPECT_EQ(resp.results[1].error_code, 0);
  EXPECT_EQ(resp.results[2].error_code, code(ErrorCode::kGroupIdNotFound));
  EXPECT_EQ(committed("idle", "t", 0), -1);
  EXPECT_FALSE(coord_->snapshot("idle"));
  reopen();
  EXPECT_EQ(committed("idle", "t", 0), -1) << "the tombstones survive a restart";
  EXPECT_FALSE(coord_->snapshot("idle"));
  EXPECT_TRUE(coord_->snapshot("busy"));
}

TEST_F(GroupOffsetsTest, OffsetDelete) {
  ASSERT_TRUE(topics_->create("u", 2, {}));
  commit("idle", -1, "", {{"t", 0, 5}, {"t", 1, 6}});
  protocol::OffsetDeleteRequest r;
  r.group_id = "idle";
  r.topics.emplace_back();
  r.topics.back().name = "t";
  r.topics.back().partitions.push_back({0});
  r.topics.back().partitions.push_back({9});
  auto f = spawn(coord_->offset_delete(client(0), r));
  auto resp = get(f);
  EXPECT_EQ(resp.error_code, 0);
  ASSERT_EQ(resp.topics.size(), 1u);
  EXPECT_EQ(resp.topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(resp.topics[0].partitions[1].error_code, code(ErrorCode::kUnknownTopicOrPartition));
  EXPECT_EQ(committed("idle", "t", 0), -1);
  EXPECT_EQ(committed("idle", "t", 1), 6);

  // A consumer group with members: only topics it does not subscribe to.
  int32_t gen = 0;
  auto ids = stable_group("busy", 1, &gen);
  commit("busy", gen, ids[0], {{"t", 0, 1}});
  commit("busy", gen, ids[0], {{"u", 0, 1}});
  protocol::OffsetDeleteRequest b;
  b.group_id = "busy";
  b.topics.emplace_back();
  b.topics.back().name = "t";
  b.topics.back().partitions.push_back({0});
  b.topics.emplace_back();
  b.topics.back().name = "u";
  b.topics.back().partitions.push_back({0});
  auto f2 = spawn(coord_->offset_delete(client(0), b));
  auto r2 = get(f2);
  EXPECT_EQ(r2.topics[0].partitions[0].error_code, code(ErrorCode::kGroupSubscribedToTopic));
  EXPECT_EQ(r2.topics[1].partitions[0].error_code, 0);
  EXPECT_EQ(committed("busy", "u", 0), -1);

  protocol::OffsetDeleteRequest none;
  none.group_id = "missing";
  auto f3 = spawn(coord_->offset_delete(client(0), none));
  EXPECT_EQ(get(f3).error_code, code(ErrorCode::kGroupIdNotFound));

  reopen();
  EXPECT_EQ(committed("idle", "t", 0), -1);
  EXPECT_EQ(committed("idle", "t", 1), 6);
  EXPECT_EQ(committed("busy", "u", 0), -1);
  EXPECT_EQ(committed("busy", "t", 0), 1);
}

TEST_F(GroupOffsetsTest, OffsetsOfADeletedTopicAreDropped) {
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  commit("g", -1, "", {{"gone", 0, 5}, {"t", 0, 6}});
  ASSERT_TRUE(topics_->remove("gone"));
  EXPECT_EQ(coord_->run_cleanup(), 1u);
  EXPECT_EQ(committed("g", "gone", 0), -1);
  EXPECT_EQ(committed("g", "t", 0), 6);
  // Re-created under the same name it is another topic: old offsets do not apply.
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  reopen();
  EXPECT_EQ(committed("g", "gone", 0), -1);
  EXPECT_EQ(committed("g", "t", 0), 6);
}

TEST_F(GroupOffsetsTest, ARecreatedTopicStartsWithoutTheOldTopicsOffsets) {
  // Re-created before any sweep: OffsetFetch tells the two topics apart by id.
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  commit("g", -1, "", {{"gone", 0, 5}, {"t", 0, 6}});
  ASSERT_TRUE(topics_->remove("gone"));
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  EXPECT_EQ(committed("g", "gone", 0), -1);
  // DeleteTopics tombstones the offsets durably: a restart (which cannot tell
  // the two topics apart) does not bring them back.
  commit("g", -1, "", {{"gone", 0, 7}});
  ASSERT_EQ(committed("g", "gone", 0), 7);
  const TopicId gone_id = topics_->find("gone")->id();
  ASSERT_TRUE(topics_->remove("gone"));
  auto f = spawn(coord_->forget_topic("gone", gone_id));
  get(f);
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  reopen();
  EXPECT_EQ(committed("g", "gone", 0), -1);
  EXPECT_EQ(committed("g", "t", 0), 6);
}

// DeleteTopics drops the offsets of the topic it deleted, not those committed
// to a topic re-created under the name before it got to them.
TEST_F(GroupOffsetsTest, DeletingATopicKeepsTheOffsetsOfItsRecreatedNamesake) {
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  const TopicId old_id = topics_->find("gone")->id();
  commit("g", -1, "", {{"gone", 0, 5}});
  ASSERT_TRUE(topics_->remove("gone"));
  ASSERT_TRUE(topics_->create("gone", 1, {}));
  commit("g", -1, "", {{"gone", 0, 9}});
  auto f = spawn(coord_->forget_topic("gone", old_id));
  get(f);
  EXPECT_EQ(committed("g", "gone", 0), 9);
  reopen();
  EXPECT_EQ(committed("g", "gone", 0), 9);
}

// Kafka answers a connection's requests one at a time, so an OffsetFetch
// pipelined behind an OffsetCommit sees it; here they run concurrently, and
// the fetch waits for the commit to be durable instead.
TEST_F(GroupOffsetsTest, OffsetFetchRightBehindACommitSeesIt) {
  protocol::OffsetFetchRequest q;
  q.group_id = "g";
  q.topics.emplace();
  q.topics->emplace_back();
  q.topics->back().name = "t";
  q.topics->back().partition_indexes = {0};
  int stale = 0;
  for (int64_t o = 1; o <= 50; ++o) {
    protocol::OffsetCommitRequest c;
    c.group_id = "g";
    c.generation_id_or_member_epoch = -1;
    c.topics.emplace_back().name = "t";
    c.topics.back().partitions.emplace_back().partition_index = 0;
    c.topics.back().partitions.back().committed_offset = o;
    auto cf = spawn(coord_->offset_commit(client(7), c));
    auto ff = spawn(coord_->offset_fetch(client(7), q));
    auto fr = get(ff);
    ASSERT_EQ(first_error(get(cf)), 0);
    ASSERT_EQ(fr.topics.size(), 1u);
    if (fr.topics[0].partitions[0].committed_offset != o) ++stale;
  }
  EXPECT_EQ(stale, 0);
}

TEST_F(GroupOffsetsTest, OffsetsNeverExpireByDefault) {
  commit("g", -1, "", {{"t", 0, 5}});
  EXPECT_EQ(coord_->run_cleanup(), 0u);
  EXPECT_EQ(committed("g", "t", 0), 5);
}

TEST_F(GroupOffsetsTest, RetentionExpiresOffsetsOfEmptyGroupsAndThenTheGroup) {
  auto cfg = fast_config();
  cfg.offsets_retention_ms = 50;
  reopen(cfg);
  commit("idle", -1, "", {{"t", 0, 5}});
  int32_t gen = 0;
  auto ids = stable_group("busy", 1, &gen);
  commit("busy", gen, ids[0], {{"t", 0, 1}});
  std::this_thread::sleep_for(80ms);
  heartbeat("busy", gen, ids[0]);
  EXPECT_EQ(coord_->run_cleanup(), 1u) << "only the Empty group's offsets expire";
  EXPECT_EQ(committed("idle", "t", 0), -1);
  EXPECT_EQ(committed("busy", "t", 0), 1);
  EXPECT_TRUE(eventually([&] { return !coord_->snapshot("idle"); })) << "an Empty group without offsets is removed";
  reopen(cfg);
  EXPECT_EQ(committed("idle", "t", 0), -1);
}

// Memory changes only once the tombstones are durable. Their fdatasync fails
// here: the client gets an error, and the group keeps what a replay would give
// (after a power loss the unsynced tombstones are gone).
TEST_F(GroupOffsetsTest, DeleteGroupsThatIsNotDurableKeepsTheGroup) {
  int32_t gen = 0;
  auto ids = stable_group("idle", 1, &gen, 3000, 3000);
  ASSERT_EQ(first_error(commit("idle", gen, ids[0], {{"t", 0, 5}})), 0);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "idle";
  leave.member_id = ids[0];
  coord_->leave_group(client(1), leave);
  ASSERT_EQ(coord_->snapshot("idle")->state, "Empty");
  auto& fs = fault_offsets_partition("idle");
  fs.fail_nth(storage::FaultOp::kSync, 1, EIO, /*sticky=*/false, ".log");
  protocol::DeleteGroupsRequest r;
  r.groups_names = {"idle"};
  auto f = spawn(coord_->delete_groups(client(2), r));
  auto resp = get(f);
  ASSERT_EQ(fs.faults_injected(), 1u);
  ASSERT_EQ(resp.results.size(), 1u);
  EXPECT_EQ(resp.results[0].error_code, code(ErrorCode::kCoordinatorNotAvailable));
  auto s = coord_->snapshot("idle");
  ASSERT_TRUE(s) << "the group is still there";
  EXPECT_EQ(s->state, "Empty");
  EXPECT_EQ(s->generation, gen + 1);
  EXPECT_EQ(s->offsets, 1u);
  EXPECT_EQ(committed("idle", "t", 0), 5);
  fs.crash(storage::CrashMode::kDropUnsynced, 1);
  reopen();
  EXPECT_EQ(committed("idle", "t", 0), 5);
  ASSERT_TRUE(coord_->snapshot("idle"));
  EXPECT_EQ(coord_->snapshot("idle")->generation, gen + 1);
}

TEST_F(GroupOffsetsTest, OffsetDeleteThatIsNotDurableKeepsTheOffset) {
  ASSERT_EQ(first_error(commit("idle", -1, "", {{"t", 0, 5}, {"t", 1, 6}})), 0);
  auto& fs = fault_offsets_partition("idle");
  fs.fail_nth(storage::FaultOp::kSync, 1, EIO, /*sticky=*/false, ".log");
  protocol::OffsetDeleteRequest r;
  r.group_id = "idle";
  r.topics.emplace_back();
  r.topics.back().name = "t";
  r.topics.back().partitions.push_back({0});
  auto f = spawn(coord_->offset_delete(client(0), r));
  auto resp = get(f);
  ASSERT_EQ(fs.faults_injected(), 1u);
  EXPECT_EQ(resp.error_code, code(ErrorCode::kCoordinatorNotAvailable));
  EXPECT_EQ(committed("idle", "t", 0), 5);
  EXPECT_EQ(coord_->snapshot("idle")->offsets, 2u);
  fs.crash(storage::CrashMode::kDropUnsynced, 1);
  reopen();
  EXPECT_EQ(committed("idle", "t", 0), 5);
  EXPECT_EQ(committed("idle", "t", 1), 6);
}

TEST_F(GroupOffsetsTest, ExpiryThatIsNotDurableKeepsTheOffsetsAndTheGroup) {
  auto cfg = fast_config();
  cfg.offsets_retention_ms = 50;
  reopen(cfg);
  ASSERT_EQ(first_error(commit("idle", -1, "", {{"t", 0, 5}})), 0);
  std::this_thread::sleep_for(80ms);
  auto& fs = fault_offsets_partition("idle");
  fs.fail_nth(storage::FaultOp::kSync, 1, EIO, /*sticky=*/false, ".log");
  EXPECT_EQ(coord_->run_cleanup(), 1u);
  // The group is Dead while its tombstones are on their way, Empty again once they failed.
  ASSERT_TRUE(eventually([&] {
    auto s = coord_->snapshot("idle");
    return s && s->state == "Empty";
  })) << "the group is kept";
  EXPECT_EQ(fs.faults_injected(), 1u);
  EXPECT_EQ(coord_->snapshot("idle")->offsets, 1u);
  EXPECT_EQ(committed("idle", "t", 0), 5);
  fs.crash(storage::CrashMode::kDropUnsynced, 1);
  reopen(cfg);
  EXPECT_EQ(committed("idle", "t", 0), 5);
}

// Commits and tombstones of one partition in flight together: whichever is
// applied first once they are durable, the table ends as a replay would.
TEST_F(GroupOffsetsTest, CommitsAndDeletesInFlightEndAsAReplayWould) {
  protocol::OffsetDeleteRequest del;
  del.group_id = "g";
  del.topics.emplace_back();
  del.topics.back().name = "t";
  del.topics.back().partitions.push_back({0});
  auto commit_req = [](int64_t o) {
    protocol::OffsetCommitRequest c;
    c.group_id = "g";
    c.generation_id_or_member_epoch = -1;
    c.topics.emplace_back().name = "t";
    c.topics.back().partitions.emplace_back().partition_index = 0;
    c.topics.back().partitions.back().committed_offset = o;
    return c;
  };
  for (int64_t o = 1; o <= 20; ++o) {
    // commit, tombstone, and every other round a commit after the tombstone.
    auto c1 = spawn(coord_->offset_commit(client(7), commit_req(o)));
    auto d = spawn(coord_->offset_delete(client(0), del));
    std::optional<std::future<protocol::OffsetCommitResponse>> c2;
    if (o % 2 == 0) c2 = spawn(coord_->offset_commit(client(7), commit_req(o * 10)));
    ASSERT_EQ(first_error(get(c1)), 0);
    ASSERT_EQ(get(d).error_code, 0);
    if (c2) {
      ASSERT_EQ(first_error(get(*c2)), 0);
    }
    EXPECT_EQ(committed("g", "t", 0), o % 2 ? -1 : o * 10) << o;
  }
  reopen();
  EXPECT_EQ(committed("g", "t", 0), 200);
}

// base + offsets_retention_ms <= now overflowed (undefined; in practice it
// wrapped and expired the offset at once) for a commit timestamp near
// INT64_MAX, which OffsetCommit v1 takes from the client, or a huge retention.
TEST_F(GroupOffsetsTest, RetentionCheckDoesNotOverflow) {
  auto cfg = fast_config();
  cfg.offsets_retention_ms = 50;
  reopen(cfg);
  protocol::OffsetCommitRequest c;
  c.group_id = "future";
  c.generation_id_or_member_epoch = -1;
  c.topics.emplace_back().name = "t";
  c.topics.back().partitions.emplace_back().partition_index = 0;
  c.topics.back().partitions.back().committed_offset = 7;
  c.topics.back().partitions.back().commit_timestamp = INT64_MAX - 10;
  auto f = spawn(coord_->offset_commit(client(1), c));
  ASSERT_EQ(first_error(get(f)), 0);
  EXPECT_EQ(coord_->run_cleanup(), 0u) << "committed in the far future: not expired";
  EXPECT_EQ(committed("future", "t", 0), 7);

  cfg.offsets_retention_ms = INT64_MAX;
  reopen(cfg);
  ASSERT_EQ(first_error(commit("now", -1, "", {{"t", 0, 3}})), 0);
  EXPECT_EQ(coord_->run_cleanup(), 0u);
  EXPECT_EQ(committed("now", "t", 0), 3);
}

TEST_F(GroupOffsetsTest, OffsetFetchV1ReportsErrorsPerPartition) {
  close();
  open(fast_config(), /*start=*/false);
  protocol::OffsetFetchRequest r;
  r.group_id = "g";
  r.topics.emplace();
  r.topics->emplace_back();
  r.topics->back().name = "t";
  r.topics->back().partition_indexes = {0};
  auto v1 = fetch(r, 1);
  ASSERT_EQ(v1.topics.size(), 1u);
  EXPECT_EQ(v1.topics[0].partitions[0].error_code, code(ErrorCode::kCoordinatorLoadInProgress));
  auto v7 = fetch(r);
  EXPECT_EQ(v7.error_code, code(ErrorCode::kCoordinatorLoadInProgress));
  ASSERT_TRUE(coord_->start());
}

}  // namespace
}  // namespace herald::broker::group::testing
