// Fetch: whole batches from each requested partition, up to the high
// watermark, within max_bytes and partition_max_bytes (the first batch of the
// first partition with data is always sent whole, KIP-74). With less than
// min_bytes available the request is held until data arrives or max_wait_ms
// passes (long polling); appends to any requested partition wake it. While it
// waits, only sizes are checked: the data is read once, when it is answered.
#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <optional>
#include <utility>

#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "common/log.h"

namespace herald::broker {
namespace {

using protocol::ErrorCode;
using FetchPartition = protocol::FetchResponse::PartitionData;

struct Target {
  std::shared_ptr<Partition> partition;
  int64_t fetch_offset;
  int32_t max_bytes;
  FetchPartition* out;
};

// Sets `t`'s high watermark, log start and error; returns what a read of up to `budget` bytes
// (at least one batch) from its fetch offset would cover (from the index: no record data read),
// or nullopt when there is nothing to read, no budget, or an error, which sets `any_error`.
std::optional<storage::ReadResult> look(Target& t, std::optional<uint64_t> budget, bool& any_error) {
  FetchPartition& out = *t.out;
  if (!t.partition) return std::nullopt;  // error already set
  if (t.partition->removed.load()) {      // the topic was deleted while the request waited
    out.high_watermark = out.last_stable_offset = out.log_start_offset = -1;
    out.records = protocol::Records{};
    out.records.is_null = false;
    out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
    any_error = true;
    return std::nullopt;
  }
  auto& log = *t.partition->log;
  int64_t hwm = log.high_watermark();
  out.high_watermark = hwm;
  out.last_stable_offset = hwm;
  out.log_start_offset = log.log_start_offset();
  out.error_code = code(ErrorCode::kNone);
  out.records = protocol::Records{};
  out.records.is_null = false;
  if (t.fetch_offset < log.log_start_offset() || t.fetch_offset > log.log_end_offset()) {
    out.error_code = code(ErrorCode::kOffsetOutOfRange);
    any_error = true;
    return std::nullopt;
  }
  if (t.fetch_offset >= hwm || !budget) return std::nullopt;
  auto rr = log.read(t.fetch_offset, std::max<uint64_t>(*budget, 1), hwm);
  if (!rr) {
    out.error_code = code(to_error_code(rr.error().code));
    any_error = true;
    if (rr.error().code == Errc::kCorruption) {
      HLOG_ERROR("fetch read: {}", rr.error().to_string());
    } else {
      HLOG_WARN("fetch {}: {}", t.partition->index, rr.error().to_string());
    }
    return std::nullopt;
  }
  return std::move(*rr);
}

uint64_t partition_budget(const Target& t) { return static_cast<uint64_t>(std::max(t.max_bytes, 0)); }

// What `t` counts towards min_bytes while the request waits: its bytes available, up to its
// partition_max_bytes (as Kafka's DelayedFetch counts them).
uint64_t available(Target& t, bool& any_error) {
  auto rr = look(t, partition_budget(t), any_error);
  return rr ? std::min(rr->total_bytes, partition_budget(t)) : 0;
}

// Fills every partition's response from the logs, within max_bytes.
void collect(std::vector<Target>& targets, uint64_t max_bytes, bool& any_error) {
  uint64_t total = 0;
  bool first_data = true;
  for (auto& t : targets) {
    FetchPartition& out = *t.out;
    const uint64_t budget = std::min(partition_budget(t), max_bytes > total ? max_bytes - total : 0);
    if (budget == 0 && !first_data) {
      look(t, std::nullopt, any_error);  // offsets and errors only
      continue;
    }
    auto rr = look(t, budget, any_error);
    if (!rr || rr->total_bytes == 0) continue;
    if (!first_data && rr->total_bytes > budget) continue;  // only the very first batch may exceed the limits
    auto buf = std::make_shared<Bytes>(rr->total_bytes);
    uint64_t pos = 0;
    bool ok = true;
    for (const auto& s : rr->slices) {
      uint64_t good = 0;
      if (auto r = storage::read_slice(s, buf->data() + pos, &good); !r) {
        HLOG_ERROR("fetch read: {}", r.error().to_string());
        if (r.error().code == Errc::kCorruption && pos + good > 0) {
          pos += good;  // serve the batches before the damaged one; a fetch from it gets the error
          break;
        }
        out.error_code = code(to_error_code(r.error().code));
        any_error = ok = false;
        break;
      }
      pos += s.size;
    }
    if (!ok) continue;
    out.records.owned = buf;
    out.records.view = ByteSpan(buf->data(), static_cast<size_t>(pos));
    total += pos;
    first_data = false;
  }
}

}  // namespace

asio::awaitable<protocol::FetchResponse> FetchHandler::handle(RequestContext& ctx, protocol::FetchRequest req) {
  protocol::FetchResponse resp;
  if (req.session_id != 0) {
    // Herald keeps no fetch sessions: a client that believes it has one starts over with full fetches.
    resp.error_code = code(ErrorCode::kFetchSessionIdNotFound);
    co_return resp;
  }
  std::vector<Target> targets;
  resp.responses.resize(req.topics.size());
  bool any_error = false;
  for (size_t ti = 0; ti < req.topics.size(); ++ti) {
    auto& rt = req.topics[ti];
    auto& out = resp.responses[ti];
    out.topic = rt.topic;
    out.partitions.resize(rt.partitions.size());
    auto topic = ctx.broker.topics().find(rt.topic);
    for (size_t pi = 0; pi < rt.partitions.size(); ++pi) {
      auto& rp = rt.partitions[pi];
      auto& op = out.partitions[pi];
      op.partition_index = rp.partition;
      op.high_watermark = -1;
      op.last_stable_offset = -1;
      op.log_start_offset = -1;
      op.records.is_null = false;
      auto partition = topic ? topic->partition(rp.partition) : nullptr;
      if (!partition) {
        op.error_code = code(ErrorCode::kUnknownTopicOrPartition);
        any_error = true;
      } else if (rp.current_leader_epoch > 0) {
        op.error_code = code(ErrorCode::kUnknownLeaderEpoch);  // the only epoch is 0
        any_error = true;
        partition = nullptr;
      }
      targets.push_back(Target{partition, rp.fetch_offset, rp.partition_max_bytes, &op});
    }
  }
  if (req.isolation_level == 0) {
    for (auto& t : targets) t.out->aborted_transactions = std::nullopt;
  } else {
    for (auto& t : targets) t.out->aborted_transactions.emplace();
  }
  // As Kafka's fetch.max.bytes: a client asking for more (up to 2 GiB) gets at most this much.
  const int32_t cap = std::max(ctx.broker.config().fetch_max_bytes, 1);
  const uint64_t max_bytes = static_cast<uint64_t>(std::clamp(req.max_bytes, 1, cap));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(req.max_wait_ms, 0));
  // As in Kafka: answered at once when min_bytes <= 0, there is nothing to fetch, or an error.
  if (req.max_wait_ms > 0 && req.min_bytes > 0 && !targets.empty() && !any_error) {
    // Long polling. Each partition is subscribed to once (again after each of its one-shot
    // wake-ups, before it is looked at, so that no append is missed), and a wake-up looks again
    // at the partitions that woke it only: a request over thousands of partitions costs little
    // per append.
    struct Wait {
      Wait(const asio::any_io_executor& ex, std::chrono::steady_clock::time_point deadline) : timer(ex, deadline) {}
      asio::steady_timer timer;   // expires at the deadline; cancelled by each wake-up
      std::vector<size_t> woken;  // targets with new data since the last look
    };
    auto wait = std::make_shared<Wait>(ctx.executor, deadline);
    ctx.waits->add(std::shared_ptr<asio::steady_timer>(wait, &wait->timer));
    std::vector<DataNotifier::Id> subs(targets.size(), 0);
    auto subscribe = [&](size_t i) {
      subs[i] = targets[i].partition->notifier.add([weak = std::weak_ptr<Wait>(wait), ex = ctx.executor, i] {
        asio::post(ex, [weak, i] {
          if (auto w = weak.lock()) {
            w->woken.push_back(i);
            w->timer.cancel();
          }
        });
      });
    };
    std::vector<uint64_t> counted(targets.size(), 0);
    uint64_t got = 0;
    bool answer_now = false;
    for (size_t i = 0; i < targets.size(); ++i) {
      if (!targets[i].partition) continue;
      subscribe(i);
      counted[i] = available(targets[i], answer_now);
      got += counted[i];
    }
    const auto min_bytes = static_cast<uint64_t>(req.min_bytes);
    while (!answer_now && got < min_bytes && !ctx.waits->closed && std::chrono::steady_clock::now() < deadline) {
      co_await wait->timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      auto woken = std::exchange(wait->woken, {});
      std::sort(woken.begin(), woken.end());
      woken.erase(std::unique(woken.begin(), woken.end()), woken.end());
      for (size_t i : woken) {
        subscribe(i);
        got -= counted[i];
        counted[i] = available(targets[i], answer_now);
        got += counted[i];
      }
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      if (subs[i] != 0) targets[i].partition->notifier.remove(subs[i]);
    }
    if (ctx.waits->closed) co_return resp;  // the client is gone: nobody to answer
  }
  // At most what the responses not yet written (clients slow to read theirs, or not reading) leave
  // of the broker's response_memory_bytes; none left: the first batch only (always whole, KIP-74).
  collect(targets, std::clamp<uint64_t>(ctx.broker.response_memory_left(), 1, max_bytes), any_error);
  co_return resp;
}

}  // namespace herald::broker
