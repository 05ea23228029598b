// The group state machine follows Apache Kafka's classic GroupCoordinator
// (core/src/main/scala/kafka/coordinator/group/GroupCoordinator.scala, 3.x):
// the same states, the same checks in the same order, the same errors. The
// function names below say which Kafka function each one mirrors where that
// helps a reader compare.
#include "broker/group/group_coordinator.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

#include "broker/group/offsets_format.h"
#include "broker/group/waiter.h"
#include "broker/handlers/wait.h"
#include "common/clock.h"
#include "common/log.h"
#include "record/builder.h"
#include "record/records.h"

namespace herald::broker::group {

using Clock = std::chrono::steady_clock;
using protocol::ErrorCode;
using Protocol = protocol::JoinGroupRequest::JoinGroupRequestProtocol;
using JoinCallback = std::function<void(protocol::JoinGroupResponse)>;
using SyncCallback = std::function<void(protocol::SyncGroupResponse)>;
using TopicPartition = std::pair<std::string, int32_t>;

namespace {

int16_t ec(ErrorCode e) { return static_cast<int16_t>(e); }
Clock::duration millis(int64_t v) { return std::chrono::milliseconds(v); }

// READ (3), DELETE (6), DESCRIBE (8): what DescribeGroups reports as authorized without an authorizer.
constexpr int32_t kGroupOperations = (1 << 3) | (1 << 6) | (1 << 8);
// Kafka's limit for a group id is what fits an i16-length string in __consumer_offsets keys.
constexpr size_t kMaxGroupIdBytes = 32767;
// The same limit for every string a JoinGroup puts into the group's metadata record
// (member id, group.instance.id, client id, protocol type and names).
constexpr size_t kMaxStringBytes = 32767;
// A member id's "-<uuid>" suffix.
constexpr size_t kMemberIdSuffixBytes = 37;

}  // namespace

const char* state_name(GroupState s) {
  switch (s) {
    case GroupState::kEmpty: return "Empty";
    case GroupState::kPreparingRebalance: return "PreparingRebalance";
    case GroupState::kCompletingRebalance: return "CompletingRebalance";
    case GroupState::kStable: return "Stable";
    case GroupState::kDead: return "Dead";
  }
  return "Unknown";
}

GroupConfig GroupConfig::from(const BrokerConfig& c) {
  GroupConfig g;
  g.min_session_timeout_ms = c.group_min_session_timeout_ms;
  g.max_session_timeout_ms = c.group_max_session_timeout_ms;
  g.initial_rebalance_delay_ms = c.group_initial_rebalance_delay_ms;
  g.offsets_topic_partitions = c.offsets_topic_partitions;
  g.offsets_retention_ms = c.offsets_retention_ms;
  g.cleanup_interval_ms = c.maintenance_interval_ms;
  return g;
}

struct Member {
  std::string id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<Protocol> protocols;  // in the member's preference order
  Bytes assignment;
  uint64_t seq = 0;                 // join order: leader election and member lists
  bool is_new = false;              // joined during the current rebalance
  Clock::time_point deadline;       // session expiry (when not awaiting join/sync)
  Clock::time_point joined_at;
  JoinCallback await_join;
  SyncCallback await_sync;

  const Bytes* metadata_for(const std::optional<std::string>& protocol) const {
    if (!protocol) return nullptr;
    for (const auto& p : protocols) {
      if (p.name == *protocol) return &p.metadata;
    }
    return nullptr;
  }
  bool matches(const std::vector<Protocol>& ps) const {
    if (ps.size() != protocols.size()) return false;
    for (size_t i = 0; i < ps.size(); ++i) {
      if (ps[i].name != protocols[i].name || ps[i].metadata != protocols[i].metadata) return false;
    }
    return true;
  }
};

struct OffsetEntry {
  OffsetValue value;
  int64_t log_pos = -1;   // offset of the record in the group's __consumer_offsets partition
  TopicId topic_id{};     // the topic it was committed for (a re-created topic is another topic)
  bool deleted = false;   // tombstone marker, kept so that an older in-flight commit cannot resurrect it
};

// Records of one partition appended to __consumer_offsets and not yet durable
// (commits, and tombstones of OffsetDelete, DeleteGroups and the sweep): how
// many, and the last one (OffsetFetch answers it once it is durable).
struct PendingCommit {
  int count = 0;
  int64_t log_pos = -1;
  OffsetValue value;
  TopicId topic_id{};      // of the last commit (not a tombstone)
  bool tombstone = false;  // the last one deletes the offset
};

struct Group {
  Group(std::string group_id, asio::any_io_executor ex) : id(std::move(group_id)), timer(ex) {}
  std::string id;
  std::weak_ptr<Group> self;
  GroupState state = GroupState::kEmpty;
  int64_t state_ts_ms = -1;  // wall clock of the last state change (Kafka's current_state_timestamp)
  int32_t generation = 0;
  std::optional<std::string> protocol_type;  // nullopt: never had members ("simple" offsets-only group)
  std::optional<std::string> protocol_name;
  std::optional<std::string> leader;
  std::map<std::string, Member> members;
  std::map<std::string, std::string> static_members;  // group.instance.id -> member id
  std::map<std::string, Clock::time_point> pending;    // KIP-394 member ids handed out -> expiry
  // Members of this generation that have not sent SyncGroup yet; removed at
  // sync_deadline (a rebalance timeout after the join completed), as Kafka
  // does since KAFKA-12890, so a leader that never syncs cannot hold the
  // followers' SyncGroup for ever.
  std::set<std::string> pending_sync;
  Clock::time_point sync_deadline;
  uint64_t next_seq = 0;

  // Join barrier.
  Clock::time_point join_deadline;
  bool initial_delay = false;        // the barrier is Kafka's InitialDelayedJoin (never completes early)
  int64_t initial_delay_ms = 0;      // its current delay
  int64_t initial_remaining_ms = 0;  // how much longer new joiners may extend it
  bool new_member_added = false;

  // Committed offsets.
  std::map<TopicPartition, OffsetEntry> offsets;
  std::map<TopicPartition, PendingCommit> pending_commits;  // appended, not yet durable
  // Dead: its tombstone is on its way to the disk (DeleteGroups, the sweep). The
  // group goes once it is durable, and back to Empty (with its offsets and this
  // timestamp) if it is not.
  int64_t delete_pos = -1;  // the deletion's last record (OffsetFetch waits for it); -1: none
  int64_t state_ts_before_delete = -1;

  // One timer per group, armed at the earliest deadline.
  asio::steady_timer timer;
  uint64_t timer_seq = 0;
  std::optional<Clock::time_point> armed_at;

