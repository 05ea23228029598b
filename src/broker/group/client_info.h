// ClientInfo for the group coordinator from a request's context.
#pragma once

#include "broker/group/group_coordinator.h"
#include "broker/handlers/handler.h"

namespace herald::broker::group {

inline ClientInfo client_info(const RequestContext& ctx) {
  return ClientInfo{ctx.header.client_id.value_or(""), ctx.peer_host, ctx.version()};
}

}  // namespace herald::broker::group
