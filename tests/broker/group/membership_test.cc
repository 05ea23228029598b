// Group membership: the join and sync barriers, rebalances on join, leave and
// session expiry, generation fencing, static membership and the request
// checks of docs/groups.md ("Errors").
#include <cerrno>

#include "broker/group/coordinator_fixture.h"

namespace herald::broker::group::testing {
namespace {

using JoinGroupMembershipTest = CoordinatorTest;

TEST_F(JoinGroupMembershipTest, JoinV4WithEmptyMemberIdGetsMemberIdRequiredThenJoins) {
  auto f = join(join_req("g", ""), 5, "client-1");
  auto first = get(f);
  EXPECT_EQ(first.error_code, code(ErrorCode::kMemberIdRequired));
  EXPECT_EQ(first.member_id.rfind("client-1-", 0), 0u) << first.member_id;
  EXPECT_EQ(first.member_id.size(), std::string("client-1-").size() + 36);
  EXPECT_EQ(first.generation_id, -1);
  EXPECT_EQ(coord_->snapshot("g")->pending_member_ids, 1u);

  auto again = join_req("g", first.member_id);
  auto f2 = join(again, 5, "client-1");
  auto r = get(f2);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_EQ(r.member_id, first.member_id);
  EXPECT_EQ(r.leader, first.member_id);
  EXPECT_EQ(r.generation_id, 1);
  EXPECT_EQ(r.protocol_name, "range");
  EXPECT_EQ(r.protocol_type, "consumer");
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(r.members[0].metadata, subscription({"t"}));
  auto s = coord_->snapshot("g");
  EXPECT_EQ(s->state, "CompletingRebalance");
  EXPECT_EQ(s->pending_member_ids, 0u);
}

TEST_F(JoinGroupMembershipTest, JoinV3AssignsMemberIdWithoutRoundTrip) {
  auto f = join(join_req("g", ""), 3);
  auto r = get(f);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_FALSE(r.member_id.empty());
  EXPECT_EQ(r.generation_id, 1);
}

TEST_F(JoinGroupMembershipTest, FirstJoinIsHeldForTheInitialRebalanceDelay) {
  auto t0 = std::chrono::steady_clock::now();
  auto f = join(join_req("g", ""), 3);
  auto r = get(f);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(cfg_.initial_rebalance_delay_ms));
}

TEST_F(JoinGroupMembershipTest, MembersJoiningDuringTheInitialDelayShareOneGeneration) {
  auto a = join(join_req("g", ""), 3);
  auto b = join(join_req("g", ""), 3);
  auto ra = get(a), rb = get(b);
  ASSERT_EQ(ra.error_code, 0);
  ASSERT_EQ(rb.error_code, 0);
  EXPECT_EQ(ra.generation_id, 1);
  EXPECT_EQ(rb.generation_id, 1);
  EXPECT_EQ(ra.leader, rb.leader);
  const auto& leader = ra.member_id == ra.leader ? ra : rb;
  const auto& follower = ra.member_id == ra.leader ? rb : ra;
  EXPECT_EQ(leader.members.size(), 2u);
  EXPECT_TRUE(follower.members.empty());
}

TEST_F(JoinGroupMembershipTest, FollowersWaitForTheLeadersAssignment) {
  auto a = join(join_req("g", ""), 3);
  auto b = join(join_req("g", ""), 3);
  auto ra = get(a), rb = get(b);
  const std::string leader = ra.leader;
  const std::string follower = ra.member_id == leader ? rb.member_id : ra.member_id;
  auto fs = sync(sync_req("g", 1, follower));
  EXPECT_TRUE(held(fs)) << "follower must wait for the leader";
  auto ls = sync(sync_req("g", 1, leader, {{leader, bytes_of("L")}, {follower, bytes_of("F")}}));
  auto rl = get(ls), rf = get(fs);
  EXPECT_EQ(rl.error_code, 0);
  EXPECT_EQ(rf.error_code, 0);
  EXPECT_EQ(rl.assignment, bytes_of("L"));
  EXPECT_EQ(rf.assignment, bytes_of("F"));
  EXPECT_EQ(coord_->snapshot("g")->state, "Stable");
  // A late SyncGroup in Stable returns the stored assignment at once.
  auto again = sync(sync_req("g", 1, follower));
  EXPECT_EQ(get(again).assignment, bytes_of("F"));
}

TEST_F(JoinGroupMembershipTest, MembersLeftOutOfTheAssignmentGetEmptyBytes) {
  auto a = join(join_req("g", ""), 3);
  auto b = join(join_req("g", ""), 3);
  auto ra = get(a), rb = get(b);
  const std::string leader = ra.leader;
  const std::string follower = ra.member_id == leader ? rb.member_id : ra.member_id;
  auto fs = sync(sync_req("g", 1, follower));
  auto ls = sync(sync_req("g", 1, leader, {{leader, bytes_of("L")}, {"stranger", bytes_of("X")}}));
  EXPECT_EQ(get(ls).assignment, bytes_of("L"));
  auto rf = get(fs);
  EXPECT_EQ(rf.error_code, 0);
  EXPECT_TRUE(rf.assignment.empty());
}

TEST_F(JoinGroupMembershipTest, SyncGroupChecksMemberGenerationAndState) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  auto unknown = sync(sync_req("g", gen, "nobody"));
  EXPECT_EQ(get(unknown).error_code, code(ErrorCode::kUnknownMemberId));
  auto old = sync(sync_req("g", gen - 1, ids[1]));
  EXPECT_EQ(get(old).error_code, code(ErrorCode::kIllegalGeneration));
  auto no_group = sync(sync_req("nope", gen, ids[1]));
  EXPECT_EQ(get(no_group).error_code, code(ErrorCode::kUnknownMemberId));
  auto bad_protocol = sync_req("g", gen, ids[1]);
  bad_protocol.protocol_name = "roundrobin";
  auto bp = sync(bad_protocol, 5);
  EXPECT_EQ(get(bp).error_code, code(ErrorCode::kInconsistentGroupProtocol));
  // The leader rejoins: the group is PreparingRebalance until the follower rejoins too.
  auto lj = join(join_req("g", ids[0]), 3);
  EXPECT_TRUE(held(lj));
  auto during = sync(sync_req("g", gen, ids[1]));
  EXPECT_EQ(get(during).error_code, code(ErrorCode::kRebalanceInProgress));
}

