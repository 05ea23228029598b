// `herald topic create|list|describe|delete|alter-config|add-partitions`:
// topic administration over the Kafka admin APIs (CreateTopics, Metadata,
// ListOffsets, DescribeConfigs, AlterConfigs, DeleteTopics, CreatePartitions).
#include "cli/topic.h"

#include <fmt/format.h>

#include <limits>
#include <map>
#include <memory>
#include <set>

#include "cli/checks.h"
#include "cli/kafka_client.h"
#include "cli/output.h"

namespace herald::cli {
namespace {

constexpr const char* kTopicFooter = R"(
Examples:
  herald topic create orders --partitions 6 --config retention.ms=604800000
  herald topic create users --config cleanup.policy=compact
  herald topic list
  herald topic describe orders
  herald topic describe orders --format json | jq '.partitions[].high_watermark'
  herald topic alter-config orders --set retention.ms=86400000 --delete segment.bytes
  herald topic add-partitions orders --to 12
  herald topic delete orders
)";

struct Config {
  std::string name;
  std::optional<std::string> value;  // null for sensitive configs
  rd_kafka_ConfigSource_t source = RD_KAFKA_CONFIG_SOURCE_UNKNOWN_CONFIG;
  bool read_only = false;
  bool sensitive = false;
};

const char* source_name(rd_kafka_ConfigSource_t s) {
  switch (s) {
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG: return "topic";
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG:
    case RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG:
    case RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG: return "broker";
    case RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG: return "default";
    default: return "unknown";
  }
}

// "topic 'T': <the broker's message>", without naming the topic twice when the message does.
std::string topic_error(const std::string& topic, const char* msg, rd_kafka_resp_err_t err) {
  std::string m = msg && *msg ? msg : rd_kafka_err2str(err);
  return m.find("'" + topic + "'") != std::string::npos ? m : fmt::format("topic '{}': {}", topic, m);
}

// The topic-result error of a CreateTopics/DeleteTopics/CreatePartitions event.
Result<void> topic_result(const rd_kafka_topic_result_t** results, size_t n, const std::string& topic) {
  for (size_t i = 0; i < n; ++i) {
    if (topic != rd_kafka_topic_result_name(results[i])) continue;
    auto err = rd_kafka_topic_result_error(results[i]);
    if (!err) return ok();
    const char* msg = rd_kafka_topic_result_error_string(results[i]);
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      return Error{Errc::kNotFound, fmt::format("topic '{}' does not exist", topic)};
    }
    Errc code = err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? Errc::kAlreadyExists : Errc::kInvalidArgument;
    return Error{code, topic_error(topic, msg, err)};
  }
  return Error{Errc::kIoError, fmt::format("no result for topic '{}'", topic)};
}

Result<std::vector<Config>> describe_configs(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  std::unique_ptr<rd_kafka_ConfigResource_t, decltype(&rd_kafka_ConfigResource_destroy)> owner(
      res, &rd_kafka_ConfigResource_destroy);
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk, timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) {
                                         rd_kafka_DescribeConfigs(rk, &res, 1, o, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  size_t n = 0;
  const auto** resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
  if (n != 1) return Error{Errc::kIoError, fmt::format("DescribeConfigs for '{}' returned {} resources", topic, n)};
  if (auto err = rd_kafka_ConfigResource_error(resources[0])) {
    const char* msg = rd_kafka_ConfigResource_error_string(resources[0]);
    return Error{err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? Errc::kNotFound : Errc::kIoError,
                 fmt::format("configs of '{}': {}", topic, msg && *msg ? msg : rd_kafka_err2str(err))};
  }
  size_t cnt = 0;
  const auto** entries = rd_kafka_ConfigResource_configs(resources[0], &cnt);
  std::vector<Config> out;
  for (size_t i = 0; i < cnt; ++i) {
    Config c;
    c.name = rd_kafka_ConfigEntry_name(entries[i]);
    if (const char* v = rd_kafka_ConfigEntry_value(entries[i])) c.value = v;
    c.source = rd_kafka_ConfigEntry_source(entries[i]);
    c.read_only = rd_kafka_ConfigEntry_is_read_only(entries[i]);
    c.sensitive = rd_kafka_ConfigEntry_is_sensitive(entries[i]);
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Config& a, const Config& b) { return a.name < b.name; });
  return out;
}

// ---- create -----------------------------------------------------------------

