// AlterConfigs (replace the whole override set) and IncrementalAlterConfigs
// (SET / DELETE / APPEND / SUBTRACT per key) for topics. Values are validated
// by TopicConfig before anything changes; validate_only changes nothing.
#include <set>

#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

constexpr int8_t kTopicResource = 2;

struct Change {
  std::string name;
  int8_t op;  // 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT
  std::optional<std::string> value;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Returns the error (code, message) or kNone.
std::pair<ErrorCode, std::string> apply(BrokerImpl& b, int8_t type, const std::string& name,
                                        const std::vector<Change>& changes, bool replace, bool validate_only) {
  if (type != kTopicResource) return {ErrorCode::kInvalidRequest, "only topic configs can be altered"};
  auto topic = b.topics().find(name);
  if (!topic) return {ErrorCode::kUnknownTopicOrPartition, fmt::format("unknown topic '{}'", name)};
  const TopicConfig& defaults = b.topics().defaults();
  TopicConfig cfg = topic->config();
  if (replace) {
    cfg = defaults;
    cfg.overrides.clear();
  }
  std::set<std::string_view> names;
  for (const auto& c : changes) {
    const ConfigDef* def = find_topic_config(c.name);
    if (!def) return {ErrorCode::kInvalidConfig, unknown_topic_config(c.name)};
    if (!replace && !names.insert(c.name).second) {
      return {ErrorCode::kInvalidRequest, fmt::format("config '{}' listed more than once", c.name)};
    }
    if (!replace && (c.op == 0 || c.op == 2 || c.op == 3) && !c.value) {
      return {ErrorCode::kInvalidRequest, fmt::format("null value for '{}' (DELETE resets a config)", c.name)};
    }
    // A read-only config (compression.type, min.insync.replicas) may be set to the only value it can
    // have, as a tool writing back the described overrides does; set() refuses any other.
    Result<void> r = ok();
    if (c.op == 1 || !c.value) {  // AlterConfigs: a null value leaves the default
      r = cfg.reset(c.name, defaults);
    } else if (c.op == 0) {
      r = cfg.set(c.name, *c.value);
    } else if (c.op == 2 || c.op == 3) {
      if (def->type != ConfigType::kList) {
        return {ErrorCode::kInvalidConfig, fmt::format("APPEND/SUBTRACT on non-list config '{}'", c.name)};
      }
      auto items = split_list(cfg.get(c.name).value_or(""));
      for (const auto& v : split_list(c.value.value_or(""))) {
        auto it = std::find(items.begin(), items.end(), v);
        if (c.op == 2 && it == items.end()) items.push_back(v);
        if (c.op == 3 && it != items.end()) items.erase(it);
      }
      std::string joined;
      for (const auto& i : items) joined += (joined.empty() ? "" : ",") + i;
      if (joined.empty()) {
        return {ErrorCode::kInvalidConfig, fmt::format("SUBTRACT would leave '{}' empty", c.name)};
      }
      r = cfg.set(c.name, joined);
    } else {
      return {ErrorCode::kInvalidRequest, fmt::format("unknown config operation {}", c.op)};
    }
    if (!r) return {ErrorCode::kInvalidConfig, r.error().message};
  }
  if (auto r = cfg.check(); !r) return {ErrorCode::kInvalidConfig, r.error().message};
  // The group coordinator needs __consumer_offsets compacted, never deleted by retention and
  // synced before each commit is answered: a change that would undo that is refused.
  if (topic->internal() &&
      (!cfg.log.compact || cfg.log.delete_retention || cfg.log.flush_policy != storage::FlushPolicy::kAlways)) {
    return {ErrorCode::kPolicyViolation,
            fmt::format("'{}' is internal: it stays cleanup.policy=compact and flush.policy=always", name)};
  }
  if (validate_only) return {ErrorCode::kNone, {}};
  auto r = b.topics().set_config(name, cfg);
  if (!r) return {to_error_code(r.error().code), r.error().message};
  return {ErrorCode::kNone, {}};
}

template <class Resp, class Req, class ToChanges>
Resp alter(RequestContext& ctx, const Req& req, bool replace, ToChanges to_changes) {
  Resp resp;
  std::map<std::pair<int8_t, std::string>, int> seen;
  for (const auto& r : req.resources) seen[{r.resource_type, r.resource_name}]++;
  for (const auto& r : req.resources) {
    auto& out = resp.responses.emplace_back();
    out.resource_type = r.resource_type;
    out.resource_name = r.resource_name;
    std::pair<ErrorCode, std::string> e;
    if (seen[{r.resource_type, r.resource_name}] > 1) {
      e = {ErrorCode::kInvalidRequest, "resource listed more than once"};
    } else {
      e = apply(ctx.broker, r.resource_type, r.resource_name, to_changes(r), replace, req.validate_only);
    }
    out.error_code = code(e.first);
    out.error_message = e.second.empty() ? std::nullopt : std::optional<std::string>(e.second);
  }
  return resp;
}

}  // namespace

asio::awaitable<protocol::AlterConfigsResponse> AlterConfigsHandler::handle(RequestContext& ctx,
                                                                           protocol::AlterConfigsRequest req) {
  co_return co_await on_admin_thread(ctx, [&] {
    return alter<protocol::AlterConfigsResponse>(ctx, req, /*replace=*/true, [](const auto& r) {
      std::vector<Change> out;
      for (const auto& c : r.configs) out.push_back({c.name, 0, c.value});
      return out;
    });
  });
}

asio::awaitable<protocol::IncrementalAlterConfigsResponse> IncrementalAlterConfigsHandler::handle(
    RequestContext& ctx, protocol::IncrementalAlterConfigsRequest req) {
  co_return co_await on_admin_thread(ctx, [&] {
    return alter<protocol::IncrementalAlterConfigsResponse>(ctx, req, /*replace=*/false, [](const auto& r) {
      std::vector<Change> out;
      for (const auto& c : r.configs) out.push_back({c.name, c.config_operation, c.value});
      return out;
    });
  });
}

}  // namespace herald::broker
