#include "sdk/envelope.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "common/civil_time.h"
#include "common/clock.h"
#include "common/parse.h"
#include "common/utf8.h"
#include "sdk/uuid.h"

namespace herald::sdk {
namespace {

bool is_reserved(std::string_view name) {
  return name == kHeaderSpecVersion || name == kHeaderId || name == kHeaderType ||
         name == kHeaderSource || name == kHeaderTime || name == kHeaderContentType ||
         name == kHeaderAggregateVersion;
}

bool valid_utf8(std::string_view s) { return utf8_prefix(s) == s.size(); }

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return Error{Errc::kInvalidArgument, "base64: length not a multiple of 4"};
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    int c = in[i + 2] == '=' ? 0 : val(in[i + 2]);
    int d = in[i + 3] == '=' ? 0 : val(in[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) return Error{Errc::kInvalidArgument, "base64: bad digit"};
    uint32_t v = static_cast<uint32_t>(a << 18 | b << 12 | c << 6 | d);
    out += static_cast<char>(v >> 16);
    if (in[i + 2] != '=') out += static_cast<char>((v >> 8) & 0xFF);
    if (in[i + 3] != '=') out += static_cast<char>(v & 0xFF);
  }
  return out;
}


}  // namespace

Event Event::json(std::string type, std::string source, std::string aggregate_id,
                  const nlohmann::json& data) {
  Event ev;
  ev.type = std::move(type);
  ev.source = std::move(source);
  ev.aggregate_id = std::move(aggregate_id);
  ev.payload = data.dump();
  return ev;
}

Event Event::make_tombstone(std::string aggregate_id, std::string type, std::string source) {
  Event ev;
  ev.aggregate_id = std::move(aggregate_id);
  ev.type = std::move(type);
  ev.source = std::move(source);
  ev.tombstone = true;
  ev.content_type.clear();
  return ev;
}

Result<nlohmann::json> Event::json_payload() const {
  auto j = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error{Errc::kInvalidArgument, fmt::format("event {}: payload is not valid JSON", id)};
  }
  return j;
}

std::optional<std::string> Event::extension(std::string_view name) const {
  for (const auto& h : extensions) {
    if (h.name == name) return h.value;
  }
  return std::nullopt;
}

Result<EncodedEvent> encode_in_place(Event& ev) {
  if (!ev.tombstone) {
    if (ev.type.empty()) return Error{Errc::kInvalidArgument, "event: ce_type is empty"};
    if (ev.source.empty()) return Error{Errc::kInvalidArgument, "event: ce_source is empty"};
  }
  for (const auto& h : ev.extensions) {
    if (is_reserved(h.name)) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("event: extension header '{}' is reserved", h.name)};
    }
  }
  if (ev.id.empty()) ev.id = new_uuid_v7();
  if (ev.time_ms == 0) ev.time_ms = now_ms();
  EncodedEvent out;
  out.key = ev.aggregate_id;
  if (!ev.tombstone) out.value = ev.payload;
  out.headers.reserve(7 + ev.extensions.size());
  out.headers.push_back({std::string(kHeaderSpecVersion), std::string(kSpecVersion)});
  out.headers.push_back({std::string(kHeaderId), ev.id});
  if (!ev.type.empty()) out.headers.push_back({std::string(kHeaderType), ev.type});
  if (!ev.source.empty()) out.headers.push_back({std::string(kHeaderSource), ev.source});
  out.headers.push_back({std::string(kHeaderTime), format_rfc3339(ev.time_ms)});
  if (!ev.tombstone && !ev.content_type.empty()) {
    out.headers.push_back({std::string(kHeaderContentType), ev.content_type});
  }
  if (ev.aggregate_version) {
    out.headers.push_back(
        {std::string(kHeaderAggregateVersion), std::to_string(*ev.aggregate_version)});
  }
  out.headers.insert(out.headers.end(), ev.extensions.begin(), ev.extensions.end());
  return out;
}