struct CreateOptions {
  std::string topic;
  int partitions = -1;
  int replication_factor = -1;
  std::vector<std::string> configs;
  bool if_not_exists = false;
};

Result<void> run_create(const ClientOptions& copts, const CreateOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  char errstr[512];
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(o.topic.c_str(), o.partitions, o.replication_factor, errstr, sizeof errstr);
  if (!nt) return Error{Errc::kInvalidArgument, errstr};
  std::unique_ptr<rd_kafka_NewTopic_t, decltype(&rd_kafka_NewTopic_destroy)> owner(nt, &rd_kafka_NewTopic_destroy);
  for (const auto& kv : o.configs) {
    HERALD_ASSIGN_OR_RETURN(auto p, split_key_value(kv, "--config"));
    if (auto err = rd_kafka_NewTopic_set_config(nt, p.first.c_str(), p.second.c_str())) {
      return Error{Errc::kInvalidArgument, fmt::format("--config {}: {}", kv, rd_kafka_err2str(err))};
    }
  }
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_CreateTopics(rk.get(), &nt, 1, opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_CREATETOPICS));
  size_t n = 0;
  const auto** results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
  auto r = topic_result(results, n, o.topic);
  if (!r && r.error().code == Errc::kAlreadyExists && o.if_not_exists) return ok();
  HERALD_TRY(r);
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms, /*just_created=*/true));
  fmt::print("created topic '{}' with {} partition{}\n", o.topic, info.partitions.size(),
             info.partitions.size() == 1 ? "" : "s");
  return ok();
}

void add_create(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<CreateOptions>();
  auto* cmd = topic->add_subcommand("create", "Create a topic");
  cmd->add_option("topic", o->topic, "Topic name")->required();
  cmd->add_option("-p,--partitions", o->partitions, "Number of partitions [broker default]")
      ->check(integer_check(1));
  cmd->add_option("--replication-factor", o->replication_factor,
                  "Replicas per partition [broker default; Herald has one]")
      ->check(integer_check(1, std::numeric_limits<int16_t>::max()));
  cmd->add_option("-c,--config", o->configs,
                  "Topic config KEY=VALUE, repeatable (retention.ms, cleanup.policy, segment.bytes, ...)")
      ->allow_extra_args(false);
  cmd->add_flag("--if-not-exists", o->if_not_exists, "Succeed without changes when the topic already exists");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Examples:
  herald topic create orders --partitions 6
  herald topic create users --config cleanup.policy=compact --config min.compaction.lag.ms=60000
  herald topic create orders --if-not-exists
)");
  cmd->callback([&action, o, copts] { action = [o, copts] { return exit_code(run_create(*copts, *o), "topic create"); }; });
}

// ---- list -------------------------------------------------------------------

struct ListOptions {
  bool all = false;
  bool long_format = false;
  OutputFormat format = OutputFormat::kPlain;
};

Result<void> run_list(const ClientOptions& copts, const ListOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto md, fetch_metadata(rk.get(), "", copts.timeout_ms));
  std::vector<const TopicInfo*> topics;
  for (const auto& t : md.topics) {
    if (!o.all && t.name.rfind("__", 0) == 0) continue;  // internal (__consumer_offsets, ...)
    topics.push_back(&t);
  }
  if (o.format == OutputFormat::kJson) {
    auto arr = nlohmann::json::array();
    for (const auto* t : topics) arr.push_back({{"name", t->name}, {"partitions", t->partitions.size()}});
    print_json(arr);
  } else if (o.long_format) {
    Table table({"TOPIC", "PARTITIONS"});
    for (const auto* t : topics) table.add({t->name, std::to_string(t->partitions.size())});
    table.print(stdout);
  } else {
    for (const auto* t : topics) fmt::print("{}\n", t->name);
  }
  return ok();
}

void add_list(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<ListOptions>();
  auto* cmd = topic->add_subcommand("list", "List topics, one name a line");
  cmd->add_flag("-a,--all", o->all, "Include internal topics (names starting with __)");
  cmd->add_flag("-l,--long", o->long_format, "Print a table with the partition count");
  add_format_option(cmd, o->format, "an array of {name, partitions}");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Examples:
  herald topic list
  herald topic list --long --all
  herald topic list --format json
)");
  cmd->callback([&action, o, copts] { action = [o, copts] { return exit_code(run_list(*copts, *o), "topic list"); }; });
}

// ---- describe ---------------------------------------------------------------

struct DescribeOptions {
  std::string topic;
  bool overrides_only = false;
  OutputFormat format = OutputFormat::kPlain;
};

