// Human-readable rendering of generated messages for logs and test failures.
//
// Every generated message has `std::string to_string(const XRequest&)` and an
// fmt formatter, so:
//
//   HLOG_DEBUG("<- {}", request);   // ProduceRequest{transactional_id=null, acks=-1, ...}
//
// Strings are quoted, bytes and records show their size only, lists show at
// most kMaxListItems elements. Every field is shown, including fields the
// version on the wire did not carry (they hold their defaults).
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "protocol/records.h"
#include "protocol/uuid.h"

namespace herald::protocol::format {

inline constexpr size_t kMaxListItems = 16;

inline void append(std::string& out, int8_t v) { fmt::format_to(std::back_inserter(out), "{}", int{v}); }
inline void append(std::string& out, int16_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }
inline void append(std::string& out, uint16_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }
inline void append(std::string& out, int32_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }
inline void append(std::string& out, int64_t v) { fmt::format_to(std::back_inserter(out), "{}", v); }
inline void append(std::string& out, double v) { fmt::format_to(std::back_inserter(out), "{}", v); }
inline void append(std::string& out, bool v) { out += v ? "true" : "false"; }
inline void append(std::string& out, const std::string& v) {
  out += '"';
  out += v;
  out += '"';
}
inline void append(std::string& out, const Bytes& v) { fmt::format_to(std::back_inserter(out), "<{} bytes>", v.size()); }
inline void append(std::string& out, const Records& v) {
  if (v.is_null) {
    out += "null";
  } else {
    fmt::format_to(std::back_inserter(out), "<{} bytes of records>", v.size());
  }
}
inline void append(std::string& out, const Uuid& v) {
  for (uint8_t b : v) fmt::format_to(std::back_inserter(out), "{:02x}", b);
}
template <class T>
void append(std::string& out, const std::optional<T>& v) {
  if (!v) {
    out += "null";
  } else {
    append(out, *v);
  }
}

// `each(out, element)` renders one element.
template <class T, class F>
void append_list(std::string& out, const std::vector<T>& v, F each) {
  out += '[';
  for (size_t i = 0; i < v.size() && i < kMaxListItems; ++i) {
    if (i > 0) out += ", ";
    each(out, v[i]);
  }
  if (v.size() > kMaxListItems) fmt::format_to(std::back_inserter(out), ", ... ({} more)", v.size() - kMaxListItems);
  out += ']';
}
template <class T, class F>
void append_list(std::string& out, const std::optional<std::vector<T>>& v, F each) {
  if (!v) {
    out += "null";
  } else {
    append_list(out, *v, each);
  }
}

// Base of the generated fmt::formatter specializations.
template <class T>
struct ToStringFormatter : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const T& v, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(to_string(v), ctx);
  }
};

}  // namespace herald::protocol::format
