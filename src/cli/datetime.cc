#include "cli/datetime.h"

#include <fmt/format.h>

#include <cctype>
#include <ctime>

#include "common/civil_time.h"
#include "common/parse.h"

namespace herald::cli {
namespace {

Error bad(std::string_view text, std::string_view why) {
  return Error{Errc::kInvalidArgument,
               fmt::format("'{}' is not an ISO-8601 datetime ({}); expected e.g. 2024-05-01T12:00:00Z, "
                           "2024-05-01T14:00:00+02:00, 2024-05-01 12:00 (local time) or @1714564800000",
                           text, why)};
}

// Reads exactly `n` digits at `pos` into `out`.
bool digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool parse_int64(std::string_view s, int64_t& out) {
  auto r = parse_integer<int64_t>("", s);
  if (r) out = *r;
  return r.has_value();
}

}  // namespace

Result<int64_t> parse_datetime(std::string_view text) {
  if (!text.empty() && text[0] == '@') {
    int64_t ms = 0;
    if (!parse_int64(text.substr(1), ms) || ms < 0) return bad(text, "bad epoch milliseconds after '@'");
    return ms;
  }
  size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  int64_t millis = 0;
  if (!digits(text, pos, 4, year) || pos >= text.size() || text[pos++] != '-' || !digits(text, pos, 2, month) ||
      pos >= text.size() || text[pos++] != '-' || !digits(text, pos, 2, day)) {
    return bad(text, "the date must be YYYY-MM-DD");
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return bad(text, "no such date");
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    if (!digits(text, pos, 2, hour) || pos >= text.size() || text[pos++] != ':' || !digits(text, pos, 2, minute)) {
      return bad(text, "the time must be HH:MM[:SS[.fff]]");
    }
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!digits(text, pos, 2, second)) return bad(text, "seconds must be two digits");
      if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
        ++pos;
        size_t start = pos;
        int64_t scale = 100;
        while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
          millis += (text[pos] - '0') * scale;  // digits past milliseconds add 0
          scale /= 10;
          ++pos;
        }
        if (pos == start) return bad(text, "a fraction needs digits");
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return bad(text, "no such time of day");
  }
  bool has_zone = false;
  int64_t offset_minutes = 0;
  if (pos < text.size()) {
    char c = text[pos];
    if (c == 'Z' || c == 'z') {
      has_zone = true;
      ++pos;
    } else if (c == '+' || c == '-') {
      ++pos;
      int zh = 0, zm = 0;
      if (!digits(text, pos, 2, zh)) return bad(text, "the zone must be Z, ±HH, ±HHMM or ±HH:MM");
      if (pos < text.size() && text[pos] == ':') ++pos;
      if (pos < text.size() && !digits(text, pos, 2, zm)) return bad(text, "the zone must be Z, ±HH, ±HHMM or ±HH:MM");
      if (zh > 23 || zm > 59) return bad(text, "no such zone offset");
      has_zone = true;
      offset_minutes = (c == '+' ? 1 : -1) * (zh * 60 + zm);
    }
  }
  if (pos != text.size()) return bad(text, fmt::format("unexpected '{}'", text.substr(pos)));

  if (has_zone) {
    int64_t secs = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                   hour * 3600 + minute * 60 + second - offset_minutes * 60;
    return secs * 1000 + millis;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  tm.tm_isdst = -1;  // let the C library decide whether DST applies
  std::time_t t = std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1)) return bad(text, "not representable in local time");
  return static_cast<int64_t>(t) * 1000 + millis;
}

std::string format_timestamp(int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  auto t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms - secs * 1000);
}

Result<StartPosition> parse_start_position(std::string_view text) {
  using Kind = StartPosition::Kind;
  if (text == "earliest" || text == "beginning") return StartPosition{Kind::kEarliest, 0};
  if (text == "latest" || text == "end") return StartPosition{Kind::kLatest, 0};
  int64_t n = 0;
  if (all_digits(text)) {
    if (!parse_int64(text, n)) return Error{Errc::kInvalidArgument, fmt::format("offset '{}' is too large", text)};
    return StartPosition{Kind::kOffset, n};
  }
  if (text.size() > 1 && text[0] == '-' && all_digits(text.substr(1))) {
    if (!parse_int64(text.substr(1), n)) return Error{Errc::kInvalidArgument, fmt::format("'{}' is too large", text)};
    return StartPosition{Kind::kTail, n};
  }
  auto ts = parse_datetime(text);
  if (!ts) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("--from '{}': expected earliest, latest, an offset, -N (the last N records), "
                             "@EPOCH_MS or an ISO-8601 datetime such as 2024-05-01T12:00:00Z",
                             text)};
  }
  return StartPosition{Kind::kTimestamp, *ts};
}

}  // namespace herald::cli
