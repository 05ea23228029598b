// Waiter<T>: a one-shot result that a coroutine awaits while someone else
// (the group coordinator, under its lock, on any thread) produces it. Used for
// the long-held JoinGroup and SyncGroup requests: the handler suspends, no
// network thread blocks.
//
//   auto w = Waiter<JoinGroupResponse>::create(co_await asio::this_coro::executor);
//   member.await_join = w->callback();          // stored; called exactly once later
//   JoinGroupResponse r = co_await w->wait();   // resumes on the executor given above
//
// The callback only posts to the waiter's executor (never runs the coroutine
// inline), so it may be called while holding locks. Calls after the first are
// ignored. If the callback is destroyed without being called, wait() never
// returns; the frame is destroyed with the io_context at shutdown.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <functional>
#include <memory>
#include <optional>

namespace herald::broker::group {

template <class T>
class Waiter : public std::enable_shared_from_this<Waiter<T>> {
 public:
  static std::shared_ptr<Waiter> create(asio::any_io_executor ex) {
    return std::shared_ptr<Waiter>(new Waiter(std::move(ex)));
  }

  std::function<void(T)> callback() {
    return [self = this->shared_from_this()](T v) {
      asio::post(self->ex_, [self, v = std::move(v)]() mutable {
        if (self->value_) return;
        self->value_ = std::move(v);
        self->timer_.cancel();
      });
    };
  }

  asio::awaitable<T> wait() {
    auto self = this->shared_from_this();
    while (!value_) {
      co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    co_return std::move(*value_);
  }

 private:
  explicit Waiter(asio::any_io_executor ex) : ex_(ex), timer_(ex) {
    timer_.expires_at(asio::steady_timer::time_point::max());
  }
  asio::any_io_executor ex_;
  asio::steady_timer timer_;
  std::optional<T> value_;  // touched only on ex_ (a strand)
};

}  // namespace herald::broker::group