Result<EncodedEvent> encode(const Event& ev) {
  Event copy = ev;
  return encode_in_place(copy);
}

Result<void> decode_into(Event& ev, std::string_view key, const std::optional<std::string_view>& value,
                         const Headers& headers) {
  ev.aggregate_id.assign(key);
  ev.tombstone = !value.has_value();
  if (value) {
    ev.payload.assign(*value);
  } else {
    ev.payload.clear();
  }
  ev.content_type.assign(ev.tombstone ? std::string_view() : kJsonContentType);
  ev.id.clear();
  ev.type.clear();
  ev.source.clear();
  ev.time_ms = 0;
  ev.aggregate_version.reset();
  ev.extensions.clear();
  ev.position.reset();
  bool have_spec = false;
  for (const auto& h : headers) {
    if (h.name == kHeaderSpecVersion) {
      if (h.value.empty() || h.value[0] != '1' || (h.value.size() > 1 && h.value[1] != '.')) {
        return Error{Errc::kInvalidArgument,
                     fmt::format("ce_specversion '{}' is not 1.x", h.value)};
      }
      have_spec = true;
    } else if (h.name == kHeaderId) {
      ev.id.assign(h.value);
    } else if (h.name == kHeaderType) {
      ev.type.assign(h.value);
    } else if (h.name == kHeaderSource) {
      ev.source.assign(h.value);
    } else if (h.name == kHeaderTime) {
      auto t = parse_rfc3339(h.value);
      if (!t) return Error{Errc::kInvalidArgument, "ce_time: " + t.error().message};
      ev.time_ms = *t;
    } else if (h.name == kHeaderContentType) {
      ev.content_type.assign(h.value);
    } else if (h.name == kHeaderAggregateVersion) {
      HERALD_ASSIGN_OR_RETURN(ev.aggregate_version, parse_integer<int64_t>(kHeaderAggregateVersion, h.value));
    } else {
      ev.extensions.push_back(h);
    }
  }
  if (!ev.tombstone) {
    if (!have_spec) return Error{Errc::kInvalidArgument, "missing header ce_specversion"};
    if (ev.id.empty()) return Error{Errc::kInvalidArgument, "missing header ce_id"};
    if (ev.type.empty()) return Error{Errc::kInvalidArgument, "missing header ce_type"};
    if (ev.source.empty()) return Error{Errc::kInvalidArgument, "missing header ce_source"};
  }
  return ok();
}

Result<Event> decode(std::string_view key, const std::optional<std::string_view>& value,
                     const Headers& headers) {
  Event ev;
  HERALD_TRY(decode_into(ev, key, value, headers));
  return ev;
}

void message_headers_into(const rd_kafka_message_t& msg, Headers& out) {
  size_t n = 0;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(&msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (; rd_kafka_header_get_all(hdrs, n, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++n) {
      if (n == out.size()) out.emplace_back();
      out[n].name.assign(name);
      out[n].value.assign(value ? static_cast<const char*>(value) : "", value ? size : 0);
    }
  }
  out.resize(n);
}

Headers message_headers(const rd_kafka_message_t& msg) {
  Headers out;
  message_headers_into(msg, out);
  return out;
}

Result<Event> decode_message(const rd_kafka_message_t& msg) {
  std::string_view key;
  if (msg.key) key = std::string_view(static_cast<const char*>(msg.key), msg.key_len);
  std::optional<std::string_view> value;
  if (msg.payload) value = std::string_view(static_cast<const char*>(msg.payload), msg.len);
  return decode(key, value, message_headers(msg));
}

rd_kafka_headers_t* make_kafka_headers(const Headers& headers) {
  rd_kafka_headers_t* h = rd_kafka_headers_new(headers.size());
  for (const auto& x : headers) {
    rd_kafka_header_add(h, x.name.data(), static_cast<ssize_t>(x.name.size()), x.value.data(),
                        static_cast<ssize_t>(x.value.size()));
  }
  return h;
}

std::string text_for_db(std::string_view s, size_t max_bytes) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(std::min(s.size(), max_bytes));
  while (!s.empty()) {
    size_t n = std::min(utf8_prefix(s), s.find('\0'));
    if (out.size() + n > max_bytes) {
      n = max_bytes - out.size();
      while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // not inside a character
      out.append(s.substr(0, n));
      return out.append("\xE2\x80\xA6");  // U+2026: cut here
    }
    out.append(s.substr(0, n));
    s.remove_prefix(n);
    if (s.empty()) break;
    if (out.size() + kReplacement.size() > max_bytes) return out.append("\xE2\x80\xA6");
    out.append(kReplacement);
    s.remove_prefix(1);
  }
  return out;
}

