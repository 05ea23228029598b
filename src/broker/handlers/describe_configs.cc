// DescribeConfigs: a topic's configs (resource type 2) with their source (the
// topic's own value, the broker-wide default its operator set, or the
// built-in default) and synonyms, and the broker's defaults (type 4) under
// their broker-wide names (log.retention.ms, ...), as Kafka reports them, with
// the broker's own settings (num.partitions, listeners, ...), read-only.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {
constexpr int8_t kTopicResource = 2;
constexpr int8_t kBrokerResource = 4;

using Entry = protocol::DescribeConfigsResponse::DescribeConfigsResourceResult;

bool wanted(const std::optional<std::vector<std::string>>& keys, std::string_view name) {
  return !keys || keys->empty() || std::find(keys->begin(), keys->end(), name) != keys->end();  // [] = all, as Kafka
}

// The chain Kafka reports, most specific first: the topic's value, the broker's, the built-in one.
void add_synonyms(Entry& c, const ConfigDef& def, const TopicConfig* topic, const TopicConfig& defaults) {
  const std::string name(def.name);
  if (topic && topic->overrides.count(name)) {
    c.synonyms.push_back({name, topic->get(def.name), static_cast<int8_t>(ConfigSource::kTopic)});
  }
  const std::string broker_name(def.broker_name);
  if (defaults.overrides.count(name)) {
    c.synonyms.push_back({broker_name, defaults.get(def.name), static_cast<int8_t>(ConfigSource::kBroker)});
  }
  c.synonyms.push_back({broker_name, TopicConfig{}.get(def.name), static_cast<int8_t>(ConfigSource::kDefault)});
}

// The broker's own settings (`herald serve` flags, file, environment), read-only, under Kafka's
// names, so that admin tools show what this broker runs with.
void add_broker_settings(protocol::DescribeConfigsResponse::DescribeConfigsResult& out, BrokerImpl& b,
                         const std::optional<std::vector<std::string>>& keys, bool documentation) {
  const BrokerConfig& c = b.config();
  const std::string listener = fmt::format("PLAINTEXT://{}:{}", c.listen_host, b.port());
  const std::string advertised = fmt::format("PLAINTEXT://{}:{}", b.advertised_host(), b.port());
  const struct {
    std::string_view name;
    std::string value;
    ConfigType type;
    std::string_view doc;
  } settings[] = {
      {"broker.id", std::to_string(c.node_id), ConfigType::kInt, "This node's id (Herald is one node)"},
      {"listeners", listener, ConfigType::kList, "--listen"},
      {"advertised.listeners", advertised, ConfigType::kList, "--advertised-host"},
      {"log.dirs", c.data_dir.string(), ConfigType::kString, "--data-dir"},
      {"auto.create.topics.enable", c.auto_create_topics ? "true" : "false", ConfigType::kBoolean,
       "--auto-create-topics"},
      {"num.partitions", std::to_string(c.default_partitions), ConfigType::kInt, "--num-partitions"},
      {"default.replication.factor", "1", ConfigType::kShort, "Always 1: Herald is one node"},
      {"delete.topic.enable", "true", ConfigType::kBoolean, "Topics can be deleted"},
      {"offsets.topic.num.partitions", std::to_string(c.offsets_topic_partitions), ConfigType::kInt,
       "Partitions of __consumer_offsets"},
      {"offsets.topic.replication.factor", "1", ConfigType::kShort, "Always 1: Herald is one node"},
      {"socket.request.max.bytes", std::to_string(c.socket_request_max_bytes), ConfigType::kInt,
       "Largest request accepted"},
      {"fetch.max.bytes", std::to_string(c.fetch_max_bytes), ConfigType::kInt, "Cap on a Fetch's max_bytes"},
      {"group.min.session.timeout.ms", std::to_string(c.group_min_session_timeout_ms), ConfigType::kInt, ""},
      {"group.max.session.timeout.ms", std::to_string(c.group_max_session_timeout_ms), ConfigType::kInt, ""},
      {"group.initial.rebalance.delay.ms", std::to_string(c.group_initial_rebalance_delay_ms), ConfigType::kInt,
       ""},
      {"offsets.retention.minutes",
       c.offsets_retention_ms < 0 ? std::string("-1") : std::to_string(c.offsets_retention_ms / 60000),
       ConfigType::kInt, "-1: committed offsets never expire while their topic exists"},
  };
  for (const auto& s : settings) {
    if (!wanted(keys, s.name)) continue;
    auto& e = out.configs.emplace_back();
    e.name = std::string(s.name);
    e.value = s.value;
    e.read_only = true;
    e.config_source = static_cast<int8_t>(ConfigSource::kBroker);
    e.is_default = false;
    e.is_sensitive = false;
    e.config_type = static_cast<int8_t>(s.type);
    e.documentation = documentation ? std::optional<std::string>(s.doc) : std::nullopt;
  }
}

}  // namespace

asio::awaitable<protocol::DescribeConfigsResponse> DescribeConfigsHandler::handle(
    RequestContext& ctx, protocol::DescribeConfigsRequest req) {
  protocol::DescribeConfigsResponse resp;
  auto& b = ctx.broker;
  const TopicConfig& defaults = b.topics().defaults();
  for (const auto& r : req.resources) {
    auto& out = resp.results.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    out.error_message = std::nullopt;
    std::optional<TopicConfig> topic_cfg;  // set for a topic resource
    if (r.resource_type == kTopicResource) {
      auto topic = b.topics().find(r.resource_name);
      if (!topic) {
        out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
        out.error_message = fmt::format("unknown topic '{}'", r.resource_name);
        continue;
      }
      topic_cfg = topic->config();
    } else if (r.resource_type == kBrokerResource) {
      // The empty name asks for the cluster-wide dynamic defaults, which Herald does not have.
      if (r.resource_name.empty()) continue;
      if (r.resource_name != std::to_string(b.config().node_id)) {
        out.error_code = code(ErrorCode::kInvalidRequest);
        out.error_message = fmt::format("unknown broker '{}'", r.resource_name);
        continue;
      }
    } else {
      out.error_code = code(ErrorCode::kInvalidRequest);
      out.error_message = fmt::format("unsupported resource type {}", r.resource_type);
      continue;
    }
    for (const auto& def : topic_config_defs()) {
      const std::string_view name = topic_cfg ? def.name : def.broker_name;
      if (!wanted(r.configuration_keys, name)) continue;
      const TopicConfig* topic = topic_cfg ? &*topic_cfg : nullptr;
      auto& c = out.configs.emplace_back();
      c.name = std::string(name);
      c.value = (topic ? *topic : defaults).get(def.name);
      c.read_only = def.read_only;
      c.config_source = static_cast<int8_t>(config_source(topic, defaults, def.name));
      c.is_default = c.config_source == static_cast<int8_t>(ConfigSource::kDefault);
      c.is_sensitive = false;
      c.config_type = static_cast<int8_t>(def.type);
      c.documentation = req.include_documentation ? std::optional<std::string>(def.doc) : std::nullopt;
      if (req.include_synonyms) add_synonyms(c, def, topic, defaults);
    }
    if (!topic_cfg) add_broker_settings(out, b, r.configuration_keys, req.include_documentation);
  }
  co_return resp;
}

}  // namespace herald::broker
