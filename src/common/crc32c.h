// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78): the
// checksum of Kafka record batches v2 and of Herald's own on-disk files.
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// start-up), a slicing-by-8 table otherwise.
//
//   uint32_t crc = crc32c::value(bytes);
//   uint32_t crc2 = crc32c::extend(crc32c::value(part1), part2);  // == value(part1 + part2)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace herald::crc32c {

// CRC of data appended to a stream whose CRC so far is `crc` (0 for none).
uint32_t extend(uint32_t crc, const uint8_t* data, size_t n);

inline uint32_t value(std::span<const uint8_t> data) { return extend(0, data.data(), data.size()); }
inline uint32_t extend(uint32_t crc, std::span<const uint8_t> data) {
  return extend(crc, data.data(), data.size());
}

// True when the hardware path is in use (for benchmarks and logs).
bool hardware_accelerated();

}  // namespace herald::crc32c
