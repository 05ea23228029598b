// OffsetForLeaderEpoch: one node, one epoch (0) for the whole log.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

asio::awaitable<protocol::OffsetForLeaderEpochResponse> OffsetForLeaderEpochHandler::handle(
    RequestContext& ctx, protocol::OffsetForLeaderEpochRequest req) {
  protocol::OffsetForLeaderEpochResponse resp;
  for (const auto& rt : req.topics) {
    auto& ot = resp.topics.emplace_back();
    ot.topic = rt.topic;
    auto topic = ctx.broker.topics().find(rt.topic);
    for (const auto& rp : rt.partitions) {
      auto& op = ot.partitions.emplace_back();
      op.partition = rp.partition;
      op.leader_epoch = -1;
      op.end_offset = -1;
      auto p = topic ? topic->partition(rp.partition) : nullptr;
      if (!p) {
        op.error_code = code(ErrorCode::kUnknownTopicOrPartition);
      } else if (rp.current_leader_epoch > 0) {
        op.error_code = code(ErrorCode::kUnknownLeaderEpoch);
      } else if (rp.leader_epoch >= 0 && rp.leader_epoch <= 0) {
        op.leader_epoch = 0;
        op.end_offset = p->log->log_end_offset();
      }
    }
  }
  co_return resp;
}

}  // namespace herald::broker
