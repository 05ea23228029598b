// DescribeConfigs: topic configs (resource type 2) with their source
// (dynamic topic override or default) and the broker's defaults (type 4).
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {
constexpr int8_t kTopicResource = 2;
constexpr int8_t kBrokerResource = 4;
constexpr int8_t kSourceDynamicTopic = 1;
constexpr int8_t kSourceStaticBroker = 4;
constexpr int8_t kSourceDefault = 5;
}  // namespace

asio::awaitable<protocol::DescribeConfigsResponse> DescribeConfigsHandler::handle(
    RequestContext& ctx, protocol::DescribeConfigsRequest req) {
  protocol::DescribeConfigsResponse resp;
  auto& b = ctx.broker;
  for (const auto& r : req.resources) {
    auto& out = resp.results.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    TopicConfig cfg;
    bool is_topic = r.resource_type == kTopicResource;
    if (is_topic) {
      auto topic = b.topics().find(r.resource_name);
      if (!topic) {
        out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
        out.error_message = fmt::format("unknown topic '{}'", r.resource_name);
        continue;
      }
      cfg = topic->config();
    } else if (r.resource_type == kBrokerResource) {
      if (!r.resource_name.empty() && r.resource_name != std::to_string(b.config().node_id)) {
        out.error_code = code(ErrorCode::kInvalidRequest);
        out.error_message = fmt::format("unknown broker '{}'", r.resource_name);
        continue;
      }
      cfg = b.topics().defaults();
    } else {
      out.error_code = code(ErrorCode::kInvalidRequest);
      out.error_message = fmt::format("unsupported resource type {}", r.resource_type);
      continue;
    }
    for (const auto& def : topic_config_defs()) {
      std::string name(def.name);
      if (r.configuration_keys &&
          std::find(r.configuration_keys->begin(), r.configuration_keys->end(), name) == r.configuration_keys->end()) {
        continue;
      }
      auto& c = out.configs.emplace_back();
      c.name = name;
      c.value = cfg.get(def.name);
      c.read_only = def.read_only;
      bool overridden = cfg.overrides.count(name) > 0;
      c.config_source = is_topic ? (overridden ? kSourceDynamicTopic : kSourceDefault)
                                 : (overridden ? kSourceStaticBroker : kSourceDefault);
      c.is_sensitive = false;
      c.config_type = static_cast<int8_t>(def.type);
      if (req.include_documentation) c.documentation = std::string(def.doc);
      if (req.include_synonyms && overridden && is_topic) {
        auto& s = c.synonyms.emplace_back();
        s.name = name;
        s.value = c.value;
        s.source = kSourceDynamicTopic;
      }
    }
  }
  co_return resp;
}

}  // namespace herald::broker