TEST_F(JoinGroupMembershipTest, NewMemberTriggersRebalanceThatExistingMembersLearnFromHeartbeats) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  EXPECT_EQ(heartbeat("g", gen, ids[0]), 0);
  auto c = join(join_req("g", ""), 3);
  EXPECT_TRUE(held(c)) << "the join barrier waits for the existing members";
  EXPECT_EQ(coord_->snapshot("g")->state, "PreparingRebalance");
  EXPECT_EQ(heartbeat("g", gen, ids[0]), code(ErrorCode::kRebalanceInProgress));
  EXPECT_EQ(heartbeat("g", gen, ids[1]), code(ErrorCode::kRebalanceInProgress));
  auto a = join(join_req("g", ids[0]), 3);
  auto b = join(join_req("g", ids[1]), 3);
  auto ra = get(a), rb = get(b), rc = get(c);
  EXPECT_EQ(ra.generation_id, gen + 1);
  EXPECT_EQ(rb.generation_id, gen + 1);
  EXPECT_EQ(rc.generation_id, gen + 1);
  EXPECT_EQ(ra.leader, ids[0]) << "the leader keeps its role when it rejoins";
  EXPECT_EQ(ra.members.size(), 3u);
  // The previous generation is fenced.
  EXPECT_EQ(heartbeat("g", gen, ids[1]), code(ErrorCode::kIllegalGeneration));
}

TEST_F(JoinGroupMembershipTest, FollowerRejoiningUnchangedInStableGetsTheCurrentGeneration) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  auto f = join(join_req("g", ids[1]), 3);
  auto r = get(f);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_EQ(r.generation_id, gen);
  EXPECT_EQ(coord_->snapshot("g")->state, "Stable");
}

TEST_F(JoinGroupMembershipTest, LeaveGroupRebalancesTheRemainingMembers) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "g";
  leave.member_id = ids[1];
  EXPECT_EQ(coord_->leave_group(client(1), leave).error_code, 0);
  EXPECT_EQ(heartbeat("g", gen, ids[0]), code(ErrorCode::kRebalanceInProgress));
  auto a = join(join_req("g", ids[0]), 3);
  auto r = get(a);
  EXPECT_EQ(r.generation_id, gen + 1);
  EXPECT_EQ(r.members.size(), 1u);
  // Leaving twice: the member is unknown now.
  EXPECT_EQ(coord_->leave_group(client(1), leave).error_code, code(ErrorCode::kUnknownMemberId));
  leave.group_id = "no-such-group";
  EXPECT_EQ(coord_->leave_group(client(1), leave).error_code, code(ErrorCode::kUnknownMemberId));
}

