// CreateTopics: validates names, partition counts, replication factor (1 or
// -1 on one node) and configs; validate_only checks without creating. Runs on the admin thread
// (creating a partition fsyncs its files and directory); answered REQUEST_TIMED_OUT after timeout_ms
// (when > 0) while the creation goes on.
#include <chrono>
#include <memory>
#include <set>
#include <vector>

#include "broker/broker_impl.h"
#include "broker/group/offsets_format.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

// `b` and `version`, not the request's context: a request that timed out is answered and gone while
// this still runs.
protocol::CreateTopicsResponse create_topics(BrokerImpl& b, int16_t version, const protocol::CreateTopicsRequest& req) {
  protocol::CreateTopicsResponse resp;
  std::map<std::string, int> seen;
  for (const auto& t : req.topics) seen[t.name]++;
  for (const auto& t : req.topics) {
    if (seen[t.name] == 0) continue;  // a name listed more than once is answered once
    auto& out = resp.topics.emplace_back();
    out.name = t.name;
    out.error_message = std::nullopt;
    auto set_error = [&](ErrorCode e, std::string msg) {
      out.error_code = code(e);
      out.error_message = std::move(msg);
    };
    if (seen[t.name] > 1) {
      seen[t.name] = 0;
      set_error(ErrorCode::kInvalidRequest, "topic listed more than once");
      continue;
    }
    if (!valid_topic_name(t.name)) {
      set_error(ErrorCode::kInvalidTopicException, fmt::format("invalid topic name '{}'", t.name));
      continue;
    }
    if (auto other = b.topics().colliding_topic(t.name)) {
      set_error(ErrorCode::kInvalidTopicException,
                fmt::format("topic '{}' collides with existing topic '{}'", t.name, *other));
      continue;
    }
    // Kafka's internal topics: __transaction_state too, though Herald has no transactions, so that a
    // topic of that name never stands where a Kafka cluster would keep its own.
    if (t.name == group::kOffsetsTopic || t.name == "__transaction_state") {
      set_error(ErrorCode::kInvalidRequest, fmt::format("creation of internal topic {} is prohibited", t.name));
      continue;
    }
    if (t.replication_factor != 1 && t.replication_factor != -1) {
      set_error(ErrorCode::kInvalidReplicationFactor, "Herald is one node: replication factor must be 1");
      continue;
    }
    int32_t partitions = t.num_partitions == -1 ? b.config().default_partitions : t.num_partitions;
    if (!t.assignments.empty()) {
      // As Kafka: partitions 0..n-1, each on existing brokers; here that is this one, once.
      if (t.num_partitions != -1 || t.replication_factor != -1) {
        set_error(ErrorCode::kInvalidRequest,
                  "both numPartitions or replicationFactor and replicasAssignments were set");
        continue;
      }
      std::set<int32_t> indexes;
      bool one_node = true;
      for (const auto& a : t.assignments) {
        indexes.insert(a.partition_index);
        one_node &= a.broker_ids == std::vector<int32_t>{b.config().node_id};
      }
      const auto n = static_cast<int32_t>(t.assignments.size());
      if (!one_node || static_cast<int32_t>(indexes.size()) != n || *indexes.begin() != 0 || *indexes.rbegin() != n - 1) {
        set_error(ErrorCode::kInvalidReplicaAssignment,
                  fmt::format("Herald is one node: an assignment must list partitions 0..n-1, each on broker {} "
                              "alone", b.config().node_id));
        continue;
      }
      partitions = n;
    }
    if (partitions <= 0) {
      set_error(ErrorCode::kInvalidPartitions, fmt::format("invalid partition count {}", t.num_partitions));
      continue;
    }
    std::map<std::string, std::string> configs;
    std::string null_config;
    for (const auto& c : t.configs) {
      if (c.value) configs[c.name] = *c.value;
      else if (null_config.empty()) null_config = c.name;
    }
    if (!null_config.empty()) {
      set_error(ErrorCode::kInvalidConfig, fmt::format("null value not supported for topic config {}", null_config));
      continue;
    }
    auto created = b.topics().create(t.name, partitions, configs, req.validate_only);
    if (!created) {
      const auto& e = created.error();
      ErrorCode ec = e.code == Errc::kAlreadyExists  ? ErrorCode::kTopicAlreadyExists
                     : e.code == Errc::kOutOfRange   ? ErrorCode::kInvalidPartitions
                     : e.code == Errc::kNotFound     ? ErrorCode::kInvalidConfig
                     : e.code == Errc::kInvalidArgument ? ErrorCode::kInvalidConfig
                                                     : to_error_code(e.code);
      set_error(ec, e.message);
      continue;
    }
    const Topic& topic = **created;
    out.error_code = 0;
    out.topic_id = topic.id();
    out.num_partitions = partitions;
    out.replication_factor = 1;
    if (version >= 5) {
      auto& cfgs = out.configs.emplace();
      TopicConfig tc = topic.config();
      for (const auto& def : topic_config_defs()) {
        auto& c = cfgs.emplace_back();
        c.name = std::string(def.name);
        c.value = tc.get(def.name);
        c.read_only = def.read_only;
        c.config_source = static_cast<int8_t>(config_source(&tc, b.topics().defaults(), def.name));
        c.is_sensitive = false;
      }
    }
  }
  return resp;
}

}  // namespace

asio::awaitable<protocol::CreateTopicsResponse> CreateTopicsHandler::handle(RequestContext& ctx,
                                                                           protocol::CreateTopicsRequest req) {
  if (req.timeout_ms <= 0) co_return co_await on_admin_thread(ctx, [&] { return create_topics(ctx.broker, ctx.version(), req); });
  auto shared = std::make_shared<const protocol::CreateTopicsRequest>(std::move(req));
  auto job = start_admin_job(ctx, [&b = ctx.broker, v = ctx.version(), shared] { return create_topics(b, v, *shared); });
  co_await wait_admin_job(ctx, *job, std::chrono::milliseconds(shared->timeout_ms));
  if (job->result) co_return std::move(*job->result);
  // As Kafka: REQUEST_TIMED_OUT for each topic, whose creation goes on (Metadata shows it once done).
  protocol::CreateTopicsResponse resp;
  std::set<std::string> answered;
  for (const auto& t : shared->topics) {
    if (!answered.insert(t.name).second) continue;
    auto& out = resp.topics.emplace_back();
    out.name = t.name;
    out.error_code = code(ErrorCode::kRequestTimedOut);
    out.error_message = fmt::format("not done within timeout_ms {}; the creation goes on", shared->timeout_ms);
  }
  co_return resp;
}

}  // namespace herald::broker
