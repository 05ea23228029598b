// JoinGroup: held until the group's join barrier completes (group/group_coordinator.h).
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::JoinGroupResponse> JoinGroupHandler::handle(RequestContext& ctx, protocol::JoinGroupRequest req) {
  co_return co_await ctx.broker.groups().join_group(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
