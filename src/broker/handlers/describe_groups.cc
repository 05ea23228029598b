// DescribeGroups: state, protocol, members with client id/host and their metadata/assignment bytes.
#include "broker/broker_impl.h"
#include "broker/group/client_info.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::DescribeGroupsResponse> DescribeGroupsHandler::handle(RequestContext& ctx, protocol::DescribeGroupsRequest req) {
  co_return ctx.broker.groups().describe_groups(group::client_info(ctx), req);
}

}  // namespace herald::broker
