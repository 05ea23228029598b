// Kafka wire primitives shared by the generated codecs (and the header codec).
//
// Every rule that depends on "flexible or not" lives here once
// (kafka-protocol.md §1.2, §1.3):
//
//   type            classic (flex = false)       flexible / compact (flex = true)
//   string          i16 len, null = -1           uvarint(len + 1), null = 0
//   bytes, records  i32 len, null = -1           uvarint(len + 1), null = 0
//   array           i32 count, null = -1         uvarint(count + 1), null = 0
//   tagged fields   (none)                       uvarint n, n x {uvarint tag, uvarint size, bytes}
//
// Writers never fail. Readers never throw and never read past the Reader's
// span; on failure they return kTruncated (input ends early) or kCorruption
// (impossible length, null where not allowed, bad varint), the message
// starting with `where` ("ProduceRequest.TopicData.Name").
//
//   HERALD_TRY(wire::read_string(in, flex, name, "MetadataRequest.Topics.Name"));
//   wire::write_string(out, name, flex);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "protocol/records.h"
#include "protocol/uuid.h"

namespace herald::protocol::wire {

// Kafka's limit for any string, classic or compact (Java rejects longer ones).
inline constexpr size_t kMaxStringLength = 0x7fff;

inline Error truncated(const char* where) { return Error{Errc::kTruncated, std::string(where) + ": truncated"}; }
inline Error corrupt(const char* where, std::string_view what) {
  return Error{Errc::kCorruption, std::string(where) + ": " + std::string(what)};
}
inline Error null_not_allowed(const char* where) { return corrupt(where, "null in a version where it is not nullable"); }
inline Error unsupported_version(const char* message, int16_t version) {
  return Error{Errc::kUnsupported, std::string(message) + ": version " + std::to_string(version) + " not supported"};
}

// --- writing ---------------------------------------------------------------

// Strings longer than kMaxStringLength are cut to it (never happens for strings
// that came off the wire; guards a broker-made string against a bad length).
inline void write_string(Writer& w, std::string_view s, bool flex) {
  if (s.size() > kMaxStringLength) s = s.substr(0, kMaxStringLength);
  if (flex) {
    w.put_uvarint(s.size() + 1);
  } else {
    w.put_i16(static_cast<int16_t>(s.size()));
  }
  w.put_bytes(s);
}
inline void write_nullable_string(Writer& w, const std::optional<std::string>& s, bool flex) {
  if (!s) {
    if (flex) {
      w.put_u8(0);
    } else {
      w.put_i16(-1);
    }
    return;
  }
  write_string(w, *s, flex);
}
inline void write_bytes(Writer& w, ByteSpan b, bool flex) {
  if (flex) {
    w.put_uvarint(uint64_t{b.size()} + 1);
  } else {
    w.put_i32(static_cast<int32_t>(b.size()));
  }
  w.put_bytes(b);
}
inline void write_null_bytes(Writer& w, bool flex) {
  if (flex) {
    w.put_u8(0);
  } else {
    w.put_i32(-1);
  }
}
inline void write_nullable_bytes(Writer& w, const std::optional<Bytes>& b, bool flex) {
  if (!b) {
    write_null_bytes(w, flex);
  } else {
    write_bytes(w, *b, flex);
  }
}
inline void write_records(Writer& w, const Records& r, bool flex) {
  if (r.is_null) {
    write_null_bytes(w, flex);
  } else {
    write_bytes(w, r.bytes(), flex);
  }
}
inline void write_array_length(Writer& w, size_t n, bool flex) {
  if (flex) {
    w.put_uvarint(uint64_t{n} + 1);
  } else {
    w.put_i32(static_cast<int32_t>(n));
  }
}
inline void write_null_array(Writer& w, bool flex) {
  if (flex) {
    w.put_u8(0);
  } else {
    w.put_i32(-1);
  }
}
// One entry of a tagged-field section: tag, size, then the field's bytes.
inline void write_tagged_field(Writer& w, uint32_t tag, const Writer& field) {
  w.put_uvarint(tag);
  w.put_uvarint(field.size());
  w.put_bytes(field.buffer());
}

// --- reading ---------------------------------------------------------------

inline Result<void> read(Reader& r, int8_t& v, const char* where) {
  if (!r.get_i8(v)) return truncated(where);
  return {};
}
inline Result<void> read(Reader& r, int16_t& v, const char* where) {
  if (!r.get_i16(v)) return truncated(where);
  return {};
}
inline Result<void> read(Reader& r, uint16_t& v, const char* where) {
  if (!r.get_u16(v)) return truncated(where);
  return {};
}
inline Result<void> read(Reader& r, int32_t& v, const char* where) {
  if (!r.get_i32(v)) return truncated(where);
  return {};
}
inline Result<void> read(Reader& r, int64_t& v, const char* where) {
  if (!r.get_i64(v)) return truncated(where);
  return {};
}
inline Result<void> read(Reader& r, double& v, const char* where) {
  if (!r.get_f64(v)) return truncated(where);
  return {};
}
// Any non-zero byte is true (as Kafka reads it).
inline Result<void> read(Reader& r, bool& v, const char* where) {
  uint8_t b = 0;
  if (!r.get_u8(b)) return truncated(where);
  v = b != 0;
  return {};
}
inline Result<void> read(Reader& r, Uuid& v, const char* where) {
  ByteSpan s;
  if (!r.get_span(v.size(), s)) return truncated(where);
  std::copy(s.begin(), s.end(), v.begin());
  return {};
}

// An unsigned varint of at most 5 bytes that fits 32 bits.
inline Result<void> read_uvarint32(Reader& r, uint32_t& v, const char* where) {
  if (r.get_uvarint32(v)) return {};
  // Failing with 5+ bytes left means the varint itself is bad, not short.
  if (r.remaining() >= 5) return corrupt(where, "bad varint");
  return truncated(where);
}

// Length of a string (-1 = null). Checks the bytes are present.
inline Result<void> read_string_length(Reader& r, bool flex, int64_t& len, const char* where) {
  if (flex) {
    uint32_t n = 0;
    HERALD_TRY(read_uvarint32(r, n, where));
    len = int64_t{n} - 1;
  } else {
    int16_t n = 0;
    if (!r.get_i16(n)) return truncated(where);
    if (n < -1) return corrupt(where, "negative string length");
    len = n;
  }
  if (len > static_cast<int64_t>(kMaxStringLength)) return corrupt(where, "string longer than 32767 bytes");
  if (len > 0 && static_cast<uint64_t>(len) > r.remaining()) return truncated(where);
  return {};
}
inline Result<void> read_string(Reader& r, bool flex, std::string& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_string_length(r, flex, len, where));
  if (len < 0) return null_not_allowed(where);
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.assign(as_string_view(s));
  return {};
}
inline Result<void> read_nullable_string(Reader& r, bool flex, bool nullable, std::optional<std::string>& out,
                                         const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_string_length(r, flex, len, where));
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.reset();
    return {};
  }
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.emplace(as_string_view(s));
  return {};
}

