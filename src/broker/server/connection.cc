#include "broker/server/connection.h"

#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <new>

#include "broker/broker_impl.h"
#include "broker/handlers/handler.h"
#include "common/log.h"

namespace herald::broker {
namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
}  // namespace

Connection::Connection(BrokerImpl& broker, asio::ip::tcp::socket socket)
    : broker_(broker),
      socket_(std::move(socket)),
      writer_wake_(socket_.get_executor()),
      reader_wake_(socket_.get_executor()),
      order_wake_(socket_.get_executor(), asio::steady_timer::time_point::max()),
      idle_timer_(socket_.get_executor()),
      waits_(std::make_shared<ConnectionWaits>()),
      last_activity_(std::chrono::steady_clock::now()) {
  std::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  peer_ = ec ? std::string("/unknown") : fmt::format("/{}", ep.address().to_string());
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  socket_.set_option(asio::socket_base::keep_alive(true), ec);  // a peer host gone is noticed, as in Kafka
}

Connection::~Connection() {
  count_unsent(-static_cast<int64_t>(unsent_bytes_));  // responses never written
  broker_.unregister_connection(this);
}

void Connection::count_unsent(int64_t delta) {
  unsent_bytes_ = static_cast<size_t>(static_cast<int64_t>(unsent_bytes_) + delta);
  broker_.request_metrics().unsent_response_bytes.fetch_add(delta, std::memory_order_relaxed);
}

void Connection::start() {
  auto self = shared_from_this();
  asio::co_spawn(socket_.get_executor(), [self]() { return self->read_loop(); }, asio::detached);
  asio::co_spawn(socket_.get_executor(), [self]() { return self->write_loop(); }, asio::detached);
  if (broker_.config().connections_max_idle_ms > 0) {
    asio::co_spawn(socket_.get_executor(), [self]() { return self->idle_loop(); }, asio::detached);
  }
}

void Connection::close() {
  asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close_now({}); });
}

void Connection::close_now(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  if (!reason.empty()) {
    HLOG_WARN("closing connection from {}: {}", peer_, reason);
    broker_.request_metrics().connections_closed_on_error.fetch_add(1, std::memory_order_relaxed);
  }
  std::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  writer_wake_.cancel();
  reader_wake_.cancel();
  order_wake_.cancel();
  idle_timer_.cancel();
  waits_->close();
}

// As Kafka's connections.max.idle.ms: a connection that has read no request and written no
// response for that long, and has none in progress, is closed (a client that never reads its
// responses counts as idle too).
asio::awaitable<void> Connection::idle_loop() {
  auto self = shared_from_this();
  const auto idle = std::chrono::milliseconds(broker_.config().connections_max_idle_ms);
  while (!closed_) {
    idle_timer_.expires_at(last_activity_ + idle);
    co_await idle_timer_.async_wait(use_nothrow);
    if (closed_) break;
    const auto now = std::chrono::steady_clock::now();
    if (std::any_of(queue_.begin(), queue_.end(), [](const auto& s) { return !s->ready; })) {
      last_activity_ = now;  // a request is being handled (a long poll, a slow sync)
    } else if (now >= last_activity_ + idle) {
      HLOG_DEBUG("closing connection from {}: idle for {} ms (connections.max.idle.ms)", peer_, idle.count());
      close_now({});
    }
  }
}

asio::awaitable<void> Connection::read_loop() {
  auto self = shared_from_this();
  const auto max_bytes = broker_.config().socket_request_max_bytes;
  for (;;) {
    while ((queue_.size() >= kMaxInFlight || (held_bytes_ >= kMaxHeldBytes && !queue_.empty())) && !closed_) {
      reader_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await reader_wake_.async_wait(use_nothrow);
    }
    if (closed_) break;
    uint8_t size_be[4];
    auto [ec, n] = co_await asio::async_read(socket_, asio::buffer(size_be), use_nothrow);
    if (ec) {
      // The peer closed (or reset): as in Kafka, its requests still in progress finish, unanswered.
      close_now({});
      break;
    }
    int32_t size = static_cast<int32_t>(load_be32(size_be));
    if (size < 8 || size > max_bytes) {
      close_now(fmt::format("invalid frame length {} (socket.request.max.bytes {})", size, max_bytes));
      break;
    }
    std::shared_ptr<Frame> frame;
    try {
      frame = std::make_shared<Frame>(static_cast<size_t>(size));
    } catch (const std::bad_alloc&) {
      close_now(fmt::format("no memory for a request of {} bytes", size));
      break;
    }
    held_bytes_ += frame->size;
    auto [ec2, n2] = co_await asio::async_read(socket_, asio::buffer(frame->data.get(), frame->size), use_nothrow);
    if (ec2) {
      if (!closed_) close_now(fmt::format("truncated frame: {}", ec2.message()));
      break;
    }
    auto slot = std::make_shared<Slot>();
    slot->produce = load_be16(frame->data.get()) == 0;  // request_api_key, first in every header
    slot->received = last_activity_ = std::chrono::steady_clock::now();
    queue_.push_back(slot);
    asio::co_spawn(socket_.get_executor(), process(slot, std::move(frame)), asio::detached);
  }
  read_done_ = true;
  writer_wake_.cancel();
}

