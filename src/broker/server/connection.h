// Connection: one client socket. A reader coroutine reads size-prefixed
// frames and starts one handler coroutine per request; a writer coroutine
// sends the responses strictly in request order (Kafka's per-connection
// ordering), batching consecutive ready responses into one write.
//
// A request starts once every earlier request of the connection has been
// answered, as in Kafka, which reads nothing more from a connection until it
// has answered the last request: a Fetch pipelined behind a Produce sees its
// records, a DescribeConfigs behind an alter sees the change. The exception is
// a Produce behind Produces, which starts at once, so pipelined produce
// requests share one group-committed fdatasync (their appends keep the
// order they arrived in).
//
// Everything runs on the connection's io_context (one thread). The
// Connection is owned by its coroutines through shared_from_this(); the
// broker keeps only a weak_ptr for shutdown.
//
// Malformed input (negative or oversized length, undecodable header, unknown
// API key, unsupported version) is logged and closes this connection only.
#pragma once

#include <asio.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "common/bytes.h"

namespace herald::broker {

class BrokerImpl;
struct ConnectionWaits;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(BrokerImpl& broker, asio::ip::tcp::socket socket);
  ~Connection();
  void start();
  // Closes the socket (from any thread).
  void close();

 private:
  struct Slot {
    bool produce = false;  // a Produce request (may overlap earlier Produces)
    std::chrono::steady_clock::time_point received;
    bool ready = false;
    std::optional<Bytes> frame;  // nullopt: nothing to send (acks=0)
  };
  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();
  asio::awaitable<void> idle_loop();
  // A request frame; not zero-filled (it is read into straight away).
  struct Frame {
    explicit Frame(size_t n) : data(std::make_unique_for_overwrite<uint8_t[]>(n)), size(n) {}
    std::unique_ptr<uint8_t[]> data;
    size_t size;
  };
  asio::awaitable<void> process(std::shared_ptr<Slot> slot, std::shared_ptr<Frame> frame);
  // Whether `slot` must wait for an earlier request of this connection (see above).
  bool waits_for_earlier(const Slot& slot) const;
  void close_now(const std::string& reason);
  // Adds to unsent_bytes_ and to the broker's count over all connections.
  void count_unsent(int64_t delta);

  // Reading stops while kMaxInFlight requests are unanswered, or while the
  // frames being handled plus the responses not yet sent hold kMaxHeldBytes,
  // and a request read does not start while the responses not yet sent hold
  // that much (a client that pipelines large fetches and reads nothing cannot
  // make the broker buffer them all), or kMinHeldBytes while the broker is
  // over its response_memory_bytes; at least one request is always taken.
  static constexpr size_t kMaxInFlight = 64;
  static constexpr size_t kMaxHeldBytes = size_t{64} << 20;
  static constexpr size_t kMinHeldBytes = size_t{1} << 20;

  BrokerImpl& broker_;
  asio::ip::tcp::socket socket_;
  std::string peer_;
  asio::steady_timer writer_wake_;
  asio::steady_timer reader_wake_;
  asio::steady_timer order_wake_;  // never expires; cancelled whenever a request is answered or a response written
  asio::steady_timer idle_timer_;
  std::deque<std::shared_ptr<Slot>> queue_;
  size_t held_bytes_ = 0;  // request frames being handled + response frames not yet written
  size_t unsent_bytes_ = 0;  // response frames not yet written (part of held_bytes_)
  std::shared_ptr<ConnectionWaits> waits_;  // long-polling requests, cancelled at close
  std::chrono::steady_clock::time_point last_activity_;  // last request read or response written
  bool read_done_ = false;
  bool closed_ = false;
};

}  // namespace herald::broker
