#include "sdk/uuid.h"

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <random>

namespace herald::sdk {
namespace {

struct Generator {
  std::mutex mu;
  std::mt19937_64 rng;
  pid_t pid = 0;  // reseed after fork so parent and child never share a stream
  int64_t last_ms = -1;
  uint16_t counter = 0;  // 12 bits

  void seed_if_needed() {
    pid_t now = ::getpid();
    if (now == pid) return;
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    rng.seed(seq);
    pid = now;
  }
};

Generator& generator() {
  static Generator g;
  return g;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Uuid make_uuid_v7(int64_t unix_ms, uint16_t rand_a, uint64_t rand_b) {
  Uuid u{};
  auto ms = static_cast<uint64_t>(unix_ms) & 0xFFFFFFFFFFFFull;
  for (int i = 0; i < 6; ++i) u[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
  u[6] = static_cast<uint8_t>(0x70 | ((rand_a >> 8) & 0x0F));
  u[7] = static_cast<uint8_t>(rand_a & 0xFF);
  u[8] = static_cast<uint8_t>(0x80 | ((rand_b >> 56) & 0x3F));
  for (int i = 9; i < 16; ++i) u[i] = static_cast<uint8_t>(rand_b >> (8 * (15 - i)));
  return u;
}

Uuid new_uuid_v7_bytes() {
  auto& g = generator();
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  std::lock_guard lock(g.mu);
  g.seed_if_needed();
  if (now > g.last_ms) {
    g.last_ms = now;
    // Start the counter in the lower half so many ids fit in one millisecond.
    g.counter = static_cast<uint16_t>(g.rng() & 0x7FF);
  } else if (++g.counter > 0xFFF) {
    // Counter exhausted (or clock went back): borrow the next millisecond.
    ++g.last_ms;
    g.counter = static_cast<uint16_t>(g.rng() & 0x7FF);
  }
  return make_uuid_v7(g.last_ms, g.counter, g.rng());
}

std::string new_uuid_v7() { return format_uuid(new_uuid_v7_bytes()); }

std::string format_uuid(const Uuid& u) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[u[i] >> 4]);
    s.push_back(kHex[u[i] & 0xF]);
  }
  return s;
}

Result<Uuid> parse_uuid(std::string_view text) {
  if (text.size() != 36) return Error{Errc::kInvalidArgument, "uuid: expected 36 characters"};
  Uuid u{};
  size_t pos = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      if (text[pos] != '-') return Error{Errc::kInvalidArgument, "uuid: misplaced '-'"};
      ++pos;
    }
    int hi = hex_value(text[pos]), lo = hex_value(text[pos + 1]);
    if (hi < 0 || lo < 0) return Error{Errc::kInvalidArgument, "uuid: not a hex digit"};
    u[i] = static_cast<uint8_t>(hi << 4 | lo);
    pos += 2;
  }
  return u;
}

int uuid_version(const Uuid& u) { return u[6] >> 4; }

Result<int64_t> uuid_v7_unix_ms(std::string_view text) {
  HERALD_ASSIGN_OR_RETURN(Uuid u, parse_uuid(text));
  if (uuid_version(u) != 7 || (u[8] & 0xC0) != 0x80) {
    return Error{Errc::kInvalidArgument, "uuid: not a version 7 / variant 10 uuid"};
  }
  uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = ms << 8 | u[i];
  return static_cast<int64_t>(ms);
}

}  // namespace herald::sdk