bool Connection::waits_for_earlier(const Slot& slot) const {
  // Responses not yet written hold kMaxHeldBytes, or kMinHeldBytes while all connections' unsent
  // responses are over the broker's budget: only the first request in line starts (its
  // predecessors are being written), so a client that reads nothing holds a bounded amount.
  const bool hold = unsent_bytes_ >= kMaxHeldBytes ||
                    (unsent_bytes_ >= kMinHeldBytes && broker_.response_memory_left() == 0);
  if (hold && !queue_.empty() && queue_.front().get() != &slot) return true;
  for (const auto& s : queue_) {
    if (s.get() == &slot) return false;
    if (!s->ready && !(slot.produce && s->produce)) return true;
  }
  return false;
}

asio::awaitable<void> Connection::process(std::shared_ptr<Slot> slot, std::shared_ptr<Frame> frame) {
  auto self = shared_from_this();
  while (!closed_ && waits_for_earlier(*slot)) co_await order_wake_.async_wait(use_nothrow);
  if (closed_) co_return;
  Reader in(ByteSpan(frame->data.get(), frame->size));
  auto header = protocol::decode_request_header(in);
  HandlerOutcome out;
  if (!header) {
    out.close_reason = fmt::format("bad request header: {}", header.error().to_string());
  } else if (const HandlerEntry* h = find_handler(header->api_key); h == nullptr) {
    out.close_reason = fmt::format("unknown api key {}", header->api_key);
  } else if ((header->api_version < h->min_version || header->api_version > h->max_version) &&
             header->api_key != 18 /* ApiVersions answers UNSUPPORTED_VERSION itself */) {
    out.close_reason = fmt::format("unsupported version {} of {} (supported {}-{})", header->api_version, h->name,
                                   h->min_version, h->max_version);
  } else {
    RequestContext ctx{broker_, std::move(*header), peer_, socket_.get_executor(), waits_};
    try {
      out = co_await h->run(ctx, in.rest());
    } catch (const std::exception& e) {
      out.close_reason = fmt::format("internal error in {}: {}", h->name, e.what());
      HLOG_ERROR("{}", out.close_reason);
    }
  }
  held_bytes_ -= frame->size;
  if (!out.close_reason.empty()) {
    close_now(out.close_reason);
    co_return;
  }
  auto& latency = broker_.request_metrics().latency;
  if (header && header->api_key >= 0 && static_cast<size_t>(header->api_key) < latency.size()) {
    latency[static_cast<size_t>(header->api_key)].observe(
        std::chrono::steady_clock::now() - slot->received);
  }
  if (out.frame) {
    held_bytes_ += out.frame->size();
    count_unsent(static_cast<int64_t>(out.frame->size()));
  }
  slot->frame = std::move(out.frame);
  slot->ready = true;
  writer_wake_.cancel();
  order_wake_.cancel();
}

asio::awaitable<void> Connection::write_loop() {
  auto self = shared_from_this();
  std::vector<std::shared_ptr<Slot>> batch;
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    batch.clear();
    buffers.clear();
    while (!queue_.empty() && queue_.front()->ready) {
      auto s = std::move(queue_.front());
      queue_.pop_front();
      if (s->frame) {
        buffers.emplace_back(asio::buffer(*s->frame));
        batch.push_back(std::move(s));
      }
      reader_wake_.cancel();
    }
    if (closed_) co_return;
    if (!buffers.empty()) {
      auto [ec, n] = co_await asio::async_write(socket_, buffers, use_nothrow);
      if (ec) {
        close_now({});
        co_return;
      }
      held_bytes_ -= n;
      count_unsent(-static_cast<int64_t>(n));
      last_activity_ = std::chrono::steady_clock::now();
      reader_wake_.cancel();
      order_wake_.cancel();  // a request held back by unsent_bytes_ may start
      continue;
    }
    if (read_done_ && queue_.empty()) {
      close_now({});
      co_return;
    }
    writer_wake_.expires_at(asio::steady_timer::time_point::max());
    co_await writer_wake_.async_wait(use_nothrow);
  }
}

}  // namespace herald::broker
