// Big-endian integer coding and the two cursors every codec uses.
//
// Reader never throws and never reads past its span: each get_* returns
// false (and leaves the cursor where it was) when too few bytes remain, so a
// decoder of untrusted input checks one bool per field.
//
//   Reader in(frame);
//   int16_t api_key; int32_t corr;
//   if (!in.get_i16(api_key) || !in.get_i32(corr)) return Error{Errc::kTruncated, "header"};
//
//   Writer out;                      // owns a growing std::vector<uint8_t>
//   out.put_i32(0);                  // placeholder, patched later with put_i32_at
//   out.put_bytes(payload);
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;
using MutableByteSpan = std::span<uint8_t>;

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string_view(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// --- fixed-width big-endian load/store (leveldb util/coding.h, big-endian) ---
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}
inline uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
inline uint64_t load_be64(const uint8_t* p) {
  return (static_cast<uint64_t>(load_be32(p)) << 32) | load_be32(p + 4);
}

// --- unsigned LEB128 and zigzag varints (Kafka record fields, KIP-482) ---
constexpr uint32_t zigzag_encode32(int32_t n) {
  return (static_cast<uint32_t>(n) << 1) ^ static_cast<uint32_t>(n >> 31);
}
constexpr uint64_t zigzag_encode64(int64_t n) {
  return (static_cast<uint64_t>(n) << 1) ^ static_cast<uint64_t>(n >> 63);
}
constexpr int32_t zigzag_decode32(uint32_t u) {
  return static_cast<int32_t>((u >> 1) ^ (~(u & 1) + 1));
}
constexpr int64_t zigzag_decode64(uint64_t u) {
  return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
}

// Number of bytes uvarint encoding of v takes (1..10).
inline size_t uvarint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}
inline size_t varint_size(int64_t v) { return uvarint_size(zigzag_encode64(v)); }

class Reader {
 public:
  Reader() = default;
  explicit Reader(ByteSpan data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }
  ByteSpan rest() const { return data_.subspan(pos_); }
  ByteSpan data() const { return data_; }

  bool get_u8(uint8_t& v) {
    if (remaining() < 1) return false;
    v = data_[pos_++];
    return true;
  }
  bool get_i8(int8_t& v) {
    uint8_t u;
    if (!get_u8(u)) return false;
    v = static_cast<int8_t>(u);
    return true;
  }
  bool get_i16(int16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<int16_t>(load_be16(data_.data() + pos_));
    pos_ += 2;
    return true;
  }
  bool get_u16(uint16_t& v) {
    if (remaining() < 2) return false;
    v = load_be16(data_.data() + pos_);
    pos_ += 2;
    return true;
  }
  bool get_i32(int32_t& v) {
    if (remaining() < 4) return false;
    v = static_cast<int32_t>(load_be32(data_.data() + pos_));
    pos_ += 4;
    return true;
  }
  bool get_u32(uint32_t& v) {
    if (remaining() < 4) return false;
    v = load_be32(data_.data() + pos_);
    pos_ += 4;
    return true;
  }
  bool get_i64(int64_t& v) {
    if (remaining() < 8) return false;
    v = static_cast<int64_t>(load_be64(data_.data() + pos_));
    pos_ += 8;
    return true;
  }
  bool get_u64(uint64_t& v) {
    if (remaining() < 8) return false;
    v = load_be64(data_.data() + pos_);
    pos_ += 8;
    return true;
  }
  bool get_f64(double& v) {
    uint64_t u;
    if (!get_u64(u)) return false;
    std::memcpy(&v, &u, sizeof v);
    return true;
  }
  // Unsigned LEB128, at most max_bytes bytes (5 for 32-bit, 10 for 64-bit).
  bool get_uvarint(uint64_t& v, size_t max_bytes = 10) {
    uint64_t result = 0;
    size_t p = pos_;
    for (size_t i = 0; i < max_bytes; ++i) {
      if (p >= data_.size()) return false;
      uint8_t b = data_[p++];
      result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) {
        pos_ = p;
        v = result;
        return true;
      }
    }
    return false;
  }
  bool get_uvarint32(uint32_t& v) {
    uint64_t u;
    if (!get_uvarint(u, 5) || u > 0xffffffffu) return false;
    v = static_cast<uint32_t>(u);
    return true;
  }
  bool get_varint32(int32_t& v) {
    uint32_t u;
    if (!get_uvarint32(u)) return false;
    v = zigzag_decode32(u);
    return true;
  }
  bool get_varint64(int64_t& v) {
    uint64_t u;
    if (!get_uvarint(u, 10)) return false;
    v = zigzag_decode64(u);
    return true;
  }
  // A view of the next n bytes (no copy); valid while the underlying buffer lives.
  bool get_span(size_t n, ByteSpan& out) {
    if (remaining() < n) return false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  ByteSpan data_;
  size_t pos_ = 0;
};

class Writer {
 public:
  Writer() = default;
  explicit Writer(size_t reserve) { buf_.reserve(reserve); }

  size_t size() const { return buf_.size(); }
  Bytes& buffer() { return buf_; }
  const Bytes& buffer() const { return buf_; }
  Bytes take() { return std::move(buf_); }

  void put_u8(uint8_t v) { buf_.push_back(v); }
  void put_i8(int8_t v) { buf_.push_back(static_cast<uint8_t>(v)); }
  void put_i16(int16_t v) { put_u16(static_cast<uint16_t>(v)); }
  void put_u16(uint16_t v) {
    uint8_t b[2];
    store_be16(b, v);
    buf_.insert(buf_.end(), b, b + 2);
  }
  void put_i32(int32_t v) { put_u32(static_cast<uint32_t>(v)); }
  void put_u32(uint32_t v) {
    uint8_t b[4];
    store_be32(b, v);
    buf_.insert(buf_.end(), b, b + 4);
  }
  void put_i64(int64_t v) { put_u64(static_cast<uint64_t>(v)); }
  void put_u64(uint64_t v) {
    uint8_t b[8];
    store_be64(b, v);
    buf_.insert(buf_.end(), b, b + 8);
  }
  void put_f64(double v) {
    uint64_t u;
    std::memcpy(&u, &v, sizeof u);
    put_u64(u);
  }
  void put_uvarint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<uint8_t>(v));
  }
  void put_varint32(int32_t v) { put_uvarint(zigzag_encode32(v)); }
  void put_varint64(int64_t v) { put_uvarint(zigzag_encode64(v)); }
  void put_bytes(ByteSpan b) { buf_.insert(buf_.end(), b.begin(), b.end()); }
  void put_bytes(std::string_view s) { put_bytes(as_bytes(s)); }

  // Patch a value written earlier (e.g. a length prefix).
  void put_i32_at(size_t pos, int32_t v) { store_be32(buf_.data() + pos, static_cast<uint32_t>(v)); }
  void put_u32_at(size_t pos, uint32_t v) { store_be32(buf_.data() + pos, v); }

 private:
  Bytes buf_;
};

}  // namespace herald
