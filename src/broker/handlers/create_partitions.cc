// CreatePartitions: grows a topic to a new total partition count. Runs on the admin thread
// (creating a partition fsyncs its files and directory); answered REQUEST_TIMED_OUT after
// timeout_ms (when > 0) while the work goes on.
#include <chrono>
#include <memory>
#include <vector>

#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

// `b`, not the request's context: a request that timed out is answered and gone while this still runs.
protocol::CreatePartitionsResponse create_partitions(BrokerImpl& b, const protocol::CreatePartitionsRequest& req) {
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
    auto topic = b.topics().find(t.name);
    if (!topic) {
      out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
      continue;
    }
    if (t.assignments) {
      // As Kafka: one replica list per new partition, on existing brokers; here that is this one.
      const int64_t added = int64_t{t.count} - topic->partition_count();
      bool one_node = true;
      for (const auto& a : *t.assignments) one_node &= a.broker_ids == std::vector<int32_t>{b.config().node_id};
      if (added > 0 && (!one_node || static_cast<int64_t>(t.assignments->size()) != added)) {
        out.error_code = code(ErrorCode::kInvalidReplicaAssignment);
        out.error_message = fmt::format("Herald is one node: give one assignment per new partition ({}), each broker "
                                        "{} alone", added, b.config().node_id);
        continue;
      }
    }
    if (topic->internal()) {
      // A group's records live in partition hash(group) % count: a new count would move them.
      out.error_code = code(ErrorCode::kPolicyViolation);
      out.error_message = fmt::format("'{}' is internal: its partition count cannot change", t.name);
      continue;
    }
    auto r = b.topics().add_partitions(t.name, t.count, req.validate_only);
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
  if (req.timeout_ms <= 0) co_return co_await on_admin_thread(ctx, [&] { return create_partitions(ctx.broker, req); });
  auto shared = std::make_shared<const protocol::CreatePartitionsRequest>(std::move(req));
  auto job = start_admin_job(ctx, [&b = ctx.broker, shared] { return create_partitions(b, *shared); });
  co_await wait_admin_job(ctx, *job, std::chrono::milliseconds(shared->timeout_ms));
  if (job->result) co_return std::move(*job->result);
  protocol::CreatePartitionsResponse resp;  // as Kafka: REQUEST_TIMED_OUT, the work goes on
  for (const auto& t : shared->topics) {
    auto& out = resp.results.emplace_back();
    out.name = t.name;
    out.error_code = code(ErrorCode::kRequestTimedOut);
    out.error_message = fmt::format("not done within timeout_ms {}; adding the partitions goes on", shared->timeout_ms);
  }
  co_return resp;
}

}  // namespace herald::broker
