// DeleteTopics: by name (v1-6) or by id (v6), with every group's committed offsets of the
// topic. Internal topics cannot be deleted.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

ErrorCode delete_one(BrokerImpl& b, const std::string& name) {
  auto topic = b.topics().find(name);
  if (!topic) return ErrorCode::kUnknownTopicOrPartition;
  if (topic->internal()) return ErrorCode::kInvalidTopicException;
  auto r = b.topics().remove(name);
  return r ? ErrorCode::kNone : to_error_code(r.error().code);
}

}  // namespace

asio::awaitable<protocol::DeleteTopicsResponse> DeleteTopicsHandler::handle(RequestContext& ctx,
                                                                           protocol::DeleteTopicsRequest req) {
  protocol::DeleteTopicsResponse resp;
  for (const auto& name : req.topic_names) {
    auto& out = resp.responses.emplace_back();
    out.name = name;
    out.error_code = code(delete_one(ctx.broker, name));
    if (out.error_code == 0) co_await ctx.broker.groups().forget_topic(name);
  }
  for (const auto& t : req.topics) {
    auto& out = resp.responses.emplace_back();
    out.topic_id = t.topic_id;
    std::string name;
    const bool zero_id = std::all_of(t.topic_id.begin(), t.topic_id.end(), [](uint8_t x) { return x == 0; });
    if (t.name && !zero_id) {
      out.error_code = code(ErrorCode::kInvalidRequest);
      continue;
    }
    if (t.name) {
      name = *t.name;
    } else {
      for (const auto& topic : ctx.broker.topics().list()) {
        if (topic->id() == t.topic_id) name = topic->name();
      }
      if (name.empty()) {
        out.error_code = code(ErrorCode::kUnknownTopicId);
        continue;
      }
    }
    out.name = name;
    if (auto topic = ctx.broker.topics().find(name)) out.topic_id = topic->id();
    out.error_code = code(delete_one(ctx.broker, name));
    if (out.error_code == 0) co_await ctx.broker.groups().forget_topic(name);
  }
  co_return resp;
}

}  // namespace herald::broker
