// Kafka wire primitives shared by the generated codecs (and the header codec).
//
// Every rule that depends on "flexible or not" lives here once
// (Kafka protocol guide, "Protocol Primitives"; flexible versions: KIP-482):
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

// Error values (out of line: they sit on every decoder's cold path).
Error truncated(const char* where);
Error corrupt(const char* where, std::string_view what);
Error null_not_allowed(const char* where);
Error unsupported_version(const char* message, int16_t version);

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
// `nullable` false: the version cannot carry null, so null is written as "".
inline void write_nullable_string(Writer& w, const std::optional<std::string>& s, bool flex, bool nullable = true) {
  if (!s && !nullable) {
    write_string(w, {}, flex);
    return;
  }
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
inline void write_nullable_bytes(Writer& w, const std::optional<Bytes>& b, bool flex, bool nullable = true) {
  if (!b && !nullable) {
    write_bytes(w, {}, flex);
  } else if (!b) {
    write_null_bytes(w, flex);
  } else {
    write_bytes(w, *b, flex);
  }
}
inline void write_records(Writer& w, const Records& r, bool flex, bool nullable = true) {
  if (r.is_null && nullable) {
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
// The fixed-width readers are inline and return false when the input ends;
// the caller then returns truncated(where). The variable-length readers are
// out of line (wire.cc) so that generated decoders stay small.

inline bool get(Reader& r, int8_t& v) { return r.get_i8(v); }
inline bool get(Reader& r, int16_t& v) { return r.get_i16(v); }
inline bool get(Reader& r, uint16_t& v) { return r.get_u16(v); }
inline bool get(Reader& r, int32_t& v) { return r.get_i32(v); }
inline bool get(Reader& r, int64_t& v) { return r.get_i64(v); }
inline bool get(Reader& r, double& v) { return r.get_f64(v); }
// Any non-zero byte is true (as Kafka reads it).
inline bool get(Reader& r, bool& v) {
  uint8_t b = 0;
  if (!r.get_u8(b)) return false;
  v = b != 0;
  return true;
}
inline bool get(Reader& r, Uuid& v) {
  ByteSpan s;
  if (!r.get_span(v.size(), s)) return false;
  std::copy(s.begin(), s.end(), v.begin());
  return true;
}
// The same, as a Result naming `where`.
template <class T>
Result<void> read(Reader& r, T& v, const char* where) {
  if (!get(r, v)) return truncated(where);
  return {};
}

// An unsigned varint of at most 5 bytes that fits 32 bits.
Result<void> read_uvarint32(Reader& r, uint32_t& v, const char* where);
// Length of a string (-1 = null); checks the bytes are present.
Result<void> read_string_length(Reader& r, bool flex, int64_t& len, const char* where);
Result<void> read_string(Reader& r, bool flex, std::string& out, const char* where);
Result<void> read_nullable_string(Reader& r, bool flex, bool nullable, std::optional<std::string>& out,
                                  const char* where);
// Length of bytes/records (-1 = null); checks the bytes are present.
Result<void> read_bytes_length(Reader& r, bool flex, int64_t& len, const char* where);
Result<void> read_bytes(Reader& r, bool flex, Bytes& out, const char* where);
Result<void> read_nullable_bytes(Reader& r, bool flex, bool nullable, std::optional<Bytes>& out,
                                 const char* where);
// Records are not copied: out.view points into r's buffer.
Result<void> read_records(Reader& r, bool flex, bool nullable, Records& out, const char* where);
// Array count (-1 = null). A count that cannot fit in the remaining bytes, given
// that each element takes at least `min_element_size` bytes, is corruption:
// this check comes before any allocation.
Result<void> read_array_length(Reader& r, bool flex, size_t min_element_size, int64_t& n, const char* where);
// The memory a request's decoded arrays may take. A frame of tiny elements (2 bytes each on the
// wire) decodes into structs of 50-100 bytes each: without a budget, a 100 MiB frame would make
// the broker allocate gigabytes. While a DecodeBudget lives, every array a decoder on this thread
// sizes is charged against it (charge_decode), and a request over budget is corruption. Without
// one (clients, tests), nothing is charged.
//
//   { wire::DecodeBudget budget(4 * body.size() + (1 << 20)); req = XRequest::decode(in, v); }
class DecodeBudget {
 public:
  explicit DecodeBudget(size_t bytes);
  ~DecodeBudget();
  DecodeBudget(const DecodeBudget&) = delete;
  DecodeBudget& operator=(const DecodeBudget&) = delete;

 private:
  friend Result<void> charge_decode(size_t bytes, const char* where);
  size_t left_;
  DecodeBudget* outer_;
};
Result<void> charge_decode(size_t bytes, const char* where);
// One tagged field: its tag and a view of its bytes (skipped in `r`).
Result<void> read_tagged_field(Reader& r, uint32_t& tag, ByteSpan& body, const char* where);
// Skips a whole tagged-field section (no known tags at this position).
Result<void> skip_tagged_fields(Reader& r, const char* where);

}  // namespace herald::protocol::wire
