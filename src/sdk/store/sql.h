// SQL text helpers shared by the two stores (internal to store/).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"
#include "sdk/store/store.h"

namespace herald::sdk::detail {

// Rewrites '?' placeholders to $1..$n, leaving '...' literals, "..." identifiers,
// $tag$...$tag$ bodies and comments alone. Sets *count to the number found.
std::string rewrite_placeholders(std::string_view sql, int* count = nullptr);

// True for [A-Za-z_][A-Za-z0-9_]* up to 63 characters (a safe SQL identifier).
bool is_identifier(std::string_view s);

// Offset of the first byte of `s` that is NUL or not part of well-formed
// UTF-8 (overlong forms, surrogates and code points above U+10FFFF are not);
// npos when every byte is.
size_t bad_text_byte(std::string_view s);

// Checks every text parameter of `sql` (see store.h: text must be UTF-8
// without NUL on both stores). kInvalidArgument naming the 1-based parameter
// and the byte; `store` prefixes the message ("sqlite", "postgres").
Result<void> check_text_params(const char* store, std::string_view sql, const Params& params);

}  // namespace herald::sdk::detail
