// Awaiting storage events from a handler coroutine without blocking a
// network thread: the storage callback (flusher thread) posts the result to
// the connection's strand and wakes the coroutine there.
//
//   auto r = co_await wait_durable(*partition->log, info.last_offset, ctx.executor);
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>
#include <memory>
#include <optional>

#include "common/result.h"
#include "storage/partition_log.h"

namespace herald::broker {

// Resolves once every offset <= `offset` is durable (or the sync failed).
inline asio::awaitable<Result<void>> wait_durable(storage::PartitionLog& log, int64_t offset,
                                                  asio::any_io_executor ex) {
  struct State {
    explicit State(asio::any_io_executor e) : timer(e) {}
    asio::steady_timer timer;
    std::optional<Result<void>> result;
  };
  auto st = std::make_shared<State>(ex);
  st->timer.expires_at(asio::steady_timer::time_point::max());
  log.wait_durable(offset, [st, ex](Result<void> r) {
    asio::post(ex, [st, r = std::move(r)]() mutable {
      st->result = std::move(r);
      st->timer.cancel();
    });
  });
  while (!st->result) {
    co_await st->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
  co_return std::move(*st->result);
}

}  // namespace herald::broker
