// Every generated message, every version: a populated instance (every field
// that exists in the version set, see fill_sample) encodes and decodes back
// equal, consuming exactly the bytes written; and every strict prefix of the
// encoding fails to decode without crashing.
#include <gtest/gtest.h>

#include <string>

#include "protocol/api_keys.h"
#include "protocol/messages.h"
#include "protocol/samples.h"

namespace herald::protocol {
namespace {

using testing::SampleGen;

constexpr uint64_t kSeedsPerVersion = 24;

template <class T>
void expect_round_trips() {
  for (int16_t v = T::kMinVersion; v <= T::kMaxVersion; ++v) {
    for (uint64_t seed = 1; seed <= kSeedsPerVersion; ++seed) {
      SCOPED_TRACE(std::string(T::kName) + " v" + std::to_string(v) + " seed " + std::to_string(seed));
      T m;
      SampleGen g(seed * 131 + static_cast<uint64_t>(v));
      fill_sample(m, v, g);
      Writer w;
      m.encode(w, v);
      Reader r(w.buffer());
      auto decoded = T::decode(r, v);
      ASSERT_TRUE(decoded) << decoded.error().to_string();
      EXPECT_TRUE(r.empty()) << r.remaining() << " bytes left";
      EXPECT_TRUE(*decoded == m);
      // Encoding the decoded value reproduces the same bytes.
      Writer w2;
      decoded->encode(w2, v);
      EXPECT_EQ(w2.buffer(), w.buffer());
    }
  }
}

template <class T>
void expect_prefixes_fail() {
  for (int16_t v = T::kMinVersion; v <= T::kMaxVersion; ++v) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      T m;
      SampleGen g(seed * 977 + static_cast<uint64_t>(v));
      fill_sample(m, v, g);
      Writer w;
      m.encode(w, v);
      for (size_t len = 0; len < w.size(); ++len) {
        Reader r(ByteSpan(w.buffer()).first(len));
        auto decoded = T::decode(r, v);
        ASSERT_FALSE(decoded) << T::kName << " v" << v << " decoded from " << len << " of " << w.size()
                              << " bytes";
        EXPECT_TRUE(decoded.error().code == Errc::kTruncated || decoded.error().code == Errc::kCorruption)
            << decoded.error().to_string();
        EXPECT_EQ(decoded.error().message.rfind(std::string(T::kName), 0), 0u) << decoded.error().message;
      }
    }
  }
}

class EveryApi : public ::testing::TestWithParam<ApiInfo> {};

TEST_P(EveryApi, RequestAndResponseRoundTripInEveryVersion) {
  bool known = with_request_type(GetParam().api_key, [](auto req, auto resp) {
    expect_round_trips<typename decltype(req)::type>();
    expect_round_trips<typename decltype(resp)::type>();
  });
  EXPECT_TRUE(known);
}

TEST_P(EveryApi, EveryTruncationIsAnErrorNamingTheMessage) {
  with_request_type(GetParam().api_key, [](auto req, auto resp) {
    expect_prefixes_fail<typename decltype(req)::type>();
    expect_prefixes_fail<typename decltype(resp)::type>();
  });
}

TEST_P(EveryApi, VersionsOutsideTheRangeAreUnsupported) {
  with_request_type(GetParam().api_key, [](auto req, auto) {
    using Req = typename decltype(req)::type;
    const uint8_t zeros[64] = {};
    Reader r1((ByteSpan(zeros)));
    auto below = Req::decode(r1, static_cast<int16_t>(Req::kMinVersion - 1));
    ASSERT_FALSE(below);
    EXPECT_EQ(below.error().code, Errc::kUnsupported);
    Reader r2((ByteSpan(zeros)));
    auto above = Req::decode(r2, static_cast<int16_t>(Req::kMaxVersion + 1));
    ASSERT_FALSE(above);
    EXPECT_EQ(above.error().code, Errc::kUnsupported);
  });
}

TEST_P(EveryApi, TableMatchesTheGeneratedTypes) {
  const ApiInfo api = GetParam();
  with_request_type(api.api_key, [&](auto req, auto resp) {
    using Req = typename decltype(req)::type;
    using Resp = typename decltype(resp)::type;
    EXPECT_EQ(Req::kApiKey, api.api_key);
    EXPECT_EQ(Resp::kApiKey, api.api_key);
    EXPECT_EQ(Req::kMinVersion, api.min_version);
    EXPECT_EQ(Req::kMaxVersion, api.max_version);
    EXPECT_EQ(Req::kFirstFlexibleVersion, api.first_flexible_version);
    EXPECT_EQ(std::string(Req::kName), std::string(api.name) + "Request");
    EXPECT_EQ(std::string(Resp::kName), std::string(api.name) + "Response");
  });
}

INSTANTIATE_TEST_SUITE_P(Generated, EveryApi, ::testing::ValuesIn(all_apis().begin(), all_apis().end()),
                         [](const ::testing::TestParamInfo<ApiInfo>& p) { return std::string(p.param.name); });

TEST(NonNullableVersions, NullIsWrittenAsEmpty) {
  MetadataRequest all;  // topics null: "all topics" from v1 on
  all.topics.reset();
  Writer v0;
  all.encode(v0, 0);  // v0 cannot say null; [] means all topics there
  EXPECT_EQ(v0.buffer(), (Bytes{0, 0, 0, 0}));
  Writer v1;
  all.encode(v1, 1);
  EXPECT_EQ(v1.buffer(), (Bytes{0xff, 0xff, 0xff, 0xff}));
  MetadataResponse resp;
  resp.topics.emplace_back().name.reset();  // nullable only from v12
  Writer w;
  resp.encode(w, 1);
  Reader r(w.buffer());
  auto d = MetadataResponse::decode(r, 1);
  ASSERT_TRUE(d) << d.error().to_string();
  EXPECT_EQ(d->topics[0].name, "");
}

TEST(WithRequestType, UnknownKeyReturnsFalseOrEmpty) {
  int calls = 0;
  EXPECT_FALSE(with_request_type(9999, [&](auto, auto) { ++calls; }));
  EXPECT_FALSE(with_request_type(-1, [&](auto, auto) { return 1; }).has_value());
  EXPECT_EQ(calls, 0);
  auto key = with_request_type(kFetch, [](auto req, auto) { return decltype(req)::type::kApiKey; });
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(*key, 1);
}

}  // namespace
}  // namespace herald::protocol
