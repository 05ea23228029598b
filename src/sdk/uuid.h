// UUIDv7 (RFC 9562 section 5.7): 48-bit Unix milliseconds, version 7, 12 bits
// of sub-millisecond counter (RFC 9562 6.2 method 1, seeded randomly each
// millisecond), variant 10, 62 random bits. IDs from one process sort by
// creation time, byte-wise and as strings, which keeps B-tree inserts local.
//
//   std::string id = new_uuid_v7();          // "018f3c6e-7a5b-7c3d-9e4f-0123456789ab"
//   int64_t ms = uuid_v7_unix_ms(id).value();
//
// Thread-safe. Monotonic within a process even when the wall clock steps back
// (the last timestamp is kept and the counter advances).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace herald::sdk {

using Uuid = std::array<uint8_t, 16>;

// A new UUIDv7 in canonical lowercase 8-4-4-4-12 form.
std::string new_uuid_v7();
// The 16 bytes of a new UUIDv7.
Uuid new_uuid_v7_bytes();
// The UUIDv7 for a given time and random bits (deterministic; for tests).
Uuid make_uuid_v7(int64_t unix_ms, uint16_t rand_a, uint64_t rand_b);

std::string format_uuid(const Uuid& u);
// Parses the canonical 36-character form (either case); kInvalidArgument otherwise.
Result<Uuid> parse_uuid(std::string_view text);
// The version nibble (7 for UUIDv7).
int uuid_version(const Uuid& u);
// The millisecond timestamp of a UUIDv7; kInvalidArgument when text is not one.
Result<int64_t> uuid_v7_unix_ms(std::string_view text);

}  // namespace herald::sdk
