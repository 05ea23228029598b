// `herald group list|describe|delete|reset-offsets|delete-offsets`: consumer
// groups over the Kafka admin APIs (ListGroups, DescribeGroups, OffsetFetch,
// OffsetCommit, DeleteGroups, OffsetDelete) plus ListOffsets and Fetch for the
// lag figures.
#include "cli/group.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>
#include <set>
#include <thread>

#include "cli/checks.h"
#include "cli/datetime.h"
#include "cli/kafka_client.h"
#include "cli/lag.h"
#include "cli/output.h"

namespace herald::cli {
namespace {

constexpr const char* kGroupFooter = R"(
A consumer group is a set of consumers sharing a topic's partitions; each
group keeps its own committed position, so every group sees every event.

Examples:
  herald group list
  herald group describe billing
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T12:00:00Z --dry-run
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T12:00:00Z
  herald group delete billing
)";

struct Member {
  std::string member_id;
  std::string client_id;
  std::string host;
  std::string instance_id;
  std::vector<TopicPartition> assignment;
};

struct GroupDescription {
  std::string group;
  std::string state;  // Stable, Empty, Dead, PreparingRebalance, CompletingRebalance, Unknown
  rd_kafka_consumer_group_state_t state_code = RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN;
  std::string assignor;
  bool simple = false;
  std::optional<BrokerInfo> coordinator;
  std::vector<Member> members;
};

Result<GroupDescription> describe_group(rd_kafka_t* rk, const std::string& group, int timeout_ms) {
  const char* groups[] = {group.c_str()};
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk, timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                                         rd_kafka_DescribeConsumerGroups(rk, groups, 1, o, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS));
  size_t n = 0;
  const auto** descs =
      rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev.get()), &n);
  if (n != 1) return Error{Errc::kIoError, fmt::format("DescribeGroups for '{}' returned {} groups", group, n)};
  const auto* d = descs[0];
  GroupDescription out;
  out.group = group;
  if (const auto* err = rd_kafka_ConsumerGroupDescription_error(d)) {
    if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
      out.state = "Dead";
      out.state_code = RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
      return out;
    }
    return Error{Errc::kIoError, fmt::format("group '{}': {}", group, rd_kafka_error_string(err))};
  }
  out.state_code = rd_kafka_ConsumerGroupDescription_state(d);
  out.state = rd_kafka_consumer_group_state_name(out.state_code);
  if (const char* a = rd_kafka_ConsumerGroupDescription_partition_assignor(d)) out.assignor = a;
  out.simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d);
  if (const auto* node = rd_kafka_ConsumerGroupDescription_coordinator(d)) {
    out.coordinator = BrokerInfo{rd_kafka_Node_id(node), rd_kafka_Node_host(node) ? rd_kafka_Node_host(node) : "",
                                 rd_kafka_Node_port(node)};
  }
  size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
  for (size_t i = 0; i < members; ++i) {
    const auto* m = rd_kafka_ConsumerGroupDescription_member(d, i);
    Member mem;
    auto str = [](const char* s) { return s ? std::string(s) : std::string(); };
    mem.member_id = str(rd_kafka_MemberDescription_consumer_id(m));
    mem.client_id = str(rd_kafka_MemberDescription_client_id(m));
    mem.host = str(rd_kafka_MemberDescription_host(m));
    mem.instance_id = str(rd_kafka_MemberDescription_group_instance_id(m));
    if (const auto* a = rd_kafka_MemberDescription_assignment(m)) {
      if (const auto* parts = rd_kafka_MemberAssignment_partitions(a)) {
        for (int k = 0; k < parts->cnt; ++k) mem.assignment.emplace_back(parts->elems[k].topic, parts->elems[k].partition);
      }
    }
    std::sort(mem.assignment.begin(), mem.assignment.end());
    out.members.push_back(std::move(mem));
  }
  return out;
}

