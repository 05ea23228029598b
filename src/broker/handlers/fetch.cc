// Fetch: whole batches from each requested partition, up to the high
// watermark, within max_bytes and partition_max_bytes (the first batch of the
// first partition with data is always sent whole, KIP-74). With less than
// min_bytes available the request is held until data arrives or max_wait_ms
// passes (long polling); appends to any requested partition wake it. While it
// waits, only sizes are checked: the data is read once, when it is answered.
#include <asio/experimental/as_tuple.hpp>

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

// Fills every partition's response from the logs; returns the bytes of record data collected.
// Without `read_data` only the bytes that would be collected are counted (from the index, no file
// reads, nothing held): a request waiting for min_bytes checks that way on every wake-up.
uint64_t collect(std::vector<Target>& targets, uint64_t max_bytes, bool read_data, bool& any_error) {
  uint64_t total = 0;
  bool first_data = true;
  for (auto& t : targets) {
    FetchPartition& out = *t.out;
    if (!t.partition) continue;  // error already set
    if (t.partition->removed.load()) {  // the topic was deleted while the request waited
      out.high_watermark = out.last_stable_offset = out.log_start_offset = -1;
      out.records = protocol::Records{};
      out.records.is_null = false;
      out.error_code = code(ErrorCode::kUnknownTopicOrPartition);
      any_error = true;
      continue;
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
      continue;
    }
    if (t.fetch_offset >= hwm) continue;
    uint64_t budget = std::min<uint64_t>(static_cast<uint64_t>(std::max(t.max_bytes, 0)),
                                         max_bytes > total ? max_bytes - total : 0);
    if (budget == 0 && !first_data) continue;
    auto rr = log.read(t.fetch_offset, std::max<uint64_t>(budget, 1), hwm);
    if (!rr) {
      out.error_code = code(to_error_code(rr.error().code));
      any_error = true;
      if (rr.error().code == Errc::kCorruption) {
        HLOG_ERROR("fetch read: {}", rr.error().to_string());
      } else {
        HLOG_WARN("fetch {}: {}", t.partition->index, rr.error().to_string());
      }
      continue;
    }
    if (rr->total_bytes == 0) continue;
    if (!first_data && rr->total_bytes > budget) continue;  // only the very first batch may exceed the limits
    if (!read_data) {
      total += rr->total_bytes;
      first_data = false;
      continue;
    }
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
  return total;
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
  for (;;) {
    // Register for wake-ups before reading, so an append between the read and the wait is not missed.
    auto timer = std::make_shared<asio::steady_timer>(ctx.executor, deadline);
    std::vector<std::pair<std::shared_ptr<Partition>, DataNotifier::Id>> subs;
    bool waiting = req.max_wait_ms > 0 && std::chrono::steady_clock::now() < deadline;
    if (waiting) {
      for (auto& t : targets) {
        if (!t.partition) continue;
        auto id = t.partition->notifier.add([weak = std::weak_ptr<asio::steady_timer>(timer), ex = ctx.executor] {
          asio::post(ex, [weak] {
            if (auto tm = weak.lock()) tm->cancel();
          });
        });
        subs.emplace_back(t.partition, id);
      }
    }
    // As in Kafka: answered at once when min_bytes <= 0 or there is nothing to fetch.
    bool done = !waiting || targets.empty() || req.min_bytes <= 0;
    if (!done) {
      const uint64_t got = collect(targets, max_bytes, /*read_data=*/false, any_error);
      done = any_error || got >= static_cast<uint64_t>(req.min_bytes);
    }
    if (!done) co_await timer->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    for (auto& [p, id] : subs) p->notifier.remove(id);
    if (done || std::chrono::steady_clock::now() >= deadline) break;
  }
  collect(targets, max_bytes, /*read_data=*/true, any_error);
  co_return resp;
}

}  // namespace herald::broker
