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

// Deletes the topic `name` is now (the incarnation `id`, when given): never one created again
// under that name after the request arrived, which has other offsets and other data. The
// committed offsets of the topic are dropped before its files and again after: a stop or crash
// in between leaves a topic without offsets, never offsets that a later topic of that name
// would inherit at the next start (offsets are stored by topic name).
asio::awaitable<ErrorCode> delete_one(RequestContext& ctx, const std::string& name, std::optional<TopicId> id = {}) {
  BrokerImpl& b = ctx.broker;
  auto topic = b.topics().find(name);
  if (!topic || (id && topic->id() != *id)) {
    co_return id ? ErrorCode::kUnknownTopicId : ErrorCode::kUnknownTopicOrPartition;
  }
  if (topic->internal()) co_return ErrorCode::kInvalidTopicException;
  const TopicId incarnation = topic->id();
  co_await b.groups().forget_topic(name, incarnation);
  auto r = co_await on_admin_thread(ctx, [&] { return b.topics().remove(name, incarnation); });
  if (!r && r.error().code == Errc::kNotFound) {
    co_return id ? ErrorCode::kUnknownTopicId : ErrorCode::kUnknownTopicOrPartition;
  }
  if (!r) co_return to_error_code(r.error().code);
  co_await b.groups().forget_topic(name, incarnation);  // commits made meanwhile
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
    std::optional<TopicId> by_id;
    if (!t.name) by_id = t.topic_id;
    if (auto topic = ctx.broker.topics().find(name)) out.topic_id = topic->id();
    out.error_code = code(co_await delete_one(ctx, name, by_id));
  }
  co_return resp;
}

}  // namespace herald::broker
