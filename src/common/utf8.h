// UTF-8 well-formedness (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF).
#pragma once

#include <cstddef>
#include <string_view>

namespace herald {

// Length of the longest prefix of `s` that is well-formed UTF-8.
size_t utf8_prefix(std::string_view s);

}  // namespace herald