std::string headers_to_json(const Headers& headers) {
  nlohmann::json arr = nlohmann::json::array();
  // [name, value], with a third element naming what is base64: "b64" the value, "b64-name" the
  // name, "b64-both" both (JSON text holds only UTF-8).
  for (const auto& h : headers) {
    const bool name_ok = valid_utf8(h.name), value_ok = valid_utf8(h.value);
    std::string name = name_ok ? h.name : base64_encode(h.name);
    std::string value = value_ok ? h.value : base64_encode(h.value);
    if (name_ok && value_ok) {
      arr.push_back({std::move(name), std::move(value)});
    } else {
      arr.push_back({std::move(name), std::move(value), name_ok ? "b64" : value_ok ? "b64-name" : "b64-both"});
    }
  }
  return arr.dump();
}

Result<Headers> headers_from_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) {
    return Error{Errc::kCorruption, "outbox headers: not a JSON array"};
  }
  Headers out;
  for (const auto& e : j) {
    if (!e.is_array() || e.size() < 2 || !e[0].is_string() || !e[1].is_string()) {
      return Error{Errc::kCorruption, "outbox headers: element is not [name, value]"};
    }
    Header h{e[0].get<std::string>(), e[1].get<std::string>()};
    const std::string flag = e.size() >= 3 && e[2].is_string() ? e[2].get<std::string>() : "";
    if (flag == "b64" || flag == "b64-both") {
      HERALD_ASSIGN_OR_RETURN(h.value, base64_decode(h.value));
    }
    if (flag == "b64-name" || flag == "b64-both") {
      HERALD_ASSIGN_OR_RETURN(h.name, base64_decode(h.name));
    }
    out.push_back(std::move(h));
  }
  return out;
}

std::string format_rfc3339(int64_t unix_ms) {
  int64_t secs = unix_ms >= 0 ? unix_ms / 1000 : (unix_ms - 999) / 1000;
  int64_t ms = unix_ms - secs * 1000;
  auto t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

Result<int64_t> parse_rfc3339(std::string_view s) {
  auto bad = [&] {
    return Error{Errc::kInvalidArgument, fmt::format("'{}' is not an RFC 3339 timestamp", s)};
  };
  auto digits = [&](size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, year) || s.size() < 19 || s[4] != '-' || !digits(5, 2, month) ||
      s[7] != '-' || !digits(8, 2, day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(11, 2, hour) || s[13] != ':' || !digits(14, 2, minute) || s[16] != ':' ||
      !digits(17, 2, second)) {
    return bad();
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return bad();
  }
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    int scale = 100;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return bad();
  }
  int64_t offset_s = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(pos + 4, 2, om) || oh > 23 || om > 59) {
      return bad();
    }
    offset_s = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad();
  }
  if (pos != s.size() || day > days_in_month(year, month)) return bad();
  if (second == 60) second = 59;  // a leap second reads as :59
  const int64_t secs = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                       hour * 3600 + minute * 60 + second;
  return (secs - offset_s) * 1000 + ms;
}

}  // namespace herald::sdk
