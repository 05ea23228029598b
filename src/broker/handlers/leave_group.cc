// LeaveGroup: v0-2 one member, v3+ a batch by member id or group.instance.id.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::LeaveGroupResponse> LeaveGroupHandler::handle(RequestContext& ctx, protocol::LeaveGroupRequest req) {
  co_return ctx.broker.groups().leave_group(group::client_info(ctx), req);
}

}  // namespace herald::broker
