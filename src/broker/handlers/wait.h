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

// Completes with the result once every offset <= `offset` is durable (or the
// sync failed). The completion runs on `ex`, the connection's executor.
template <class Token>
auto async_wait_durable(storage::PartitionLog& log, int64_t offset, asio::any_io_executor ex, Token&& token) {
  return asio::async_initiate<Token, void(Result<void>)>(
      [&log, offset, ex](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        log.wait_durable(offset, [h, ex](Result<void> r) {
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      token);
}

inline asio::awaitable<Result<void>> wait_durable(storage::PartitionLog& log, int64_t offset,
                                                  asio::any_io_executor ex) {
  co_return co_await async_wait_durable(log, offset, ex, asio::use_awaitable);
}

}  // namespace herald::broker