Result<void> run_describe(const ClientOptions& copts, const DescribeOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms));
  std::vector<Watermarks> marks;
  for (const auto& p : info.partitions) {
    HERALD_ASSIGN_OR_RETURN(auto w, query_watermarks(rk.get(), o.topic, p.id, copts.timeout_ms));
    marks.push_back(w);
  }
  HERALD_ASSIGN_OR_RETURN(auto configs, describe_configs(rk.get(), o.topic, copts.timeout_ms));
  auto shown = [&](const Config& c) {
    return !o.overrides_only || c.source == RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG;
  };
  if (o.format == OutputFormat::kJson) {
    nlohmann::json j{{"name", info.name}, {"partitions", nlohmann::json::array()}, {"configs", nlohmann::json::object()}};
    for (size_t i = 0; i < info.partitions.size(); ++i) {
      j["partitions"].push_back({{"partition", info.partitions[i].id},
                                 {"leader", info.partitions[i].leader},
                                 {"log_start", marks[i].log_start},
                                 {"high_watermark", marks[i].high_watermark}});
    }
    for (const auto& c : configs) {
      if (!shown(c)) continue;
      j["configs"][c.name] = {{"value", c.value ? nlohmann::json(*c.value) : nlohmann::json(nullptr)},
                              {"source", source_name(c.source)},
                              {"read_only", c.read_only},
                              {"sensitive", c.sensitive}};
    }
    print_json(j);
    return ok();
  }
  int64_t total = 0;
  for (const auto& w : marks) total += w.high_watermark - w.log_start;
  fmt::print("Topic: {}  Partitions: {}  Records: {}\n\n", info.name, info.partitions.size(), total);
  Table parts({"PARTITION", "LEADER", "LOG-START", "HIGH-WATERMARK", "RECORDS"});
  for (size_t i = 0; i < info.partitions.size(); ++i) {
    parts.add({std::to_string(info.partitions[i].id), std::to_string(info.partitions[i].leader),
               std::to_string(marks[i].log_start), std::to_string(marks[i].high_watermark),
               std::to_string(marks[i].high_watermark - marks[i].log_start)});
  }
  parts.print(stdout);
  fmt::print("\n");
  Table cfg({"CONFIG", "VALUE", "SOURCE"});
  for (const auto& c : configs) {
    if (!shown(c)) continue;
    cfg.add({c.name, c.value ? *c.value : (c.sensitive ? "(sensitive)" : "(null)"),
             std::string(source_name(c.source)) + (c.read_only ? ", read-only" : "")});
  }
  if (cfg.empty()) {
    fmt::print("(no topic-level config overrides)\n");
  } else {
    cfg.print(stdout);
  }
  return ok();
}

void add_describe(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<DescribeOptions>();
  auto* cmd = topic->add_subcommand(
      "describe", "Show a topic's partitions (leader, log start, high watermark) and its configs with their source");
  cmd->add_option("topic", o->topic, "Topic name")->required();
  cmd->add_flag("--overrides", o->overrides_only, "Show only configs set on the topic itself");
  add_format_option(cmd, o->format, "{name, partitions: [...], configs: {name: {value, source, ...}}}");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
The RECORDS column is high watermark minus log start: exact for a delete-policy
topic, an upper bound for a compacted one.

Examples:
  herald topic describe orders
  herald topic describe orders --overrides
  herald topic describe orders --format json | jq '.configs["retention.ms"].value'
)");
  cmd->callback(
      [&action, o, copts] { action = [o, copts] { return exit_code(run_describe(*copts, *o), "topic describe"); }; });
}

// ---- delete -----------------------------------------------------------------

struct DeleteOptions {
  std::vector<std::string> topics;
  bool if_exists = false;
};

Result<void> run_delete(const ClientOptions& copts, const DeleteOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  std::vector<rd_kafka_DeleteTopic_t*> dts;
  for (const auto& t : o.topics) dts.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
  std::unique_ptr<std::vector<rd_kafka_DeleteTopic_t*>, void (*)(std::vector<rd_kafka_DeleteTopic_t*>*)> owner(
      &dts, [](std::vector<rd_kafka_DeleteTopic_t*>* v) { rd_kafka_DeleteTopic_destroy_array(v->data(), v->size()); });
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_DeleteTopics(rk.get(), dts.data(), dts.size(), opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_DELETETOPICS));
  size_t n = 0;
  const auto** results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev.get()), &n);
  size_t failed = 0;
  std::string last_error;
  for (const auto& t : o.topics) {
    auto r = topic_result(results, n, t);
    if (!r && r.error().code == Errc::kNotFound && o.if_exists) continue;
    if (!r) {
      ++failed;
      last_error = r.error().message;
      continue;
    }
    fmt::print("deleted topic '{}'\n", t);
  }
  if (failed == 1) return Error{Errc::kInvalidArgument, last_error};
  if (failed > 1) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("{} of {} topics not deleted (last error: {})", failed, o.topics.size(), last_error)};
  }
  return ok();
}