  bool is_leader(const std::string& member_id) const { return leader && *leader == member_id; }
  // Kafka validateCurrentMember: a group.instance.id, if given, must be registered
  // (else UNKNOWN_MEMBER_ID) and belong to `member_id` (else FENCED_INSTANCE_ID);
  // the member must exist.
  std::optional<ErrorCode> validate_member(const std::optional<std::string>& instance_id,
                                           const std::string& member_id) const {
    if (instance_id) {
      auto it = static_members.find(*instance_id);
      if (it == static_members.end()) return ErrorCode::kUnknownMemberId;
      if (it->second != member_id) return ErrorCode::kFencedInstanceId;
    }
    if (!members.count(member_id)) return ErrorCode::kUnknownMemberId;
    return std::nullopt;
  }
  std::vector<Member*> members_in_order() {
    std::vector<Member*> v;
    v.reserve(members.size());
    for (auto& [mid, m] : members) v.push_back(&m);
    std::sort(v.begin(), v.end(), [](const Member* a, const Member* b) { return a->seq < b->seq; });
    return v;
  }
  int32_t rebalance_timeout_ms() const {
    int32_t t = 0;
    for (const auto& [mid, m] : members) t = std::max(t, m.rebalance_timeout_ms);
    return t;
  }
  bool all_members_joined() const {
    if (!pending.empty()) return false;
    for (const auto& [mid, m] : members) {
      if (!m.await_join) return false;
    }
    return true;
  }
  size_t live_offsets() const {
    size_t n = 0;
    for (const auto& [tp, e] : offsets) n += e.deleted ? 0 : 1;
    return n;
  }
  // Kafka GroupMetadata.supportsProtocols.
  bool supports_protocols(const std::string& type, const std::vector<Protocol>& ps) const {
    if (state == GroupState::kEmpty) return !type.empty() && !ps.empty();
    if (!protocol_type || *protocol_type != type) return false;
    for (const auto& p : ps) {
      size_t n = 0;
      for (const auto& [mid, m] : members) {
        for (const auto& mp : m.protocols) {
          if (mp.name == p.name) {
            ++n;
            break;
          }
        }
      }
      if (n == members.size()) return true;
    }
    return false;
  }
  // Protocols every member supports, in the preference order of the first member; each member
  // votes for its first such protocol; most votes wins, ties go to the earlier candidate.
  std::string select_protocol() {
    auto ordered = members_in_order();
    if (ordered.empty()) return {};
    std::vector<std::string> candidates;
    for (const auto& p : ordered.front()->protocols) {
      bool all = std::all_of(ordered.begin(), ordered.end(), [&](const Member* m) { return m->metadata_for(p.name); });
      if (all) candidates.push_back(p.name);
    }
    if (candidates.empty()) return ordered.front()->protocols.empty() ? std::string() : ordered.front()->protocols[0].name;
    std::vector<int> votes(candidates.size(), 0);
    for (const Member* m : ordered) {
      for (const auto& p : m->protocols) {
        auto it = std::find(candidates.begin(), candidates.end(), p.name);
        if (it != candidates.end()) {
          ++votes[static_cast<size_t>(it - candidates.begin())];
          break;
        }
      }
    }
    size_t best = 0;
    for (size_t i = 1; i < candidates.size(); ++i) {
      if (votes[i] > votes[best]) best = i;
    }
    return candidates[best];
  }
  protocol::JoinGroupResponse join_result(const Member& m, bool with_members) {
    protocol::JoinGroupResponse r;
    r.generation_id = generation;
    r.protocol_type = protocol_type;
    r.protocol_name = protocol_name;
    r.leader = leader.value_or("");
    r.member_id = m.id;
    if (with_members) {
      for (const Member* x : members_in_order()) {
        protocol::JoinGroupResponse::JoinGroupResponseMember jm;
        jm.member_id = x->id;
        jm.group_instance_id = x->instance_id;
        if (const Bytes* md = x->metadata_for(protocol_name)) jm.metadata = *md;
        r.members.push_back(std::move(jm));
      }
    }
    return r;
  }
};

struct GroupCoordinator::StoreJob {
  std::weak_ptr<Group> group;
  int32_t generation = 0;
  std::map<std::string, Bytes> assignment;
  Appended appended;
};

// A static member replaced in a Stable group, its JoinGroup answered once the
// record with the new member id is durable; what to restore if it is not.
struct GroupCoordinator::StaticJob {
  std::weak_ptr<Group> group;
  std::string instance_id;
  std::string old_id;
  std::string new_id;
  std::string client_id;
  std::string client_host;
  std::vector<Protocol> protocols;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  JoinCallback done;
};

struct GroupCoordinator::TombstoneJob {
  std::weak_ptr<Group> group;
  std::vector<std::pair<TopicPartition, int64_t>> offsets;  // key, position of its tombstone
  bool remove_group = false;
  std::optional<Appended> appended;  // nullopt: nothing had to be written
};

namespace {

protocol::JoinGroupResponse join_error(const std::string& member_id, ErrorCode e) {
  protocol::JoinGroupResponse r;
  r.error_code = ec(e);
  r.member_id = member_id;
  r.generation_id = -1;
  r.protocol_name = std::nullopt;
  return r;
}

protocol::SyncGroupResponse sync_error(ErrorCode e) {
  protocol::SyncGroupResponse r;
  r.error_code = ec(e);
  return r;
}

void answer_join(JoinCallback& cb, protocol::JoinGroupResponse r) {
  if (!cb) return;
  auto f = std::move(cb);
  cb = nullptr;
  f(std::move(r));
}

void answer_sync(SyncCallback& cb, protocol::SyncGroupResponse r) {
  if (!cb) return;
  auto f = std::move(cb);
  cb = nullptr;
  f(std::move(r));
}

}  // namespace

GroupCoordinator::GroupCoordinator(GroupConfig config, TopicManager& topics, asio::any_io_executor executor)
    : config_(config), topics_(topics), executor_(executor), rng_(std::random_device{}()), cleanup_timer_(executor) {}

GroupCoordinator::~GroupCoordinator() { stop(); }

// ---------------------------------------------------------------------------
// Start-up and shutdown

Result<void> GroupCoordinator::start() {
  int64_t t0 = mono_ns();
  if (auto topic = topics_.find(kOffsetsTopic)) {
    HERALD_TRY(adopt_offsets_topic(std::move(topic)));
    HERALD_TRY(load());
  } else {
    // Created on first use, as Kafka does: a broker that never sees a group keeps no 50 empty logs.
    offsets_partitions_ = std::max(config_.offsets_topic_partitions, 1);
  }
  size_t groups, offsets = 0;
  {
    std::lock_guard lock(mu_);
    groups = groups_.size();
    for (const auto& [id, g] : groups_) offsets += g->live_offsets();
    for (auto& [id, g] : groups_) schedule(*g);
    arm_cleanup();
  }
  loading_ = false;
  HLOG_INFO("group coordinator: loaded {} groups, {} committed offsets from {} ({} partitions) in {} ms", groups,
            offsets, kOffsetsTopic, offsets_partitions_, (mono_ns() - t0) / 1000000);
  return ok();
}

Result<void> GroupCoordinator::adopt_offsets_topic(std::shared_ptr<Topic> topic) {
  if (!topic->internal()) HLOG_WARN("{} exists but is not marked internal", kOffsetsTopic);
  if (topic->partition_count() <= 0) return Error{Errc::kCorruption, fmt::format("{} has no partitions", kOffsetsTopic)};
  // Compacted, never deleted by retention, and every commit fdatasync'ed before it is answered,
  // whatever the topic's stored configs say (an operator may have altered them).
  for (const auto& p : topic->partitions()) {
    storage::LogConfig lc = p->log->config();
    lc.compact = true;
    lc.delete_retention = false;
    lc.flush_policy = storage::FlushPolicy::kAlways;
    lc.segment_bytes = std::min<int64_t>(lc.segment_bytes, 104857600);  // Kafka's offsets.topic.segment.bytes
    p->log->set_config(lc);
  }
  offsets_partitions_ = topic->partition_count();
  offsets_topic_ = std::move(topic);
  return ok();
}

Result<std::shared_ptr<Topic>> GroupCoordinator::offsets_topic() {
  std::lock_guard lock(mu_);
  HERALD_TRY(ensure_offsets_topic_locked());
  return offsets_topic_;
}

Result<void> GroupCoordinator::ensure_offsets_topic_locked() {
  if (offsets_topic_) return ok();
  if (stopped_.load()) return Error{Errc::kClosed, "group coordinator stopped"};
  auto created = topics_.create(std::string(kOffsetsTopic), offsets_partitions_, offsets_topic_configs(), false,
                                /*internal=*/true);
  if (!created) return Error{created.error().code, fmt::format("creating {}: {}", kOffsetsTopic, created.error().message)};
  HLOG_INFO("created {} with {} partitions", kOffsetsTopic, offsets_partitions_);
  return adopt_offsets_topic(std::move(*created));
}

void GroupCoordinator::stop() {
  std::lock_guard lock(mu_);
  if (stopped_.exchange(true)) return;
  cleanup_timer_.cancel();
  for (auto& [id, g] : groups_) {
    g->timer.cancel();
    ++g->timer_seq;
    for (auto& [mid, m] : g->members) {
      answer_join(m.await_join, join_error(m.id, ErrorCode::kNotCoordinator));
      answer_sync(m.await_sync, sync_error(ErrorCode::kNotCoordinator));
    }
  }
}

std::optional<ErrorCode> GroupCoordinator::check_status(std::string_view group_id, bool allow_empty_id) const {
  if ((group_id.empty() && !allow_empty_id) || group_id.size() > kMaxGroupIdBytes) return ErrorCode::kInvalidGroupId;
  if (stopped_.load()) return ErrorCode::kCoordinatorNotAvailable;
  if (loading_.load()) return ErrorCode::kCoordinatorLoadInProgress;
  return std::nullopt;
}

Group* GroupCoordinator::find_locked(std::string_view id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second.get();
}

Group& GroupCoordinator::create_locked(const std::string& id) {
  auto g = std::make_shared<Group>(id, executor_);
  g->self = g;
  g->state_ts_ms = now_ms();
  Group& ref = *g;
  groups_[id] = std::move(g);
  return ref;
}

// A group that never had a generation and holds nothing is not worth keeping
// (created by a JoinGroup that failed validation, or a commit of unknown topics).
void GroupCoordinator::maybe_drop_locked(const std::string& id) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return;
  Group& g = *it->second;
  if (g.state == GroupState::kEmpty && g.generation == 0 && g.members.empty() && g.pending.empty() &&
      g.offsets.empty() && g.pending_commits.empty()) {
    g.timer.cancel();
    groups_.erase(it);
  }
}

