// FindCoordinator: this node coordinates every group (v0-3: one key, v4+:
// batched keys). Transactions are not implemented: key_type 1 gets
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, which clients treat as final.
#include "broker/broker_impl.h"
#include "broker/group/group_coordinator.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

asio::awaitable<protocol::FindCoordinatorResponse> FindCoordinatorHandler::handle(RequestContext& ctx,
                                                                                  protocol::FindCoordinatorRequest req) {
  using protocol::ErrorCode;
  protocol::FindCoordinatorResponse resp;
  auto& b = ctx.broker;
  // One key's answer: error (or NONE) and this node's address.
  auto lookup = [&](int32_t& node_id, std::string& host, int32_t& port) -> std::pair<ErrorCode, std::string> {
    node_id = -1;
    host.clear();
    port = -1;
    if (req.key_type == 1) return {ErrorCode::kTransactionalIdAuthorizationFailed, "transactions are not supported"};
    if (req.key_type != 0) return {ErrorCode::kInvalidRequest, "unsupported key type"};
    if (!b.groups().active()) return {ErrorCode::kCoordinatorNotAvailable, "group coordinator is loading"};
    node_id = b.config().node_id;
    host = b.advertised_host();
    port = b.port();
    return {ErrorCode::kNone, {}};
  };
  if (ctx.version() < 4) {
    auto [e, msg] = lookup(resp.node_id, resp.host, resp.port);
    resp.error_code = code(e);
    resp.error_message = e == ErrorCode::kNone ? std::nullopt : std::optional<std::string>(msg);
    co_return resp;
  }
  for (const auto& key : req.coordinator_keys) {
    protocol::FindCoordinatorResponse::Coordinator c;
    c.key = key;
    auto [e, msg] = lookup(c.node_id, c.host, c.port);
    c.error_code = code(e);
    c.error_message = e == ErrorCode::kNone ? std::nullopt : std::optional<std::string>(msg);
    resp.coordinators.push_back(std::move(c));
  }
  co_return resp;
}

}  // namespace herald::broker
