// DeleteGroups: an Empty group and its committed offsets (tombstones in __consumer_offsets).
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::DeleteGroupsResponse> DeleteGroupsHandler::handle(RequestContext& ctx, protocol::DeleteGroupsRequest req) {
  co_return co_await ctx.broker.groups().delete_groups(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
