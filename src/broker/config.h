// BrokerConfig: every setting of `herald serve`, with its default. The CLI
// fills it from herald.toml, HERALD_* environment variables and flags (in that
// order of increasing precedence); tests and embedders fill it directly.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "broker/topics/topic_config.h"

namespace herald::broker {

struct BrokerConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 9092;           // 0 = pick an ephemeral port (see Broker::port())
  std::string advertised_host;           // empty = listen_host (or 127.0.0.1 for 0.0.0.0)
  // HTTP endpoint for GET /metrics (Prometheus text) and GET /health; -1 = none, 0 = ephemeral
  // (see Broker::metrics_port()).
  std::string metrics_host = "127.0.0.1";
  int32_t metrics_port = -1;
  std::filesystem::path data_dir = "./data";
  bool ephemeral = false;                // temporary data dir removed at stop
  int32_t node_id = 0;
  int threads = 2;                       // network threads
  bool auto_create_topics = true;        // auto.create.topics.enable
  int32_t default_partitions = 1;        // num.partitions
  int32_t socket_request_max_bytes = 104857600;
  int32_t fetch_max_bytes = 57671680;    // fetch.max.bytes: a Fetch's max_bytes is capped to this
  // connections.max.idle.ms: a connection with no request read and no response written for this
  // long (and none in progress) is closed; 0 = never.
  int64_t connections_max_idle_ms = 600000;
  // Response frames built and not yet written, over all connections: past this, a fetch is answered
  // with its first batch only, and a connection with a response still unsent starts only the first
  // request in its line (so clients that never read hold at most about two batches each).
  uint64_t response_memory_bytes = uint64_t{512} << 20;
  int32_t offsets_topic_partitions = 50; // offsets.topic.num.partitions
  int32_t group_min_session_timeout_ms = 6000;
  int32_t group_max_session_timeout_ms = 1800000;
  int32_t group_initial_rebalance_delay_ms = 3000;
  int64_t offsets_retention_ms = -1;     // -1: committed offsets never expire while the topic exists
  int64_t maintenance_interval_ms = 30000;  // retention/compaction sweep
  // Memory for the loaded indexes of closed segments, process-wide
  // (storage/index_cache.h); the least recently used are dropped beyond it.
  uint64_t index_cache_bytes = uint64_t{128} << 20;
  // Threads that fdatasync dirty partitions, each its own (storage/flusher.h).
  int flush_threads = 2;
  TopicConfig topic_defaults;            // log.* defaults for new topics
};

}  // namespace herald::broker