void add_delete(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<DeleteOptions>();
  auto* cmd = topic->add_subcommand("delete", "Delete topics and all their records");
  cmd->add_option("topic", o->topics, "Topic name(s)")->required();
  cmd->add_flag("--if-exists", o->if_exists, "Succeed when a topic does not exist");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Deleting a topic removes its records for every consumer, and every group's
committed offsets for it (a topic created again under the name starts with
none).

Examples:
  herald topic delete orders
  herald topic delete scratch-1 scratch-2 --if-exists
)");
  cmd->callback([&action, o, copts] { action = [o, copts] { return exit_code(run_delete(*copts, *o), "topic delete"); }; });
}

// ---- alter-config -----------------------------------------------------------

struct AlterOptions {
  std::string topic;
  std::vector<std::string> set;
  std::vector<std::string> remove;
  bool validate_only = false;
};

Result<void> run_alter(const ClientOptions& copts, const AlterOptions& o) {
  // librdkafka 2.0 has no IncrementalAlterConfigs, so this is read-modify-write
  // over AlterConfigs, which replaces the whole set of topic overrides.
  std::map<std::string, std::string> set;
  for (const auto& kv : o.set) {
    HERALD_ASSIGN_OR_RETURN(auto p, split_key_value(kv, "--set"));
    set[p.first] = p.second;
  }
  for (const auto& k : o.remove) {
    if (set.count(k)) return Error{Errc::kInvalidArgument, fmt::format("'{}' is both set and deleted", k)};
  }
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  HERALD_ASSIGN_OR_RETURN(auto configs, describe_configs(rk.get(), o.topic, copts.timeout_ms));
  std::map<std::string, std::string> overrides;
  std::set<std::string> known;
  for (const auto& c : configs) {
    known.insert(c.name);
    if (c.source != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG) continue;
    if (!c.value) {
      if (set.count(c.name) || std::find(o.remove.begin(), o.remove.end(), c.name) != o.remove.end()) continue;
      return Error{Errc::kUnsupported,
                   fmt::format("'{}' is a sensitive override whose value cannot be read back; a non-incremental "
                               "AlterConfigs would drop it, so pass it again with --set {}=...",
                               c.name, c.name)};
    }
    overrides[c.name] = *c.value;
  }
  for (const auto& k : o.remove) {
    if (!known.count(k)) return Error{Errc::kInvalidArgument, fmt::format("unknown config '{}'", k)};
    overrides.erase(k);
  }
  for (const auto& [k, v] : set) overrides[k] = v;

  rd_kafka_ConfigResource_t* res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, o.topic.c_str());
  std::unique_ptr<rd_kafka_ConfigResource_t, decltype(&rd_kafka_ConfigResource_destroy)> owner(
      res, &rd_kafka_ConfigResource_destroy);
  for (const auto& [k, v] : overrides) {
    if (auto err = rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str())) {
      return Error{Errc::kInvalidArgument, fmt::format("{}={}: {}", k, v, rd_kafka_err2str(err))};
    }
  }
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         char errstr[256];
                                         if (o.validate_only) {
                                           rd_kafka_AdminOptions_set_validate_only(opt, 1, errstr, sizeof errstr);
                                         }
                                         rd_kafka_AlterConfigs(rk.get(), &res, 1, opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_ALTERCONFIGS));
  size_t n = 0;
  const auto** results = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev.get()), &n);
  if (n != 1) return Error{Errc::kIoError, "AlterConfigs returned no result"};
  if (auto err = rd_kafka_ConfigResource_error(results[0])) {
    const char* msg = rd_kafka_ConfigResource_error_string(results[0]);
    return Error{Errc::kInvalidArgument, topic_error(o.topic, msg, err)};
  }
  const char* verb = o.validate_only ? "would set" : "set";
  for (const auto& [k, v] : set) fmt::print("{} {}={} on '{}'\n", verb, k, v, o.topic);
  for (const auto& k : o.remove) fmt::print("{} {} on '{}' (back to the default)\n", o.validate_only ? "would reset" : "reset", k, o.topic);
  return ok();
}

