#include "cli/kafka_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "cli/checks.h"
#include "cli/output.h"

namespace herald::cli {

void add_client_options(CLI::App* cmd, ClientOptions& opts) {
  cmd->add_option("-b,--brokers", opts.brokers, "Bootstrap brokers, HOST:PORT[,HOST:PORT...]")
      ->envname("HERALD_BROKERS")
      ->capture_default_str();
  cmd->add_option_function<double>(
         "--timeout", [&opts](double s) { opts.timeout_ms = static_cast<int>(s * 1000); },
         "Seconds to wait for the cluster before giving up [10]")
      ->check(duration_check(kMaxSeconds));
  cmd->add_option("-X,--property", opts.properties,
                  "Extra librdkafka setting KEY=VALUE, repeatable (e.g. security.protocol=SASL_SSL)")
      ->allow_extra_args(false);
  cmd->add_flag("--debug", opts.debug, "Print librdkafka's protocol debug log to stderr");
}

void KafkaDeleter::operator()(rd_kafka_t* rk) const {
  if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER) rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

PartitionListPtr make_partition_list(int size) { return PartitionListPtr(rd_kafka_topic_partition_list_new(size)); }

Result<std::pair<std::string, std::string>> split_key_value(const std::string& kv, const char* what) {
  auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Error{Errc::kInvalidArgument, fmt::format("{} '{}': expected KEY=VALUE", what, kv)};
  }
  return std::pair{kv.substr(0, eq), kv.substr(eq + 1)};
}

Result<ConfPtr> make_conf(const ClientOptions& opts, const std::vector<std::pair<std::string, std::string>>& extra) {
  ConfPtr conf(rd_kafka_conf_new());
  char errstr[512];
  auto set = [&](const std::string& k, const std::string& v) -> Result<void> {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      return Error{Errc::kInvalidArgument, fmt::format("client setting {}={}: {}", k, v, errstr)};
    }
    return ok();
  };
  HERALD_TRY(set("bootstrap.servers", opts.brokers));
  HERALD_TRY(set("client.id", "herald-cli"));
  HERALD_TRY(set("socket.timeout.ms", std::to_string(std::max(opts.timeout_ms, 10))));
  if (opts.debug) {
    HERALD_TRY(set("debug", "broker,protocol,cgrp,topic,admin"));
  } else {
    // Errors only, kept for the failure message (exit_code) rather than printed as they come.
    HERALD_TRY(set("log_level", "3"));
    rd_kafka_conf_set_log_cb(conf.get(), [](const rd_kafka_t*, int, const char*, const char* line) {
      note_client_error(line);
    });
  }
  for (const auto& [k, v] : extra) HERALD_TRY(set(k, v));
  for (const auto& kv : opts.properties) {
    HERALD_ASSIGN_OR_RETURN(auto p, split_key_value(kv, "--property"));
    HERALD_TRY(set(p.first, p.second));
  }
  return conf;
}

Result<KafkaPtr> make_handle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
  if (!rk) return Error{Errc::kInvalidArgument, fmt::format("cannot create Kafka client: {}", errstr)};
  conf.release();  // owned by rk now
  return KafkaPtr(rk);
}

Result<KafkaPtr> make_admin(const ClientOptions& opts) {
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(opts, {{"allow.auto.create.topics", "false"}}));
  return make_handle(RD_KAFKA_PRODUCER, std::move(conf));
}

std::string describe_error(rd_kafka_resp_err_t err) {
  return fmt::format("{} ({})", rd_kafka_err2str(err), rd_kafka_err2name(err));
}

Result<EventPtr> admin_call(rd_kafka_t* rk, int timeout_ms,
                            const std::function<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& start,
                            rd_kafka_admin_op_t op) {
  std::unique_ptr<rd_kafka_queue_t, decltype(&rd_kafka_queue_destroy)> queue(rd_kafka_queue_new(rk),
                                                                             &rd_kafka_queue_destroy);
  std::unique_ptr<rd_kafka_AdminOptions_t, decltype(&rd_kafka_AdminOptions_destroy)> options(
      rd_kafka_AdminOptions_new(rk, op), &rd_kafka_AdminOptions_destroy);
  char errstr[512];
  rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, errstr, sizeof errstr);
  // Only CreateTopics/DeleteTopics/CreatePartitions accept an operation timeout.
  if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS || op == RD_KAFKA_ADMIN_OP_DELETETOPICS ||
      op == RD_KAFKA_ADMIN_OP_CREATEPARTITIONS) {
    rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, errstr, sizeof errstr);
  }
  start(options.get(), queue.get());
  // The request timeout bounds each attempt; allow a little more for the
  // result to travel back before calling it a timeout ourselves.
  EventPtr ev(rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (!ev) return Error{Errc::kIoError, fmt::format("no answer from {} within {} ms", "the cluster", timeout_ms)};
  if (rd_kafka_event_error(ev.get())) {
    return Error{Errc::kIoError, rd_kafka_event_error_string(ev.get())};
  }
  return ev;
}

