// InitProducerId: a new, never reused producer id with epoch 0 for
// idempotent producers. Transactional ids are refused (no transactions yet).
#include "broker/broker_impl.h"
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"
#include "common/log.h"

namespace herald::broker {

using protocol::ErrorCode;

asio::awaitable<protocol::InitProducerIdResponse> InitProducerIdHandler::handle(RequestContext& ctx,
                                                                               protocol::InitProducerIdRequest req) {
  protocol::InitProducerIdResponse resp;
  resp.producer_id = -1;
  resp.producer_epoch = -1;
  if (req.transactional_id) {
    resp.error_code = code(ErrorCode::kTransactionalIdAuthorizationFailed);
    co_return resp;
  }
  auto id = ctx.broker.producer_ids().next();
  if (!id) {
    HLOG_ERROR("producer id allocation: {}", id.error().to_string());
    resp.error_code = code(ErrorCode::kCoordinatorLoadInProgress);
    co_return resp;
  }
  resp.producer_id = *id;
  resp.producer_epoch = 0;
  co_return resp;
}

}  // namespace herald::broker
