// GroupCoordinator: Kafka's classic consumer-group protocol on one node
// (docs/groups.md): membership, the join and
// sync barriers, sessions, generations, static membership, and committed
// offsets kept durably in the internal compacted topic `__consumer_offsets`
// (offsets_format.h).
//
//   auto coord = std::make_unique<GroupCoordinator>(GroupConfig::from(broker_cfg), topics, io.get_executor());
//   HERALD_TRY(coord->start());          // creates/opens __consumer_offsets and replays it
//   // handlers, on a connection strand:
//   auto resp = co_await coord->join_group(ClientInfo{...}, std::move(req));
//   coord->stop();                       // before the topics close
//
// Threading: one mutex guards every group. Request methods may be called
// from any thread; nothing blocks on I/O under the lock except the append
// (a write(2)) of __consumer_offsets records, which keeps a group's records
// in log order. Long-held requests (JoinGroup until the join barrier,
// SyncGroup until the leader's assignment is durable) suspend the calling
// coroutine and resume it on the executor it ran on. Durability waits never
// hold the lock. Per-group timers (sessions, pending member ids, rebalance
// timeout, initial rebalance delay) run on `executor`.
//
// Lifetime: `topics` must outlive the coordinator. stop() must run before the
// topics close and before `executor`'s io_context is destroyed; the
// coordinator itself must be destroyed before that io_context too.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "broker/config.h"
#include "broker/topics/topic_manager.h"
#include "common/result.h"
#include "protocol/error_code.h"
#include "protocol/messages.h"

namespace herald::broker::group {

struct GroupConfig {
  int32_t min_session_timeout_ms = 6000;
  int32_t max_session_timeout_ms = 1800000;
  int32_t initial_rebalance_delay_ms = 3000;
  int32_t offsets_topic_partitions = 50;
  int64_t offsets_retention_ms = -1;           // -1: never expire (while the topic exists)
  int64_t cleanup_interval_ms = 30000;         // offsets expiry / deleted-topic / dead-group sweep
  int32_t new_member_join_timeout_ms = 300000; // a new member awaiting its first join this long is dropped
  size_t max_metadata_bytes = 4096;            // offset commit metadata (OFFSET_METADATA_TOO_LARGE)

  static GroupConfig from(const BrokerConfig& c);
};

// Who sent the request: filled by the handler from the request header and the connection.
struct ClientInfo {
  std::string client_id;
  std::string client_host;  // "/127.0.0.1"
  int16_t version = 0;      // the request's API version
};

// A read-only copy of one group, for tests and tools.
struct MemberSnapshot {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  Bytes assignment;
};
struct GroupSnapshot {
  std::string state;  // Kafka's state names: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
  int32_t generation = 0;
  std::string protocol_type;
  std::string protocol_name;
  std::string leader;
  std::vector<MemberSnapshot> members;  // join order
  size_t offsets = 0;                   // committed offsets held
  std::map<std::pair<std::string, int32_t>, int64_t> committed;  // (topic, partition) -> offset
  size_t pending_member_ids = 0;        // KIP-394 ids handed out, not yet used
};

enum class GroupState : uint8_t { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable, kDead };
const char* state_name(GroupState s);

struct Group;

class GroupCoordinator {
 public:
  GroupCoordinator(GroupConfig config, TopicManager& topics, asio::any_io_executor executor);
  ~GroupCoordinator();
  GroupCoordinator(const GroupCoordinator&) = delete;
  GroupCoordinator& operator=(const GroupCoordinator&) = delete;

  // Replays `__consumer_offsets` into memory if it exists: committed offsets
  // and each group's last generation and members. Until it returns, group
  // requests answer COORDINATOR_LOAD_IN_PROGRESS. The topic (internal,
  // compacted) is created by the first write, or by offsets_topic().
  Result<void> start();
  // Cancels timers and answers every held JoinGroup/SyncGroup with
  // NOT_COORDINATOR; later requests get COORDINATOR_NOT_AVAILABLE. Idempotent.
  void stop();
  bool loading() const { return loading_.load(); }
  bool active() const { return !loading_.load() && !stopped_.load(); }

  asio::awaitable<protocol::JoinGroupResponse> join_group(ClientInfo client, protocol::JoinGroupRequest req);
  asio::awaitable<protocol::SyncGroupResponse> sync_group(ClientInfo client, protocol::SyncGroupRequest req);
  protocol::HeartbeatResponse heartbeat(const ClientInfo& client, const protocol::HeartbeatRequest& req);
  protocol::LeaveGroupResponse leave_group(const ClientInfo& client, const protocol::LeaveGroupRequest& req);
  asio::awaitable<protocol::OffsetCommitResponse> offset_commit(ClientInfo client, protocol::OffsetCommitRequest req);
  asio::awaitable<protocol::OffsetFetchResponse> offset_fetch(ClientInfo client, protocol::OffsetFetchRequest req);
  protocol::ListGroupsResponse list_groups(const ClientInfo& client, const protocol::ListGroupsRequest& req);
  protocol::DescribeGroupsResponse describe_groups(const ClientInfo& client, const protocol::DescribeGroupsRequest& req);
  asio::awaitable<protocol::DeleteGroupsResponse> delete_groups(ClientInfo client, protocol::DeleteGroupsRequest req);
  asio::awaitable<protocol::OffsetDeleteResponse> offset_delete(ClientInfo client, protocol::OffsetDeleteRequest req);

