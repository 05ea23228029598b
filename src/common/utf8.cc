#include "common/utf8.h"

#include <cstdint>

namespace herald {

size_t utf8_prefix(std::string_view s) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = b[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // Lead byte: the sequence's length and the smallest code point it may
    // encode (anything less is an overlong form).
    size_t len = 0;
    uint32_t cp = 0, min = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1Fu;
      min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0Fu;
      min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07u;
      min = 0x10000;
    } else {
      return i;  // a continuation byte, or 0xF8..0xFF
    }
    if (n - i < len) return i;  // cut short
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = b[i + k];
      if ((cc & 0xC0) != 0x80) return i;
      cp = cp << 6 | (cc & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return n;
}

}  // namespace herald