TEST_F(JoinGroupMembershipTest, LastMemberLeavingEmptiesTheGroupAndBumpsTheGeneration) {
  int32_t gen = 0;
  auto ids = stable_group("g", 1, &gen);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "g";
  leave.members.emplace_back();
  leave.members.back().member_id = ids[0];
  auto resp = coord_->leave_group(client(3), leave);
  EXPECT_EQ(resp.error_code, 0);
  ASSERT_EQ(resp.members.size(), 1u);
  EXPECT_EQ(resp.members[0].error_code, 0);
  auto s = coord_->snapshot("g");
  EXPECT_EQ(s->state, "Empty");
  EXPECT_EQ(s->generation, gen + 1);
  EXPECT_EQ(heartbeat("g", gen + 1, ids[0]), code(ErrorCode::kUnknownMemberId));
}

TEST_F(JoinGroupMembershipTest, ExpiredSessionRemovesTheMemberAndRebalances) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen, /*session_ms=*/150);
  // Only the leader heartbeats.
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline && heartbeat("g", gen, ids[0]) == 0) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(heartbeat("g", gen, ids[0]), code(ErrorCode::kRebalanceInProgress));
  auto a = join(join_req("g", ids[0], 150), 3);
  auto r = get(a);
  EXPECT_EQ(r.generation_id, gen + 1);
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(heartbeat("g", gen + 1, ids[1]), code(ErrorCode::kUnknownMemberId));
}

TEST_F(JoinGroupMembershipTest, MembersThatDoNotRejoinWithinTheRebalanceTimeoutAreRemoved) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen, /*session_ms=*/2000, /*rebalance_ms=*/150);
  auto t0 = std::chrono::steady_clock::now();
  auto a = join(join_req("g", ids[0], 2000, 150), 3);  // the leader forces a rebalance
  // The follower keeps heartbeating (so its session stays alive) but never rejoins.
  while (a.wait_for(20ms) != std::future_status::ready && std::chrono::steady_clock::now() - t0 < 3s) {
    heartbeat("g", gen, ids[1]);
  }
  auto r = get(a);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_EQ(r.generation_id, gen + 1);
  EXPECT_EQ(r.members.size(), 1u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 150ms);
  EXPECT_EQ(heartbeat("g", gen + 1, ids[1]), code(ErrorCode::kUnknownMemberId));
}

TEST_F(JoinGroupMembershipTest, LeaderThatNeverSyncsIsExpiredAndFollowersAreToldToRejoin) {
  auto a = join(join_req("g", "", 150), 3);
  auto b = join(join_req("g", "", 150), 3);
  auto ra = get(a), rb = get(b);
  const std::string follower = ra.member_id == ra.leader ? rb.member_id : ra.member_id;
  auto fs = sync(sync_req("g", 1, follower));
  auto rf = get(fs);
  EXPECT_EQ(rf.error_code, code(ErrorCode::kRebalanceInProgress));
  // The follower waited in SyncGroup for as long as the leader's session, without heartbeats: its
  // session starts again with the answer, so it is still a member when it rejoins.
  std::this_thread::sleep_for(50ms);
  auto again = join(join_req("g", follower, 150), 3);
  auto r = get(again);
  EXPECT_EQ(r.error_code, 0);
  EXPECT_EQ(r.generation_id, 2);
  EXPECT_EQ(r.leader, follower);
  EXPECT_EQ(r.members.size(), 1u);
}

