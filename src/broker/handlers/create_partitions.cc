// CreatePartitions: grows a topic to a new total partition count. Runs on the admin thread
// (creating a partition fsyncs its files and directory).
#include <vector>

#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

protocol::CreatePartitionsResponse create_partitions(RequestContext& ctx, const protocol::CreatePartitionsRequest& req) {
  protocol::CreatePartitionsResponse resp;
  std::map<std::string, int> seen;
  for (const auto& t : req.topics) seen[t.name]++;
  for (const auto& t : req.topics) {
    auto& out = resp.results.emplace_back();
    out.name = t.name;
    if (seen[t.name] > 1) {
      out.error_code = code(ErrorCode::kInvalidRequest);
      out.error_message = "topic listed more than once";
      continue;
    }
    auto topic = ctx.broker.topics().find(t.name);
    if (!topic) {
      out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
      continue;
    }
    if (t.assignments) {
      // As Kafka: one replica list per new partition, on existing brokers; here that is this one.
      const int64_t added = int64_t{t.count} - topic->partition_count();
      bool one_node = true;
      for (const auto& a : *t.assignments) one_node &= a.broker_ids == std::vector<int32_t>{ctx.broker.config().node_id};
      if (added > 0 && (!one_node || static_cast<int64_t>(t.assignments->size()) != added)) {
        out.error_code = code(ErrorCode::kInvalidReplicaAssignment);
        out.error_message = fmt::format("Herald is one node: give one assignment per new partition ({}), each broker "
                                        "{} alone", added, ctx.broker.config().node_id);
        continue;
      }
    }
    if (topic->internal()) {
      // A group's records live in partition hash(group) % count: a new count would move them.
      out.error_code = code(ErrorCode::kPolicyViolation);
      out.error_message = fmt::format("'{}' is internal: its partition count cannot change", t.name);
      continue;
    }
    auto r = ctx.broker.topics().add_partitions(t.name, t.count, req.validate_only);
    if (!r) {
      const bool bad_count = r.error().code == Errc::kInvalidArgument || r.error().code == Errc::kOutOfRange;
      out.error_code = code(bad_count ? ErrorCode::kInvalidPartitions : to_error_code(r.error().code));
      out.error_message = r.error().message;
    }
  }
  return resp;
}

}  // namespace

asio::awaitable<protocol::CreatePartitionsResponse> CreatePartitionsHandler::handle(
    RequestContext& ctx, protocol::CreatePartitionsRequest req) {
  co_return co_await on_admin_thread(ctx, [&] { return create_partitions(ctx, req); });
}

}  // namespace herald::broker
