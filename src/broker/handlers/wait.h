// Awaiting storage events from a handler coroutine without blocking a
// network thread: the storage callback (flusher thread) posts the result to
// the connection's strand and wakes the coroutine there.
//
//   auto r = co_await wait_durable(*partition->log, info.last_offset, ctx.executor);
//   auto e = co_await on_admin_thread(ctx, [&] { return topics.remove(name); });
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>

#include "broker/broker_impl.h"
#include "broker/handlers/handler.h"
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

// Runs `fn` on `worker` and resumes the calling coroutine on `ex` (the connection's executor) with
// its result: blocking work, such as fsyncs or waiting for a partition's maintenance lock, done
// without holding up the other connections of a network thread. `fn` may refer to the coroutine's
// locals: the coroutine stays suspended until `fn` has returned.
template <class F>
asio::awaitable<std::invoke_result_t<F&>> run_on(asio::any_io_executor worker, asio::any_io_executor ex, F fn) {
  using R = std::invoke_result_t<F&>;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(R)>(
      [worker, ex, fn = std::move(fn)](auto handler) mutable {
        asio::post(worker, [h = std::move(handler), ex, fn = std::move(fn)]() mutable {
          R r = fn();
          asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable { h(std::move(r)); });
        });
      },
      asio::use_awaitable);
}

// run_on the broker's admin thread, back on the request's connection (BrokerImpl::admin_executor).
template <class F>
asio::awaitable<std::invoke_result_t<F&>> on_admin_thread(RequestContext& ctx, F fn) {
  return run_on(ctx.broker.admin_executor(), ctx.executor, std::move(fn));
}

// Admin work for a request with a timeout (CreateTopics, CreatePartitions), which Kafka answers
// REQUEST_TIMED_OUT once the timeout has passed while the work goes on to its end:
//
//   auto job = start_admin_job(ctx, [&b = ctx.broker, req = shared_request] { return work(b, *req); });
//   co_await wait_admin_job(ctx, *job, timeout);
//   if (!job->result) { /* timed out: the result, when it comes, goes nowhere */ }
//
// The work must own what it uses (the request may be answered and gone when it runs). The admin
// thread shares only plain data with the request; the timer stays in the waiting coroutine, and the
// two meet on the connection's single-threaded executor. (A plain function starts the work: the
// same closure passed by value into a coroutine had its captures freed early, with GCC 12.)
template <class R>
struct AdminJob {
  std::optional<R> result;
  asio::steady_timer* waiting = nullptr;  // the request's timer while it waits
};

template <class F>
std::shared_ptr<AdminJob<std::invoke_result_t<F&>>> start_admin_job(RequestContext& ctx, F fn) {
  auto job = std::make_shared<AdminJob<std::invoke_result_t<F&>>>();
  asio::post(ctx.broker.admin_executor(), [job, ex = ctx.executor, fn = std::move(fn)]() mutable {
    asio::post(ex, [job, r = fn()]() mutable {
      job->result = std::move(r);
      if (job->waiting) job->waiting->cancel();
    });
  });
  return job;
}

// Until `job` has its result or `timeout` has passed. `job` is the caller's, alive across the wait.
template <class R>
asio::awaitable<void> wait_admin_job(RequestContext& ctx, AdminJob<R>& job, std::chrono::milliseconds timeout) {
  if (job.result) co_return;
  asio::steady_timer timer(ctx.executor, timeout);
  job.waiting = &timer;
  co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  job.waiting = nullptr;
}

}  // namespace herald::broker
