// OffsetFetch: committed offsets (v8+: several groups per request).
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::OffsetFetchResponse> OffsetFetchHandler::handle(RequestContext& ctx, protocol::OffsetFetchRequest req) {
  co_return co_await ctx.broker.groups().offset_fetch(group::client_info(ctx), std::move(req));
}

}  // namespace herald::broker
