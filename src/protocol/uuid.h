// Uuid: Kafka's 16-byte `uuid` field type (topic ids, ...), carried as raw bytes.
//
//   Uuid id{};                  // all zero = "no id" on the wire
//   if (is_zero(id)) ...
#pragma once

#include <array>
#include <cstdint>

namespace herald::protocol {

using Uuid = std::array<uint8_t, 16>;

inline bool is_zero(const Uuid& id) {
  for (uint8_t b : id) {
    if (b != 0) return false;
  }
  return true;
}

}  // namespace herald::protocol
