// DeleteTopics: by name (v1-6) or by id (v6), with every group's committed offsets of the
// topic. Internal topics cannot be deleted. The files are removed on the admin thread (closing a
// partition waits for its compaction pass).
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

asio::awaitable<ErrorCode> delete_one(RequestContext& ctx, const std::string& name) {
  BrokerImpl& b = ctx.broker;
  auto topic = b.topics().find(name);
  if (!topic) co_return ErrorCode::kUnknownTopicOrPartition;
  if (topic->internal()) co_return ErrorCode::kInvalidTopicException;
  const TopicId id = topic->id();
  auto r = co_await on_admin_thread(ctx, [&] { return b.topics().remove(name); });
  if (!r) co_return to_error_code(r.error().code);
  co_await b.groups().forget_topic(name, id);
  co_return ErrorCode::kNone;
}

}  // namespace

asio::awaitable<protocol::DeleteTopicsResponse> DeleteTopicsHandler::handle(RequestContext& ctx,
                                                                           protocol::DeleteTopicsRequest req) {
  protocol::DeleteTopicsResponse resp;
  for (const auto& name : req.topic_names) {
    auto& out = resp.responses.emplace_back();
    out.name = name;
    out.error_code = code(co_await delete_one(ctx, name));
  }
  for (const auto& t : req.topics) {
    auto& out = resp.responses.emplace_back();
    out.topic_id = t.topic_id;
    std::string name;
    const bool zero_id = std::all_of(t.topic_id.begin(), t.topic_id.end(), [](uint8_t x) { return x == 0; });
    out.name = t.name;  // null when the topic was named by id (Kafka's answer for an unknown id)
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
    out.error_code = code(co_await delete_one(ctx, name));
  }
  co_return resp;
}

}  // namespace herald::broker
