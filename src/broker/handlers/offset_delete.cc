// OffsetDelete: committed offsets of an Empty group, or of topics a consumer group does not subscribe to.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::OffsetDeleteResponse> OffsetDeleteHandler::handle(RequestContext& ctx, protocol::OffsetDeleteRequest req) {
  co_return co_await ctx.broker.groups().offset_delete(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