std::string GroupCoordinator::new_member_id(std::string_view prefix) {
  // Kafka's strings hold 32767 bytes: a long client id / group.instance.id is cut (at a
  // UTF-8 character boundary) so that the id fits the response and the group's record.
  if (prefix.size() > kMaxStringBytes - kMemberIdSuffixBytes) {
    size_t n = kMaxStringBytes - kMemberIdSuffixBytes;
    while (n > 0 && (static_cast<unsigned char>(prefix[n]) & 0xC0) == 0x80) --n;
    prefix = prefix.substr(0, n);
  }
  uint64_t a = rng_(), b = rng_();
  a = (a & ~0xF000ull) | 0x4000ull;                          // version 4
  b = (b & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  // variant 1
  return fmt::format("{}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", prefix, a >> 32, (a >> 16) & 0xFFFF, a & 0xFFFF,
                     b >> 48, b & 0xFFFFFFFFFFFFull);
}

void GroupCoordinator::transition(Group& g, GroupState s) {
  if (g.state != s) {
    HLOG_DEBUG("group {}: {} -> {} (generation {})", g.id, state_name(g.state), state_name(s), g.generation);
  }
  g.state = s;
  g.state_ts_ms = now_ms();
}

// ---------------------------------------------------------------------------
// JoinGroup

asio::awaitable<protocol::JoinGroupResponse> GroupCoordinator::join_group(ClientInfo client,
                                                                          protocol::JoinGroupRequest req) {
  auto ex = co_await asio::this_coro::executor;
  protocol::JoinGroupResponse resp = co_await await_callback<protocol::JoinGroupResponse>(ex, [&](JoinCallback done) {
    std::lock_guard lock(mu_);
    join_locked(client, req, std::move(done));
  });
  if (client.version < 7 && !resp.protocol_name) resp.protocol_name = std::string();
  co_return resp;
}

// Kafka handleJoinGroup.
void GroupCoordinator::join_locked(const ClientInfo& c, protocol::JoinGroupRequest& req, JoinCallback done) {
  if (auto e = check_status(req.group_id, false)) return done(join_error(req.member_id, *e));
  if (req.session_timeout_ms < config_.min_session_timeout_ms ||
      req.session_timeout_ms > config_.max_session_timeout_ms) {
    return done(join_error(req.member_id, ErrorCode::kInvalidSessionTimeout));
  }
  // Strings longer than Kafka's 32767 bytes never come off the wire (the decoder refuses
  // them), but they would not fit the group's record either: refuse them from any caller.
  const auto too_long = [](std::string_view v) { return v.size() > kMaxStringBytes; };
  const bool long_protocol =
      std::any_of(req.protocols.begin(), req.protocols.end(), [&](const Protocol& p) { return too_long(p.name); });
  if (too_long(c.client_id) || too_long(req.protocol_type) || long_protocol ||
      (req.group_instance_id && too_long(*req.group_instance_id))) {
    return done(join_error(req.member_id, ErrorCode::kInvalidRequest));
  }
  if (c.version == 0 || req.rebalance_timeout_ms <= 0) req.rebalance_timeout_ms = req.session_timeout_ms;
  const bool unknown_member = req.member_id.empty();
  Group* gp = find_locked(req.group_id);
  if (!gp) {
    if (!unknown_member) return done(join_error(req.member_id, ErrorCode::kUnknownMemberId));
    gp = &create_locked(req.group_id);
  }
  Group& g = *gp;
  const std::string group_id = g.id;
  if (g.state == GroupState::kDead) {
    done(join_error(req.member_id, ErrorCode::kCoordinatorNotAvailable));
  } else if (!g.supports_protocols(req.protocol_type, req.protocols)) {
    done(join_error(req.member_id, ErrorCode::kInconsistentGroupProtocol));
  } else if (unknown_member) {
    // doNewMemberJoinGroup
    const std::string new_id = new_member_id(req.group_instance_id ? *req.group_instance_id : c.client_id);
    if (req.group_instance_id) {
      auto it = g.static_members.find(*req.group_instance_id);
      if (it != g.static_members.end()) {
        update_static_member(g, std::string(it->second), new_id, c, req, std::move(done));
      } else {
        add_member_and_rebalance(g, new_id, c, req, std::move(done));
      }
    } else if (c.version >= 4) {
      // KIP-394: hand out the id; the member joins again with it.
      g.pending[new_id] = Clock::now() + millis(req.session_timeout_ms);
      auto r = join_error(new_id, ErrorCode::kMemberIdRequired);
      done(std::move(r));
    } else {
      add_member_and_rebalance(g, new_id, c, req, std::move(done));
    }
  } else if (g.pending.count(req.member_id) && req.group_instance_id) {
    // Pending ids go only to members without a group.instance.id; one coming back with
    // an instance id would take (and fence) the static member that owns it. Kafka
    // refuses it too (an IllegalStateException there); the id stays pending.
    HLOG_WARN("group {}: pending member {} rejoined with group.instance.id {}: refused", g.id, req.member_id,
              *req.group_instance_id);
    done(join_error(req.member_id, ErrorCode::kInvalidRequest));
  } else if (g.pending.count(req.member_id)) {
    // doCurrentMemberJoinGroup: a pending member comes back with its id.
    g.pending.erase(req.member_id);
    add_member_and_rebalance(g, req.member_id, c, req, std::move(done));
  } else {
    if (auto e = g.validate_member(req.group_instance_id, req.member_id)) {
      done(join_error(req.member_id, *e));
    } else {
      Member& m = g.members.at(req.member_id);
      switch (g.state) {
        case GroupState::kPreparingRebalance:
          update_member_and_rebalance(g, m.id, req, std::move(done), "member rejoined");
          break;
        case GroupState::kCompletingRebalance:
          if (m.matches(req.protocols)) {
            // It probably missed the JoinGroup response: answer again with this generation.
            done(g.join_result(m, g.is_leader(m.id)));
          } else {
            update_member_and_rebalance(g, m.id, req, std::move(done), "member changed its protocols");
          }
          break;
        case GroupState::kStable:
          if (g.is_leader(m.id)) {
            // The leader may rejoin to force a rebalance (e.g. topic metadata changed).
            update_member_and_rebalance(g, m.id, req, std::move(done), "leader rejoined");
          } else if (!m.matches(req.protocols)) {
            update_member_and_rebalance(g, m.id, req, std::move(done), "member changed its protocols");
          } else {
            done(g.join_result(m, false));
          }
          break;
        case GroupState::kEmpty:
        case GroupState::kDead:
          done(join_error(req.member_id, ErrorCode::kUnknownMemberId));
          break;
      }
    }
  }
  if (Group* still = find_locked(group_id)) {
    finish_locked(*still);
    maybe_drop_locked(group_id);
  }
}

// Kafka addMemberAndRebalance.
void GroupCoordinator::add_member_and_rebalance(Group& g, const std::string& member_id, const ClientInfo& c,
                                                protocol::JoinGroupRequest& req, JoinCallback done) {
  Member m;
  m.id = member_id;
  m.instance_id = req.group_instance_id;
  m.client_id = c.client_id;
  m.client_host = c.client_host;
  m.session_timeout_ms = req.session_timeout_ms;
  m.rebalance_timeout_ms = req.rebalance_timeout_ms;
  m.protocol_type = req.protocol_type;
  m.protocols = std::move(req.protocols);
  m.seq = g.next_seq++;
  m.is_new = true;
  m.joined_at = Clock::now();
  m.deadline = m.joined_at + millis(m.session_timeout_ms);
  m.await_join = std::move(done);
  if (g.members.empty()) g.protocol_type = req.protocol_type;
  if (!g.leader) g.leader = member_id;
  if (m.instance_id) g.static_members[*m.instance_id] = member_id;
  g.members.emplace(member_id, std::move(m));
  if (g.state == GroupState::kPreparingRebalance && g.generation == 0) g.new_member_added = true;
  maybe_prepare_rebalance(g, fmt::format("member {} joined", member_id));
}

// Kafka updateMemberAndRebalance.
void GroupCoordinator::update_member_and_rebalance(Group& g, const std::string& member_id,
                                                   protocol::JoinGroupRequest& req, JoinCallback done,
                                                   const std::string& reason) {
  Member& m = g.members.at(member_id);
  m.protocols = std::move(req.protocols);
  m.session_timeout_ms = req.session_timeout_ms;
  m.rebalance_timeout_ms = req.rebalance_timeout_ms;
  // A second JoinGroup while one is held (a client retry): answer the older one so that the
  // connection, which answers in order, can deliver the newer.
  answer_join(m.await_join, join_error(m.id, ErrorCode::kRebalanceInProgress));
  m.await_join = std::move(done);
  maybe_prepare_rebalance(g, fmt::format("{} ({})", reason, member_id));
}

// Kafka updateStaticMemberAndRebalance: a known group.instance.id joined with member id "".
void GroupCoordinator::update_static_member(Group& g, const std::string& old_id, const std::string& new_id,
                                            const ClientInfo& c, protocol::JoinGroupRequest& req, JoinCallback done) {
  auto job = std::make_shared<StaticJob>();
  {
    Member& old = g.members.at(old_id);
    answer_join(old.await_join, join_error(old_id, ErrorCode::kFencedInstanceId));
    answer_sync(old.await_sync, sync_error(ErrorCode::kFencedInstanceId));
    job->group = g.self;
    job->instance_id = *req.group_instance_id;
    job->old_id = old_id;
    job->new_id = new_id;
    job->client_id = old.client_id;
    job->client_host = old.client_host;
    job->protocols = old.protocols;
    job->session_timeout_ms = old.session_timeout_ms;
    job->rebalance_timeout_ms = old.rebalance_timeout_ms;
  }
  auto node = g.members.extract(old_id);
  node.key() = new_id;
  node.mapped().id = new_id;
  g.members.insert(std::move(node));
  if (g.is_leader(old_id)) g.leader = new_id;
  g.static_members[*req.group_instance_id] = new_id;
  Member& m = g.members.at(new_id);
  m.client_id = c.client_id;
  m.client_host = c.client_host;
  m.protocols = std::move(req.protocols);
  m.session_timeout_ms = req.session_timeout_ms;
  m.rebalance_timeout_ms = req.rebalance_timeout_ms;
  m.deadline = Clock::now() + millis(m.session_timeout_ms);
  HLOG_INFO("group {}: static member {} replaced {} by {}", g.id, *req.group_instance_id, old_id, new_id);
  switch (g.state) {
    case GroupState::kStable: {
      if (g.protocol_name && *g.protocol_name == g.select_protocol()) {
        // Same protocol: no rebalance. The member keeps its assignment. The new id is
        // answered once the record holding it is durable; if it cannot be stored the
        // replacement is undone and the JoinGroup fails (Kafka updateStaticMemberAndRebalance),
        // so that memory never holds an id a restart would not know.
        job->done = std::move(done);
        auto stored = store_group_locked(g, nullptr);
        if (!stored) {
          HLOG_ERROR("group {}: storing static member replacement: {}", g.id, stored.error().to_string());
          finish_static_locked(*job, false);
          break;
        }
        stored->partition->log->wait_durable(stored->last_offset, [this, ex = executor_, job](Result<void> r) {
          const bool durable = r.has_value();
          if (!durable) HLOG_ERROR("group: storing a static member replacement: {}", r.error().to_string());
          asio::post(ex, [this, job, durable] {
            std::lock_guard relock(mu_);
            finish_static_locked(*job, durable);
          });
        });
      } else {
        m.await_join = std::move(done);
        maybe_prepare_rebalance(g, fmt::format("static member {} changed protocols", *req.group_instance_id));
      }
      break;
    }
    case GroupState::kCompletingRebalance:
      // The leader may already have assigned to the old id: start over.
      m.await_join = std::move(done);
      prepare_rebalance(g, fmt::format("static member {} rejoined during sync", *req.group_instance_id));
      break;
    case GroupState::kPreparingRebalance:
      m.await_join = std::move(done);
      break;
    case GroupState::kEmpty:
    case GroupState::kDead:
      done(join_error(new_id, ErrorCode::kUnknownMemberId));
      break;
  }
}

// The static member replacement's record is durable (or not): answer its JoinGroup.
void GroupCoordinator::finish_static_locked(StaticJob& job, bool ok) {
  auto gp = job.group.lock();
  Group* g = gp && find_locked(gp->id) == gp.get() ? gp.get() : nullptr;
  // Still the incarnation this job installed (no newer one replaced it meanwhile)?
  bool current = false;
  if (g) {
    auto sit = g->static_members.find(job.instance_id);
    current = sit != g->static_members.end() && sit->second == job.new_id && g->members.count(job.new_id);
  }
  if (!ok || stopped_.load()) {
    if (current) revert_static_member(*g, job);
    answer_join(job.done, join_error("", stopped_.load() ? ErrorCode::kNotCoordinator
                                                         : ErrorCode::kCoordinatorNotAvailable));
  } else if (!current) {
    // Replaced again by a newer incarnation (fenced), or removed meanwhile.
    const bool replaced = g && g->static_members.count(job.instance_id);
    answer_join(job.done,
                join_error(job.new_id, replaced ? ErrorCode::kFencedInstanceId : ErrorCode::kUnknownMemberId));
  } else {
    Member& m = g->members.at(job.new_id);
    const bool leader = g->is_leader(job.new_id);
    auto resp = g->join_result(m, leader);
    resp.skip_assignment = leader;  // KIP-814: the leader need not assign again
    answer_join(job.done, std::move(resp));
  }
  if (g) finish_locked(*g);
}

// Undoes update_static_member: the previous incarnation's id and settings come back.
void GroupCoordinator::revert_static_member(Group& g, const StaticJob& job) {
  auto node = g.members.extract(job.new_id);
  node.key() = job.old_id;
  Member& m = node.mapped();
  m.id = job.old_id;
  m.client_id = job.client_id;
  m.client_host = job.client_host;
  m.protocols = job.protocols;
  m.session_timeout_ms = job.session_timeout_ms;
  m.rebalance_timeout_ms = job.rebalance_timeout_ms;
  m.deadline = Clock::now() + millis(m.session_timeout_ms);
  g.members.insert(std::move(node));
  if (g.is_leader(job.new_id)) g.leader = job.old_id;
  g.static_members[job.instance_id] = job.old_id;
  HLOG_INFO("group {}: static member {} back to {}: its replacement {} was not stored", g.id, job.instance_id,
            job.old_id, job.new_id);
}

void GroupCoordinator::maybe_prepare_rebalance(Group& g, const std::string& reason) {
  if (g.state == GroupState::kStable || g.state == GroupState::kCompletingRebalance ||
      g.state == GroupState::kEmpty) {
    prepare_rebalance(g, reason);
  }
}

void GroupCoordinator::prepare_rebalance(Group& g, const std::string& reason) {
  if (g.state == GroupState::kCompletingRebalance) reset_sync_with_error(g, ErrorCode::kRebalanceInProgress);
  g.pending_sync.clear();
  const auto now = Clock::now();
  if (g.state == GroupState::kEmpty) {
    g.initial_delay = true;
    g.initial_delay_ms = config_.initial_rebalance_delay_ms;
    g.initial_remaining_ms = std::max<int64_t>(g.rebalance_timeout_ms() - config_.initial_rebalance_delay_ms, 0);
    g.join_deadline = now + millis(g.initial_delay_ms);
  } else {
    g.initial_delay = false;
    g.join_deadline = now + millis(g.rebalance_timeout_ms());
  }
  HLOG_INFO("group {}: preparing rebalance (generation {}): {}", g.id, g.generation, reason);
  transition(g, GroupState::kPreparingRebalance);
}

void GroupCoordinator::try_complete_join(Group& g) {
  if (g.state != GroupState::kPreparingRebalance || g.initial_delay) return;
  if (g.all_members_joined()) complete_join(g);
}

// The join barrier's deadline passed: Kafka InitialDelayedJoin / DelayedJoin expiry.
void GroupCoordinator::on_join_deadline(Group& g) {
  if (g.initial_delay) {
    if (g.new_member_added && g.initial_remaining_ms > 0) {
      g.new_member_added = false;
      int64_t delay = std::min<int64_t>(config_.initial_rebalance_delay_ms, g.initial_remaining_ms);
      g.initial_remaining_ms = std::max<int64_t>(g.initial_remaining_ms - g.initial_delay_ms, 0);
      g.initial_delay_ms = delay;
      g.join_deadline = Clock::now() + millis(delay);
      return;
    }
    g.initial_delay = false;
  }
  complete_join(g);
}

// Kafka onCompleteJoin.
void GroupCoordinator::complete_join(Group& g) {
  std::vector<std::string> gone;
  for (const auto& [id, m] : g.members) {
    if (!m.await_join && !m.instance_id) gone.push_back(id);
  }
  for (const auto& id : gone) {
    HLOG_INFO("group {}: member {} did not rejoin in time; removed", g.id, id);
    Member& m = g.members.at(id);
    answer_sync(m.await_sync, sync_error(ErrorCode::kUnknownMemberId));
    erase_member(g, id);
  }
  if (g.state == GroupState::kDead) return;
  // Kafka maybeElectNewJoinedLeader.
  bool leader_joined = false;
  if (g.leader) {
    if (g.members.at(*g.leader).await_join) {
      leader_joined = true;
    } else {
      for (Member* m : g.members_in_order()) {
        if (m->await_join) {
          g.leader = m->id;
          leader_joined = true;
          break;
        }
      }
    }
  }
  if (!leader_joined && !g.members.empty()) {
    // Only static members that have not rejoined remain: wait another rebalance timeout
    // (their sessions expire meanwhile if they are gone).
    g.join_deadline = Clock::now() + millis(g.rebalance_timeout_ms());
    return;
  }
  ++g.generation;
  const auto now = Clock::now();
  if (g.members.empty()) {
    g.protocol_name.reset();
    transition(g, GroupState::kEmpty);
    HLOG_INFO("group {}: empty at generation {}", g.id, g.generation);
    if (auto r = store_group_locked(g, nullptr); !r) {
      HLOG_WARN("group {}: storing empty group: {}", g.id, r.error().to_string());
    }
    return;
  }
  g.protocol_name = g.select_protocol();
  transition(g, GroupState::kCompletingRebalance);
  HLOG_INFO("group {}: generation {} with {} members, protocol {}, leader {}", g.id, g.generation, g.members.size(),
            *g.protocol_name, g.leader.value_or(""));
  g.sync_deadline = now + millis(g.rebalance_timeout_ms());
  for (Member* m : g.members_in_order()) {
    if (m->await_join) answer_join(m->await_join, g.join_result(*m, g.is_leader(m->id)));
    m->deadline = now + millis(m->session_timeout_ms);
    m->is_new = false;
    g.pending_sync.insert(m->id);
  }
}

// Kafka removeMemberAndUpdateGroup.
void GroupCoordinator::remove_member(Group& g, const std::string& member_id, const std::string& reason) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  answer_join(it->second.await_join, join_error(member_id, ErrorCode::kUnknownMemberId));
  answer_sync(it->second.await_sync, sync_error(ErrorCode::kUnknownMemberId));
  HLOG_INFO("group {}: member {} removed: {}", g.id, member_id, reason);
  erase_member(g, member_id);
  switch (g.state) {
    case GroupState::kStable:
    case GroupState::kCompletingRebalance:
      maybe_prepare_rebalance(g, fmt::format("member {} left: {}", member_id, reason));
      break;
    default:
      break;  // PreparingRebalance: finish_locked() re-checks the barrier
  }
}