// KAFKA-12890: heartbeats keep a session alive, not a generation whose
// SyncGroup never comes.
TEST_F(JoinGroupMembershipTest, LeaderThatHeartbeatsButNeverSyncsIsRemovedAfterTheRebalanceTimeout) {
  const auto t0 = std::chrono::steady_clock::now();  // the sync deadline runs from the join's completion, later
  auto a = join(join_req("g", "", /*session_ms=*/300, /*rebalance_ms=*/200), 3);
  auto b = join(join_req("g", "", 300, 200), 3);
  auto ra = get(a), rb = get(b);
  const std::string leader = ra.leader;
  const std::string follower = ra.member_id == leader ? rb.member_id : ra.member_id;
  auto fs = sync(sync_req("g", 1, follower));
  while (fs.wait_for(20ms) != std::future_status::ready && std::chrono::steady_clock::now() - t0 < 3s) {
    heartbeat("g", 1, leader);
  }
  auto rf = get(fs, 10ms);
  EXPECT_EQ(rf.error_code, code(ErrorCode::kRebalanceInProgress));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(heartbeat("g", 1, leader), code(ErrorCode::kUnknownMemberId));
  auto again = join(join_req("g", follower, 300, 200), 3);
  auto r = get(again);
  EXPECT_EQ(r.generation_id, 2);
  EXPECT_EQ(r.leader, follower);
  EXPECT_EQ(r.members.size(), 1u);
}

