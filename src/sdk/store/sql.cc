#include "sdk/store/sql.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/utf8.h"

namespace herald::sdk::detail {

std::string rewrite_placeholders(std::string_view sql, int* count) {
  std::string out;
  out.reserve(sql.size() + 16);
  int n = 0;
  size_t i = 0;
  auto copy_until = [&](std::string_view end) {
    size_t e = sql.find(end, i);
    size_t stop = e == std::string_view::npos ? sql.size() : e + end.size();
    out.append(sql.substr(i, stop - i));
    i = stop;
  };
  while (i < sql.size()) {
    char c = sql[i];
    if (c == '\'') {
      // '' inside a literal is an escaped quote: the loop simply re-enters.
      out += c;
      ++i;
      copy_until("'");
    } else if (c == '"') {
      out += c;
      ++i;
      copy_until("\"");
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      copy_until("\n");
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      copy_until("*/");
    } else if (c == '$') {
      // Dollar quote $tag$ ... $tag$ (tag may be empty); $1 style params are copied.
      size_t j = i + 1;
      while (j < sql.size() && (std::isalnum(static_cast<unsigned char>(sql[j])) || sql[j] == '_')) {
        ++j;
      }
      if (j < sql.size() && sql[j] == '$' &&
          (j == i + 1 || !std::isdigit(static_cast<unsigned char>(sql[i + 1])))) {
        std::string_view tag = sql.substr(i, j - i + 1);
        out.append(tag);
        i = j + 1;
        copy_until(tag);
      } else {
        out += c;
        ++i;
      }
    } else if (c == '?') {
      out += '$';
      out += std::to_string(++n);
      ++i;
    } else {
      out += c;
      ++i;
    }
  }
  if (count) *count = n;
  return out;
}

bool is_identifier(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

size_t bad_text_byte(std::string_view s) {
  const size_t at = std::min(utf8_prefix(s), s.find('\0'));
  return at == s.size() ? std::string_view::npos : at;
}

Result<void> check_text_params(const char* store, std::string_view sql, const Params& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].kind() != Param::Kind::kText) continue;
    const std::string& text = params[i].as_bytes();
    size_t at = bad_text_byte(text);
    if (at == std::string_view::npos) continue;
    const char* what = text[at] == '\0' ? "a NUL byte" : "invalid UTF-8";
    return Error{Errc::kInvalidArgument,
                 fmt::format("{}: parameter {} of '{}' is not storable text: {} at byte {} "
                             "(text must be UTF-8 without NUL; bind bytes with Param::blob())",
                             store, i + 1, sql, what, at)};
  }
  return ok();
}

}  // namespace herald::sdk::detail
