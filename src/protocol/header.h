// Request and response headers (Kafka protocol guide, "Common Request and Response Structure").
//
// A frame's body (after the i32 size) starts with the request header. Which
// header version follows from the api key and request version:
//
//   header   used when                     layout
//   v1       request version not flexible  api_key i16, api_version i16, correlation_id i32,
//                                          client_id str? (i16 length)
//   v2       request version flexible      v1, then a tagged-field section (client_id stays
//                                          i16-length so any broker can read it)
//   resp v0  not flexible, or ApiVersions  correlation_id i32
//   resp v1  flexible (not ApiVersions)    correlation_id i32, tagged-field section
//
//   Reader in(frame_body);
//   HERALD_ASSIGN_OR_RETURN(RequestHeader h, decode_request_header(in));
//   // `in` is now at the request body: XRequest::decode(in, h.api_version)
//   Writer out;
//   out.put_i32(0);                                   // frame size, patched below
//   encode_response_header(out, h.api_key, h.api_version, h.correlation_id);
//   response.encode(out, h.api_version);
//   out.put_i32_at(0, static_cast<int32_t>(out.size() - 4));
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/bytes.h"
#include "common/result.h"

namespace herald::protocol {

struct RequestHeader {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string> client_id;  // may be null on the wire

  bool operator==(const RequestHeader&) const = default;
};

// Request header version (1 or 2) for a request; -1 for an api key without a
// codec. Versions above the codec's maximum keep the flexible rule, so an
// ApiVersions request of a future version is still readable.
int16_t request_header_version(int16_t api_key, int16_t api_version);

// Response header version (0 or 1); -1 for an api key without a codec.
// ApiVersions responses always use v0.
int16_t response_header_version(int16_t api_key, int16_t api_version);

// Reads the request header and leaves `in` at the start of the body.
// Errors: kTruncated (header cut short), kCorruption (negative version, bad
// client_id length, bad tagged section), kUnsupported (unknown api key: the
// caller closes the connection). A version outside the codec's range is NOT an
// error here: the caller answers ApiVersions with UNSUPPORTED_VERSION and
// closes on others.
Result<RequestHeader> decode_request_header(Reader& in);

// Writes the header version request_header_version() picks (v1 or v2).
// `h.api_key` must have a codec.
void encode_request_header(Writer& out, const RequestHeader& h);

// Writes the response header (v0 or v1) for the request's api key and version.
// `api_key` must have a codec.
void encode_response_header(Writer& out, int16_t api_key, int16_t api_version, int32_t correlation_id);

// Reads a response header (clients and tests).
Result<int32_t> decode_response_header(Reader& in, int16_t api_key, int16_t api_version);

}  // namespace herald::protocol