void add_alter_config(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<AlterOptions>();
  auto* cmd = topic->add_subcommand("alter-config", "Set or remove topic config overrides");
  cmd->add_option("topic", o->topic, "Topic name")->required();
  auto* set = cmd->add_option("-s,--set", o->set, "Override KEY=VALUE, repeatable")->allow_extra_args(false);
  auto* del = cmd->add_option("-d,--delete", o->remove, "Remove the override KEY (back to the default), repeatable")->allow_extra_args(false);
  cmd->add_flag("--validate-only", o->validate_only, "Ask the broker to validate the change without applying it");
  auto* group = cmd->add_option_group("changes");
  group->add_option(set);
  group->add_option(del);
  group->require_option(1, 0);
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Other overrides on the topic are kept. librdkafka 2.0 has no
IncrementalAlterConfigs, so the command reads the current overrides, applies
the changes and writes the whole set back with AlterConfigs; two concurrent
alter-config runs on one topic can lose one another's change.

Examples:
  herald topic alter-config orders --set retention.ms=86400000
  herald topic alter-config users --set cleanup.policy=compact --set delete.retention.ms=3600000
  herald topic alter-config orders --delete retention.ms
)");
  cmd->callback(
      [&action, o, copts] { action = [o, copts] { return exit_code(run_alter(*copts, *o), "topic alter-config"); }; });
}

// ---- add-partitions ---------------------------------------------------------

struct AddPartitionsOptions {
  std::string topic;
  int total = 0;
};

Result<void> run_add_partitions(const ClientOptions& copts, const AddPartitionsOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto rk, make_admin(copts));
  char errstr[512];
  rd_kafka_NewPartitions_t* np =
      rd_kafka_NewPartitions_new(o.topic.c_str(), static_cast<size_t>(o.total), errstr, sizeof errstr);
  if (!np) return Error{Errc::kInvalidArgument, errstr};
  std::unique_ptr<rd_kafka_NewPartitions_t, decltype(&rd_kafka_NewPartitions_destroy)> owner(
      np, &rd_kafka_NewPartitions_destroy);
  HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(
                                       rk.get(), copts.timeout_ms,
                                       [&](rd_kafka_AdminOptions_t* opt, rd_kafka_queue_t* q) {
                                         rd_kafka_CreatePartitions(rk.get(), &np, 1, opt, q);
                                       },
                                       RD_KAFKA_ADMIN_OP_CREATEPARTITIONS));
  size_t n = 0;
  const auto** results =
      rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev.get()), &n);
  HERALD_TRY(topic_result(results, n, o.topic));
  fmt::print("topic '{}' now has {} partitions\n", o.topic, o.total);
  return ok();
}

void add_add_partitions(CLI::App* topic, std::function<int()>& action, std::shared_ptr<ClientOptions> copts) {
  auto o = std::make_shared<AddPartitionsOptions>();
  auto* cmd = topic->add_subcommand("add-partitions", "Grow a topic to a larger number of partitions");
  cmd->add_option("topic", o->topic, "Topic name")->required();
  cmd->add_option("--to", o->total, "The new total number of partitions")->required()->check(integer_check(1));
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Partitions can only be added. Keys hash to partitions by count, so records
with one key land on a different partition afterwards (per-key order across
the change is lost).

Example:
  herald topic add-partitions orders --to 12
)");
  cmd->callback([&action, o, copts] {
    action = [o, copts] { return exit_code(run_add_partitions(*copts, *o), "topic add-partitions"); };
  });
}

}  // namespace

void add_topic_command(CLI::App& app, std::function<int()>& action) {
  auto* topic = app.add_subcommand("topic", "Create, list, describe, configure and delete topics");
  topic->require_subcommand(1);
  topic->footer(kTopicFooter);
  add_create(topic, action, std::make_shared<ClientOptions>());
  add_list(topic, action, std::make_shared<ClientOptions>());
  add_describe(topic, action, std::make_shared<ClientOptions>());
  add_delete(topic, action, std::make_shared<ClientOptions>());
  add_alter_config(topic, action, std::make_shared<ClientOptions>());
  add_add_partitions(topic, action, std::make_shared<ClientOptions>());
}

}  // namespace herald::cli
