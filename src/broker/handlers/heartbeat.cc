// Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::HeartbeatResponse> HeartbeatHandler::handle(RequestContext& ctx, protocol::HeartbeatRequest req) {
  co_return ctx.broker.groups().heartbeat(group::client_info(ctx), req);
}

}  // namespace herald::broker
