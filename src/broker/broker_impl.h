// BrokerImpl: what request handlers see of the broker (internal header).
// Owns, in destruction order: the io_contexts and their threads, the topic
// catalogue, the group coordinator, the flusher.
#pragma once

#include <asio.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <thread>
#include <vector>

#include "broker/config.h"
#include "broker/group/group_coordinator.h"
#include "broker/producer_state/producer_id_allocator.h"
#include "broker/topics/topic_manager.h"
#include "common/clock.h"
#include "common/histogram.h"
#include "storage/flusher.h"

namespace herald::broker {

class Connection;

class BrokerImpl {
 public:
  explicit BrokerImpl(BrokerConfig config) : config_(std::move(config)) {}
  ~BrokerImpl();

  Result<void> start();
  void stop();
  void wait();

  const BrokerConfig& config() const { return config_; }
  uint16_t port() const { return port_; }
  uint16_t metrics_port() const { return metrics_port_; }
  const std::string& advertised_host() const { return advertised_host_; }
  const std::string& cluster_id() const { return cluster_id_; }
  TopicManager& topics() { return *topics_; }
  ProducerIdAllocator& producer_ids() { return *producer_ids_; }
  group::GroupCoordinator& groups() { return *groups_; }
  // The first network thread's context (timers and work that is not tied to a connection).
  asio::io_context& io() { return *ios_.front(); }
  // Where admin requests do their file work (run_on in handlers/wait.h): creating, growing,
  // reconfiguring and deleting topics fsyncs, and deleting records or a topic waits for a
  // compaction pass of that partition. Never on a network thread, which serves other connections.
  asio::any_io_executor admin_executor() { return admin_->get_executor(); }

  void register_connection(const std::shared_ptr<Connection>& c);
  void unregister_connection(Connection* c);

  // What `herald serve --metrics-listen` exposes (broker/metrics.cc).
  struct RequestMetrics {
    // Frame received to response ready, per API key (a Fetch's long-poll wait included).
    std::array<LatencyHistogram, 128> latency;
    std::atomic<uint64_t> connections_accepted{0};
    std::atomic<uint64_t> connections_closed_on_error{0};  // malformed or unserved request, truncated frame
    // Response frames built and not yet written, all connections (config().response_memory_bytes).
    std::atomic<int64_t> unsent_response_bytes{0};
  };
  RequestMetrics& request_metrics() { return request_metrics_; }
  // What of config().response_memory_bytes the connections' unsent responses leave (0 when over).
  uint64_t response_memory_left() const {
    const int64_t used = request_metrics_.unsent_response_bytes.load(std::memory_order_relaxed);
    const auto budget = static_cast<int64_t>(std::min<uint64_t>(config_.response_memory_bytes, INT64_MAX));
    return used >= budget ? 0 : static_cast<uint64_t>(budget - used);
  }
  // Prometheus text exposition format (version 0.0.4).
  std::string metrics_text();

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> metrics_accept_loop();
  // GET /metrics and GET /health on one HTTP connection (server/metrics_http.cc).
  asio::awaitable<void> serve_metrics(asio::ip::tcp::socket socket);
  void maintenance_loop();
  Result<void> load_cluster_id();
  Result<void> lock_data_dir();

  BrokerConfig config_;
  std::unique_ptr<storage::Flusher> flusher_;
  std::unique_ptr<TopicManager> topics_;
  std::unique_ptr<ProducerIdAllocator> producer_ids_;
  // One single-threaded io_context per network thread; each connection lives on one of them,
  // so a request never hops between threads and needs no strand.
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  size_t next_io_ = 0;
  std::unique_ptr<group::GroupCoordinator> groups_;  // destroyed before ios_ (its timers live there)
  std::unique_ptr<asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<asio::ip::tcp::acceptor> metrics_acceptor_;  // null: no metrics endpoint
  std::vector<std::thread> threads_;
  std::unique_ptr<asio::thread_pool> admin_;  // one thread: admin requests run one at a time
  // Retention and compaction sweeps: file I/O that may take seconds (a large
  // compaction), so on a thread of their own, never on a network thread.
  std::thread maintenance_thread_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool maintenance_stop_ = false;  // guarded by maintenance_mu_
  uint16_t port_ = 0;
  uint16_t metrics_port_ = 0;
  int lock_fd_ = -1;  // flock'ed <data dir>/.lock
  std::string advertised_host_;
  std::string cluster_id_;

  RequestMetrics request_metrics_;
  const int64_t start_ms_ = now_ms();

  std::mutex conn_mu_;
  // Keyed by address so unregistering never locks a weak_ptr: a lock() that turned out to hold the
  // last reference would run ~Connection (and so unregister_connection) under conn_mu_.
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopped_ = false;
  bool done_ = false;
  bool started_ = false;
};

}  // namespace herald::broker