  // A topic was deleted: tombstones every group's committed offsets of it
  // (Kafka's onPartitionsDeleted) and returns once they are durable, so a
  // topic re-created under the same name starts with none, restart or not.
  // `topic_id` is the deleted topic's: offsets committed to a topic re-created
  // under the name meanwhile stay.
  asio::awaitable<void> forget_topic(std::string topic, TopicId topic_id);

  std::optional<GroupSnapshot> snapshot(std::string_view group_id) const;
  std::vector<std::string> group_ids() const;
  // The periodic sweep, run now: tombstones offsets of deleted topics and
  // (with offsets_retention_ms > 0) expired offsets, and removes Empty groups
  // left without offsets. Memory follows once the tombstones are durable
  // (soon after it returns; a group being removed is Dead meanwhile). Returns
  // the number of offsets tombstoned.
  size_t run_cleanup();
  int32_t offsets_partition_count() const { return offsets_partitions_; }
  // `__consumer_offsets`, created now if it does not exist yet (Metadata asks for it by name).
  Result<std::shared_ptr<Topic>> offsets_topic();

 private:
  struct StoreJob;
  struct StaticJob;
  struct TombstoneJob;
  using GroupPtr = std::shared_ptr<Group>;
  using TopicPartition = std::pair<std::string, int32_t>;

  std::optional<protocol::ErrorCode> check_status(std::string_view group_id, bool allow_empty_id) const;
  Result<void> adopt_offsets_topic(std::shared_ptr<Topic> topic);
  Result<void> ensure_offsets_topic_locked();
  Group* find_locked(std::string_view id) const;
  Group& create_locked(const std::string& id);
  void maybe_drop_locked(const std::string& id);

  // JoinGroup / SyncGroup internals (mu_ held).
  void join_locked(const ClientInfo& c, protocol::JoinGroupRequest& req,
                   std::function<void(protocol::JoinGroupResponse)> done);
  void sync_locked(const protocol::SyncGroupRequest& req, std::function<void(protocol::SyncGroupResponse)> done,
                   std::optional<StoreJob>& job);
  void finish_store_locked(const StoreJob& job, bool ok);
  void add_member_and_rebalance(Group& g, const std::string& member_id, const ClientInfo& c,
                                protocol::JoinGroupRequest& req, std::function<void(protocol::JoinGroupResponse)> done);
  void update_member_and_rebalance(Group& g, const std::string& member_id, protocol::JoinGroupRequest& req,
                                   std::function<void(protocol::JoinGroupResponse)> done, const std::string& reason);
  void update_static_member(Group& g, const std::string& old_id, const std::string& new_id, const ClientInfo& c,
                            protocol::JoinGroupRequest& req, std::function<void(protocol::JoinGroupResponse)> done);
  void finish_static_locked(StaticJob& job, bool ok);
  void revert_static_member(Group& g, const StaticJob& job);
  void maybe_prepare_rebalance(Group& g, const std::string& reason);
  void prepare_rebalance(Group& g, const std::string& reason);
  void try_complete_join(Group& g);
  void complete_join(Group& g);
  void on_join_deadline(Group& g);
  void remove_member(Group& g, const std::string& member_id, const std::string& reason);
  void erase_member(Group& g, const std::string& member_id);
  void reset_sync_with_error(Group& g, protocol::ErrorCode e);
  void transition(Group& g, GroupState state);
  void finish_locked(Group& g);  // completes the join barrier if it can, re-arms the timer

  // Timers.
  void schedule(Group& g);
  void on_timer(const std::weak_ptr<Group>& weak, uint64_t seq);
  void arm_cleanup();

  // __consumer_offsets (mu_ held while appending, so a group's records stay in order).
  struct Appended {
    std::shared_ptr<Partition> partition;
    int64_t base_offset = 0;
    int64_t last_offset = 0;
  };
  Result<Appended> append_locked(const std::string& group_id,
                                 const std::vector<std::pair<Bytes, std::optional<Bytes>>>& records);
  // Writes the group's metadata record; `assignment` overrides the members' current assignments.
  Result<Appended> store_group_locked(Group& g, const std::map<std::string, Bytes>* assignment);
  // Appends tombstones for `offsets` and, with `remove_group`, for the group
  // itself (which is Dead until they are durable). Memory changes only in
  // finish_tombstones_locked: once they are durable, or not at all.
  Result<TombstoneJob> tombstone_locked(Group& g, const std::vector<TopicPartition>& offsets, bool remove_group);
  void finish_tombstones_locked(const TombstoneJob& job, bool durable);
  Result<void> load();

  std::string new_member_id(std::string_view prefix);

  const GroupConfig config_;
  TopicManager& topics_;
  asio::any_io_executor executor_;

  std::atomic<bool> loading_{true};
  std::atomic<bool> stopped_{false};
  std::shared_ptr<Topic> offsets_topic_;  // null until it exists (guarded by mu_ after start())
  int32_t offsets_partitions_ = 0;        // fixed at start(): a group's partition never moves

  mutable std::mutex mu_;
  std::map<std::string, GroupPtr, std::less<>> groups_;  // GUARDED_BY(mu_)
  std::mt19937_64 rng_;                                   // GUARDED_BY(mu_)
  asio::steady_timer cleanup_timer_;                      // GUARDED_BY(mu_)
};

}  // namespace herald::broker::group