// Committed offsets of `group`: all of them (`topic` empty) or those of one topic.
Result<std::map<TopicPartition, int64_t>> committed_offsets(rd_kafka_t* rk, const std::string& group,
                                                            int timeout_ms) {
  rd_kafka_ListConsumerGroupOffsets_t* req = rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), nullptr);
  std::unique_ptr<rd_kafka_ListConsumerGroupOffsets_t, decltype(&rd_kafka_ListConsumerGroupOffsets_destroy)> owner(
      req, &rd_kafka_ListConsumerGroupOffsets_destroy);
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk, timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                                         rd_kafka_ListConsumerGroupOffsets(rk, &req, 1, o, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS));
  size_t n = 0;
  const auto** results =
      rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &n);
  if (n != 1) return Error{Errc::kIoError, fmt::format("OffsetFetch for '{}' returned {} groups", group, n)};
  if (const auto* err = rd_kafka_group_result_error(results[0])) {
    if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) return std::map<TopicPartition, int64_t>{};
    return Error{Errc::kIoError, fmt::format("offsets of group '{}': {}", group, rd_kafka_error_string(err))};
  }
  std::map<TopicPartition, int64_t> out;
  if (const auto* parts = rd_kafka_group_result_partitions(results[0])) {
    for (int i = 0; i < parts->cnt; ++i) {
      const auto& p = parts->elems[i];
      if (p.err) {
        return Error{Errc::kIoError, fmt::format("offset of group '{}' on {}[{}]: {}", group, p.topic, p.partition,
                                                 describe_error(p.err))};
      }
      if (p.offset >= 0) out[{p.topic, p.partition}] = p.offset;
    }
  }
  return out;
}

// Committed offset and log end of every partition in `parts`.
Result<LagSample> sample_positions(rd_kafka_t* rk, const std::string& group, const std::set<TopicPartition>& parts,
                                   int timeout_ms) {
  HERALD_ASSIGN_OR_RETURN(auto committed, committed_offsets(rk, group, timeout_ms));
  LagSample s;
  for (const auto& tp : parts) {
    PartitionPosition pos;
    if (auto it = committed.find(tp); it != committed.end()) pos.committed = it->second;
    HERALD_ASSIGN_OR_RETURN(auto w, query_watermarks(rk, tp.first, tp.second, timeout_ms));
    pos.log_end = w.high_watermark;
    s[tp] = pos;
  }
  return s;
}

// The timestamp of the first record at or after each given offset (the
// oldest event the group has not consumed yet). Partitions whose record
// could not be read within the timeout are missing from the result.
Result<std::map<TopicPartition, int64_t>> first_unconsumed_timestamps(const ClientOptions& copts,
                                                                      const std::map<TopicPartition, int64_t>& at) {
  std::map<TopicPartition, int64_t> out;
  if (at.empty()) return out;
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(copts, {{"group.id", kScratchGroup},
                                                       {"enable.auto.commit", "false"},
                                                       {"auto.offset.reset", "earliest"},
                                                       {"enable.partition.eof", "true"}}));
  HERALD_ASSIGN_OR_RETURN(auto rk, make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  auto list = make_partition_list(static_cast<int>(at.size()));
  for (const auto& [tp, offset] : at) rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = offset;
  if (auto err = rd_kafka_assign(rk.get(), list.get())) {
    return Error{Errc::kIoError, fmt::format("assign: {}", describe_error(err))};
  }
  std::set<TopicPartition> pending;
  for (const auto& [tp, offset] : at) pending.insert(tp);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(copts.timeout_ms);
  while (!pending.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) continue;
    std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> msg(m, &rd_kafka_message_destroy);
    if (!m->rkt) continue;
    TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
    if (!pending.count(tp)) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      pending.erase(tp);  // nothing there (yet): no age
      continue;
    }
    if (m->err) continue;
    out[tp] = rd_kafka_message_timestamp(m, nullptr);
    pending.erase(tp);
    // Stop fetching this partition; one record is all we need.
    auto one = make_partition_list(1);
    rd_kafka_topic_partition_list_add(one.get(), tp.first.c_str(), tp.second);
    rd_kafka_pause_partitions(rk.get(), one.get());
  }
  return out;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string assignment_text(const std::vector<TopicPartition>& parts) {
  if (parts.empty()) return "-";
  std::string out;
  std::string current;
  for (const auto& [topic, p] : parts) {
    if (topic != current) {
      if (!current.empty()) out += "] ";
      out += topic + "[";
      current = topic;
    } else {
      out += ",";
    }
    out += std::to_string(p);
  }
  return out + "]";
}

// ---- list -------------------------------------------------------------------

struct ListOptions {
  bool long_format = false;
  OutputFormat format = OutputFormat::kPlain;
};