void GroupCoordinator::erase_member(Group& g, const std::string& member_id) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  if (it->second.instance_id) {
    auto sit = g.static_members.find(*it->second.instance_id);
    if (sit != g.static_members.end() && sit->second == member_id) g.static_members.erase(sit);
  }
  g.members.erase(it);
  g.pending_sync.erase(member_id);
  if (g.is_leader(member_id)) {
    auto ordered = g.members_in_order();
    if (ordered.empty()) {
      g.leader.reset();
    } else {
      g.leader = ordered.front()->id;
    }
  }
}

void GroupCoordinator::reset_sync_with_error(Group& g, ErrorCode e) {
  const auto now = Clock::now();
  for (auto& [id, m] : g.members) {
    m.assignment.clear();
    if (m.await_sync) {
      // A member waiting in SyncGroup does not heartbeat, and its session did not run meanwhile:
      // it starts again now, as Kafka's propagateAssignment does, so that the member can rejoin.
      answer_sync(m.await_sync, sync_error(e));
      m.deadline = now + millis(m.session_timeout_ms);
    }
  }
}

void GroupCoordinator::finish_locked(Group& g) {
  try_complete_join(g);
  schedule(g);
}

// ---------------------------------------------------------------------------
// SyncGroup

asio::awaitable<protocol::SyncGroupResponse> GroupCoordinator::sync_group(ClientInfo,
                                                                          protocol::SyncGroupRequest req) {
  auto ex = co_await asio::this_coro::executor;
  co_return co_await await_callback<protocol::SyncGroupResponse>(ex, [&](SyncCallback done) {
    std::lock_guard lock(mu_);
    std::optional<StoreJob> job;
    sync_locked(req, std::move(done), job);
    if (!job) return;
    // The leader's assignment is handed out once its group metadata record is durable.
    auto shared = std::make_shared<StoreJob>(std::move(*job));
    shared->appended.partition->log->wait_durable(shared->appended.last_offset, [this, shared](Result<void> r) {
      const bool durable = r.has_value();
      if (!durable) HLOG_ERROR("group: storing an assignment: {}", r.error().to_string());
      asio::post(executor_, [this, shared, durable] {
        std::lock_guard relock(mu_);
        finish_store_locked(*shared, durable);
      });
    });
  });
}

// Kafka doSyncGroup.
void GroupCoordinator::sync_locked(const protocol::SyncGroupRequest& req, SyncCallback done,
                                   std::optional<StoreJob>& job) {
  if (auto e = check_status(req.group_id, false)) return done(sync_error(*e));
  Group* gp = find_locked(req.group_id);
  if (!gp) return done(sync_error(ErrorCode::kUnknownMemberId));
  Group& g = *gp;
  if (g.state == GroupState::kDead) return done(sync_error(ErrorCode::kCoordinatorNotAvailable));
  if (auto e = g.validate_member(req.group_instance_id, req.member_id)) return done(sync_error(*e));
  auto mit = g.members.find(req.member_id);
  if (req.generation_id != g.generation) return done(sync_error(ErrorCode::kIllegalGeneration));
  if ((req.protocol_type && g.protocol_type != req.protocol_type) ||
      (req.protocol_name && g.protocol_name != req.protocol_name)) {
    return done(sync_error(ErrorCode::kInconsistentGroupProtocol));
  }
  Member& m = mit->second;
  g.pending_sync.erase(m.id);
  switch (g.state) {
    case GroupState::kEmpty:
      return done(sync_error(ErrorCode::kUnknownMemberId));
    case GroupState::kPreparingRebalance:
      return done(sync_error(ErrorCode::kRebalanceInProgress));
    case GroupState::kStable: {
      protocol::SyncGroupResponse r;
      r.protocol_type = g.protocol_type;
      r.protocol_name = g.protocol_name;
      r.assignment = m.assignment;
      m.deadline = Clock::now() + millis(m.session_timeout_ms);
      return done(std::move(r));
    }
    case GroupState::kCompletingRebalance:
      break;
    case GroupState::kDead:
      return done(sync_error(ErrorCode::kCoordinatorNotAvailable));
  }
  answer_sync(m.await_sync, sync_error(ErrorCode::kRebalanceInProgress));
  m.await_sync = std::move(done);
  if (!g.is_leader(m.id)) return;
  // The leader's assignment: members it left out get empty bytes; ids not in the group are ignored.
  std::map<std::string, Bytes> assignment;
  for (const auto& [id, x] : g.members) assignment[id] = Bytes();
  size_t unknown = 0;
  for (const auto& a : req.assignments) {
    auto it = assignment.find(a.member_id);
    if (it == assignment.end()) {
      ++unknown;
    } else {
      it->second = a.assignment;
    }
  }
  if (unknown) HLOG_WARN("group {}: leader assigned to {} unknown member ids", g.id, unknown);
  auto stored = store_group_locked(g, &assignment);
  if (!stored) {
    HLOG_ERROR("group {}: storing the assignment: {}", g.id, stored.error().to_string());
    reset_sync_with_error(g, ErrorCode::kCoordinatorNotAvailable);
    maybe_prepare_rebalance(g, "could not store the assignment");
    finish_locked(g);
    return;
  }
  job = StoreJob{g.self, g.generation, std::move(assignment), *stored};
}

void GroupCoordinator::finish_store_locked(const StoreJob& job, bool ok) {
  if (stopped_.load()) return;
  auto gp = job.group.lock();
  if (!gp || find_locked(gp->id) != gp.get()) return;
  Group& g = *gp;
  // Another member may have joined meanwhile: act only if this generation is still waiting for it.
  if (g.state != GroupState::kCompletingRebalance || g.generation != job.generation) return;
  if (!ok) {
    reset_sync_with_error(g, ErrorCode::kCoordinatorNotAvailable);
    maybe_prepare_rebalance(g, "could not store the assignment");
  } else {
    const auto now = Clock::now();
    for (auto& [id, m] : g.members) {
      auto it = job.assignment.find(id);
      m.assignment = it == job.assignment.end() ? Bytes() : it->second;
      if (m.await_sync) {
        protocol::SyncGroupResponse r;
        r.protocol_type = g.protocol_type;
        r.protocol_name = g.protocol_name;
        r.assignment = m.assignment;
        answer_sync(m.await_sync, std::move(r));
        m.deadline = now + millis(m.session_timeout_ms);
      }
    }
    transition(g, GroupState::kStable);
    HLOG_INFO("group {}: stable at generation {}", g.id, g.generation);
  }
  finish_locked(g);
}

// ---------------------------------------------------------------------------
// Heartbeat, LeaveGroup

protocol::HeartbeatResponse GroupCoordinator::heartbeat(const ClientInfo&, const protocol::HeartbeatRequest& req) {
  protocol::HeartbeatResponse r;
  auto set = [&r](ErrorCode e) { r.error_code = ec(e); return r; };
  std::lock_guard lock(mu_);
  if (auto e = check_status(req.group_id, false)) return set(*e);
  Group* g = find_locked(req.group_id);
  if (!g) return set(ErrorCode::kUnknownMemberId);
  if (g->state == GroupState::kDead) return set(ErrorCode::kCoordinatorNotAvailable);
  if (auto e = g->validate_member(req.group_instance_id, req.member_id)) return set(*e);
  auto it = g->members.find(req.member_id);
  if (req.generation_id != g->generation) return set(ErrorCode::kIllegalGeneration);
  Member& m = it->second;
  switch (g->state) {
    case GroupState::kEmpty:
      return set(ErrorCode::kUnknownMemberId);
    case GroupState::kPreparingRebalance:
      m.deadline = Clock::now() + millis(m.session_timeout_ms);
      return set(ErrorCode::kRebalanceInProgress);
    case GroupState::kCompletingRebalance:
    case GroupState::kStable:
      m.deadline = Clock::now() + millis(m.session_timeout_ms);
      return set(ErrorCode::kNone);
    case GroupState::kDead:
      break;
  }
  return set(ErrorCode::kCoordinatorNotAvailable);
}

