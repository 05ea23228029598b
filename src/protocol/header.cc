#include "protocol/header.h"

#include "common/check.h"
#include "protocol/api_keys.h"
#include "protocol/wire.h"

namespace herald::protocol {

int16_t request_header_version(int16_t api_key, int16_t api_version) {
  const ApiInfo* api = find_api(api_key);
  if (api == nullptr) return -1;
  return api_version >= api->first_flexible_version ? 2 : 1;
}

int16_t response_header_version(int16_t api_key, int16_t api_version) {
  const ApiInfo* api = find_api(api_key);
  if (api == nullptr) return -1;
  if (api_key == kApiVersions) return 0;  // so a client can always read the error
  return api_version >= api->first_flexible_version ? 1 : 0;
}

Result<RequestHeader> decode_request_header(Reader& in) {
  RequestHeader h;
  if (!in.get_i16(h.api_key) || !in.get_i16(h.api_version) || !in.get_i32(h.correlation_id)) {
    return wire::truncated("request header");
  }
  if (h.api_version < 0) return wire::corrupt("request header", "negative api version");
  const int16_t header_version = request_header_version(h.api_key, h.api_version);
  if (header_version < 0) {
    return Error{Errc::kUnsupported, "request header: unknown api key " + std::to_string(h.api_key)};
  }
  HERALD_TRY(wire::read_nullable_string(in, /*flex=*/false, /*nullable=*/true, h.client_id,
                                        "request header client_id"));
  if (header_version >= 2) HERALD_TRY(wire::skip_tagged_fields(in, "request header tagged fields"));
  return h;
}

void encode_request_header(Writer& out, const RequestHeader& h) {
  const int16_t header_version = request_header_version(h.api_key, h.api_version);
  HERALD_CHECK(header_version >= 0, "no codec for api key {}", h.api_key);
  out.put_i16(h.api_key);
  out.put_i16(h.api_version);
  out.put_i32(h.correlation_id);
  wire::write_nullable_string(out, h.client_id, /*flex=*/false);
  if (header_version >= 2) out.put_u8(0);
}

void encode_response_header(Writer& out, int16_t api_key, int16_t api_version, int32_t correlation_id) {
  const int16_t header_version = response_header_version(api_key, api_version);
  HERALD_CHECK(header_version >= 0, "no codec for api key {}", api_key);
  out.put_i32(correlation_id);
  if (header_version >= 1) out.put_u8(0);
}

Result<int32_t> decode_response_header(Reader& in, int16_t api_key, int16_t api_version) {
  const int16_t header_version = response_header_version(api_key, api_version);
  if (header_version < 0) {
    return Error{Errc::kUnsupported, "response header: unknown api key " + std::to_string(api_key)};
  }
  int32_t correlation_id = 0;
  if (!in.get_i32(correlation_id)) return wire::truncated("response header");
  if (header_version >= 1) HERALD_TRY(wire::skip_tagged_fields(in, "response header tagged fields"));
  return correlation_id;
}

}  // namespace herald::protocol