Result<void> run_list(const ClientOptions& copts, const ListOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_ListConsumerGroups(rk.get(), opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS));
  const auto* res = rd_kafka_event_ListConsumerGroups_result(ev.get());
  size_t n_err = 0;
  const auto** errors = rd_kafka_ListConsumerGroups_result_errors(res, &n_err);
  if (n_err > 0) {
    return Error{Errc::kIoError, fmt::format("listing groups: {}", rd_kafka_error_string(errors[0]))};
  }
  size_t n = 0;
  const auto** groups = rd_kafka_ListConsumerGroups_result_valid(res, &n);
  struct Row {
    std::string id;
    std::string state;
    bool simple;
  };
  std::vector<Row> rows;
  for (size_t i = 0; i < n; ++i) {
    rows.push_back({rd_kafka_ConsumerGroupListing_group_id(groups[i]),
                    rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(groups[i])),
                    rd_kafka_ConsumerGroupListing_is_simple_consumer_group(groups[i]) != 0});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.id < b.id; });
  if (o.format == OutputFormat::kJson) {
    auto arr = nlohmann::json::array();
    for (const auto& r : rows) arr.push_back({{"group", r.id}, {"state", r.state}, {"simple", r.simple}});
    print_json(arr);
  } else if (o.long_format) {
    Table t({"GROUP", "STATE"});
    for (const auto& r : rows) t.add({r.id, r.state});
    t.print(stdout);
  } else {
    for (const auto& r : rows) fmt::print("{}\n", r.id);
  }
  return ok();
}

// ---- describe ---------------------------------------------------------------

struct DescribeOptions {
  std::string group;
  double sample_seconds = 1.0;
  OutputFormat format = OutputFormat::kPlain;
};

