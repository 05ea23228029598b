// await_callback: suspends a coroutine until a one-shot callback is called by
// someone else (the group coordinator, under its lock, on any thread). Used
// for the long-held JoinGroup and SyncGroup requests: the handler suspends,
// no network thread blocks.
//
//   JoinGroupResponse r = co_await await_callback<JoinGroupResponse>(
//       co_await asio::this_coro::executor,
//       [&](std::function<void(JoinGroupResponse)> done) { member.await_join = std::move(done); });
//
// `start` runs inside the co_await and must store (or call) the callback. The
// callback only posts to `ex` (it never resumes the coroutine inline), so it
// may be called while holding locks; calls after the first are ignored. If
// the callback is destroyed without being called, the suspended coroutine is
// destroyed with it (no response is ever produced): the coordinator answers
// every stored callback, with an error if need be.
#pragma once

#include <asio.hpp>

#include <atomic>
#include <functional>
#include <memory>

namespace herald::broker::group {

template <class T, class Start>
asio::awaitable<T> await_callback(asio::any_io_executor ex, Start start) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      [ex, &start](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        auto called = std::make_shared<std::atomic<bool>>(false);
        start(std::function<void(T)>([h, ex, called](T v) {
          if (called->exchange(true)) return;
          asio::post(ex, [h, v = std::move(v)]() mutable { (*h)(std::move(v)); });
        }));
      },
      asio::use_awaitable);
}

}  // namespace herald::broker::group
