// SyncGroup: followers wait for the leader's assignment; the leader's is stored durably first.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::SyncGroupResponse> SyncGroupHandler::handle(RequestContext& ctx, protocol::SyncGroupRequest req) {
  co_return co_await ctx.broker.groups().sync_group(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