Result<void> run_describe(const ClientOptions& copts, const DescribeOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto desc, describe_group(rk.get(), o.group, copts.timeout_ms));
  HERALD_ASSIGN_OR_RETURN(auto committed, committed_offsets(rk.get(), o.group, copts.timeout_ms));
  if (desc.state_code == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD && committed.empty()) {
    return Error{Errc::kNotFound, fmt::format("group '{}' does not exist", o.group)};
  }
  std::set<TopicPartition> parts;
  std::map<TopicPartition, std::string> owner;
  for (const auto& [tp, off] : committed) parts.insert(tp);
  for (const auto& m : desc.members) {
    for (const auto& tp : m.assignment) {
      parts.insert(tp);
      owner[tp] = m.member_id;
    }
  }
  auto t0 = std::chrono::steady_clock::now();
  HERALD_ASSIGN_OR_RETURN(auto first, sample_positions(rk.get(), o.group, parts, copts.timeout_ms));
  int64_t sampled_at = now_ms();


  std::optional<CatchUp> catch_up;
  std::optional<decltype(first)> second;
  std::string catch_up_note;
  int64_t lag_total = total_lag(first);
  // Partitions holding records where the group never committed: their lag is unknown, not zero.
  size_t uncommitted = 0;
  for (const auto& [tp, pos] : first) {
    if (pos.committed < 0 && pos.log_end > 0) ++uncommitted;
  }
  const std::string caught_up =
      uncommitted == 0 ? std::string("caught up")
                       : fmt::format("unknown ({} partition{} with records and no committed offset)", uncommitted,
                                     uncommitted == 1 ? "" : "s");
  if (desc.members.empty()) {
    catch_up_note = "n/a (no active members)";
  } else if (lag_total == 0) {
    catch_up_note = caught_up;
  } else if (o.sample_seconds <= 0) {
    catch_up_note = "n/a (sampling disabled)";
  } else {
    auto wait = std::chrono::duration<double>(o.sample_seconds) - (std::chrono::steady_clock::now() - t0);
    if (wait.count() > 0) std::this_thread::sleep_for(wait);
    HERALD_ASSIGN_OR_RETURN(second, sample_positions(rk.get(), o.group, parts, copts.timeout_ms));
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    catch_up = estimate_catch_up(first, *second, dt);
    switch (catch_up->status) {
      case CatchUp::Status::kCaughtUp: catch_up_note = caught_up; break;
      case CatchUp::Status::kCatchingUp:
        catch_up_note = fmt::format("~{} (consuming {:.1f}/s, producing {:.1f}/s)", format_duration(*catch_up->seconds),
                                    catch_up->consume_rate, catch_up->produce_rate);
        break;
      case CatchUp::Status::kNoProgress:
        catch_up_note = fmt::format("n/a (no offsets committed in {:.1f}s)", dt);
        break;
      case CatchUp::Status::kFallingBehind:
        catch_up_note = fmt::format("n/a (falling behind: consuming {:.1f}/s, producing {:.1f}/s)",
                                    catch_up->consume_rate, catch_up->produce_rate);
        break;
    }
  }

  // The table shows the latest sample: the one the estimate ends with.
  if (second) {
    first = std::move(*second);
    sampled_at = now_ms();
    lag_total = total_lag(first);
  }
  std::map<TopicPartition, int64_t> unconsumed_at;
  for (const auto& [tp, pos] : first) {
    if (partition_lag(pos).value_or(0) > 0) unconsumed_at[tp] = pos.committed;
  }
  HERALD_ASSIGN_OR_RETURN(auto oldest, first_unconsumed_timestamps(copts, unconsumed_at));

  auto lag_seconds = [&](const TopicPartition& tp, const PartitionPosition& pos) -> std::optional<double> {
    auto lag = partition_lag(pos);
    if (!lag) return std::nullopt;
    if (*lag == 0) return 0.0;
    auto it = oldest.find(tp);
    if (it == oldest.end() || it->second < 0) return std::nullopt;
    return std::max<double>(0, static_cast<double>(sampled_at - it->second) / 1000.0);
  };
  std::optional<double> max_lag_seconds;
  std::optional<int64_t> oldest_ts;
  for (const auto& [tp, pos] : first) {
    if (auto s = lag_seconds(tp, pos)) max_lag_seconds = std::max(max_lag_seconds.value_or(0), *s);
    if (auto it = oldest.find(tp); it != oldest.end() && partition_lag(pos).value_or(0) > 0) {
      oldest_ts = oldest_ts ? std::min(*oldest_ts, it->second) : it->second;
    }
  }

  if (o.format == OutputFormat::kJson) {
    nlohmann::json j{{"group", desc.group}, {"state", desc.state}, {"assignor", desc.assignor},
                     {"members", nlohmann::json::array()}, {"partitions", nlohmann::json::array()}};
    j["coordinator"] = desc.coordinator ? nlohmann::json{{"id", desc.coordinator->id},
                                                         {"host", desc.coordinator->host},
                                                         {"port", desc.coordinator->port}}
                                        : nlohmann::json(nullptr);
    for (const auto& m : desc.members) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& [t, p] : m.assignment) a.push_back({{"topic", t}, {"partition", p}});
      j["members"].push_back({{"member_id", m.member_id},
                              {"client_id", m.client_id},
                              {"host", m.host},
                              {"group_instance_id", m.instance_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(m.instance_id)},
                              {"assignment", a}});
    }
    auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    for (const auto& [tp, pos] : first) {
      auto it = oldest.find(tp);
      j["partitions"].push_back(
          {{"topic", tp.first},
           {"partition", tp.second},
           {"committed", pos.committed >= 0 ? nlohmann::json(pos.committed) : nlohmann::json(nullptr)},
           {"log_end", pos.log_end},
           {"lag", opt(partition_lag(pos))},
           {"lag_seconds", opt(lag_seconds(tp, pos))},
           {"oldest_unconsumed_timestamp",
            it != oldest.end() && partition_lag(pos).value_or(0) > 0 ? nlohmann::json(it->second) : nlohmann::json(nullptr)},
           {"member_id", owner.count(tp) ? nlohmann::json(owner[tp]) : nlohmann::json(nullptr)}});
    }
    j["total_lag"] = lag_total;
    j["total_lag_seconds"] = opt(max_lag_seconds);
    nlohmann::json est{{"note", catch_up_note}};
    est["seconds"] = catch_up && catch_up->seconds ? nlohmann::json(*catch_up->seconds) : nlohmann::json(nullptr);
    est["consume_rate"] = catch_up ? nlohmann::json(catch_up->consume_rate) : nlohmann::json(nullptr);
    est["produce_rate"] = catch_up ? nlohmann::json(catch_up->produce_rate) : nlohmann::json(nullptr);
    j["catch_up"] = est;
    print_json(j);
    return ok();
  }

  std::string coord = desc.coordinator ? fmt::format("{} ({}:{})", desc.coordinator->id, desc.coordinator->host,
                                                     desc.coordinator->port)
                                       : "-";
  fmt::print("Group: {}  State: {}  Assignor: {}  Coordinator: {}\n\n", desc.group, desc.state,
             desc.assignor.empty() ? "-" : desc.assignor, coord);
  if (desc.members.empty()) {
    fmt::print("Members: none\n\n");
  } else {
    fmt::print("Members: {}\n", desc.members.size());
    Table t({"MEMBER-ID", "CLIENT-ID", "HOST", "INSTANCE-ID", "ASSIGNED"});
    for (const auto& m : desc.members) {
      t.add({m.member_id, m.client_id, m.host, m.instance_id.empty() ? "-" : m.instance_id,
             assignment_text(m.assignment)});
    }
    t.print(stdout, "  ");
    fmt::print("\n");
  }
  if (first.empty()) {
    fmt::print("No committed offsets and no assigned partitions.\n");
    return ok();
  }
  Table t({"TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "LAG-TIME", "MEMBER-ID"});
  for (const auto& [tp, pos] : first) {
    auto lag = partition_lag(pos);
    auto secs = lag_seconds(tp, pos);
    t.add({tp.first, std::to_string(tp.second), pos.committed >= 0 ? std::to_string(pos.committed) : "-",
           std::to_string(pos.log_end), lag ? std::to_string(*lag) : "-",
           secs ? format_duration(*secs) : (lag && *lag > 0 ? "?" : "-"), owner.count(tp) ? owner[tp] : "-"});
  }
  t.print(stdout);
  fmt::print("\nTotal lag: {} record{}", lag_total, lag_total == 1 ? "" : "s");
  if (max_lag_seconds && lag_total > 0) {
    fmt::print(", {} behind (oldest unconsumed event {})", format_duration(*max_lag_seconds),
               oldest_ts ? format_timestamp(*oldest_ts) : "?");
  }
  fmt::print("\nCatch-up estimate: {}\n", catch_up_note);
  return ok();
}

// ---- delete -----------------------------------------------------------------

struct DeleteOptions {
  std::vector<std::string> groups;
};

Result<void> run_delete(const ClientOptions& copts, const DeleteOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  std::vector<rd_kafka_DeleteGroup_t*> dgs;
  for (const auto& g : o.groups) dgs.push_back(rd_kafka_DeleteGroup_new(g.c_str()));
  std::unique_ptr<std::vector<rd_kafka_DeleteGroup_t*>, void (*)(std::vector<rd_kafka_DeleteGroup_t*>*)> owner(
      &dgs, [](std::vector<rd_kafka_DeleteGroup_t*>* v) { rd_kafka_DeleteGroup_destroy_array(v->data(), v->size()); });
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_DeleteGroups(rk.get(), dgs.data(), dgs.size(), opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_DELETEGROUPS));
  size_t n = 0;
  const auto** results = rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev.get()), &n);
  size_t failed = 0;
  std::string last;
  for (size_t i = 0; i < n; ++i) {
    std::string name = rd_kafka_group_result_name(results[i]);
    if (const auto* err = rd_kafka_group_result_error(results[i])) {
      ++failed;
      std::string why = rd_kafka_error_string(err);
      if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP) {
        why = "the group still has active members; stop its consumers first";
      } else if (rd_kafka_error_code(err) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        why = "no such group";
      }
      last = fmt::format("group '{}' not deleted: {}", name, why);
      if (o.groups.size() > 1) std::fprintf(stderr, "herald group delete: %s\n", last.c_str());
      continue;
    }
    fmt::print("deleted group '{}'\n", name);
  }
  if (failed == 1) return Error{Errc::kInvalidArgument, last};
  if (failed > 1) return Error{Errc::kInvalidArgument, fmt::format("{} of {} groups not deleted", failed, n)};
  return ok();
}

