#include "broker/topics/topic_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

#include "common/parse.h"

namespace herald::broker {
namespace {

Result<int64_t> parse_long(std::string_view name, std::string_view v, int64_t min, int64_t max) {
  HERALD_ASSIGN_OR_RETURN(int64_t out, parse_integer<int64_t>(name, v));
  if (out < min || out > max) {
    return Error{Errc::kInvalidArgument, fmt::format("{}: {} is outside [{}, {}]", name, out, min, max)};
  }
  return out;
}

// A double in [0, 1].
Result<double> parse_ratio(std::string_view name, std::string_view v) {
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) {
    return Error{Errc::kInvalidArgument, fmt::format("{}: '{}' is not a number", name, v)};
  }
  if (!(out >= 0 && out <= 1)) {
    return Error{Errc::kInvalidArgument, fmt::format("{}: {} is outside [0, 1]", name, out)};
  }
  return out;
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
  while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
  return v;
}

// The items of a comma-separated list value, each trimmed ("" is one empty item).
std::vector<std::string_view> list_items(std::string_view v) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t end = v.find(',', start);
    out.push_back(trim(v.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

constexpr int64_t kMaxLong = INT64_MAX;
constexpr int64_t kMaxInt = INT32_MAX;

// name, broker-wide name, type, doc, read-only; the apply/get logic is in set()/get() below.
constexpr ConfigDef kDefs[] = {
    {"cleanup.policy", "log.cleanup.policy", ConfigType::kList,
     "delete: drop old segments by retention; compact: keep the latest record per key; or both", false},
    {"retention.ms", "log.retention.ms", ConfigType::kLong,
     "Delete closed segments older than this (-1 = keep forever)", false},
    {"retention.bytes", "log.retention.bytes", ConfigType::kLong,
     "Delete oldest closed segments beyond this size per partition (-1 = unlimited)", false},
    {"segment.bytes", "log.segment.bytes", ConfigType::kInt, "Roll to a new segment file at this size", false},
    {"segment.ms", "log.roll.ms", ConfigType::kLong, "Roll to a new segment file after this time", false},
    {"max.message.bytes", "message.max.bytes", ConfigType::kInt, "Largest record batch accepted, in bytes", false},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms", ConfigType::kLong,
     "How long compaction keeps tombstones", false},
    {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", ConfigType::kLong,
     "Records younger than this are not compacted", false},
    {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", ConfigType::kLong,
     "Compact a segment once its first records are this old, whatever the dirty ratio; also rolls the active segment",
     false},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", ConfigType::kDouble,
     "Compact once the not yet compacted bytes are this share of the compactable log", false},
    {"message.timestamp.type", "log.message.timestamp.type", ConfigType::kString, "CreateTime or LogAppendTime", false},
    {"message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", ConfigType::kLong,
     "Reject records with a timestamp further in the past", false},
    {"message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", ConfigType::kLong,
     "Reject records with a timestamp further in the future", false},
    {"flush.policy", "log.flush.policy", ConfigType::kString,
     "always: acks=all is answered after fdatasync (group commit); interval: sync every flush.ms", false},
    {"flush.ms", "log.flush.interval.ms", ConfigType::kLong, "Sync interval when flush.policy=interval", false},
    {"index.interval.bytes", "log.index.interval.bytes", ConfigType::kInt,
     "Bytes of log between offset index entries", false},
    {"compression.type", "compression.type", ConfigType::kString,
     "Batches are stored as the producer sent them (producer)", true},
    {"min.insync.replicas", "min.insync.replicas", ConfigType::kInt, "Always 1: Herald is one node", true},
    {"flush.messages", "log.flush.interval.messages", ConfigType::kLong, "No effect: flush.policy decides the syncs",
     false, true, "9223372036854775807"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable", ConfigType::kBoolean,
     "No effect: Herald is one node", false, true, "false"},
    {"leader.replication.throttled.replicas", "leader.replication.throttled.replicas", ConfigType::kList,
     "No effect: Herald is one node", false, true, ""},
    {"follower.replication.throttled.replicas", "follower.replication.throttled.replicas", ConfigType::kList,
     "No effect: Herald is one node", false, true, ""},
    {"preallocate", "log.preallocate", ConfigType::kBoolean, "No effect: segment files grow as they are written",
     false, true, "false"},
    {"segment.index.bytes", "log.index.size.max.bytes", ConfigType::kInt,
     "No effect: index files grow with their segment", false, true, "10485760"},
    {"segment.jitter.ms", "log.roll.jitter.ms", ConfigType::kLong, "No effect: segments roll at segment.ms", false,
     true, "0"},
    {"file.delete.delay.ms", "log.segment.delete.delay.ms", ConfigType::kLong,
     "No effect: a deleted segment's files go once no reader holds them", false, true, "60000"},
    {"message.downconversion.enable", "log.message.downconversion.enable", ConfigType::kBoolean,
     "No effect: records are served as stored", false, true, "true"},
    {"message.format.version", "log.message.format.version", ConfigType::kString,
     "No effect: record batches v2 only (ignored by Kafka 3 too)", false, true, "3.0-IV1"},
    {"remote.storage.enable", "remote.storage.enable", ConfigType::kBoolean,
     "No tiered storage: only false", false, true, "false"},
    {"local.retention.ms", "log.local.retention.ms", ConfigType::kLong, "No effect: no tiered storage", false, true,
     "-2"},
    {"local.retention.bytes", "log.local.retention.bytes", ConfigType::kLong, "No effect: no tiered storage", false,
     true, "-2"},
    {"remote.log.copy.disable", "remote.log.copy.disable", ConfigType::kBoolean, "No effect: no tiered storage",
     false, true, "false"},
    {"remote.log.delete.on.disable", "remote.log.delete.on.disable", ConfigType::kBoolean,
     "No effect: no tiered storage", false, true, "false"},
    {"compression.gzip.level", "compression.gzip.level", ConfigType::kInt,
     "No effect: batches are stored as the producer compressed them", false, true, "-1"},
    {"compression.lz4.level", "compression.lz4.level", ConfigType::kInt,
     "No effect: batches are stored as the producer compressed them", false, true, "9"},
    {"compression.zstd.level", "compression.zstd.level", ConfigType::kInt,
     "No effect: batches are stored as the producer compressed them", false, true, "3"},
};

// The value of an inert config: a boolean, a non-negative number, or replicas to throttle ("*" or
// partition:broker pairs), as Kafka checks them.
Result<void> check_inert(const ConfigDef& def, std::string_view v) {
  const std::string_view name = def.name;
  switch (def.type) {
    case ConfigType::kBoolean: {
      auto lower = [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); };
      std::string s(v);
      std::transform(s.begin(), s.end(), s.begin(), lower);
      if (s == "true" && name == "remote.storage.enable") {
        return Error{Errc::kInvalidArgument, "remote.storage.enable: Herald has no tiered storage"};
      }
      if (s == "true" || s == "false") return ok();
      return Error{Errc::kInvalidArgument, fmt::format("{}: '{}' is not true or false", name, v)};
    }
    case ConfigType::kInt:
    case ConfigType::kLong: {
      // Kafka's lower bounds: -2 for local.retention.* (as retention.*), gzip's and zstd's defaults
      // and fast levels are negative.
      const int64_t min = name.starts_with("local.retention.")       ? -2
                          : name == "compression.gzip.level"        ? -1
                          : name == "compression.zstd.level"        ? -131072
                                                                    : 0;
      HERALD_ASSIGN_OR_RETURN(int64_t x, parse_long(name, v, min, def.type == ConfigType::kInt ? kMaxInt : kMaxLong));
      (void)x;
      return ok();
    }
    case ConfigType::kString:
      return ok();
    default:
      break;
  }
  if (v.empty() || v == "*") return ok();
  for (std::string_view item : list_items(v)) {
    size_t colon = item.find(':');
    if (colon == std::string_view::npos || !parse_integer<int32_t>(name, item.substr(0, colon)) ||
        !parse_integer<int32_t>(name, item.substr(colon + 1))) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("{}: '{}' is not * or a list of partition:broker", name, item)};
    }
  }
  return ok();
}

}  // namespace

