// The request-handler framework: what a handler gets (RequestContext), how
// handlers are listed (one type list; ApiVersions is computed from it), and
// the table the connection dispatches through.
//
// A handler is a struct:
//   struct HeartbeatHandler {
//     using Request = protocol::HeartbeatRequest;
//     using Response = protocol::HeartbeatResponse;
//     static constexpr int16_t kMinVersion = 0, kMaxVersion = 4;
//     static asio::awaitable<Response> handle(RequestContext& ctx, Request req);
//   };
// Its handle() lives in handlers/<api_name>.cc.
#pragma once

#include <asio.hpp>

#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "protocol/header.h"
#include "protocol/wire.h"

namespace herald::broker {

class BrokerImpl;

// The requests of one connection that wait (long-polling fetches): when the connection closes
// their timers are cancelled and `closed` is set, so that a client gone does not keep a request,
// and its partition subscriptions, alive until its max_wait_ms. Used on the connection's thread only.
struct ConnectionWaits {
  bool closed = false;
  std::vector<std::weak_ptr<asio::steady_timer>> timers;
  void add(std::weak_ptr<asio::steady_timer> t) {
    std::erase_if(timers, [](const auto& w) { return w.expired(); });
    timers.push_back(std::move(t));
  }
  void close() {
    closed = true;
    for (auto& w : timers) {
      if (auto t = w.lock()) t->cancel();
    }
    timers.clear();
  }
};

struct RequestContext {
  BrokerImpl& broker;
  protocol::RequestHeader header;
  std::string peer_host;         // "/127.0.0.1", as DescribeGroups shows it
  asio::any_io_executor executor;  // the connection's strand: resume here after waiting
  std::shared_ptr<ConnectionWaits> waits;
  bool suppress_response = false;  // Produce with acks=0 sets it: no response is sent
  std::string close_reason = {};   // set by a handler: no response, close the connection (logged)
  int16_t version() const { return header.api_version; }
};

// Outcome of one request: a complete response frame (size prefix included),
// no response (acks=0), or "close the connection" with the reason to log.
struct HandlerOutcome {
  std::optional<Bytes> frame;
  std::string close_reason;  // non-empty: log it and close the connection
};

struct HandlerEntry {
  int16_t api_key;
  int16_t min_version;
  int16_t max_version;
  std::string_view name;
  asio::awaitable<HandlerOutcome> (*run)(RequestContext& ctx, ByteSpan body);
};

// Every API the broker serves, sorted by api key.
std::span<const HandlerEntry> handler_table();
const HandlerEntry* find_handler(int16_t api_key);

// Encodes a response frame: i32 size, response header, body.
template <class Response>
Bytes encode_response(const RequestContext& ctx, const Response& resp) {
  Writer w(256);
  w.put_i32(0);
  protocol::encode_response_header(w, ctx.header.api_key, ctx.header.api_version, ctx.header.correlation_id);
  resp.encode(w, ctx.header.api_version);
  w.put_i32_at(0, static_cast<int32_t>(w.size() - 4));
  return w.take();
}

// Decoded arrays may take at most kDecodeBudgetFactor times the request's size plus
// kDecodeBudgetBase (protocol::wire::DecodeBudget). Real requests need up to ~5x (an OffsetCommit
// v2 partition: 14 bytes on the wire, 72 decoded); a Metadata request of empty names would need 28x.
inline constexpr size_t kDecodeBudgetFactor = 8;
inline constexpr size_t kDecodeBudgetBase = size_t{1} << 20;

template <class H>
asio::awaitable<HandlerOutcome> run_handler(RequestContext& ctx, ByteSpan body) {
  Reader in(body);
  auto req = [&] {
    protocol::wire::DecodeBudget budget(kDecodeBudgetFactor * body.size() + kDecodeBudgetBase);
    return H::Request::decode(in, ctx.version());
  }();
  if (!req) {
    co_return HandlerOutcome{std::nullopt, fmt::format("undecodable {} v{}: {}", H::Request::kName,
                                                       ctx.version(), req.error().to_string())};
  }
  auto resp = co_await H::handle(ctx, std::move(*req));
  if (!ctx.close_reason.empty()) co_return HandlerOutcome{std::nullopt, std::move(ctx.close_reason)};
  if (ctx.suppress_response) co_return HandlerOutcome{};
  Bytes frame = encode_response(ctx, resp);
  if (frame.size() - 4 > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    co_return HandlerOutcome{std::nullopt, fmt::format("{} v{} response of {} bytes is over the 2 GiB a frame can carry",
                                                       H::Request::kName, ctx.version(), frame.size() - 4)};
  }
  co_return HandlerOutcome{std::move(frame), {}};
}

}  // namespace herald::broker