Result<ClusterMetadata> fetch_metadata(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> rkt(
      topic.empty() ? nullptr : rd_kafka_topic_new(rk, topic.c_str(), nullptr), &rd_kafka_topic_destroy);
  const rd_kafka_metadata_t* raw = nullptr;
  auto err = rd_kafka_metadata(rk, topic.empty() ? 1 : 0, rkt.get(), &raw, timeout_ms);
  if (err) return Error{Errc::kIoError, fmt::format("metadata request failed: {}", describe_error(err))};
  std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter> md(raw);
  ClusterMetadata out;
  for (int i = 0; i < md->broker_cnt; ++i) {
    out.brokers.push_back({md->brokers[i].id, md->brokers[i].host, md->brokers[i].port});
  }
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    TopicInfo info{t.topic, {}, t.err};
    for (int p = 0; p < t.partition_cnt; ++p) {
      info.partitions.push_back({t.partitions[p].id, t.partitions[p].leader, t.partitions[p].err});
    }
    std::sort(info.partitions.begin(), info.partitions.end(),
              [](const PartitionInfo& a, const PartitionInfo& b) { return a.id < b.id; });
    out.topics.push_back(std::move(info));
  }
  std::sort(out.topics.begin(), out.topics.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return out;
}

Result<TopicInfo> fetch_topic(rd_kafka_t* rk, const std::string& topic, int timeout_ms, bool just_created) {
  // A topic that was just created can take a moment to show up everywhere.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    HERALD_ASSIGN_OR_RETURN(auto md, fetch_metadata(rk, topic, timeout_ms));
    for (auto& t : md.topics) {
      if (t.name != topic) continue;
      const bool wait = t.err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                        (just_created && t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
      if (wait && std::chrono::steady_clock::now() < deadline) break;
      if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        return Error{Errc::kNotFound, fmt::format("topic '{}' does not exist", topic)};
      }
      if (t.err) return Error{Errc::kIoError, fmt::format("topic '{}': {}", topic, describe_error(t.err))};
      return std::move(t);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Error{Errc::kNotFound, fmt::format("topic '{}' does not exist", topic)};
    }
    rd_kafka_poll(rk, 100);
  }
}

Result<Watermarks> query_watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition, int timeout_ms) {
  Watermarks w;
  auto err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &w.log_start, &w.high_watermark,
                                              timeout_ms);
  if (err) {
    return Error{Errc::kIoError, fmt::format("watermarks of {}[{}]: {}", topic, partition, describe_error(err))};
  }
  return w;
}

Result<std::vector<std::optional<int64_t>>> offsets_for_time(rd_kafka_t* rk, const std::string& topic,
                                                             const std::vector<int32_t>& partitions, int64_t ts_ms,
                                                             int timeout_ms) {
  auto list = make_partition_list(static_cast<int>(partitions.size()));
  for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = ts_ms;
  auto err = rd_kafka_offsets_for_times(rk, list.get(), timeout_ms);
  if (err) return Error{Errc::kIoError, fmt::format("offsets for time on '{}': {}", topic, describe_error(err))};
  std::vector<std::optional<int64_t>> out(partitions.size());
  for (size_t i = 0; i < partitions.size(); ++i) {
    auto* tp = rd_kafka_topic_partition_list_find(list.get(), topic.c_str(), partitions[i]);
    if (!tp) return Error{Errc::kIoError, fmt::format("offsets for time: no answer for {}[{}]", topic, partitions[i])};
    if (tp->err) {
      return Error{Errc::kIoError,
                   fmt::format("offsets for time on {}[{}]: {}", topic, partitions[i], describe_error(tp->err))};
    }
    if (tp->offset >= 0) out[i] = tp->offset;
  }
  return out;
}

}  // namespace herald::cli