std::span<const ConfigDef> topic_config_defs() { return kDefs; }

const ConfigDef* find_topic_config(std::string_view name) {
  for (const auto& d : kDefs) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

std::string unknown_topic_config(std::string_view name) {
  if (name == "message.timestamp.difference.max.ms") {
    return fmt::format("unknown topic config '{}' (deprecated by Kafka 3.6; use message.timestamp.before.max.ms "
                       "and message.timestamp.after.max.ms)",
                       name);
  }
  return fmt::format("unknown topic config '{}'", name);
}

ConfigSource config_source(const TopicConfig* topic, const TopicConfig& defaults, std::string_view name) {
  const std::string key(name);
  if (topic && topic->overrides.count(key)) return ConfigSource::kTopic;
  return defaults.overrides.count(key) ? ConfigSource::kBroker : ConfigSource::kDefault;
}

Result<void> TopicConfig::set(std::string_view name, std::string_view v) {
  v = trim(v);  // as Kafka does
  const ConfigDef* def = find_topic_config(name);
  if (def == nullptr) return Error{Errc::kNotFound, unknown_topic_config(name)};
  if (def->inert) {
    HERALD_TRY(check_inert(*def, v));
  } else if (name == "cleanup.policy") {
    bool compact = false, del = false;
    for (std::string_view item : list_items(v)) {
      if (item == "compact") {
        compact = true;
      } else if (item == "delete") {
        del = true;
      } else {
        return Error{Errc::kInvalidArgument, fmt::format("cleanup.policy: '{}' is not delete or compact", item)};
      }
    }
    log.compact = compact;
    log.delete_retention = del;
  } else if (name == "retention.ms") {
    HERALD_ASSIGN_OR_RETURN(log.retention_ms, parse_long(name, v, -1, kMaxLong));
  } else if (name == "retention.bytes") {
    HERALD_ASSIGN_OR_RETURN(log.retention_bytes, parse_long(name, v, -1, kMaxLong));
  } else if (name == "segment.bytes") {
    HERALD_ASSIGN_OR_RETURN(log.segment_bytes, parse_long(name, v, 14, kMaxInt));
  } else if (name == "segment.ms") {
    HERALD_ASSIGN_OR_RETURN(log.segment_ms, parse_long(name, v, 1, kMaxLong));
  } else if (name == "max.message.bytes") {
    HERALD_ASSIGN_OR_RETURN(int64_t x, parse_long(name, v, 0, kMaxInt));
    max_message_bytes = static_cast<int32_t>(x);
  } else if (name == "delete.retention.ms") {
    HERALD_ASSIGN_OR_RETURN(log.delete_retention_ms, parse_long(name, v, 0, kMaxLong));
  } else if (name == "min.compaction.lag.ms") {
    HERALD_ASSIGN_OR_RETURN(log.min_compaction_lag_ms, parse_long(name, v, 0, kMaxLong));
  } else if (name == "max.compaction.lag.ms") {
    HERALD_ASSIGN_OR_RETURN(log.max_compaction_lag_ms, parse_long(name, v, 1, kMaxLong));
  } else if (name == "min.cleanable.dirty.ratio") {
    HERALD_ASSIGN_OR_RETURN(log.min_cleanable_dirty_ratio, parse_ratio(name, v));
  } else if (name == "message.timestamp.type") {
    if (v == "CreateTime") {
      log_append_time = false;
    } else if (v == "LogAppendTime") {
      log_append_time = true;
    } else {
      return Error{Errc::kInvalidArgument, fmt::format("message.timestamp.type: '{}'", v)};
    }
  } else if (name == "message.timestamp.before.max.ms") {
    HERALD_ASSIGN_OR_RETURN(timestamp_before_max_ms, parse_long(name, v, 0, kMaxLong));
  } else if (name == "message.timestamp.after.max.ms") {
    HERALD_ASSIGN_OR_RETURN(timestamp_after_max_ms, parse_long(name, v, 0, kMaxLong));
  } else if (name == "flush.policy") {
    if (v == "always") {
      log.flush_policy = storage::FlushPolicy::kAlways;
    } else if (v == "interval") {
      log.flush_policy = storage::FlushPolicy::kInterval;
    } else {
      return Error{Errc::kInvalidArgument, fmt::format("flush.policy: '{}' is not always or interval", v)};
    }
  } else if (name == "flush.ms") {
    HERALD_ASSIGN_OR_RETURN(log.flush_interval_ms, parse_long(name, v, 1, kMaxLong));
  } else if (name == "index.interval.bytes") {
    HERALD_ASSIGN_OR_RETURN(int64_t x, parse_long(name, v, 0, kMaxInt));
    log.index_interval_bytes = static_cast<int32_t>(x);
  } else if (name == "compression.type") {
    if (v != "producer") {
      return Error{Errc::kInvalidArgument, "compression.type: only 'producer' (store batches as sent) is supported"};
    }
  } else if (name == "min.insync.replicas") {
    if (v != "1") return Error{Errc::kInvalidArgument, "min.insync.replicas: Herald is one node, only 1 is valid"};
  }
  overrides[std::string(name)] = std::string(v);
  return ok();
}

Result<void> TopicConfig::check() const {
  if (log.min_compaction_lag_ms > log.max_compaction_lag_ms) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("min.compaction.lag.ms {} is larger than max.compaction.lag.ms {}",
                             log.min_compaction_lag_ms, log.max_compaction_lag_ms)};
  }
  return ok();
}