// Length of bytes/records (-1 = null). Checks the bytes are present.
inline Result<void> read_bytes_length(Reader& r, bool flex, int64_t& len, const char* where) {
  if (flex) {
    uint32_t n = 0;
    HERALD_TRY(read_uvarint32(r, n, where));
    len = int64_t{n} - 1;
  } else {
    int32_t n = 0;
    if (!r.get_i32(n)) return truncated(where);
    if (n < -1) return corrupt(where, "negative bytes length");
    len = n;
  }
  if (len > 0 && static_cast<uint64_t>(len) > r.remaining()) return truncated(where);
  return {};
}
inline Result<void> read_bytes(Reader& r, bool flex, Bytes& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  if (len < 0) return null_not_allowed(where);
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.assign(s.begin(), s.end());
  return {};
}
inline Result<void> read_nullable_bytes(Reader& r, bool flex, bool nullable, std::optional<Bytes>& out,
                                        const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.reset();
    return {};
  }
  ByteSpan s;
  r.get_span(static_cast<size_t>(len), s);
  out.emplace(s.begin(), s.end());
  return {};
}
// Records are not copied: out.view points into r's buffer.
inline Result<void> read_records(Reader& r, bool flex, bool nullable, Records& out, const char* where) {
  int64_t len = 0;
  HERALD_TRY(read_bytes_length(r, flex, len, where));
  out.owned.reset();
  if (len < 0) {
    if (!nullable) return null_not_allowed(where);
    out.is_null = true;
    out.view = {};
    return {};
  }
  out.is_null = false;
  r.get_span(static_cast<size_t>(len), out.view);
  return {};
}

// Array count (-1 = null). A count that cannot fit in the remaining bytes, given
// that each element takes at least `min_element_size` bytes, is corruption:
// this check comes before any allocation.
inline Result<void> read_array_length(Reader& r, bool flex, size_t min_element_size, int64_t& n,
                                      const char* where) {
  if (flex) {
    uint32_t u = 0;
    HERALD_TRY(read_uvarint32(r, u, where));
    n = int64_t{u} - 1;
  } else {
    int32_t i = 0;
    if (!r.get_i32(i)) return truncated(where);
    if (i < -1) return corrupt(where, "negative array length");
    n = i;
  }
  if (n > 0 && static_cast<uint64_t>(n) > r.remaining() / min_element_size) {
    return corrupt(where, "array count " + std::to_string(n) + " exceeds the remaining " +
                              std::to_string(r.remaining()) + " bytes");
  }
  return {};
}

// One tagged field: its tag and a view of its bytes (skipped in `r`).
inline Result<void> read_tagged_field(Reader& r, uint32_t& tag, ByteSpan& body, const char* where) {
  uint32_t size = 0;
  HERALD_TRY(read_uvarint32(r, tag, where));
  HERALD_TRY(read_uvarint32(r, size, where));
  if (!r.get_span(size, body)) return truncated(where);
  return {};
}
// Skips a whole tagged-field section (no known tags at this position).
inline Result<void> skip_tagged_fields(Reader& r, const char* where) {
  uint32_t count = 0;
  HERALD_TRY(read_uvarint32(r, count, where));
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t tag = 0;
    ByteSpan body;
    HERALD_TRY(read_tagged_field(r, tag, body, where));
  }
  return {};
}

}  // namespace herald::protocol::wire