// ---- reset-offsets ----------------------------------------------------------

struct ResetOptions {
  std::string group;
  std::string topic;
  std::vector<int32_t> partitions;
  bool to_earliest = false;
  bool to_latest = false;
  std::optional<int64_t> to_offset;
  std::string to_datetime;
  std::optional<int64_t> shift_by;
  bool dry_run = false;
  OutputFormat format = OutputFormat::kPlain;
};

struct PlanRow {
  int32_t partition;
  std::optional<int64_t> current;
  int64_t target;
  Watermarks marks;
};

// Returns the process exit code: 0 done (or dry run), 1 error, 3 refused (active group).
Result<int> run_reset(const ClientOptions& copts, const ResetOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto desc, describe_group(rk.get(), o.group, copts.timeout_ms));
  bool idle = desc.members.empty() && (desc.state_code == RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY ||
                                       desc.state_code == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD);
  if (!idle) {
    std::fprintf(stderr,
                 "herald group reset-offsets: refused: group '%s' is %s with %zu active member%s. Offsets can only "
                 "be reset while the group is inactive (as in Kafka); stop its consumers (`herald group describe "
                 "%s` lists them) and try again.\n",
                 o.group.c_str(), desc.state.c_str(), desc.members.size(), desc.members.size() == 1 ? "" : "s",
                 o.group.c_str());
    return 3;
  }
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms));
  std::vector<int32_t> parts = o.partitions;
  if (parts.empty()) {
    for (const auto& p : info.partitions) parts.push_back(p.id);
  }
  for (int32_t p : parts) {
    if (p < 0 || static_cast<size_t>(p) >= info.partitions.size()) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("topic '{}' has no partition {} (it has {})", o.topic, p, info.partitions.size())};
    }
  }
  HERALD_ASSIGN_OR_RETURN(auto committed, committed_offsets(rk.get(), o.group, copts.timeout_ms));
  std::vector<std::optional<int64_t>> by_time;
  std::optional<int64_t> ts;
  if (!o.to_datetime.empty()) {
    HERALD_ASSIGN_OR_RETURN(ts, parse_datetime(o.to_datetime));
    HERALD_ASSIGN_OR_RETURN(by_time, offsets_for_time(rk.get(), o.topic, parts, *ts, copts.timeout_ms));
  }
  std::vector<PlanRow> plan;
  for (size_t i = 0; i < parts.size(); ++i) {
    PlanRow row{parts[i], std::nullopt, 0, {}};
    if (auto it = committed.find({o.topic, parts[i]}); it != committed.end()) row.current = it->second;
    HERALD_ASSIGN_OR_RETURN(row.marks, query_watermarks(rk.get(), o.topic, parts[i], copts.timeout_ms));
    const auto& w = row.marks;
    if (o.to_earliest) {
      row.target = w.log_start;
    } else if (o.to_latest) {
      row.target = w.high_watermark;
    } else if (o.to_offset) {
      row.target = std::clamp(*o.to_offset, w.log_start, w.high_watermark);
    } else if (ts) {
      row.target = by_time[i] ? *by_time[i] : w.high_watermark;
    } else if (o.shift_by) {
      if (!row.current) {
        return Error{Errc::kInvalidArgument,
                     fmt::format("cannot shift partition {}: group '{}' has no committed offset there (limit the "
                                 "reset with --partition, or use an absolute target such as --to-earliest)",
                                 parts[i], o.group)};
      }
      row.target = std::clamp(*row.current + *o.shift_by, w.log_start, w.high_watermark);
    }
    plan.push_back(row);
  }

  if (!o.dry_run) {
    auto list = make_partition_list(static_cast<int>(plan.size()));
    for (const auto& r : plan) rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), r.partition)->offset = r.target;
    rd_kafka_AlterConsumerGroupOffsets_t* req = rd_kafka_AlterConsumerGroupOffsets_new(o.group.c_str(), list.get());
    std::unique_ptr<rd_kafka_AlterConsumerGroupOffsets_t, decltype(&rd_kafka_AlterConsumerGroupOffsets_destroy)> owner(
        req, &rd_kafka_AlterConsumerGroupOffsets_destroy);
    HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                         rk.get(), copts.timeout_ms,
                                         [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                           rd_kafka_AlterConsumerGroupOffsets(rk.get(), &req, 1, opt, q);
                                         },
                                         RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS));
    size_t n = 0;
    const auto** results = rd_kafka_AlterConsumerGroupOffsets_result_groups(
        rd_kafka_event_AlterConsumerGroupOffsets_result(ev.get()), &n);
    if (n != 1) return Error{Errc::kIoError, "OffsetCommit returned no result"};
    if (const auto* err = rd_kafka_group_result_error(results[0])) {
      return Error{Errc::kIoError, fmt::format("committing offsets for group '{}': {}", o.group,
                                               rd_kafka_error_string(err))};
    }
    if (const auto* res = rd_kafka_group_result_partitions(results[0])) {
      for (int i = 0; i < res->cnt; ++i) {
        if (res->elems[i].err) {
          auto e = res->elems[i].err;
          std::string hint = e == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || e == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
                                     e == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS
                                 ? " (a consumer joined the group meanwhile; stop it and retry)"
                                 : "";
          return Error{Errc::kIoError, fmt::format("committing offset of {}[{}] for group '{}': {}{}", o.topic,
                                                   res->elems[i].partition, o.group, describe_error(e), hint)};
        }
      }
    }
  }

  if (o.format == OutputFormat::kJson) {
    nlohmann::json j{{"group", o.group}, {"topic", o.topic}, {"dry_run", o.dry_run}, {"partitions", nlohmann::json::array()}};
    for (const auto& r : plan) {
      j["partitions"].push_back({{"partition", r.partition},
                                 {"current", r.current ? nlohmann::json(*r.current) : nlohmann::json(nullptr)},
                                 {"new", r.target},
                                 {"log_start", r.marks.log_start},
                                 {"log_end", r.marks.high_watermark}});
    }
    print_json(j);
  } else {
    Table t({"TOPIC", "PARTITION", "CURRENT", "NEW", "LOG-START", "LOG-END"});
    for (const auto& r : plan) {
      t.add({o.topic, std::to_string(r.partition), r.current ? std::to_string(*r.current) : "-",
             std::to_string(r.target), std::to_string(r.marks.log_start), std::to_string(r.marks.high_watermark)});
    }
    t.print(stdout);
    if (o.dry_run) {
      fmt::print("\nDry run: nothing changed. Run again without --dry-run to commit these offsets.\n");
    } else {
      fmt::print("\nCommitted new offsets for group '{}'; its consumers resume from them.\n", o.group);
    }
  }
  return 0;
}

