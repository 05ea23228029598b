// The metrics endpoint: GET /metrics (BrokerImpl::metrics_text(), Prometheus
// text format) and GET /health, one request per connection, on the first
// network thread. A request head must arrive within 10 s and fit in 8 KiB.
// Asio rather than an HTTP library: the only one Debian offers (cpp-httplib)
// initializes OpenSSL when loaded, which added 2.5 MB to an idle broker's RSS
// with the endpoint off.
#include <asio/experimental/as_tuple.hpp>
#include <fmt/format.h>

#include <string>
#include <string_view>

#include "broker/broker_impl.h"
#include "common/log.h"

namespace herald::broker {
namespace {

constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr size_t kMaxHead = 8192;

std::string response(std::string_view status, std::string_view content_type, std::string_view body) {
  return fmt::format("HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}", status,
                     content_type, body.size(), body);
}

}  // namespace

asio::awaitable<void> BrokerImpl::metrics_accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await metrics_acceptor_->async_accept(use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !metrics_acceptor_->is_open()) co_return;
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    asio::co_spawn(co_await asio::this_coro::executor, serve_metrics(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> BrokerImpl::serve_metrics(asio::ip::tcp::socket socket) {
  asio::steady_timer deadline(socket.get_executor(), std::chrono::seconds(10));
  deadline.async_wait([&socket](std::error_code ec) {
    if (!ec) socket.close(ec);
  });
  std::string head;
  auto [ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(head, kMaxHead), "\r\n\r\n", use_nothrow);
  deadline.cancel();
  if (ec) co_return;  // closed, too slow, or a head beyond kMaxHead
  std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
  std::string out;
  if (line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?")) {
    out = response("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics_text());
  } else if (line.starts_with("GET /health ")) {
    out = response("200 OK", "text/plain", "ok\n");
  } else if (line.starts_with("GET ")) {
    out = response("404 Not Found", "text/plain", "GET /metrics or /health\n");
  } else {
    out = response("405 Method Not Allowed", "text/plain", "GET /metrics or /health\n");
  }
  co_await asio::async_write(socket, asio::buffer(out), use_nothrow);
  std::error_code ignored;
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
}

}  // namespace herald::broker