TEST_F(JoinGroupMembershipTest, FollowerThatHeartbeatsButNeverSyncsInAStableGroupIsRemoved) {
  const auto t0 = std::chrono::steady_clock::now();
  auto a = join(join_req("g", "", 300, 200), 3);
  auto b = join(join_req("g", "", 300, 200), 3);
  auto ra = get(a), rb = get(b);
  const std::string leader = ra.leader;
  const std::string follower = ra.member_id == leader ? rb.member_id : ra.member_id;
  auto ls = sync(sync_req("g", 1, leader, {{leader, bytes_of("L")}, {follower, bytes_of("F")}}));
  ASSERT_EQ(get(ls).error_code, 0);
  ASSERT_EQ(coord_->snapshot("g")->state, "Stable");
  while (std::chrono::steady_clock::now() - t0 < 3s && heartbeat("g", 1, follower) == 0) {
    heartbeat("g", 1, leader);
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(heartbeat("g", 1, follower), code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(heartbeat("g", 1, leader), code(ErrorCode::kRebalanceInProgress));
}

TEST_F(JoinGroupMembershipTest, HeartbeatFencing) {
  int32_t gen = 0;
  auto ids = stable_group("g", 1, &gen);
  EXPECT_EQ(heartbeat("g", gen, ids[0]), 0);
  EXPECT_EQ(heartbeat("g", gen + 1, ids[0]), code(ErrorCode::kIllegalGeneration));
  EXPECT_EQ(heartbeat("g", gen, "unknown"), code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(heartbeat("other", gen, ids[0]), code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(heartbeat("", gen, ids[0]), code(ErrorCode::kInvalidGroupId));
}

TEST_F(JoinGroupMembershipTest, UnknownMemberIdOnJoin) {
  auto f = join(join_req("g", "made-up"), 5);
  EXPECT_EQ(get(f).error_code, code(ErrorCode::kUnknownMemberId));
  EXPECT_FALSE(coord_->snapshot("g")) << "no group is created for a failed join";
}

TEST_F(JoinGroupMembershipTest, JoinValidation) {
  auto low = join(join_req("g", "", 5), 5);
  EXPECT_EQ(get(low).error_code, code(ErrorCode::kInvalidSessionTimeout));
  auto high = join(join_req("g", "", cfg_.max_session_timeout_ms + 1), 5);
  EXPECT_EQ(get(high).error_code, code(ErrorCode::kInvalidSessionTimeout));
  auto empty_id = join(join_req("", ""), 5);
  EXPECT_EQ(get(empty_id).error_code, code(ErrorCode::kInvalidGroupId));
  auto no_type = join(join_req("g", "", 300, 300, std::nullopt, {"range"}, ""), 3);
  EXPECT_EQ(get(no_type).error_code, code(ErrorCode::kInconsistentGroupProtocol));

  int32_t gen = 0;
  stable_group("g", 1, &gen);
  auto other_type = join(join_req("g", "", 300, 300, std::nullopt, {"range"}, "connect"), 3);
  EXPECT_EQ(get(other_type).error_code, code(ErrorCode::kInconsistentGroupProtocol));
  auto no_common = join(join_req("g", "", 300, 300, std::nullopt, {"sticky"}), 3);
  EXPECT_EQ(get(no_common).error_code, code(ErrorCode::kInconsistentGroupProtocol));
  EXPECT_EQ(coord_->snapshot("g")->state, "Stable") << "rejected joins do not disturb the group";
}

TEST_F(JoinGroupMembershipTest, ProtocolIsChosenByVotesAmongThoseEveryMemberSupports) {
  auto a = join(join_req("g", "", 300, 300, std::nullopt, {"range", "roundrobin"}), 3);
  auto b = join(join_req("g", "", 300, 300, std::nullopt, {"roundrobin", "range"}), 3);
  auto c = join(join_req("g", "", 300, 300, std::nullopt, {"sticky", "roundrobin", "range"}), 3);
  EXPECT_EQ(get(a).protocol_name, "roundrobin");
  EXPECT_EQ(get(b).protocol_name, "roundrobin");
  EXPECT_EQ(get(c).protocol_name, "roundrobin");
}

TEST_F(JoinGroupMembershipTest, StaticMemberRejoiningKeepsItsAssignmentWithoutRebalance) {
  // Two static members, stable.
  auto a = join(join_req("g", "", 300, 300, "inst-a"), 5);
  auto b = join(join_req("g", "", 300, 300, "inst-b"), 5);
  auto ra = get(a), rb = get(b);
  ASSERT_EQ(ra.error_code, 0) << "static members skip MEMBER_ID_REQUIRED";
  EXPECT_EQ(ra.member_id.rfind("inst-a-", 0), 0u);
  const int32_t gen = ra.generation_id;
  const std::string leader = ra.leader;
  const std::string a_id = ra.member_id, b_id = rb.member_id;
  auto sa = sync(sync_req("g", gen, a_id, leader == a_id ? std::vector<std::pair<std::string, Bytes>>{{a_id, bytes_of("A")}, {b_id, bytes_of("B")}} : std::vector<std::pair<std::string, Bytes>>{}));
  auto sb = sync(sync_req("g", gen, b_id, leader == b_id ? std::vector<std::pair<std::string, Bytes>>{{a_id, bytes_of("A")}, {b_id, bytes_of("B")}} : std::vector<std::pair<std::string, Bytes>>{}));
  ASSERT_EQ(get(sa).assignment, bytes_of("A"));
  ASSERT_EQ(get(sb).assignment, bytes_of("B"));

  // inst-b restarts: joins with member id "" and its instance id.
  auto rejoin = join(join_req("g", "", 300, 300, "inst-b"), 5);
  auto rr = get(rejoin, 200ms);
  EXPECT_EQ(rr.error_code, 0);
  EXPECT_NE(rr.member_id, b_id);
  EXPECT_EQ(rr.generation_id, gen) << "no rebalance";
  EXPECT_EQ(coord_->snapshot("g")->state, "Stable");
  auto again = sync(sync_req("g", gen, rr.member_id, {}, "inst-b"));
  EXPECT_EQ(get(again).assignment, bytes_of("B"));
  // The old incarnation is fenced.
  EXPECT_EQ(heartbeat("g", gen, b_id, "inst-b"), code(ErrorCode::kFencedInstanceId));
  EXPECT_EQ(heartbeat("g", gen, rr.member_id, "inst-b"), 0);
  EXPECT_EQ(first_error(commit("g", gen, b_id, {{"t", 0, 5}}, "m", 7, "inst-b")), code(ErrorCode::kFencedInstanceId));
  EXPECT_EQ(heartbeat("g", gen, a_id, "inst-a"), 0) << "the other member is undisturbed";
}

TEST_F(JoinGroupMembershipTest, StaticLeaderRejoiningIsToldToSkipAssignment) {
  auto a = join(join_req("g", "", 300, 300, "inst-a"), 9);
  auto ra = get(a);
  ASSERT_EQ(ra.error_code, 0);
  auto s = sync(sync_req("g", ra.generation_id, ra.member_id, {{ra.member_id, bytes_of("A")}}));
  ASSERT_EQ(get(s).error_code, 0);
  auto rejoin = join(join_req("g", "", 300, 300, "inst-a"), 9);
  auto rr = get(rejoin, 200ms);
  EXPECT_EQ(rr.error_code, 0);
  EXPECT_EQ(rr.leader, rr.member_id);
  EXPECT_TRUE(rr.skip_assignment);
  EXPECT_EQ(rr.members.size(), 1u);
  EXPECT_EQ(rr.generation_id, ra.generation_id);
}

// The replacement is answered once the group record with the new member id is
// durable. Its fdatasync fails here: the JoinGroup fails and the previous
// incarnation stays, in memory as after a restart (Kafka reverts it too).
TEST_F(JoinGroupMembershipTest, StaticMemberReplacementThatIsNotStoredIsUndone) {
  auto a = join(join_req("g", "", 3000, 3000, "inst-a"), 5);
  auto ra = get(a);
  ASSERT_EQ(ra.error_code, 0);
  auto s = sync(sync_req("g", ra.generation_id, ra.member_id, {{ra.member_id, bytes_of("A")}}));
  ASSERT_EQ(get(s).error_code, 0);
  auto& fs = fault_offsets_partition("g");
  fs.fail_nth(storage::FaultOp::kSync, 1, EIO, /*sticky=*/false, ".log");
  auto rejoin = join(join_req("g", "", 3000, 3000, "inst-a"), 9);
  auto rr = get(rejoin);
  EXPECT_EQ(fs.faults_injected(), 1u);
  EXPECT_EQ(rr.error_code, code(ErrorCode::kCoordinatorNotAvailable));
  auto snap = coord_->snapshot("g");
  ASSERT_EQ(snap->members.size(), 1u);
  EXPECT_EQ(snap->members[0].member_id, ra.member_id) << "the replacement is undone";
  EXPECT_EQ(snap->leader, ra.member_id);
  EXPECT_EQ(snap->state, "Stable");
  EXPECT_EQ(snap->members[0].assignment, bytes_of("A"));
  EXPECT_EQ(heartbeat("g", ra.generation_id, ra.member_id, "inst-a"), 0);
  fs.crash(storage::CrashMode::kDropUnsynced, 1);
  reopen();
  snap = coord_->snapshot("g");
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->members.size(), 1u);
  EXPECT_EQ(snap->members[0].member_id, ra.member_id);
  // Stored fine this time.
  auto again = join(join_req("g", "", 3000, 3000, "inst-a"), 9);
  auto ra2 = get(again);
  EXPECT_EQ(ra2.error_code, 0);
  EXPECT_NE(ra2.member_id, ra.member_id);
  EXPECT_EQ(coord_->snapshot("g")->members[0].member_id, ra2.member_id);
}

// Kafka's strings hold 32767 bytes, and so do those of the group's record in
// __consumer_offsets. A member id is "<client id>-<uuid>": from a long client id
// (or group.instance.id) it used to be longer, its record unreadable, and the
// group's generation and members lost on restart. The prefix is cut now (at a
// UTF-8 character boundary); strings that cannot fit are refused.
TEST_F(JoinGroupMembershipTest, MemberIdsFromLongClientIdsFitKafkasStrings) {
  std::string long_client = "c";
  while (long_client.size() + 2 <= 32767) long_client += "\xc3\xa9";  // é
  ASSERT_EQ(long_client.size(), 32767u);
  auto f = join(join_req("g", "", 3000, 3000), 3, long_client);
  auto r = get(f);
  ASSERT_EQ(r.error_code, 0);
  EXPECT_LE(r.member_id.size(), 32767u);
  const size_t cut = r.member_id.size() - 37;  // "-<uuid>"
  EXPECT_EQ(r.member_id.substr(0, cut), long_client.substr(0, cut));
  EXPECT_EQ(r.member_id[cut], '-');
  EXPECT_NE(static_cast<unsigned char>(long_client[cut]) & 0xC0, 0x80) << "cut between characters";
  auto s = sync(sync_req("g", r.generation_id, r.member_id, {{r.member_id, bytes_of("A")}}));
  ASSERT_EQ(get(s).error_code, 0);

  const std::string long_instance(32767, 'i');
  auto st = join(join_req("s", "", 3000, 3000, long_instance), 5);
  auto rs = get(st);
  ASSERT_EQ(rs.error_code, 0);
  EXPECT_LE(rs.member_id.size(), 32767u);
  auto ss = sync(sync_req("s", rs.generation_id, rs.member_id, {{rs.member_id, bytes_of("S")}}));
  ASSERT_EQ(get(ss).error_code, 0);

  reopen();
  auto g = coord_->snapshot("g");
  ASSERT_TRUE(g) << "the group record is readable after a restart";
  EXPECT_EQ(g->state, "Stable");
  EXPECT_EQ(g->generation, r.generation_id);
  ASSERT_EQ(g->members.size(), 1u);
  EXPECT_EQ(g->members[0].member_id, r.member_id);
  EXPECT_EQ(g->members[0].client_id, long_client);
  EXPECT_EQ(heartbeat("g", r.generation_id, r.member_id), 0);
  auto sg = coord_->snapshot("s");
  ASSERT_TRUE(sg);
  ASSERT_EQ(sg->members.size(), 1u);
  EXPECT_EQ(sg->members[0].group_instance_id, long_instance);
  EXPECT_EQ(heartbeat("s", rs.generation_id, rs.member_id, long_instance), 0);

  // Longer than any Kafka string (not from the wire, whose decoder refuses them).
  const std::string too_long(32768, 'x');
  auto bad_instance = join(join_req("x", "", 3000, 3000, too_long), 5);
  EXPECT_EQ(get(bad_instance).error_code, code(ErrorCode::kInvalidRequest));
  auto bad_protocol = join(join_req("x", "", 3000, 3000, std::nullopt, {"range", too_long}), 3);
  EXPECT_EQ(get(bad_protocol).error_code, code(ErrorCode::kInvalidRequest));
  auto bad_client = join(join_req("x", "", 3000, 3000), 3, too_long);
  EXPECT_EQ(get(bad_client).error_code, code(ErrorCode::kInvalidRequest));
  EXPECT_FALSE(coord_->snapshot("x"));
}

// Kafka validateCurrentMember: a group.instance.id the group does not know is
// UNKNOWN_MEMBER_ID for SyncGroup, Heartbeat, OffsetCommit and LeaveGroup, even
// with the member id of a (dynamic) member. An Empty group takes commits
// without generation whatever member id they carry (Kafka validateOffsetCommit).
TEST_F(JoinGroupMembershipTest, UnknownGroupInstanceIdIsUnknownMemberId) {
  int32_t gen = 0;
  auto ids = stable_group("g", 1, &gen, 3000, 3000);
  const std::string m = ids[0];
  auto s = sync(sync_req("g", gen, m, {}, "nobody"));
  EXPECT_EQ(get(s).error_code, code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(heartbeat("g", gen, m, "nobody"), code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(first_error(commit("g", gen, m, {{"t", 0, 1}}, "m", 7, "nobody")), code(ErrorCode::kUnknownMemberId));
  protocol::LeaveGroupRequest leave;
  leave.group_id = "g";
  leave.members.emplace_back();
  leave.members.back().member_id = m;
  leave.members.back().group_instance_id = "nobody";
  auto lr = coord_->leave_group(client(4), leave);
  ASSERT_EQ(lr.members.size(), 1u);
  EXPECT_EQ(lr.members[0].error_code, code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(coord_->snapshot("g")->members.size(), 1u) << "the member did not leave";
  EXPECT_EQ(committed("g", "t", 0), -1);
  // Without the instance id all of it is fine.
  EXPECT_EQ(heartbeat("g", gen, m), 0);
  EXPECT_EQ(first_error(commit("g", gen, m, {{"t", 0, 1}})), 0);
  leave.members.back().group_instance_id.reset();
  EXPECT_EQ(coord_->leave_group(client(4), leave).members[0].error_code, 0);
  ASSERT_EQ(coord_->snapshot("g")->state, "Empty");
  EXPECT_EQ(first_error(commit("g", -1, m, {{"t", 0, 2}})), 0);
  EXPECT_EQ(committed("g", "t", 0), 2);
  EXPECT_EQ(first_error(commit("g", 1000, m, {{"t", 0, 3}})), code(ErrorCode::kUnknownMemberId));
}

// A member id handed out with MEMBER_ID_REQUIRED belongs to a member without a
// group.instance.id: coming back with one must not take over (and fence) the
// static member that owns that instance id.
TEST_F(JoinGroupMembershipTest, PendingMemberCannotClaimAStaticMembersInstanceId) {
  auto a = join(join_req("g", "", 3000, 3000, "inst-a"), 5);
  auto ra = get(a);
  ASSERT_EQ(ra.error_code, 0);
  auto sa = sync(sync_req("g", ra.generation_id, ra.member_id, {{ra.member_id, bytes_of("A")}}, "inst-a"));
  ASSERT_EQ(get(sa).assignment, bytes_of("A"));

  auto pf = join(join_req("g", ""), 5, "intruder");
  auto p = get(pf);
  ASSERT_EQ(p.error_code, code(ErrorCode::kMemberIdRequired));
  auto claim = join(join_req("g", p.member_id, 3000, 3000, "inst-a"), 5, "intruder");
  EXPECT_EQ(get(claim, 200ms).error_code, code(ErrorCode::kInvalidRequest));
  EXPECT_EQ(heartbeat("g", ra.generation_id, ra.member_id, "inst-a"), 0) << "the owner is not fenced";
  auto s = coord_->snapshot("g");
  EXPECT_EQ(s->state, "Stable");
  EXPECT_EQ(s->members.size(), 1u);
  EXPECT_EQ(s->pending_member_ids, 1u) << "the id stays pending";
}

TEST_F(JoinGroupMembershipTest, LeaveGroupByInstanceIdRemovesTheStaticMember) {
  auto a = join(join_req("g", "", 300, 300, "inst-a"), 5);
  auto ra = get(a);
  ASSERT_EQ(ra.error_code, 0);
  protocol::LeaveGroupRequest leave;
  leave.group_id = "g";
  leave.members.emplace_back();
  leave.members.back().group_instance_id = "inst-a";
  leave.members.emplace_back();
  leave.members.back().group_instance_id = "inst-unknown";
  auto resp = coord_->leave_group(client(4), leave);
  ASSERT_EQ(resp.members.size(), 2u);
  EXPECT_EQ(resp.members[0].error_code, 0);
  EXPECT_EQ(resp.members[1].error_code, code(ErrorCode::kUnknownMemberId));
  EXPECT_EQ(coord_->snapshot("g")->members.size(), 0u);
}

TEST_F(JoinGroupMembershipTest, RequestsBeforeLoadGetCoordinatorLoadInProgress) {
  close();
  open(fast_config(), /*start=*/false);
  EXPECT_EQ(heartbeat("g", 1, "m"), code(ErrorCode::kCoordinatorLoadInProgress));
  auto j = join(join_req("g", ""), 5);
  EXPECT_EQ(get(j).error_code, code(ErrorCode::kCoordinatorLoadInProgress));
  EXPECT_EQ(first_error(commit("g", -1, "", {{"t", 0, 1}})), code(ErrorCode::kCoordinatorLoadInProgress));
  ASSERT_TRUE(coord_->start());
  EXPECT_EQ(heartbeat("g", 1, "m"), code(ErrorCode::kUnknownMemberId));
}

TEST_F(JoinGroupMembershipTest, DescribeAndListGroups) {
  int32_t gen = 0;
  auto ids = stable_group("g", 2, &gen);
  protocol::DescribeGroupsRequest dr;
  dr.groups = {"g", "missing"};
  dr.include_authorized_operations = true;
  auto d = coord_->describe_groups(client(5), dr);
  ASSERT_EQ(d.groups.size(), 2u);
  const auto& g = d.groups[0];
  EXPECT_EQ(g.error_code, 0);
  EXPECT_EQ(g.group_state, "Stable");
  EXPECT_EQ(g.protocol_type, "consumer");
  EXPECT_EQ(g.protocol_data, "range");
  ASSERT_EQ(g.members.size(), 2u);
  EXPECT_EQ(g.members[0].client_id, "cli");
  EXPECT_EQ(g.members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(g.members[0].member_metadata, subscription({"t"}));
  EXPECT_FALSE(g.members[0].member_assignment.empty());
  EXPECT_NE(g.authorized_operations, std::numeric_limits<int32_t>::min());
  EXPECT_EQ(d.groups[1].group_state, "Dead");
  EXPECT_TRUE(d.groups[1].members.empty());

  EXPECT_EQ(first_error(commit("simple", -1, "", {{"t", 1, 10}})), 0);
  protocol::ListGroupsRequest lr;
  auto l = coord_->list_groups(client(4), lr);
  ASSERT_EQ(l.groups.size(), 2u);
  EXPECT_EQ(l.groups[0].group_id, "g");
  EXPECT_EQ(l.groups[0].group_state, "Stable");
  EXPECT_EQ(l.groups[1].group_id, "simple");
  EXPECT_EQ(l.groups[1].protocol_type, "");
  EXPECT_EQ(l.groups[1].group_state, "Empty");
  lr.states_filter = {"empty"};
  l = coord_->list_groups(client(4), lr);
  ASSERT_EQ(l.groups.size(), 1u);
  EXPECT_EQ(l.groups[0].group_id, "simple");
  lr.states_filter.clear();
  lr.types_filter = {"consumer"};
  EXPECT_TRUE(coord_->list_groups(client(5), lr).groups.empty());
}

}  // namespace
}  // namespace herald::broker::group::testing