// ---- delete-offsets ---------------------------------------------------------

struct DeleteOffsetsOptions {
  std::string group;
  std::string topic;
  std::vector<int32_t> partitions;
};

Result<void> run_delete_offsets(const ClientOptions& copts, const DeleteOffsetsOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms));
  std::vector<int32_t> parts = o.partitions;
  if (parts.empty()) {
    for (const auto& p : info.partitions) parts.push_back(p.id);
  }
  // What there is to delete: OffsetDelete itself answers a missing offset with success, and a
  // missing group with an error that names librdkafka's internals.
  HERALD_ASSIGN_OR_RETURN(auto committed, committed_offsets(rk.get(), o.group, copts.timeout_ms));
  std::erase_if(parts, [&](int32_t p) { return !committed.count(TopicPartition{o.topic, p}); });
  if (parts.empty()) {
    if (committed.empty()) {
      HERALD_ASSIGN_OR_RETURN(auto desc, describe_group(rk.get(), o.group, copts.timeout_ms));
      if (desc.state_code == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
        return Error{Errc::kNotFound, fmt::format("group '{}' does not exist", o.group)};
      }
    }
    fmt::print("group '{}' has no committed offsets on '{}'{}; nothing deleted\n", o.group, o.topic,
               o.partitions.empty() ? "" : " in those partitions");
    return ok();
  }
  auto list = make_partition_list(static_cast<int>(parts.size()));
  for (int32_t p : parts) rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), p);
  rd_kafka_DeleteConsumerGroupOffsets_t* req = rd_kafka_DeleteConsumerGroupOffsets_new(o.group.c_str(), list.get());
  std::unique_ptr<rd_kafka_DeleteConsumerGroupOffsets_t, decltype(&rd_kafka_DeleteConsumerGroupOffsets_destroy)> owner(
      req, &rd_kafka_DeleteConsumerGroupOffsets_destroy);
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_DeleteConsumerGroupOffsets(rk.get(), &req, 1, opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS));
  size_t n = 0;
  const auto** results = rd_kafka_DeleteConsumerGroupOffsets_result_groups(
      rd_kafka_event_DeleteConsumerGroupOffsets_result(ev.get()), &n);
  if (n != 1) return Error{Errc::kIoError, "OffsetDelete returned no result"};
  if (const auto* err = rd_kafka_group_result_error(results[0])) {
    return Error{Errc::kIoError, fmt::format("group '{}': {}", o.group, rd_kafka_error_string(err))};
  }
  if (const auto* res = rd_kafka_group_result_partitions(results[0])) {
    for (int i = 0; i < res->cnt; ++i) {
      if (auto e = res->elems[i].err) {
        std::string why = e == RD_KAFKA_RESP_ERR_GROUP_SUBSCRIBED_TO_TOPIC
                              ? "the group's active members are subscribed to the topic"
                              : describe_error(e);
        return Error{Errc::kIoError, fmt::format("offset of {}[{}] not deleted: {}", o.topic, res->elems[i].partition, why)};
      }
    }
  }
  fmt::print("deleted committed offsets of group '{}' on '{}' ({} partition(s))\n", o.group, o.topic, parts.size());
  return ok();
}