protocol::LeaveGroupResponse GroupCoordinator::leave_group(const ClientInfo& c, const protocol::LeaveGroupRequest& req) {
  protocol::LeaveGroupResponse resp;
  std::vector<protocol::LeaveGroupRequest::MemberIdentity> leaving;
  if (c.version < 3) {
    protocol::LeaveGroupRequest::MemberIdentity one;
    one.member_id = req.member_id;
    leaving.push_back(std::move(one));
  } else {
    leaving = req.members;
  }
  auto member_result = [](const protocol::LeaveGroupRequest::MemberIdentity& l, ErrorCode e) {
    protocol::LeaveGroupResponse::MemberResponse mr;
    mr.member_id = l.member_id;
    mr.group_instance_id = l.group_instance_id;
    mr.error_code = ec(e);
    return mr;
  };
  {
    std::lock_guard lock(mu_);
    Group* g = nullptr;
    if (auto e = check_status(req.group_id, false)) {
      resp.error_code = ec(*e);
    } else if (g = find_locked(req.group_id); !g) {
      for (const auto& l : leaving) resp.members.push_back(member_result(l, ErrorCode::kUnknownMemberId));
    } else if (g->state == GroupState::kDead) {
      resp.error_code = ec(ErrorCode::kCoordinatorNotAvailable);
    } else {
      for (const auto& l : leaving) {
        ErrorCode err = ErrorCode::kNone;
        if (l.member_id.empty()) {
          // Administrative removal by group.instance.id.
          auto sit = l.group_instance_id ? g->static_members.find(*l.group_instance_id) : g->static_members.end();
          if (sit == g->static_members.end()) {
            err = ErrorCode::kUnknownMemberId;
          } else {
            remove_member(*g, std::string(sit->second), "removed by LeaveGroup (instance id)");
          }
        } else if (g->pending.count(l.member_id)) {
          g->pending.erase(l.member_id);
        } else if (auto invalid = g->validate_member(l.group_instance_id, l.member_id)) {
          err = *invalid;
        } else {
          remove_member(*g, l.member_id, l.reason ? "left: " + *l.reason : "left the group");
        }
        resp.members.push_back(member_result(l, err));
      }
      finish_locked(*g);
    }
  }
  if (c.version < 3) {
    // v0-2: one member, its error at top level.
    if (resp.error_code == 0 && !resp.members.empty()) resp.error_code = resp.members.front().error_code;
    resp.members.clear();
  }
  return resp;
}

// ---------------------------------------------------------------------------
// Timers

void GroupCoordinator::schedule(Group& g) {
  if (stopped_.load() || g.state == GroupState::kDead) return;
  std::optional<Clock::time_point> next;
  auto consider = [&next](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, t] : g.pending) consider(t);
  for (const auto& [id, m] : g.members) {
    if (m.await_join) {
      if (m.is_new) consider(m.joined_at + millis(config_.new_member_join_timeout_ms));
    } else if (!m.await_sync) {
      consider(m.deadline);
    }
  }
  if (g.state == GroupState::kPreparingRebalance) consider(g.join_deadline);
  if (!g.pending_sync.empty()) consider(g.sync_deadline);
  if (!next) return;
  if (g.armed_at && *g.armed_at <= *next) return;  // fires earlier and re-schedules then
  g.armed_at = *next;
  uint64_t seq = ++g.timer_seq;
  g.timer.expires_at(*next);
  g.timer.async_wait([this, weak = g.self, seq](std::error_code e) {
    if (e) return;
    on_timer(weak, seq);
  });
}

