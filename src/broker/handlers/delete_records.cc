// DeleteRecords: moves a partition's log start offset forward (-1 = high
// watermark); whole segments below it are removed. Refused on compacted topics.
// Runs on the admin thread: it waits for a compaction pass of the partition.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "broker/handlers/wait.h"

namespace herald::broker {

using protocol::ErrorCode;

namespace {

protocol::DeleteRecordsResponse delete_records(BrokerImpl& b, const protocol::DeleteRecordsRequest& req) {
  protocol::DeleteRecordsResponse resp;
  for (const auto& rt : req.topics) {
    auto& ot = resp.topics.emplace_back();
    ot.name = rt.name;
    auto topic = b.topics().find(rt.name);
    for (const auto& rp : rt.partitions) {
      auto& op = ot.partitions.emplace_back();
      op.partition_index = rp.partition_index;
      op.low_watermark = -1;
      auto p = topic ? topic->partition(rp.partition_index) : nullptr;
      if (!p) {
        op.error_code = code(ErrorCode::kUnknownTopicOrPartition);
        continue;
      }
      if (topic->config().log.compact && !topic->config().log.delete_retention) {
        op.error_code = code(ErrorCode::kPolicyViolation);
        continue;
      }
      int64_t hwm = p->log->high_watermark();
      int64_t target = rp.offset == -1 ? hwm : rp.offset;
      if (target < 0 || target > hwm) {
        op.error_code = code(ErrorCode::kOffsetOutOfRange);
        continue;
      }
      auto r = b.topics().delete_records_before(*topic, *p, target);
      if (!r) {
        op.error_code = code(to_error_code(r.error().code));
        continue;
      }
      op.low_watermark = *r;
    }
  }
  return resp;
}

}  // namespace

asio::awaitable<protocol::DeleteRecordsResponse> DeleteRecordsHandler::handle(RequestContext& ctx,
                                                                             protocol::DeleteRecordsRequest req) {
  co_return co_await on_admin_thread(ctx, [&] { return delete_records(ctx.broker, req); });
}

}  // namespace herald::broker
