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

// Bit at a time, straight from the definition: the reference for the fast paths
// (three interleaved lanes of 4096 and 256 bytes, 8-byte and byte tails).
uint32_t reference_crc(const uint8_t* p, size_t n) {
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, MatchesTheDefinitionAtEveryLaneBoundary) {
  std::vector<uint8_t> data(3 * 4096 * 2 + 3 * 256 + 64);
  uint32_t x = 12345;
  for (auto& b : data) b = static_cast<uint8_t>((x = x * 1103515245u + 12345u) >> 24);
  std::vector<size_t> lengths = {0, 1, 7, 8, 9, 767, 768, 769, 3 * 256 + 8, 12287, 12288, 12289,
                                 2 * 12288, 2 * 12288 + 768, data.size() - 1};
  for (size_t n : lengths) {
    for (size_t offset : {0ul, 1ul, 3ul}) {  // unaligned starts too
      if (offset + n > data.size()) continue;
      EXPECT_EQ(crc32c::extend(0, data.data() + offset, n), reference_crc(data.data() + offset, n))
          << "n=" << n << " offset=" << offset;
    }
  }
}

}  // namespace
}  // namespace herald
