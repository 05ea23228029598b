#include "cli/output.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/last_line.h"

namespace herald::cli {

void add_format_option(CLI::App* cmd, OutputFormat& format, const char* what) {
  cmd->add_option_function<std::string>(
         "-o,--format", [&format](const std::string& v) { format = v == "json" ? OutputFormat::kJson : OutputFormat::kPlain; },
         std::string("Output format [plain]; json: ") + what)
      ->check(CLI::IsMember({"plain", "json"}).description(""))
      ->type_name("plain|json");
}

void Table::print(std::FILE* out, std::string_view indent) const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s(indent);
    for (size_t i = 0; i < cells.size() && i < widths.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s.append(widths[i] - cells[i].size() + 2, ' ');
    }
    fmt::print(out, "{}\n", s);
  };
  line(headers_);
  for (const auto& row : rows_) line(row);
}

bool is_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;
    for (size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;  // overlong, surrogate
    i += extra + 1;
  }
  return true;
}

std::string base64_encode(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

nlohmann::json bytes_to_json(const void* data, size_t size) {
  if (!data) return nullptr;
  std::string_view s(static_cast<const char*>(data), size);
  if (is_utf8(s)) return std::string(s);
  return nlohmann::json{{"base64", base64_encode(s)}};
}

void print_json(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s += '\n';
  std::fwrite(s.data(), 1, s.size(), stdout);
}

namespace {
LastLine g_client_error;
}  // namespace

void note_client_error(std::string_view line) { g_client_error.set(line); }

std::string last_client_error() { return g_client_error.get(); }

}  // namespace herald::cli
