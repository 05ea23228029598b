// ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local
// (-4), latest tiered (-5), or the first offset at/after a timestamp (time
// index). Never beyond the high watermark.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

asio::awaitable<protocol::ListOffsetsResponse> ListOffsetsHandler::handle(RequestContext& ctx,
                                                                         protocol::ListOffsetsRequest req) {
  protocol::ListOffsetsResponse resp;
  for (const auto& rt : req.topics) {
    auto& ot = resp.topics.emplace_back();
    ot.name = rt.name;
    auto topic = ctx.broker.topics().find(rt.name);
    for (const auto& rp : rt.partitions) {
      auto& op = ot.partitions.emplace_back();
      op.partition_index = rp.partition_index;
      op.timestamp = -1;
      op.offset = -1;
      op.leader_epoch = 0;
      auto p = topic ? topic->partition(rp.partition_index) : nullptr;
      if (!p) {
        op.error_code = code(ErrorCode::kUnknownTopicOrPartition);
        continue;
      }
      if (rp.current_leader_epoch > 0) {
        op.error_code = code(ErrorCode::kUnknownLeaderEpoch);
        continue;
      }
      auto& log = *p->log;
      const int64_t hwm = log.high_watermark();
      switch (rp.timestamp) {
        case -1: op.offset = hwm; break;
        case -2:
        case -4: op.offset = log.log_start_offset(); break;
        case -5: break;
        case -3: {
          if (auto m = log.max_timestamp(); m && m->offset < hwm) {
            op.offset = m->offset;
            op.timestamp = m->timestamp;
          }
          break;
        }
        default: {
          if (rp.timestamp < 0) {
            op.error_code = code(ErrorCode::kInvalidRequest);
            break;
          }
          auto r = log.offset_for_timestamp(rp.timestamp);
          if (!r) {
            op.error_code = code(to_error_code(r.error().code));
          } else if (*r && (*r)->offset < hwm) {
            op.offset = (*r)->offset;
            op.timestamp = (*r)->timestamp;
          }
        }
      }
      if (ctx.version() == 0 && op.error_code == 0) {
        // v0 lists offsets before the time asked; for a time after the last record, Kafka's
        // answer is the log end (where a consumer starting "from then" begins), not nothing.
        if (op.offset >= 0) {
          op.old_style_offsets = {op.offset};
        } else if (rp.timestamp >= 0) {
          op.old_style_offsets = {hwm};
        }
      }
    }
  }
  co_return resp;
}

}  // namespace herald::broker
