// ListGroups: every group this node coordinates (v4+ state filter, v5 type filter).
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::ListGroupsResponse> ListGroupsHandler::handle(RequestContext& ctx, protocol::ListGroupsRequest req) {
  co_return ctx.broker.groups().list_groups(group::client_info(ctx), req);
}

}  // namespace herald::broker
