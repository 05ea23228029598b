// Metadata: this node as the only broker, controller and leader of every
// partition; auto-creates unknown topics when allowed (v0-3 always, v4+ when
// the request asks) and auto.create.topics.enable is on. `__consumer_offsets`,
// asked for by name, is created by the group coordinator (as Kafka does). Each
// topic is answered once; v12+ may ask by topic id (UNKNOWN_TOPIC_ID if none).
#include <algorithm>
#include <map>
#include <set>

#include "broker/broker_impl.h"
#include "broker/group/offsets_format.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;
using MetaTopic = protocol::MetadataResponse::MetadataResponseTopic;

namespace {

void fill_topic(MetaTopic& out, const Topic& topic, int32_t node_id) {
  out.error_code = code(ErrorCode::kNone);
  out.name = topic.name();
  out.topic_id = topic.id();
  out.is_internal = topic.internal();
  for (const auto& p : topic.partitions()) {
    auto& op = out.partitions.emplace_back();
    op.error_code = code(ErrorCode::kNone);
    op.partition_index = p->index;
    op.leader_id = node_id;
    op.leader_epoch = 0;
    op.replica_nodes = {node_id};
    op.isr_nodes = {node_id};
  }
}

}  // namespace

asio::awaitable<protocol::MetadataResponse> MetadataHandler::handle(RequestContext& ctx, protocol::MetadataRequest req) {
  auto& b = ctx.broker;
  const int32_t node = b.config().node_id;
  protocol::MetadataResponse resp;
  auto& br = resp.brokers.emplace_back();
  br.node_id = node;
  br.host = b.advertised_host();
  br.port = b.port();
  resp.cluster_id = b.cluster_id();
  resp.controller_id = node;

  const bool all = !req.topics || (ctx.version() == 0 && req.topics->empty());
  if (all) {
    for (const auto& t : b.topics().list()) fill_topic(resp.topics.emplace_back(), *t, node);
    co_return resp;
  }
  const bool may_create = b.config().auto_create_topics && (ctx.version() < 4 || req.allow_auto_topic_creation);
  auto is_zero = [](const protocol::Uuid& id) { return std::all_of(id.begin(), id.end(), [](uint8_t x) { return x == 0; }); };
  // v12+: topics asked for by id (names are then ignored, as in Kafka), each id once.
  std::vector<protocol::Uuid> ids;
  std::set<protocol::Uuid> seen_ids;
  for (const auto& rt : *req.topics) {
    if (!is_zero(rt.topic_id) && seen_ids.insert(rt.topic_id).second) ids.push_back(rt.topic_id);
  }
  if (ctx.version() >= 12 && !ids.empty()) {
    std::map<protocol::Uuid, std::shared_ptr<Topic>> by_id;
    for (auto& t : b.topics().list()) by_id.emplace(t->id(), t);
    for (const auto& id : ids) {
      auto& out = resp.topics.emplace_back();
      if (auto it = by_id.find(id); it != by_id.end()) {
        fill_topic(out, *it->second, node);
      } else {
        out.error_code = code(ErrorCode::kUnknownTopicId);
        out.name = std::nullopt;
        out.topic_id = id;
      }
    }
    co_return resp;
  }
  std::set<std::string> seen;  // each name once, as in Kafka
  for (const auto& rt : *req.topics) {
    if (!rt.name || !is_zero(rt.topic_id)) {
      // v10-11: a topic must be named, and ids are not supported.
      auto& out = resp.topics.emplace_back();
      out.error_code = code(ErrorCode::kInvalidRequest);
      out.name = rt.name;
      out.topic_id = rt.topic_id;
      continue;
    }
    std::string name = *rt.name;
    if (!seen.insert(name).second) continue;
    auto& out = resp.topics.emplace_back();
    out.name = name;
    if (!valid_topic_name(name)) {
      out.error_code = code(ErrorCode::kInvalidTopicException);
      continue;
    }
    auto topic = b.topics().find(name);
    if (!topic && name == group::kOffsetsTopic) {
      if (auto t = b.groups().offsets_topic()) topic = *t;
    } else if (!topic && may_create) {
      auto created =
          co_await on_admin_thread(ctx, [&] { return b.topics().create(name, b.config().default_partitions, {}); });
      if (created) {
        topic = *created;
      } else if (created.error().code == Errc::kAlreadyExists) {
        topic = b.topics().find(name);
      }
    }
    if (!topic) {
      const bool collides = may_create && b.topics().colliding_topic(name);
      out.error_code = code(collides ? ErrorCode::kInvalidTopicException : ErrorCode::kUnknownTopicOrPartition);
      continue;
    }
    fill_topic(out, *topic, node);
  }
  co_return resp;
}

}  // namespace herald::broker
