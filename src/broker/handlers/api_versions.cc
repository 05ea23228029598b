// ApiVersions: the supported range of every API, computed from the handler
// table. A version above ours gets UNSUPPORTED_VERSION in a v0 body listing
// ApiVersions' own range, so the client retries with one we speak.
#include "broker/handlers/error_mapping.h"
#include "broker/handlers/handlers.h"

namespace herald::broker {

using protocol::ErrorCode;

asio::awaitable<protocol::ApiVersionsResponse> ApiVersionsHandler::handle(RequestContext&,
                                                                         protocol::ApiVersionsRequest) {
  protocol::ApiVersionsResponse resp;
  for (const auto& e : handler_table()) {
    auto& k = resp.api_keys.emplace_back();
    k.api_key = e.api_key;
    k.min_version = e.min_version;
    k.max_version = e.max_version;
  }
  co_return resp;
}

asio::awaitable<HandlerOutcome> run_api_versions(RequestContext& ctx, ByteSpan body) {
  if (ctx.version() <= ApiVersionsHandler::kMaxVersion) co_return co_await run_handler<ApiVersionsHandler>(ctx, body);
  protocol::ApiVersionsResponse resp;
  resp.error_code = code(ErrorCode::kUnsupportedVersion);
  auto& k = resp.api_keys.emplace_back();
  k.api_key = ApiVersionsHandler::Request::kApiKey;
  k.min_version = ApiVersionsHandler::kMinVersion;
  k.max_version = ApiVersionsHandler::kMaxVersion;
  ctx.header.api_version = 0;  // the body and header are v0
  co_return HandlerOutcome{encode_response(ctx, resp), {}};
}

}  // namespace herald::broker
