// Topic-level configuration: Kafka's config names, types, defaults and
// validation, declared once in a table (topic_config.cc) that DescribeConfigs,
// CreateTopics, IncrementalAlterConfigs and the CLI all read.
//
//   TopicConfig cfg;                                    // broker defaults
//   HERALD_TRY(cfg.set("retention.ms", "86400000"));    // validates and applies
//   storage::LogConfig log = cfg.log;                   // what the partition logs use
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "storage/log_config.h"

namespace herald::broker {

enum class ConfigType : int8_t {  // DescribeConfigs config_type
  kUnknown = 0, kBoolean = 1, kString = 2, kInt = 3, kShort = 4, kLong = 5, kDouble = 6, kList = 7,
};

struct TopicConfig {
  storage::LogConfig log;
  int32_t max_message_bytes = 1048588;
  bool log_append_time = false;                  // message.timestamp.type=LogAppendTime
  int64_t timestamp_before_max_ms = INT64_MAX;   // message.timestamp.before.max.ms
  int64_t timestamp_after_max_ms = 3600000;      // message.timestamp.after.max.ms
  std::map<std::string, std::string> overrides;  // dynamic (per-topic) values as set by users

  // Validates `value` for `name` and applies it; records it in overrides.
  // kNotFound for an unknown name, kInvalidArgument for a bad value.
  Result<void> set(std::string_view name, std::string_view value);
  // kInvalidArgument if the values contradict each other (after a set of
  // changes, as Kafka checks them together).
  Result<void> check() const;
  // Reverts `name` to the broker default (`defaults`).
  Result<void> reset(std::string_view name, const TopicConfig& defaults);
  // Current value of `name` as Kafka prints it.
  std::optional<std::string> get(std::string_view name) const;
};

struct ConfigDef {
  std::string_view name;
  std::string_view broker_name;  // the broker-wide default's name, as in Kafka (retention.ms: log.retention.ms)
  ConfigType type;
  std::string_view doc;
  bool read_only;
  // A Kafka config that means nothing on one node with Herald's files (preallocate, replication
  // throttles, ...): its value is checked, stored and described, and changes nothing. Tools that
  // write a topic's full Kafka config (Terraform, operators) keep working.
  bool inert = false;
  std::string_view inert_default = {};
};

// Every topic config Herald knows, in a stable order.
std::span<const ConfigDef> topic_config_defs();
const ConfigDef* find_topic_config(std::string_view name);
// "unknown topic config 'NAME'", and what to use instead when NAME is a Kafka config Herald has not.
std::string unknown_topic_config(std::string_view name);

// Where a value comes from, as DescribeConfigs and CreateTopics report it.
enum class ConfigSource : int8_t { kTopic = 1, kBroker = 4, kDefault = 5 };
// The value of `name` for `topic` (or, if null, for the broker): the topic's own, the broker-wide
// default set by its operator (`defaults`: --topic-default, [topic_defaults]) or the built-in one.
ConfigSource config_source(const TopicConfig* topic, const TopicConfig& defaults, std::string_view name);

}  // namespace herald::broker