void GroupCoordinator::on_timer(const std::weak_ptr<Group>& weak, uint64_t seq) {
  std::lock_guard lock(mu_);
  if (stopped_.load()) return;
  auto gp = weak.lock();
  if (!gp || gp->timer_seq != seq) return;
  Group& g = *gp;
  g.armed_at.reset();
  const auto now = Clock::now();
  for (auto it = g.pending.begin(); it != g.pending.end();) {
    if (it->second <= now) {
      HLOG_DEBUG("group {}: pending member id {} expired", g.id, it->first);
      it = g.pending.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<std::string> expired;
  for (const auto& [id, m] : g.members) {
    bool alive = m.await_join ? !(m.is_new && now >= m.joined_at + millis(config_.new_member_join_timeout_ms))
                              : (m.await_sync != nullptr || now < m.deadline);
    if (!alive) expired.push_back(id);
  }
  for (const auto& id : expired) {
    if (g.members.count(id)) remove_member(g, id, "session timeout expired");
  }
  if (!g.pending_sync.empty() && now >= g.sync_deadline &&
      (g.state == GroupState::kCompletingRebalance || g.state == GroupState::kStable)) {
    const auto late = std::exchange(g.pending_sync, {});
    for (const auto& id : late) remove_member(g, id, "no SyncGroup within the rebalance timeout");
  }
  if (g.state == GroupState::kPreparingRebalance && now >= g.join_deadline) on_join_deadline(g);
  finish_locked(g);
}

void GroupCoordinator::arm_cleanup() {
  if (stopped_.load() || config_.cleanup_interval_ms <= 0) return;
  cleanup_timer_.expires_after(millis(config_.cleanup_interval_ms));
  cleanup_timer_.async_wait([this](std::error_code e) {
    if (e) return;
    run_cleanup();
    std::lock_guard lock(mu_);
    arm_cleanup();
  });
}

// ---------------------------------------------------------------------------
// __consumer_offsets

Result<GroupCoordinator::Appended> GroupCoordinator::append_locked(
    const std::string& group_id, const std::vector<std::pair<Bytes, std::optional<Bytes>>>& records) {
  HERALD_TRY(topics_.writable());
  HERALD_TRY(ensure_offsets_topic_locked());
  auto part = offsets_topic_->partition(partition_for(group_id, offsets_partitions_));
  if (!part) return Error{Errc::kNotFound, fmt::format("{} partition missing", kOffsetsTopic)};
  record::BatchBuilder b;
  const int64_t now = now_ms();
  for (const auto& [k, v] : records) {
    std::optional<ByteSpan> value;
    if (v) value = ByteSpan(*v);
    HERALD_TRY(b.add(ByteSpan(k), value, now));
  }
  HERALD_ASSIGN_OR_RETURN(Bytes batch, b.build());
  HERALD_ASSIGN_OR_RETURN(auto info, part->log->append(MutableByteSpan(batch)));
  // Wake long-polling readers of __consumer_offsets (lag monitors) once the batch is readable.
  part->log->wait_durable(info.last_offset, [w = std::weak_ptr<Partition>(part)](Result<void>) {
    if (auto sp = w.lock()) sp->notifier.notify_all();
  });
  return Appended{part, info.base_offset, info.last_offset};
}

Result<GroupCoordinator::Appended> GroupCoordinator::store_group_locked(Group& g,
                                                                      const std::map<std::string, Bytes>* assignment) {
  GroupValue v;
  v.protocol_type = g.protocol_type.value_or("");
  v.generation = g.generation;
  v.protocol = g.protocol_name;
  v.leader = g.leader;
  v.current_state_timestamp = g.state_ts_ms;
  for (Member* m : g.members_in_order()) {
    StoredMember sm;
    sm.member_id = m->id;
    sm.group_instance_id = m->instance_id;
    sm.client_id = m->client_id;
    sm.client_host = m->client_host;
    sm.rebalance_timeout_ms = m->rebalance_timeout_ms;
    sm.session_timeout_ms = m->session_timeout_ms;
    if (const Bytes* md = m->metadata_for(g.protocol_name)) sm.subscription = *md;
    if (assignment) {
      auto it = assignment->find(m->id);
      if (it != assignment->end()) sm.assignment = it->second;
    } else {
      sm.assignment = m->assignment;
    }
    v.members.push_back(std::move(sm));
  }
  HERALD_ASSIGN_OR_RETURN(Bytes key, encode_group_key(GroupKey{g.id}));
  HERALD_ASSIGN_OR_RETURN(Bytes value, encode_group_value(v));
  std::vector<std::pair<Bytes, std::optional<Bytes>>> records;
  records.emplace_back(std::move(key), std::move(value));
  return append_locked(g.id, records);
}

Result<GroupCoordinator::TombstoneJob> GroupCoordinator::tombstone_locked(Group& g,
                                                                          const std::vector<TopicPartition>& offsets,
                                                                          bool remove_group) {
  std::vector<std::pair<Bytes, std::optional<Bytes>>> records;
  for (const auto& tp : offsets) {
    HERALD_ASSIGN_OR_RETURN(Bytes key, encode_offset_key(OffsetKey{g.id, tp.first, tp.second}));
    records.emplace_back(std::move(key), std::nullopt);
  }
  // A group that never stored a metadata record (offsets only) needs no tombstone of its own.
  if (remove_group && (g.generation > 0 || g.protocol_type)) {
    HERALD_ASSIGN_OR_RETURN(Bytes key, encode_group_key(GroupKey{g.id}));
    records.emplace_back(std::move(key), std::nullopt);
  }
  TombstoneJob job;
  job.group = g.self;
  job.remove_group = remove_group;
  if (!records.empty()) {
    HERALD_ASSIGN_OR_RETURN(job.appended, append_locked(g.id, records));
    for (size_t i = 0; i < offsets.size(); ++i) {
      const int64_t pos = job.appended->base_offset + static_cast<int64_t>(i);
      job.offsets.emplace_back(offsets[i], pos);
      PendingCommit& pc = g.pending_commits[offsets[i]];
      ++pc.count;
      pc.log_pos = pos;
      pc.value = OffsetValue{};
      pc.tombstone = true;
    }
  }
  if (remove_group) {
    // Dead until the tombstones are durable: requests get COORDINATOR_NOT_AVAILABLE (Kafka's
    // answer for a group being removed), OffsetFetch waits for the deletion.
    g.state_ts_before_delete = g.state_ts_ms;
    g.delete_pos = job.appended ? job.appended->last_offset : -1;
    transition(g, GroupState::kDead);
    for (auto& [mid, m] : g.members) answer_join(m.await_join, join_error(mid, ErrorCode::kUnknownMemberId));
    g.timer.cancel();
    ++g.timer_seq;
    g.armed_at.reset();
  }
  return job;
}

// Tombstones are durable (or not): only now does memory follow. A tombstone
// applies only over an older entry, as a commit does (records compare by position).
void GroupCoordinator::finish_tombstones_locked(const TombstoneJob& job, bool durable) {
  auto gp = job.group.lock();
  if (!gp || find_locked(gp->id) != gp.get()) return;  // removed meanwhile: its records went with it
  Group& g = *gp;
  for (const auto& [tp, pos] : job.offsets) {
    auto pc = g.pending_commits.find(tp);
    if (pc != g.pending_commits.end() && --pc->second.count <= 0) g.pending_commits.erase(pc);
    if (!durable) continue;
    auto [eit, inserted] = g.offsets.try_emplace(tp);
    if (inserted || eit->second.log_pos < pos) {
      eit->second.deleted = true;
      eit->second.log_pos = pos;
    }
  }
  if (!job.remove_group || g.state != GroupState::kDead) return;
  g.delete_pos = -1;
  if (durable) {
    HLOG_INFO("group {}: removed", g.id);
    groups_.erase(g.id);
  } else {
    // Not removed after all: Empty again, with its offsets (the log may not hold the tombstones).
    g.state = GroupState::kEmpty;
    g.state_ts_ms = g.state_ts_before_delete;
    HLOG_WARN("group {}: not removed: its tombstone is not durable", g.id);
    schedule(g);
  }
}

Result<void> GroupCoordinator::load() {
  struct Loaded {
    std::optional<GroupValue> value;
    std::map<TopicPartition, OffsetEntry> offsets;
  };
  std::map<std::string, Loaded> loaded;
  size_t records = 0, skipped = 0;
  auto apply = [&](int64_t pos, const std::optional<ByteSpan>& key, const std::optional<ByteSpan>& value) {
    ++records;
    if (!key) {
      ++skipped;
      return;
    }
    auto k = decode_key(*key);
    if (!k) {
      ++skipped;
      HLOG_WARN("{}: record at {}: {}", kOffsetsTopic, pos, k.error().to_string());
      return;
    }
    if (auto* ok = std::get_if<OffsetKey>(&*k)) {
      auto& l = loaded[ok->group];
      TopicPartition tp{ok->topic, ok->partition};
      if (!value) {
        l.offsets.erase(tp);
        return;
      }
      auto v = decode_offset_value(*value);
      if (!v) {
        ++skipped;
        HLOG_WARN("{}: offset record at {}: {}", kOffsetsTopic, pos, v.error().to_string());
        return;
      }
      OffsetEntry e;
      e.value = std::move(*v);
      e.log_pos = pos;
      l.offsets[tp] = std::move(e);
    } else {
      const auto& gk = std::get<GroupKey>(*k);
      auto& l = loaded[gk.group];
      if (!value) {
        l.value.reset();
        return;
      }
      auto v = decode_group_value(*value);
      if (!v) {
        ++skipped;
        HLOG_WARN("{}: group record at {}: {}", kOffsetsTopic, pos, v.error().to_string());
        return;
      }
      l.value = std::move(*v);
    }
  };

  // Each batch is checked on its own: a damaged one (a bad CRC on disk) is skipped with an error line,
  // and the batches before and after it still count. Otherwise every commit after it would be
  // acknowledged and then lost at each restart.
  Bytes buf, scratch;
  for (const auto& part : offsets_topic_->partitions()) {
    auto& log = *part->log;
    int64_t off = log.log_start_offset();
    const int64_t end = log.log_end_offset();
    while (off < end) {
      auto rr = log.read(off, 8u << 20, end);
      if (!rr) {
        HLOG_ERROR("{}/{}: reading at {}: {}; the rest of this partition is not loaded", kOffsetsTopic, part->index,
                   off, rr.error().to_string());
        break;
      }
      if (rr->total_bytes == 0) break;
      buf.resize(rr->total_bytes);
      uint64_t pos = 0;
      bool good = true;
      for (const auto& s : rr->slices) {
        if (auto r = storage::read_slice_unchecked(s, buf.data() + pos); !r) {
          HLOG_ERROR("{}/{}: reading at {}: {}; the rest of this partition is not loaded", kOffsetsTopic,
                     part->index, off, r.error().to_string());
          good = false;
          break;
        }
        pos += s.size;
      }
      if (!good) break;
      auto batches = record::split_batches(buf);
      if (!batches) {
        HLOG_ERROR("{}/{}: at {}: {}; the rest of this partition is not loaded", kOffsetsTopic, part->index, off,
                   batches.error().to_string());
        break;
      }
      int64_t next = off;
      for (ByteSpan batch : *batches) {
        auto h = record::parse_header(batch);
        if (!h) {
          HLOG_ERROR("{}/{}: batch after offset {}: {}; the rest of this partition is not loaded", kOffsetsTopic,
                     part->index, next, h.error().to_string());
          good = false;
          break;
        }
        next = std::max(next, h->last_offset() + 1);
        if (auto c = record::check_integrity(batch); !c) {
          HLOG_ERROR("{}/{}: batch {}-{} skipped, the group records in it are lost: {}", kOffsetsTopic, part->index,
                     h->base_offset, h->last_offset(), c.error().to_string());
          continue;
        }
        if (h->is_control()) continue;
        const int64_t base = h->base_offset;
        auto r = record::for_each_record(batch, scratch, [&](const record::Record& rec) -> Result<void> {
          apply(base + rec.offset_delta, rec.key, rec.value);
          return ok();
        });
        if (!r) HLOG_WARN("{}/{}: batch at {}: {}", kOffsetsTopic, part->index, base, r.error().to_string());
      }
      if (!good || next <= off) break;
      off = next;
    }
  }

  std::lock_guard lock(mu_);
  const auto now = Clock::now();
  for (auto& [id, l] : loaded) {
    if (!l.value && l.offsets.empty()) continue;
    Group& g = create_locked(id);
    if (l.value) {
      const GroupValue& v = *l.value;
      if (!v.protocol_type.empty()) g.protocol_type = v.protocol_type;
      g.generation = v.generation;
      g.protocol_name = v.protocol;
      if (v.current_state_timestamp >= 0) g.state_ts_ms = v.current_state_timestamp;
      for (const auto& sm : v.members) {
        Member m;
        m.id = sm.member_id;
        m.instance_id = sm.group_instance_id;
        m.client_id = sm.client_id;
        m.client_host = sm.client_host;
        m.session_timeout_ms = sm.session_timeout_ms;
        m.rebalance_timeout_ms = sm.rebalance_timeout_ms;
        m.protocol_type = v.protocol_type;
        m.protocols.push_back(Protocol{v.protocol.value_or(""), sm.subscription});
        m.assignment = sm.assignment;
        m.seq = g.next_seq++;
        m.joined_at = now;
        m.deadline = now + millis(m.session_timeout_ms);  // members get a fresh session after a restart
        if (m.instance_id) g.static_members[*m.instance_id] = m.id;
        g.members.emplace(m.id, std::move(m));
      }
      if (v.leader && g.members.count(*v.leader)) {
        g.leader = v.leader;
      } else if (!g.members.empty()) {
        g.leader = g.members_in_order().front()->id;
      }
      g.state = g.members.empty() ? GroupState::kEmpty : GroupState::kStable;
    }
    for (auto& [tp, e] : l.offsets) {
      if (auto t = topics_.find(tp.first)) e.topic_id = t->id();
      g.offsets.emplace(tp, std::move(e));
    }
  }
  if (skipped) HLOG_WARN("{}: skipped {} of {} records", kOffsetsTopic, skipped, records);
  return ok();
}

// ---------------------------------------------------------------------------
// OffsetCommit, OffsetFetch

asio::awaitable<protocol::OffsetCommitResponse> GroupCoordinator::offset_commit(ClientInfo client,
                                                                                protocol::OffsetCommitRequest req) {
  protocol::OffsetCommitResponse resp;
  resp.topics.resize(req.topics.size());
  for (size_t ti = 0; ti < req.topics.size(); ++ti) {
    resp.topics[ti].name = req.topics[ti].name;
    for (const auto& p : req.topics[ti].partitions) {
      protocol::OffsetCommitResponse::OffsetCommitResponsePartition rp;
      rp.partition_index = p.partition_index;
      resp.topics[ti].partitions.push_back(rp);
    }
  }
  struct Item {
    size_t ti, pi;
    TopicPartition tp;
    OffsetValue value;
    TopicId topic_id;
    int64_t pos = -1;
  };
  std::vector<Item> items;
  std::weak_ptr<Group> weak;
  std::optional<Appended> appended;
  auto ex = co_await asio::this_coro::executor;
  {
    std::lock_guard lock(mu_);
    // Per partition first: the topic must exist, the metadata must fit.
    const int64_t now = now_ms();
    for (size_t ti = 0; ti < req.topics.size(); ++ti) {
      auto topic = topics_.find(req.topics[ti].name);
      for (size_t pi = 0; pi < req.topics[ti].partitions.size(); ++pi) {
        const auto& p = req.topics[ti].partitions[pi];
        auto& out = resp.topics[ti].partitions[pi];
        if (!topic || p.partition_index < 0 || p.partition_index >= topic->partition_count()) {
          out.error_code = ec(ErrorCode::kUnknownTopicOrPartition);
          continue;
        }
        const std::string metadata = p.committed_metadata.value_or("");
        if (metadata.size() > std::min(config_.max_metadata_bytes, kMaxStringBytes)) {
          out.error_code = ec(ErrorCode::kOffsetMetadataTooLarge);
          continue;
        }
        Item it{ti, pi, {req.topics[ti].name, p.partition_index}, {}, topic->id()};
        it.value.offset = p.committed_offset;
        it.value.leader_epoch = p.committed_leader_epoch;
        it.value.metadata = metadata;
        it.value.commit_timestamp = (client.version == 1 && p.commit_timestamp >= 0) ? p.commit_timestamp : now;
        items.push_back(std::move(it));
      }
    }
    // Then the group (Kafka handleCommitOffsets / validateOffsetCommit).
    std::optional<ErrorCode> err = check_status(req.group_id, true);
    Group* g = nullptr;
    if (!err) {
      g = find_locked(req.group_id);
      if (!g) {
        if (req.generation_id_or_member_epoch < 0) {
          g = &create_locked(req.group_id);  // a "simple" group: offsets storage only
        } else {
          // Kafka answers GROUP_ID_NOT_FOUND from v9, ILLEGAL_GENERATION before.
          err = client.version >= 9 ? ErrorCode::kGroupIdNotFound : ErrorCode::kIllegalGeneration;
        }
      }
    }
    Member* member = nullptr;
    if (!err) {
      const int32_t generation = req.generation_id_or_member_epoch;
      if (g->state == GroupState::kDead) {
        err = ErrorCode::kCoordinatorNotAvailable;
      } else if (generation < 0 && g->state == GroupState::kEmpty) {
        // Offsets storage only (admin client, consumer without group management): any member id.
      } else if (generation >= 0 || !req.member_id.empty() || req.group_instance_id) {
        if (auto e = g->validate_member(req.group_instance_id, req.member_id)) {
          err = *e;
        } else if (generation != g->generation) {
          err = ErrorCode::kIllegalGeneration;
        } else {
          member = &g->members.at(req.member_id);
        }
      } else if (g->state != GroupState::kEmpty) {
        err = ErrorCode::kUnknownMemberId;  // only members commit to a group with members
      }
    }
    if (!err && g->state == GroupState::kCompletingRebalance) err = ErrorCode::kRebalanceInProgress;
    if (err) {
      for (auto& it : items) resp.topics[it.ti].partitions[it.pi].error_code = ec(*err);
      items.clear();
    } else {
      if (member) member->deadline = Clock::now() + millis(member->session_timeout_ms);
      if (!items.empty()) {
        auto a = [&]() -> Result<Appended> {
          std::vector<std::pair<Bytes, std::optional<Bytes>>> records;
          records.reserve(items.size());
          for (const auto& it : items) {
            HERALD_ASSIGN_OR_RETURN(Bytes key, encode_offset_key(OffsetKey{g->id, it.tp.first, it.tp.second}));
            HERALD_ASSIGN_OR_RETURN(Bytes value, encode_offset_value(it.value));
            records.emplace_back(std::move(key), std::move(value));
          }
          return append_locked(g->id, records);
        }();
        if (!a) {
          HLOG_ERROR("group {}: offset commit: {}", g->id, a.error().to_string());
          for (auto& it : items) resp.topics[it.ti].partitions[it.pi].error_code = ec(ErrorCode::kCoordinatorNotAvailable);
          items.clear();
        } else {
          appended = *a;
          weak = g->self;
          for (size_t i = 0; i < items.size(); ++i) {
            items[i].pos = a->base_offset + static_cast<int64_t>(i);
            PendingCommit& pc = g->pending_commits[items[i].tp];
            ++pc.count;
            pc.log_pos = items[i].pos;
            pc.value = items[i].value;
            pc.topic_id = items[i].topic_id;
            pc.tombstone = false;
          }
        }
      }
    }
    if (g && items.empty()) maybe_drop_locked(g->id);
  }
  if (!appended) co_return resp;

  auto durable = co_await wait_durable(*appended->partition->log, appended->last_offset, ex);
  if (!durable) HLOG_ERROR("group {}: offset commit not durable: {}", req.group_id, durable.error().to_string());
  std::lock_guard lock(mu_);
  auto g = weak.lock();
  const bool current = g && find_locked(g->id) == g.get();
  for (auto& it : items) {
    if (g) {
      auto pc = g->pending_commits.find(it.tp);
      if (pc != g->pending_commits.end() && --pc->second.count <= 0) g->pending_commits.erase(pc);
    }
    if (!durable) {
      resp.topics[it.ti].partitions[it.pi].error_code = ec(ErrorCode::kCoordinatorNotAvailable);
      continue;
    }
    if (!current) continue;  // the group was deleted meanwhile (its tombstones cover this key)
    auto [eit, inserted] = g->offsets.try_emplace(it.tp);
    if (inserted || eit->second.log_pos < it.pos) {
      eit->second.value = std::move(it.value);
      eit->second.log_pos = it.pos;
      eit->second.topic_id = it.topic_id;
      eit->second.deleted = false;
    }
  }
  co_return resp;
}

asio::awaitable<protocol::OffsetFetchResponse> GroupCoordinator::offset_fetch(ClientInfo client,
                                                                              protocol::OffsetFetchRequest req) {
  using P = protocol::OffsetFetchResponse::OffsetFetchResponsePartitions;
  using Topics = std::vector<protocol::OffsetFetchResponse::OffsetFetchResponseTopics>;
  struct Query {
    std::string group_id;
    // nullopt: every committed offset of the group.
    std::optional<std::vector<std::pair<std::string, std::vector<int32_t>>>> topics;
    std::optional<ErrorCode> error;
    Topics out;
    // A commit still in flight is answered once it is durable (read-your-writes
    // for a fetch pipelined behind the commit): the group's partition and the
    // last such commit's position.
    std::shared_ptr<Partition> wait_partition;
    int64_t wait_pos = -1;
  };
  std::vector<Query> queries;
  if (client.version >= 8) {
    for (const auto& rg : req.groups) {
      Query& q = queries.emplace_back();
      q.group_id = rg.group_id;
      if (rg.topics) {
        q.topics.emplace();
        for (const auto& t : *rg.topics) q.topics->emplace_back(t.name, t.partition_indexes);
      }
    }
  } else {
    Query& q = queries.emplace_back();
    q.group_id = req.group_id;
    if (req.topics || client.version < 2) {
      q.topics.emplace();
      if (req.topics) {
        for (const auto& t : *req.topics) q.topics->emplace_back(t.name, t.partition_indexes);
      }
    }
  }

  // The latest value of a partition's committed offset: a commit in flight if
  // it was appended after the table's entry (none if that is a tombstone), else
  // the entry unless it is a tombstone or belongs to a deleted (or deleted and
  // re-created) topic. Returns whether there is one.
  auto fill = [this](Query& q, const Group* g, const TopicPartition& tp, P& p) {
    const OffsetValue* v = nullptr;
    int64_t pos = -1;
    if (g) {
      if (auto it = g->offsets.find(tp); it != g->offsets.end()) {
        pos = it->second.log_pos;
        auto t = topics_.find(tp.first);
        if (!it->second.deleted && t && t->id() == it->second.topic_id) v = &it->second.value;
      }
      if (auto it = g->pending_commits.find(tp); it != g->pending_commits.end() && it->second.log_pos > pos) {
        v = it->second.tombstone ? nullptr : &it->second.value;
        q.wait_pos = std::max(q.wait_pos, it->second.log_pos);
      }
    }
    p.partition_index = tp.second;
    p.committed_offset = v ? v->offset : -1;
    p.committed_leader_epoch = v ? v->leader_epoch : -1;
    p.metadata = v ? v->metadata : std::string();
    return v != nullptr;
  };
  {
    std::lock_guard lock(mu_);
    for (Query& q : queries) {
      if (auto e = check_status(q.group_id, true)) {
        q.error = e;
        continue;
      }
      const Group* g = find_locked(q.group_id);
      if (g && g->state == GroupState::kDead) {
        // Being deleted: no offsets, once the deletion is durable.
        q.wait_pos = g->delete_pos;
        g = nullptr;
      }
      if (q.topics) {
        for (const auto& [name, parts] : *q.topics) {
          q.out.emplace_back().name = name;
          for (int32_t pi : parts) fill(q, g, TopicPartition{name, pi}, q.out.back().partitions.emplace_back());
        }
      } else if (g) {
        std::set<TopicPartition> keys;
        for (const auto& [tp, e] : g->offsets) keys.insert(tp);
        for (const auto& [tp, pc] : g->pending_commits) keys.insert(tp);
        for (const auto& tp : keys) {
          P p;
          if (!fill(q, g, tp, p)) continue;
          if (q.out.empty() || q.out.back().name != tp.first) q.out.emplace_back().name = tp.first;
          q.out.back().partitions.push_back(std::move(p));
        }
      }
      if (q.wait_pos >= 0) q.wait_partition = offsets_topic_->partition(partition_for(q.group_id, offsets_partitions_));
    }
  }
  auto ex = co_await asio::this_coro::executor;
  for (Query& q : queries) {
    if (!q.wait_partition) continue;
    if (auto r = co_await wait_durable(*q.wait_partition->log, q.wait_pos, ex); !r) {
      q.error = ErrorCode::kCoordinatorNotAvailable;
    }
  }

  protocol::OffsetFetchResponse resp;
  if (client.version >= 8) {
    for (Query& q : queries) {
      auto& og = resp.groups.emplace_back();
      og.group_id = q.group_id;
      if (q.error) {
        og.error_code = ec(*q.error);
      } else {
        og.topics = std::move(q.out);
      }
    }
    co_return resp;
  }
  Query& q = queries.front();
  if (q.error && client.version < 2) {
    // v0-1 have no top-level error: every requested partition carries it.
    q.out.clear();
    for (const auto& [name, parts] : *q.topics) {
      q.out.emplace_back().name = name;
      for (int32_t pi : parts) {
        P& p = q.out.back().partitions.emplace_back();
        p.partition_index = pi;
        p.committed_offset = -1;
        p.metadata = std::string();
        p.error_code = ec(*q.error);
      }
    }
  } else if (q.error) {
    resp.error_code = ec(*q.error);
    q.out.clear();
  }
  for (auto& t : q.out) {
    protocol::OffsetFetchResponse::OffsetFetchResponseTopic ot;
    ot.name = std::move(t.name);
    for (auto& p : t.partitions) {
      protocol::OffsetFetchResponse::OffsetFetchResponsePartition op;
      op.partition_index = p.partition_index;
      op.committed_offset = p.committed_offset;
      op.committed_leader_epoch = p.committed_leader_epoch;
      op.metadata = std::move(p.metadata);
      op.error_code = p.error_code;
      ot.partitions.push_back(std::move(op));
    }
    resp.topics.push_back(std::move(ot));
  }
  co_return resp;
}

// ---------------------------------------------------------------------------
// ListGroups, DescribeGroups, DeleteGroups, OffsetDelete

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

protocol::ListGroupsResponse GroupCoordinator::list_groups(const ClientInfo&, const protocol::ListGroupsRequest& req) {
  protocol::ListGroupsResponse resp;
  if (stopped_.load()) {
    resp.error_code = ec(ErrorCode::kCoordinatorNotAvailable);
    return resp;
  }
  if (loading_.load()) resp.error_code = ec(ErrorCode::kCoordinatorLoadInProgress);
  auto wanted = [](const std::vector<std::string>& filter, std::string_view v) {
    if (filter.empty()) return true;
    return std::any_of(filter.begin(), filter.end(), [&](const std::string& f) { return iequals(f, v); });
  };
  if (!wanted(req.types_filter, "classic")) return resp;
  std::lock_guard lock(mu_);
  for (const auto& [id, g] : groups_) {
    if (g->state == GroupState::kDead) continue;
    if (!wanted(req.states_filter, state_name(g->state))) continue;
    protocol::ListGroupsResponse::ListedGroup lg;
    lg.group_id = id;
    lg.protocol_type = g->protocol_type.value_or("");
    lg.group_state = state_name(g->state);
    lg.group_type = "classic";
    resp.groups.push_back(std::move(lg));
  }
  return resp;
}

protocol::DescribeGroupsResponse GroupCoordinator::describe_groups(const ClientInfo&,
                                                                   const protocol::DescribeGroupsRequest& req) {
  protocol::DescribeGroupsResponse resp;
  std::lock_guard lock(mu_);
  for (const auto& id : req.groups) {
    protocol::DescribeGroupsResponse::DescribedGroup d;
    d.group_id = id;
    if (req.include_authorized_operations) d.authorized_operations = kGroupOperations;
    if (auto e = check_status(id, true)) {
      d.error_code = ec(*e);
    } else if (Group* g = find_locked(id); !g) {
      d.group_state = state_name(GroupState::kDead);
    } else {
      d.group_state = state_name(g->state);
      d.protocol_type = g->protocol_type.value_or("");
      const bool stable = g->state == GroupState::kStable;
      if (stable) d.protocol_data = g->protocol_name.value_or("");
      for (Member* m : g->members_in_order()) {
        protocol::DescribeGroupsResponse::DescribedGroupMember dm;
        dm.member_id = m->id;
        dm.group_instance_id = m->instance_id;
        dm.client_id = m->client_id;
        dm.client_host = m->client_host;
        if (stable) {
          if (const Bytes* md = m->metadata_for(g->protocol_name)) dm.member_metadata = *md;
          dm.member_assignment = m->assignment;
        }
        d.members.push_back(std::move(dm));
      }
    }
    resp.groups.push_back(std::move(d));
  }
  return resp;
}

asio::awaitable<protocol::DeleteGroupsResponse> GroupCoordinator::delete_groups(ClientInfo,
                                                                                protocol::DeleteGroupsRequest req) {
  protocol::DeleteGroupsResponse resp;
  std::vector<std::pair<size_t, TombstoneJob>> waits;
  auto ex = co_await asio::this_coro::executor;
  {
    std::lock_guard lock(mu_);
    for (const auto& id : req.groups_names) {
      protocol::DeleteGroupsResponse::DeletableGroupResult r;
      r.group_id = id;
      Group* g = nullptr;
      if (auto e = check_status(id, true)) {
        r.error_code = ec(*e);
      } else if (g = find_locked(id); !g || g->state == GroupState::kDead) {
        r.error_code = ec(ErrorCode::kGroupIdNotFound);
      } else if (g->state != GroupState::kEmpty) {
        r.error_code = ec(ErrorCode::kNonEmptyGroup);
      } else {
        // Tombstones for every offset (including commits still in flight) and for the group,
        // which is Dead until they are durable and only then goes from memory.
        std::set<TopicPartition> keys;
        for (const auto& [tp, entry] : g->offsets) {
          if (!entry.deleted) keys.insert(tp);
        }
        for (const auto& [tp, n] : g->pending_commits) keys.insert(tp);
        std::vector<TopicPartition> doomed(keys.begin(), keys.end());
        auto job = tombstone_locked(*g, doomed, /*remove_group=*/true);
        if (!job) {
          HLOG_ERROR("group {}: delete: {}", id, job.error().to_string());
          r.error_code = ec(ErrorCode::kCoordinatorNotAvailable);
        } else {
          HLOG_INFO("group {}: deleting ({} offsets)", id, keys.size());
          if (job->appended) {
            waits.emplace_back(resp.results.size(), std::move(*job));
          } else {
            finish_tombstones_locked(*job, true);  // nothing was ever stored
          }
        }
      }
      resp.results.push_back(std::move(r));
    }
  }
  for (auto& [i, job] : waits) {
    auto r = co_await wait_durable(*job.appended->partition->log, job.appended->last_offset, ex);
    if (!r) {
      HLOG_ERROR("group {}: delete not durable: {}", resp.results[i].group_id, r.error().to_string());
      resp.results[i].error_code = ec(ErrorCode::kCoordinatorNotAvailable);
    }
    std::lock_guard lock(mu_);
    finish_tombstones_locked(job, r.has_value());
  }
  co_return resp;
}

asio::awaitable<protocol::OffsetDeleteResponse> GroupCoordinator::offset_delete(ClientInfo,
                                                                                protocol::OffsetDeleteRequest req) {
  protocol::OffsetDeleteResponse resp;
  std::optional<TombstoneJob> job;
  auto ex = co_await asio::this_coro::executor;
  {
    std::lock_guard lock(mu_);
    Group* g = nullptr;
    if (auto e = check_status(req.group_id, false)) {
      resp.error_code = ec(*e);
      co_return resp;
    }
    g = find_locked(req.group_id);
    if (!g || g->state == GroupState::kDead) {
      resp.error_code = ec(ErrorCode::kGroupIdNotFound);
      co_return resp;
    }
    // Kafka handleDeleteOffsets: an Empty group may drop any offset; a consumer group with
    // members only those of topics it is not subscribed to.
    std::optional<std::set<std::string>> subscribed;
    if (g->state != GroupState::kEmpty) {
      if (!g->protocol_type || *g->protocol_type != "consumer") {
        resp.error_code = ec(ErrorCode::kNonEmptyGroup);
        co_return resp;
      }
      subscribed.emplace();
      bool known = true;
      for (const auto& [id, m] : g->members) {
        const Bytes* md = m.metadata_for(g->protocol_name);
        auto topics = md ? decode_subscription_topics(*md) : Result<std::vector<std::string>>(Error{Errc::kNotFound, ""});
        if (!topics) {
          known = false;
          break;
        }
        subscribed->insert(topics->begin(), topics->end());
      }
      if (!known) subscribed.reset();  // cannot tell: treat every topic as subscribed
    }
    std::vector<TopicPartition> doomed;
    for (const auto& t : req.topics) {
      protocol::OffsetDeleteResponse::OffsetDeleteResponseTopic rt;
      rt.name = t.name;
      auto topic = topics_.find(t.name);
      for (const auto& p : t.partitions) {
        protocol::OffsetDeleteResponse::OffsetDeleteResponsePartition rp;
        rp.partition_index = p.partition_index;
        if (!topic || p.partition_index < 0 || p.partition_index >= topic->partition_count()) {
          rp.error_code = ec(ErrorCode::kUnknownTopicOrPartition);
        } else if (g->state != GroupState::kEmpty && (!subscribed || subscribed->count(t.name))) {
          rp.error_code = ec(ErrorCode::kGroupSubscribedToTopic);
        } else {
          TopicPartition tp{t.name, p.partition_index};
          auto it = g->offsets.find(tp);
          if ((it != g->offsets.end() && !it->second.deleted) || g->pending_commits.count(tp)) {
            doomed.push_back(std::move(tp));
          }
        }
        rt.partitions.push_back(rp);
      }
      resp.topics.push_back(std::move(rt));
    }
    if (!doomed.empty()) {
      auto j = tombstone_locked(*g, doomed, /*remove_group=*/false);
      if (!j) {
        HLOG_ERROR("group {}: offset delete: {}", g->id, j.error().to_string());
        resp.error_code = ec(ErrorCode::kCoordinatorNotAvailable);
        resp.topics.clear();
        co_return resp;
      }
      job = std::move(*j);
    }
  }
  if (job) {
    auto r = co_await wait_durable(*job->appended->partition->log, job->appended->last_offset, ex);
    if (!r) {
      HLOG_ERROR("group {}: offset delete not durable: {}", req.group_id, r.error().to_string());
      resp.error_code = ec(ErrorCode::kCoordinatorNotAvailable);
      resp.topics.clear();
    }
    std::lock_guard lock(mu_);
    finish_tombstones_locked(*job, r.has_value());
  }
  co_return resp;
}

asio::awaitable<void> GroupCoordinator::forget_topic(std::string topic, TopicId topic_id) {
  std::vector<TombstoneJob> waits;
  {
    std::lock_guard lock(mu_);
    if (!active()) co_return;  // load() and the sweep find the topic gone
    for (auto& [id, gp] : groups_) {
      Group& g = *gp;
      std::vector<TopicPartition> doomed;
      // Only the deleted topic's: a topic re-created under the name meanwhile is another topic.
      for (const auto& [tp, e] : g.offsets) {
        if (tp.first == topic && !e.deleted && e.topic_id == topic_id) doomed.push_back(tp);
      }
      for (const auto& [tp, pc] : g.pending_commits) {
        if (tp.first == topic && !pc.tombstone && pc.topic_id == topic_id &&
            std::find(doomed.begin(), doomed.end(), tp) == doomed.end()) {
          doomed.push_back(tp);
        }
      }
      if (doomed.empty()) continue;
      auto job = tombstone_locked(g, doomed, /*remove_group=*/false);
      if (!job) {
        // OffsetFetch already ignores them (topic id); the sweep retries.
        HLOG_WARN("group {}: dropping offsets of deleted topic {}: {}", id, topic, job.error().to_string());
        continue;
      }
      HLOG_INFO("group {}: dropping {} committed offsets of deleted topic {}", id, doomed.size(), topic);
      waits.push_back(std::move(*job));
    }
  }
  auto ex = co_await asio::this_coro::executor;
  for (const auto& job : waits) {
    auto r = co_await wait_durable(*job.appended->partition->log, job.appended->last_offset, ex);
    if (!r) HLOG_WARN("dropping offsets of deleted topic {}: {}", topic, r.error().to_string());
    std::lock_guard lock(mu_);
    finish_tombstones_locked(job, r.has_value());
  }
}

// ---------------------------------------------------------------------------
// Cleanup sweep and snapshots

size_t GroupCoordinator::run_cleanup() {
  std::lock_guard lock(mu_);
  if (!active()) return 0;
  const int64_t now = now_ms();
  size_t dropped = 0;
  std::vector<TombstoneJob> jobs;
  for (auto& [id, gp] : groups_) {
    Group& g = *gp;
    if (g.state == GroupState::kDead) continue;  // being deleted
    for (auto it = g.offsets.begin(); it != g.offsets.end();) {
      if (it->second.deleted && !g.pending_commits.count(it->first)) {
        it = g.offsets.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<TopicPartition> expired;
    for (const auto& [tp, e] : g.offsets) {
      if (e.deleted || g.pending_commits.count(tp)) continue;
      auto t = topics_.find(tp.first);
      if (!t || t->id() != e.topic_id || tp.second >= t->partition_count()) {
        expired.push_back(tp);  // the topic was deleted (or deleted and re-created)
      } else if (config_.offsets_retention_ms > 0 && g.state == GroupState::kEmpty) {
        int64_t base = (g.protocol_type && g.state_ts_ms >= 0) ? g.state_ts_ms : e.value.commit_timestamp;
        // base + retention <= now, without overflow: a commit timestamp (OffsetCommit v1) is the client's.
        if (base <= now - config_.offsets_retention_ms) expired.push_back(tp);
      }
    }
    // An Empty group left without offsets goes too, in the same batch (Kafka cleanupGroupMetadata).
    const bool remove = g.state == GroupState::kEmpty && g.members.empty() && g.pending.empty() &&
                        g.pending_commits.empty() && g.live_offsets() == expired.size();
    if (expired.empty() && !remove) continue;
    auto job = tombstone_locked(g, expired, remove);
    if (!job) {
      HLOG_WARN("group {}: expiring offsets: {}", id, job.error().to_string());
      continue;
    }
    dropped += expired.size();
    if (!expired.empty()) {
      HLOG_INFO("group {}: dropping {} committed offsets (expired or topic deleted)", id, expired.size());
    }
    jobs.push_back(std::move(*job));
  }
  // Memory follows once the tombstones are durable. (Not erased in the loop above: it iterates groups_.)
  for (auto& j : jobs) {
    if (!j.appended) {
      finish_tombstones_locked(j, true);  // nothing was ever stored
      continue;
    }
    auto job = std::make_shared<TombstoneJob>(std::move(j));
    job->appended->partition->log->wait_durable(job->appended->last_offset, [this, ex = executor_,
                                                                             job](Result<void> r) {
      const bool durable = r.has_value();
      if (!durable) HLOG_WARN("group: expiry tombstones not durable: {}", r.error().to_string());
      asio::post(ex, [this, job, durable] {
        std::lock_guard relock(mu_);
        finish_tombstones_locked(*job, durable);
      });
    });
  }
  return dropped;
}

std::optional<GroupSnapshot> GroupCoordinator::snapshot(std::string_view group_id) const {
  std::lock_guard lock(mu_);
  Group* g = find_locked(group_id);
  if (!g) return std::nullopt;
  GroupSnapshot s;
  s.state = state_name(g->state);
  s.generation = g->generation;
  s.protocol_type = g->protocol_type.value_or("");
  s.protocol_name = g->protocol_name.value_or("");
  s.leader = g->leader.value_or("");
  for (Member* m : g->members_in_order()) {
    s.members.push_back(MemberSnapshot{m->id, m->instance_id, m->client_id, m->client_host, m->assignment});
  }
  s.offsets = g->live_offsets();
  for (const auto& [tp, e] : g->offsets) {
    if (!e.deleted) s.committed[tp] = e.value.offset;
  }
  s.pending_member_ids = g->pending.size();
  return s;
}

std::vector<std::string> GroupCoordinator::group_ids() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, g] : groups_) ids.push_back(id);
  return ids;
}

}  // namespace herald::broker::group
