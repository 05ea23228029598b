// SQL text helpers shared by the two stores (internal to store/).
#pragma once

#include <string>
#include <string_view>

namespace herald::sdk::detail {

// Rewrites '?' placeholders to $1..$n, leaving '...' literals, "..." identifiers,
// $tag$...$tag$ bodies and comments alone. Sets *count to the number found.
std::string rewrite_placeholders(std::string_view sql, int* count = nullptr);

// True for [A-Za-z_][A-Za-z0-9_]* up to 63 characters (a safe SQL identifier).
bool is_identifier(std::string_view s);

}  // namespace herald::sdk::detail
