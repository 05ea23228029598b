// Broker: an embeddable `herald serve`. Starts the network threads, the
// flusher and the topic catalogue; stops cleanly (flush, checkpoint, close).
//
//   broker::BrokerConfig cfg;
//   cfg.listen_port = 0;                 // ephemeral
//   cfg.ephemeral = true;                // temporary data dir, removed at stop()
//   auto b = broker::Broker::start(cfg);
//   connect_to("127.0.0.1", (*b)->port());
//   (*b)->stop();
//
// start() returns once the listening socket accepts connections. All methods
// are thread-safe; stop() is idempotent and also runs in the destructor.
#pragma once

#include <memory>
#include <string>

#include "broker/config.h"
#include "common/result.h"

namespace herald::broker {

class BrokerImpl;

class Broker {
 public:
  static Result<std::unique_ptr<Broker>> start(BrokerConfig config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  uint16_t port() const;
  uint16_t metrics_port() const;  // 0 without a metrics endpoint
  const std::filesystem::path& data_dir() const;
  // Blocks until stop() is called from another thread or a signal handler thread.
  void wait();
  void stop();
  // The broker's metrics in Prometheus's text format: requests, connections, fdatasyncs,
  // partitions and consumer groups (docs/broker.md, "Metrics").
  std::string metrics_text();

 private:
  explicit Broker(std::unique_ptr<BrokerImpl> impl);
  std::unique_ptr<BrokerImpl> impl_;
};

}  // namespace herald::broker