// ---- registration -----------------------------------------------------------

void add_list(CLI::App* group, std::function<int()>& action) {
  auto o = std::make_shared<ListOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = group->add_subcommand("list", "List consumer groups, one name a line");
  cmd->add_flag("-l,--long", o->long_format, "Print a table with each group's state");
  add_format_option(cmd, o->format, "an array of {group, state, simple}");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Examples:
  herald group list
  herald group list --long
  herald group list --format json
)");
  cmd->callback([&action, o, copts] { action = [o, copts] { return exit_code(run_list(*copts, *o), "group list"); }; });
}

void add_describe(CLI::App* group, std::function<int()>& action) {
  auto o = std::make_shared<DescribeOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = group->add_subcommand(
      "describe", "Show a group's state, members and assignments, committed offsets and lag (records and time)");
  cmd->add_option("group", o->group, "Group id")->required();
  cmd->add_option("--sample", o->sample_seconds,
                  "Seconds between the two lag samples behind the catch-up estimate; 0 skips it")
      ->check(duration_check(kMaxSeconds, true))
      ->capture_default_str();
  add_format_option(cmd, o->format, "one object with members, partitions, totals and the estimate");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
For every partition the group has committed to or is assigned:
  COMMITTED  the group's committed offset (the next record it will read), '-' if none
  LOG-END    the high watermark (the offset the next produced record gets)
  LAG        LOG-END - COMMITTED: records not yet consumed
  LAG-TIME   age of the oldest unconsumed event (now minus the timestamp of the
             record at COMMITTED): how far behind the group is in time
When the group has members and lag, the committed offsets and log ends are
sampled twice (--sample apart) and the catch-up time is estimated as
lag / (consume rate - produce rate); "n/a" when it is not catching up or did
not commit during the sample (consumers that commit less often than --sample
need a longer one).

Examples:
  herald group describe billing
  herald group describe billing --sample 5
  herald group describe billing --format json | jq '.total_lag'
)");
  cmd->callback(
      [&action, o, copts] { action = [o, copts] { return exit_code(run_describe(*copts, *o), "group describe"); }; });
}

