#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/bytes.h"

namespace herald {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff), inc(32);
  for (size_t i = 0; i < 32; ++i) inc[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(crc32c::value(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c::value(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c::value(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c::value(as_bytes("123456789")), 0xE3069283u);
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string s;
  for (int i = 0; i < 100000; ++i) s.push_back(static_cast<char>(i * 31 + 7));
  auto whole = crc32c::value(as_bytes(s));
  for (size_t cut : {0ul, 1ul, 7ul, 4096ul, 12289ul, 99999ul}) {
    auto a = as_bytes(std::string_view(s).substr(0, cut));
    auto b = as_bytes(std::string_view(s).substr(cut));
    EXPECT_EQ(crc32c::extend(crc32c::value(a), b), whole) << cut;
  }
}

}  // namespace
}  // namespace herald
