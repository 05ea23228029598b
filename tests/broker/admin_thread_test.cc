// Admin requests do their file work on the admin thread: a DeleteRecords or DeleteTopics that waits
// for a partition's compaction pass (its maintenance lock) must not hold up the other connections of
// the network thread it arrived on.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "broker/broker_impl.h"
#include "protocol/header.h"
#include "protocol/messages.h"

namespace herald::broker {
namespace {

// A blocking Kafka-protocol connection: one request at a time.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  bool connected() const { return connected_; }

  template <class Request>
  void send(int16_t version, const Request& req) {
    Writer w;
    w.put_i32(0);
    protocol::encode_request_header(w, {Request::kApiKey, version, ++correlation_id_, std::string("admin-thread-test")});
    req.encode(w, version);
    w.put_i32_at(0, static_cast<int32_t>(w.size() - 4));
    const Bytes& b = w.buffer();
    for (size_t off = 0; off < b.size();) {
      const ssize_t n = ::write(fd_, b.data() + off, b.size() - off);
      ASSERT_GT(n, 0);
      off += static_cast<size_t>(n);
    }
  }

  // The next response, or nullopt if none arrives within `timeout_ms`.
  template <class Response>
  std::optional<Response> receive(int16_t version, int timeout_ms) {
    uint8_t size_be[4];
    if (!read_exactly(size_be, 4, timeout_ms)) return std::nullopt;
    Bytes body(load_be32(size_be));
    if (!read_exactly(body.data(), body.size(), timeout_ms)) return std::nullopt;
    Reader in(body);
    if (!protocol::decode_response_header(in, Response::kApiKey, version)) return std::nullopt;
    auto r = Response::decode(in, version);
    if (!r) return std::nullopt;
    return std::move(*r);
  }

 private:
  bool read_exactly(uint8_t* dst, size_t n, int timeout_ms) {
    for (size_t off = 0; off < n;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) != 1) return false;
      const ssize_t got = ::read(fd_, dst + off, n - off);
      if (got <= 0) return false;
      off += static_cast<size_t>(got);
    }
    return true;
  }

  int fd_;
  bool connected_ = false;
  int32_t correlation_id_ = 0;
};

class AdminThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerConfig cfg;
    cfg.listen_port = 0;
    cfg.ephemeral = true;
    cfg.threads = 1;  // every connection shares the one network thread
    impl_ = std::make_unique<BrokerImpl>(cfg);
    ASSERT_TRUE(impl_->start());
    auto t = impl_->topics().create("t", 1, {{"cleanup.policy", "compact,delete"}});
    ASSERT_TRUE(t) << t.error().to_string();
    partition_ = (*t)->partition(0);  // keeps the log alive after DeleteTopics
  }
  void TearDown() override {
    if (holder_.joinable()) {
      release_.set_value();
      holder_.join();
    }
    impl_->stop();
  }

  // Holds the partition's maintenance lock, as a long compaction pass does, until release().
  void hold_maintenance_lock() {
    std::promise<void> entered;
    holder_ = std::thread([this, &entered, released = release_.get_future()] {
      auto r = partition_->log->while_open([&] {
        entered.set_value();
        released.wait();
        return ok();
      });
      EXPECT_TRUE(r);
    });
    entered.get_future().wait();
  }
  void release() {
    release_.set_value();
    holder_.join();
  }

  // ApiVersions on a second connection of the same network thread is answered at once.
  void expect_network_thread_free() {
    RawConnection other(impl_->port());
    ASSERT_TRUE(other.connected());
    other.send(0, protocol::ApiVersionsRequest{});
    auto r = other.receive<protocol::ApiVersionsResponse>(0, 10000);
    ASSERT_TRUE(r) << "the network thread is blocked behind the admin request";
    EXPECT_EQ(r->error_code, 0);
  }

  // Sends `req` while the partition's maintenance lock is held: it is not answered, the network thread
  // serves another connection meanwhile, and the answer comes once the lock is released.
  template <class Response, class Request>
  std::optional<Response> admin_request_behind_the_lock(int16_t version, const Request& req) {
    hold_maintenance_lock();
    RawConnection admin(impl_->port());
    EXPECT_TRUE(admin.connected());
    admin.send(version, req);
    EXPECT_FALSE(admin.receive<Response>(version, 200)) << "answered without the partition's maintenance lock";
    expect_network_thread_free();
    release();
    return admin.receive<Response>(version, 10000);
  }

  std::unique_ptr<BrokerImpl> impl_;
  std::shared_ptr<Partition> partition_;
  std::promise<void> release_;
  std::thread holder_;
};

TEST_F(AdminThreadTest, DeleteRecordsWaitingForCompactionLeavesOtherConnectionsServed) {
  protocol::DeleteRecordsRequest req;
  auto& rt = req.topics.emplace_back();
  rt.name = "t";
  rt.partitions.push_back({.partition_index = 0, .offset = -1});
  req.timeout_ms = 30000;
  auto r = admin_request_behind_the_lock<protocol::DeleteRecordsResponse>(1, req);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->topics.size(), 1u);
  ASSERT_EQ(r->topics[0].partitions.size(), 1u);
  EXPECT_EQ(r->topics[0].partitions[0].error_code, 0);
  EXPECT_EQ(r->topics[0].partitions[0].low_watermark, 0);
}

TEST_F(AdminThreadTest, DeleteTopicsWaitingForCompactionLeavesOtherConnectionsServed) {
  protocol::DeleteTopicsRequest req;
  req.topic_names = {"t"};
  req.timeout_ms = 30000;
  auto r = admin_request_behind_the_lock<protocol::DeleteTopicsResponse>(4, req);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->responses.size(), 1u);
  EXPECT_EQ(r->responses[0].error_code, 0);
  EXPECT_FALSE(impl_->topics().find("t"));
}

}  // namespace
}  // namespace herald::broker
