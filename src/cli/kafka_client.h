// librdkafka plumbing shared by the CLI's client commands (topic, produce,
// consume, group). Everything here speaks the Kafka protocol to whatever
// `--brokers` points at — Herald or an Apache Kafka cluster — and never
// touches broker, storage or protocol code.
//
// Usage:
//   ClientOptions opts;                         // filled by add_client_options()
//   HERALD_ASSIGN_OR_RETURN(auto admin, make_admin(opts));
//   HERALD_ASSIGN_OR_RETURN(auto md, fetch_metadata(admin.get(), "orders", opts.timeout_ms));
//   HERALD_ASSIGN_OR_RETURN(auto ev, admin_call(admin.get(), opts.timeout_ms,
//       [&](rd_kafka_AdminOptions_t* o, rd_kafka_queue_t* q) { rd_kafka_ListConsumerGroups(admin.get(), o, q); },
//       RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS));
//
// Handles are owned by unique_ptrs whose deleters close consumers and destroy
// everything in the right order; all calls here are blocking and run on the
// calling thread (librdkafka's own threads do the network I/O).
#pragma once

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace herald::cli {

// Connection settings every client command shares.
struct ClientOptions {
  std::string brokers = "127.0.0.1:9092";   // --brokers / HERALD_BROKERS
  std::vector<std::string> properties;      // --property KEY=VALUE (raw librdkafka settings)
  int timeout_ms = 10000;                   // --timeout (seconds on the command line)
  bool debug = false;                       // --debug: librdkafka logs to stderr
};

// Adds --brokers (env HERALD_BROKERS), --timeout, --property and --debug to `cmd`.
void add_client_options(CLI::App* cmd, ClientOptions& opts);

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const;
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

PartitionListPtr make_partition_list(int size = 0);

// A librdkafka configuration for `opts` plus `extra` settings (applied last).
// Returns kInvalidArgument naming the offending key when librdkafka rejects one.
Result<ConfPtr> make_conf(const ClientOptions& opts, const std::vector<std::pair<std::string, std::string>>& extra = {});

// Creates a handle from `conf` (ownership passes to the handle, even on error).
Result<KafkaPtr> make_handle(rd_kafka_type_t type, ConfPtr conf);

// group.id for consumers that only assign() partitions (librdkafka requires
// one): they never join a group or commit under it.
inline constexpr const char* kScratchGroup = "herald-cli-scratch";

// A producer-type handle used for admin requests, metadata and watermarks.
Result<KafkaPtr> make_admin(const ClientOptions& opts);

// Starts one admin request via `start` (which must pass the given options and
// queue on) and waits up to `timeout_ms` for its result event. Returns the event
// when the request as a whole succeeded; per-object errors stay in the event.
Result<EventPtr> admin_call(rd_kafka_t* rk, int timeout_ms,
                            const std::function<void(rd_kafka_AdminOptions_t*, rd_kafka_queue_t*)>& start,
                            rd_kafka_admin_op_t op = RD_KAFKA_ADMIN_OP_ANY);

struct PartitionInfo {
  int32_t id = 0;
  int32_t leader = -1;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};
struct TopicInfo {
  std::string name;
  std::vector<PartitionInfo> partitions;  // ordered by id
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};
struct BrokerInfo {
  int32_t id = 0;
  std::string host;
  int port = 0;
};
struct ClusterMetadata {
  std::vector<BrokerInfo> brokers;
  std::vector<TopicInfo> topics;  // ordered by name
};

// Metadata for one topic (`topic` non-empty) or all topics. A missing topic is
// kNotFound ("topic 'x' does not exist"); auto-creation is never triggered.
Result<ClusterMetadata> fetch_metadata(rd_kafka_t* rk, const std::string& topic, int timeout_ms);
// `just_created`: the topic exists (CreateTopics said so), so UNKNOWN_TOPIC_OR_PART
// (a broker of a cluster that has not heard of it yet) is retried until the timeout.
Result<TopicInfo> fetch_topic(rd_kafka_t* rk, const std::string& topic, int timeout_ms, bool just_created = false);

struct Watermarks {
  int64_t log_start = 0;       // first offset still in the log
  int64_t high_watermark = 0;  // offset the next record will get
};
Result<Watermarks> query_watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition, int timeout_ms);

// For each partition of `topic`, the first offset whose timestamp is >= `ts_ms`,
// or std::nullopt when every record is older (the caller then uses the high
// watermark). Uses the broker's time index (ListOffsets by timestamp).
Result<std::vector<std::optional<int64_t>>> offsets_for_time(rd_kafka_t* rk, const std::string& topic,
                                                             const std::vector<int32_t>& partitions, int64_t ts_ms,
                                                             int timeout_ms);

// "Broker: Unknown topic or partition (UNKNOWN_TOPIC_OR_PART)"
std::string describe_error(rd_kafka_resp_err_t err);

// Splits "key=value"; kInvalidArgument when there is no '='.
Result<std::pair<std::string, std::string>> split_key_value(const std::string& kv, const char* what);

}  // namespace herald::cli
