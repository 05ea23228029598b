// libFuzzer target over every generated request decoder.
//
// Input: api_key i16, api_version i16 (big-endian), then the request body.
// The key 0xffff instead feeds the rest to decode_request_header (and checks
// that encode_request_header round-trips what it accepted).
// The body goes to the generated XRequest::decode for that key and version
// (inputs naming an unknown key or version are ignored). When decoding
// succeeds, encode -> decode must give an equal request, and encoding that
// again must give the same bytes. Responses are fuzzed too (the top bit of
// the api key selects them), because the broker encodes them and tests decode
// them.
//
// Build by hand (clang-14):
//   clang++-14 -std=c++20 -DASIO_HAS_CO_AWAIT=1 -fsanitize=fuzzer,address,undefined \
//     -Isrc -Ibuild-protocol/src/protocol/generated tests/fuzz/request_fuzz.cc \
//     src/protocol/*.cc build-protocol/src/protocol/generated/protocol/messages_*.cc \
//     src/common/result.cc -lfmt -o /tmp/request_fuzz
//   /tmp/request_fuzz -max_total_time=180 tests/fuzz/corpus/request
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "common/bytes.h"
#include "protocol/header.h"
#include "protocol/messages.h"

namespace {

using herald::ByteSpan;
using herald::Reader;
using herald::Writer;

[[noreturn]] void fail(const char* what, std::string_view name, int16_t version) {
  std::fprintf(stderr, "request_fuzz: %s: %.*s v%d\n", what, static_cast<int>(name.size()), name.data(),
               version);
  std::abort();
}

template <class T>
void roundtrip(int16_t version, ByteSpan body) {
  if (version < T::kMinVersion || version > T::kMaxVersion) return;
  Reader in(body);
  auto first = T::decode(in, version);
  if (!first) return;  // rejecting input is fine; crashing is not
  Writer out;
  first->encode(out, version);
  Reader again(out.buffer());
  auto second = T::decode(again, version);
  if (!second) fail("re-decode of encoded message failed", T::kName, version);
  if (!again.empty()) fail("re-decode left bytes over", T::kName, version);
  if (!(*first == *second)) fail("decode(encode(x)) != x", T::kName, version);
  Writer out2;
  second->encode(out2, version);
  if (out2.buffer() != out.buffer()) fail("encoding is not deterministic", T::kName, version);
}

void header_roundtrip(ByteSpan bytes) {
  Reader in(bytes);
  auto h = herald::protocol::decode_request_header(in);
  if (!h) return;
  Writer out;
  herald::protocol::encode_request_header(out, *h);
  Reader again(out.buffer());
  auto h2 = herald::protocol::decode_request_header(again);
  if (!h2 || !(*h2 == *h) || !again.empty()) fail("request header round trip", "RequestHeader", h->api_version);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in(ByteSpan(data, size));
  if (size >= 2 && data[0] == 0xff && data[1] == 0xff) {
    header_roundtrip(ByteSpan(data, size).subspan(2));
    return 0;
  }
  uint16_t key_bits = 0;
  int16_t version = 0;
  if (!in.get_u16(key_bits) || !in.get_i16(version)) return 0;
  const bool response = (key_bits & 0x8000) != 0;
  const auto api_key = static_cast<int16_t>(key_bits & 0x7fff);
  const ByteSpan body = in.rest();
  (void)herald::protocol::with_request_type(api_key, [&](auto req, auto resp) {
    if (response) {
      roundtrip<typename decltype(resp)::type>(version, body);
    } else {
      roundtrip<typename decltype(req)::type>(version, body);
    }
  });
  return 0;
}
