// ApiKey and the table of generated APIs (key, name, version range, first
// flexible version), generated from src/protocol/schema/*.json, so it always
// matches the codecs that exist.
//
//   const ApiInfo* api = find_api(header.api_key);
//   if (api == nullptr) close_connection();            // unknown api key
//   bool flexible = header.api_version >= api->first_flexible_version;
//
// What the broker advertises in ApiVersions is its handler list, not this
// table: a codec may exist for versions the broker does not serve.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace herald::protocol {

struct ApiInfo {
  int16_t api_key;
  std::string_view name;           // "Produce", "Fetch", ...
  int16_t min_version;             // generated codec range
  int16_t max_version;
  int16_t first_flexible_version;  // 0x7fff: never flexible
};

#include "protocol/api_table.inc"  // enum ApiKey, kApiTable

inline constexpr std::span<const ApiInfo> all_apis() { return kApiTable; }

// The row for `api_key`, or nullptr when no codec exists for it.
inline constexpr const ApiInfo* find_api(int16_t api_key) {
  for (const ApiInfo& a : kApiTable) {
    if (a.api_key == api_key) return &a;
  }
  return nullptr;
}

// True when `version` of `api_key` uses flexible encodings (false if unknown).
inline constexpr bool is_flexible(int16_t api_key, int16_t version) {
  const ApiInfo* a = find_api(api_key);
  return a != nullptr && version >= a->first_flexible_version;
}

}  // namespace herald::protocol
