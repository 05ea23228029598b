#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace herald::crc32c {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};
constexpr Tables kTables;

uint32_t extend_portable(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;  // little-endian host assumed (x86_64, aarch64)
    c = kTables.t[7][lo & 0xff] ^ kTables.t[6][(lo >> 8) & 0xff] ^ kTables.t[5][(lo >> 16) & 0xff] ^
        kTables.t[4][lo >> 24] ^ kTables.t[3][hi & 0xff] ^ kTables.t[2][(hi >> 8) & 0xff] ^
        kTables.t[1][(hi >> 16) & 0xff] ^ kTables.t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ kTables.t[0][(c ^ *p++) & 0xff];
  return ~c;
}

// Multiplication modulo the CRC polynomial in the reflected domain (bit 31 is
// x^0): shifting a raw CRC register over n zero bytes multiplies it by
// x^(8n) mod P. Used to join CRCs computed over adjacent lanes.
constexpr uint32_t mult_mod_p(uint32_t a, uint32_t b) {
  uint32_t product = 0;
  for (uint32_t m = 1u << 31; m != 0; m >>= 1) {
    if (a & m) product ^= b;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return product;
}

// x^(8 * bytes) mod P.
constexpr uint32_t zeros_operator(size_t bytes) {
  uint32_t op = 1u << 31;      // x^0
  uint32_t square = 1u << 30;  // x^1, squared up to x^(2^k)
  for (size_t bits = bytes * 8; bits != 0; bits >>= 1) {
    if (bits & 1) op = mult_mod_p(square, op);
    square = mult_mod_p(square, square);
  }
  return op;
}

#if defined(__x86_64__)
// The crc32 instruction has a latency of 3 cycles and a throughput of 1 per
// cycle: three independent lanes keep it busy, then the lanes' registers are
// joined with the zeros operator of one lane's length.
template <size_t kLane>
__attribute__((target("sse4.2"))) uint64_t three_lanes(uint64_t c, const uint8_t*& p, size_t& n) {
  constexpr uint32_t kShift = zeros_operator(kLane);
  while (n >= 3 * kLane) {
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < kLane; i += 8) {
      uint64_t a, b, d;
      std::memcpy(&a, p + i, 8);
      std::memcpy(&b, p + kLane + i, 8);
      std::memcpy(&d, p + 2 * kLane + i, 8);
      c = _mm_crc32_u64(c, a);
      c1 = _mm_crc32_u64(c1, b);
      c2 = _mm_crc32_u64(c2, d);
    }
    c = mult_mod_p(kShift, static_cast<uint32_t>(c)) ^ c1;
    c = mult_mod_p(kShift, static_cast<uint32_t>(c)) ^ c2;
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t extend_sse42(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = ~crc;
  c = three_lanes<4096>(c, p, n);
  c = three_lanes<256>(c, p, n);
  while (n >= 8) {
    uint64_t a;
    std::memcpy(&a, p, 8);
    c = _mm_crc32_u64(c, a);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

bool detect_sse42() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_SSE4_2) != 0;
}
const bool kHaveSse42 = detect_sse42();
#else
const bool kHaveSse42 = false;
#endif

}  // namespace

uint32_t extend(uint32_t crc, const uint8_t* data, size_t n) {
#if defined(__x86_64__)
  if (kHaveSse42) return extend_sse42(crc, data, n);
#endif
  return extend_portable(crc, data, n);
}

bool hardware_accelerated() { return kHaveSse42; }

}  // namespace herald::crc32c
