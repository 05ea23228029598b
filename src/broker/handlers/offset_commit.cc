// OffsetCommit: answered once the commit records in __consumer_offsets are durable.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::OffsetCommitResponse> OffsetCommitHandler::handle(RequestContext& ctx, protocol::OffsetCommitRequest req) {
  co_return co_await ctx.broker.groups().offset_commit(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
