// Small librdkafka helpers shared by the consuming side of the SDK (replica,
// dead letters): owning handles, configuration from key/value pairs, a
// synchronous producer for dead letters and replays, and topic creation.
//
//   HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf({{"bootstrap.servers", brokers}}));
//   HERALD_ASSIGN_OR_RETURN(auto producer, kafka::SyncProducer::create(brokers, {}));
//   HERALD_TRY(producer->send("orders.dlq", kafka::kAnyPartition, key, value, headers));
//
// Everything here is internal to src/sdk/replica and src/sdk/dlq; services use
// Replica and the dlq functions instead. Blocking calls run on the calling
// thread (librdkafka's own threads do the network I/O).
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sdk/envelope.h"

namespace herald::sdk::kafka {

using Properties = std::vector<std::pair<std::string, std::string>>;

// librdkafka's log lines (of every handle made by make_conf) go to Herald's log: errors as
// warnings, notices as info, the rest at debug level. With `quiet` (the herald dlq/saga commands,
// which report failures themselves) they are not logged; either way the last error is kept for
// last_client_error(), which such a command adds to its failure message.
void set_quiet_client_log(bool quiet);
std::string last_client_error();

inline constexpr int32_t kAnyPartition = RD_KAFKA_PARTITION_UA;

// Every consumer here reads backlogs. librdkafka stops fetching a partition whose local queue
// holds queued.min.messages (default 100,000) and looks at it again only up to a second later; a
// reader slower than the broker then drains the queue and waits, idle most of the time (measured:
// 70% of a replica's catch-up spent in poll). The queue's memory stays bounded by
// queued.max.messages.kbytes (64 MiB by default).
inline const std::pair<std::string, std::string> kDeepFetchQueue{"queued.min.messages", "1000000"};

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct ListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using ListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, ListDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

inline ListPtr make_list(int size = 0) { return ListPtr(rd_kafka_topic_partition_list_new(size)); }

// librdkafka waits up to 10 s between reconnection attempts by default, so a
// client could stay away that long after a broker restart; the SDK's clients
// try again at least every second, as the Java client does. `props` may
// override it.
inline constexpr const char* kReconnectBackoffMaxKey = "reconnect.backoff.max.ms";
inline constexpr const char* kReconnectBackoffMax = "1000";

// A configuration holding kReconnectBackoffMax, then `props` in order.
// kInvalidArgument names the key librdkafka rejected.
Result<ConfPtr> make_conf(const Properties& props);

// Creates a handle; takes ownership of `conf` (also on error).
Result<HandlePtr> make_handle(rd_kafka_type_t type, ConfPtr conf);

// "Local: Broker transport failure (_TRANSPORT)"
std::string describe(rd_kafka_resp_err_t err);

// The partition count of `topic`, or kNotFound when it does not exist. With `cancel`, the wait
// ends (kClosed) soon after *cancel becomes true; so in ensure_topic and SyncProducer::send.
Result<int32_t> partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout,
                                const std::atomic<bool>* cancel = nullptr);

// Creates `topic` with `partitions` partitions; succeeds when it already exists.
Result<void> ensure_topic(rd_kafka_t* rk, const std::string& topic, int32_t partitions,
                          std::chrono::milliseconds timeout, const std::atomic<bool>* cancel = nullptr);

// Reads every partition of `topic` from its log start offset up to the high
// watermarks read at the start, calling fn(message) for each record (errors
// and end-of-partition events are not passed on). Returns those watermarks
// (partition -> high watermark), or kNotFound when the topic does not exist.
// `props` configure the consumer (bootstrap.servers, group.id, ...); `timeout`
// bounds each wait for the broker.
Result<std::map<int32_t, int64_t>> read_to_end(const Properties& props, const std::string& topic,
                                               std::chrono::milliseconds timeout,
                                               const std::function<void(const rd_kafka_message_t&)>& fn);

// The value of the record at `offset` of topic/partition (nullopt: a null
// value); kNotFound when the log no longer holds it (retention, compaction).
Result<std::optional<std::string>> read_value_at(const Properties& props, const std::string& topic,
                                                 int32_t partition, int64_t offset, std::chrono::milliseconds timeout);

// An idempotent acks=all producer whose send() returns only after the broker
// acknowledged the record (or failed it). Used for dead letters and replays,
// where the caller must know the record is durable before it moves on. One
// thread at a time.
class SyncProducer {
 public:
  static Result<std::unique_ptr<SyncProducer>> create(const std::string& brokers, const Properties& extra);

  // Produces one record (value nullopt = null value) and waits for its
  // delivery report. Returns the offset it got; kInvalidArgument when the
  // record is too large for the topic, kIoError for every other failure.
  Result<int64_t> send(const std::string& topic, int32_t partition, std::optional<std::string_view> key,
                       std::optional<std::string_view> value, const Headers& headers,
                       int64_t timestamp_ms = 0, const std::atomic<bool>* cancel = nullptr);

  rd_kafka_t* handle() { return rk_.get(); }

 private:
  // The delivery report send() waits for. Records carry a sequence number as
  // their opaque, not a pointer: a report that comes after its send() gave
  // up (librdkafka serves a purged record's report on a later poll or flush)
  // names an old number and is ignored.
  struct Delivery {
    uint64_t id = 0;  // the record waited for; 0 = none
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t offset = -1;
  };

  SyncProducer() = default;
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);

  uint64_t last_id_ = 0;
  Delivery delivery_;
  std::chrono::milliseconds timeout_{30000};
  HandlePtr rk_;  // last: destroyed first, so no report can arrive for a destroyed member
};

}  // namespace herald::sdk::kafka