void add_delete(CLI::App* group, std::function<int()>& action) {
  auto o = std::make_shared<DeleteOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = group->add_subcommand("delete", "Delete inactive consumer groups and their committed offsets");
  cmd->add_option("group", o->groups, "Group id(s)")->required();
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Only groups without active members can be deleted. A deleted group that
consumes again starts from its consumers' auto.offset.reset position.

Examples:
  herald group delete billing
  herald group delete old-1 old-2
)");
  cmd->callback([&action, o, copts] { action = [o, copts] { return exit_code(run_delete(*copts, *o), "group delete"); }; });
}

void add_reset(CLI::App* group, std::function<int()>& action) {
  auto o = std::make_shared<ResetOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = group->add_subcommand(
      "reset-offsets", "Move an inactive group's committed offsets on a topic (replay or skip events)");
  cmd->add_option("group", o->group, "Group id")->required();
  cmd->add_option("-t,--topic", o->topic, "Topic whose offsets move")->required();
  cmd->add_option("-p,--partition", o->partitions, "Only this partition, repeatable or a,b,c [all]")
      ->delimiter(',')
      ->check(integer_check(0));
  auto* target = cmd->add_option_group("target", "Where to move the offsets (exactly one)");
  target->add_flag("--to-earliest", o->to_earliest, "To the log start: replay everything still stored");
  target->add_flag("--to-latest", o->to_latest, "To the log end: skip everything not yet consumed");
  target->add_option("--to-offset", o->to_offset, "To this offset (clamped to the log start..end)");
  target->add_option("--to-datetime", o->to_datetime,
                     "To the first event at or after this ISO-8601 datetime (no zone = local time), or @EPOCH_MS");
  target->add_option("--shift-by", o->shift_by, "Move by N (negative: back, replaying N events per partition)");
  target->require_option(1);
  cmd->add_flag("--dry-run", o->dry_run, "Print the plan (partition, current, new) and change nothing");
  add_format_option(cmd, o->format, "{group, topic, dry_run, partitions: [{partition, current, new, ...}]}");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
This is how a service replays history: stop the group's consumers, move the
offsets, start the consumers again; they resume from the new offsets.

The reset is refused (exit status 3) while the group has active members, as
Kafka refuses it: a running consumer would overwrite the new offsets with its
next commit. Exit status 1 means another error; nothing was changed then.

--to-datetime picks, per partition, the first record whose timestamp is at or
after the given time (the broker's time index), or the log end when there is
none: after the reset the group receives exactly the events from that time on.

Examples:
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T12:00:00Z --dry-run
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T14:00:00+02:00
  herald group reset-offsets billing --topic users --to-earliest
  herald group reset-offsets billing --topic users --shift-by -100 --partition 0
  herald group reset-offsets billing --topic users --to-latest     # skip the backlog
)");
  cmd->callback([&action, o, copts] {
    action = [o, copts] {
      auto r = run_reset(*copts, *o);
      if (!r) return exit_code(r, "group reset-offsets");
      return *r;
    };
  });
}

void add_delete_offsets(CLI::App* group, std::function<int()>& action) {
  auto o = std::make_shared<DeleteOffsetsOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = group->add_subcommand("delete-offsets", "Forget a group's committed offsets on one topic");
  cmd->add_option("group", o->group, "Group id")->required();
  cmd->add_option("-t,--topic", o->topic, "Topic")->required();
  cmd->add_option("-p,--partition", o->partitions, "Only this partition, repeatable or a,b,c [all]")
      ->delimiter(',')
      ->check(integer_check(0));
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Refused by the broker while active members of the group subscribe to the topic.

Example:
  herald group delete-offsets billing --topic old-events
)");
  cmd->callback([&action, o, copts] {
    action = [o, copts] { return exit_code(run_delete_offsets(*copts, *o), "group delete-offsets"); };
  });
}

}  // namespace

void add_group_command(CLI::App& app, std::function<int()>& action) {
  auto* group = app.add_subcommand("group", "Consumer groups: list, describe (lag), delete, reset offsets (replay)");
  group->require_subcommand(1);
  group->footer(kGroupFooter);
  add_list(group, action);
  add_describe(group, action);
  add_delete(group, action);
  add_reset(group, action);
  add_delete_offsets(group, action);
}

}  // namespace herald::cli
