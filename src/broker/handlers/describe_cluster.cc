// DescribeCluster: this node is the whole cluster and its controller.
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

asio::awaitable<protocol::DescribeClusterResponse> DescribeClusterHandler::handle(
    RequestContext& ctx, protocol::DescribeClusterRequest req) {
  protocol::DescribeClusterResponse resp;
  if (ctx.version() >= 1 && req.endpoint_type == 2) {
    resp.error_code = code(ErrorCode::kMismatchedEndpointType);
    resp.error_message = "Herald has no separate controller endpoints";
    co_return resp;
  }
  resp.endpoint_type = req.endpoint_type;
  resp.cluster_id = ctx.broker.cluster_id();
  resp.controller_id = ctx.broker.config().node_id;
  auto& b = resp.brokers.emplace_back();
  b.broker_id = ctx.broker.config().node_id;
  b.host = ctx.broker.advertised_host();
  b.port = ctx.broker.port();
  co_return resp;
}

}  // namespace herald::broker
