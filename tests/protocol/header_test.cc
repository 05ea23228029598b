#include "protocol/header.h"

#include <gtest/gtest.h>

#include "protocol/api_keys.h"

namespace herald::protocol {
namespace {

Bytes encode(const RequestHeader& h) {
  Writer w;
  encode_request_header(w, h);
  return w.take();
}

TEST(RequestHeaderVersion, FollowsTheFirstFlexibleVersion) {
  EXPECT_EQ(request_header_version(kProduce, 8), 1);
  EXPECT_EQ(request_header_version(kProduce, 9), 2);
  EXPECT_EQ(request_header_version(kMetadata, 0), 1);
  EXPECT_EQ(request_header_version(kMetadata, 12), 2);
  EXPECT_EQ(request_header_version(kApiVersions, 2), 1);
  EXPECT_EQ(request_header_version(kApiVersions, 3), 2);
  EXPECT_EQ(request_header_version(kApiVersions, 99), 2);  // a future version stays readable
  EXPECT_EQ(request_header_version(9999, 0), -1);
}

TEST(ResponseHeaderVersion, ApiVersionsIsAlwaysV0) {
  EXPECT_EQ(response_header_version(kApiVersions, 0), 0);
  EXPECT_EQ(response_header_version(kApiVersions, 3), 0);
  EXPECT_EQ(response_header_version(kApiVersions, 4), 0);
  EXPECT_EQ(response_header_version(kMetadata, 8), 0);
  EXPECT_EQ(response_header_version(kMetadata, 9), 1);
  EXPECT_EQ(response_header_version(kFetch, 12), 1);
  EXPECT_EQ(response_header_version(9999, 0), -1);
}

TEST(RequestHeader, V1Bytes) {
  RequestHeader h{kMetadata, 4, 7, "rdkafka"};
  const Bytes expect = {0, 3, 0, 4, 0, 0, 0, 7, 0, 7, 'r', 'd', 'k', 'a', 'f', 'k', 'a'};
  EXPECT_EQ(encode(h), expect);
  Reader r(expect);
  auto d = decode_request_header(r);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(*d, h);
  EXPECT_TRUE(r.empty());
}

TEST(RequestHeader, V2KeepsClassicClientIdThenTaggedSection) {
  // ApiVersions v3 as librdkafka sends it: client_id "rdkafka" (i16 length), empty tags.
  const Bytes frame = {0, 18, 0, 3, 0, 0, 0, 1, 0, 7, 'r', 'd', 'k', 'a', 'f', 'k', 'a', 0, 0xAB};
  Reader r(frame);
  auto d = decode_request_header(r);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->api_key, kApiVersions);
  EXPECT_EQ(d->api_version, 3);
  EXPECT_EQ(d->correlation_id, 1);
  EXPECT_EQ(d->client_id, "rdkafka");
  EXPECT_EQ(r.remaining(), 1u);  // left at the body
  EXPECT_EQ(encode(*d), Bytes(frame.begin(), frame.end() - 1));
}

TEST(RequestHeader, UnknownTaggedFieldsInV2AreSkipped) {
  const Bytes frame = {0, 0, 0, 9, 0, 0, 0, 5, 0xff, 0xff, 2, 0, 1, 0x11, 7, 2, 0x22, 0x33, 0x44};
  Reader r(frame);
  auto d = decode_request_header(r);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->api_version, 9);
  EXPECT_FALSE(d->client_id.has_value());
  EXPECT_EQ(r.remaining(), 1u);
}

TEST(RequestHeader, NullClientId) {
  RequestHeader h{kFetch, 11, -3, std::nullopt};
  Bytes b = encode(h);
  Reader r(b);
  auto d = decode_request_header(r);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, h);
}

TEST(RequestHeader, UnknownApiKeyIsUnsupported) {
  const Bytes frame = {0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0};
  Reader r(frame);
  auto d = decode_request_header(r);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::kUnsupported);
}

TEST(RequestHeader, NegativeVersionIsCorruption) {
  const Bytes frame = {0, 3, 0xff, 0xff, 0, 0, 0, 1, 0, 0};
  Reader r(frame);
  auto d = decode_request_header(r);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::kCorruption);
}

TEST(RequestHeader, EveryTruncationFails) {
  for (int16_t version : {int16_t{4}, int16_t{12}}) {
    Bytes b = encode(RequestHeader{kMetadata, version, 42, "client"});
    for (size_t len = 0; len < b.size(); ++len) {
      Reader r(ByteSpan(b).first(len));
      auto d = decode_request_header(r);
      ASSERT_FALSE(d) << "len " << len;
      EXPECT_EQ(d.error().code, Errc::kTruncated) << d.error().to_string();
    }
  }
}

TEST(ResponseHeader, V0AndV1Bytes) {
  Writer w0;
  encode_response_header(w0, kMetadata, 8, 0x01020304);
  EXPECT_EQ(w0.buffer(), (Bytes{1, 2, 3, 4}));
  Writer w1;
  encode_response_header(w1, kMetadata, 9, 0x01020304);
  EXPECT_EQ(w1.buffer(), (Bytes{1, 2, 3, 4, 0}));
  Writer wa;
  encode_response_header(wa, kApiVersions, 3, 9);
  EXPECT_EQ(wa.buffer(), (Bytes{0, 0, 0, 9}));
  Reader r(w1.buffer());
  auto c = decode_response_header(r, kMetadata, 9);
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, 0x01020304);
  EXPECT_TRUE(r.empty());
}

TEST(ApiTable, LookupAndFlexibility) {
  const ApiInfo* p = find_api(kProduce);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "Produce");
  EXPECT_EQ(p->max_version, 11);
  EXPECT_TRUE(is_flexible(kProduce, 9));
  EXPECT_FALSE(is_flexible(kProduce, 8));
  EXPECT_EQ(find_api(9999), nullptr);
  EXPECT_FALSE(is_flexible(9999, 0));
  for (size_t i = 1; i < all_apis().size(); ++i) EXPECT_LT(all_apis()[i - 1].api_key, all_apis()[i].api_key);
}

}  // namespace
}  // namespace herald::protocol