Result<void> TopicConfig::reset(std::string_view name, const TopicConfig& defaults) {
  if (find_topic_config(name) == nullptr) return Error{Errc::kNotFound, unknown_topic_config(name)};
  auto value = defaults.get(name);
  auto saved = overrides;
  if (value) HERALD_TRY(set(name, *value));
  saved.erase(std::string(name));
  overrides = std::move(saved);
  return ok();
}

std::optional<std::string> TopicConfig::get(std::string_view name) const {
  if (name == "cleanup.policy") {
    if (log.compact && log.delete_retention) return "compact,delete";
    return log.compact ? "compact" : "delete";
  }
  if (name == "retention.ms") return std::to_string(log.retention_ms);
  if (name == "retention.bytes") return std::to_string(log.retention_bytes);
  if (name == "segment.bytes") return std::to_string(log.segment_bytes);
  if (name == "segment.ms") return std::to_string(log.segment_ms);
  if (name == "max.message.bytes") return std::to_string(max_message_bytes);
  if (name == "delete.retention.ms") return std::to_string(log.delete_retention_ms);
  if (name == "min.compaction.lag.ms") return std::to_string(log.min_compaction_lag_ms);
  if (name == "max.compaction.lag.ms") return std::to_string(log.max_compaction_lag_ms);
  if (name == "min.cleanable.dirty.ratio") return fmt::format("{}", log.min_cleanable_dirty_ratio);
  if (name == "message.timestamp.type") return log_append_time ? "LogAppendTime" : "CreateTime";
  if (name == "message.timestamp.before.max.ms") return std::to_string(timestamp_before_max_ms);
  if (name == "message.timestamp.after.max.ms") return std::to_string(timestamp_after_max_ms);
  if (name == "flush.policy") return log.flush_policy == storage::FlushPolicy::kAlways ? "always" : "interval";
  if (name == "flush.ms") return std::to_string(log.flush_interval_ms);
  if (name == "index.interval.bytes") return std::to_string(log.index_interval_bytes);
  if (name == "compression.type") return "producer";
  if (name == "min.insync.replicas") return "1";
  if (const ConfigDef* def = find_topic_config(name); def && def->inert) {
    auto it = overrides.find(std::string(name));
    return it != overrides.end() ? it->second : std::string(def->inert_default);
  }
  return std::nullopt;
}

}  // namespace herald::broker
