#include "broker/group/offsets_format.h"

#include <fmt/format.h>

namespace herald::broker::group {
namespace {

constexpr int16_t kOffsetKeyVersion = 1;
constexpr int16_t kGroupKeyVersion = 2;
constexpr int16_t kOffsetValueVersion = 3;
constexpr int16_t kGroupValueVersion = 3;

// Kafka's strings in these records are i16-length: at most 32767 bytes. A
// longer one would be written with a negative length, and the decoder would
// reject the whole record (on replay: the group's generation and members lost).
constexpr size_t kMaxStringBytes = 32767;

Result<void> check_str(std::string_view field, std::string_view s) {
  if (s.size() <= kMaxStringBytes) return ok();
  return Error{Errc::kInvalidArgument,
               fmt::format("__consumer_offsets {}: {} bytes, over the {} of an i16-length string", field, s.size(),
                           kMaxStringBytes)};
}
Result<void> check_nullable_str(std::string_view field, const std::optional<std::string>& s) {
  return s ? check_str(field, *s) : ok();
}

// The caller checked the length (check_str).
void put_str(Writer& w, std::string_view s) {
  w.put_i16(static_cast<int16_t>(s.size()));
  w.put_bytes(s);
}
void put_nullable_str(Writer& w, const std::optional<std::string>& s) {
  if (!s) {
    w.put_i16(-1);
  } else {
    put_str(w, *s);
  }
}
void put_bytes(Writer& w, ByteSpan b) {
  w.put_i32(static_cast<int32_t>(b.size()));
  w.put_bytes(b);
}

Error corrupt(std::string_view what) { return Error{Errc::kCorruption, fmt::format("__consumer_offsets {}", what)}; }

bool get_str(Reader& r, std::string& out) {
  int16_t n;
  ByteSpan b;
  if (!r.get_i16(n) || n < 0 || !r.get_span(static_cast<size_t>(n), b)) return false;
  out.assign(as_string_view(b));
  return true;
}
bool get_nullable_str(Reader& r, std::optional<std::string>& out) {
  int16_t n;
  if (!r.get_i16(n)) return false;
  if (n == -1) {
    out.reset();
    return true;
  }
  ByteSpan b;
  if (n < 0 || !r.get_span(static_cast<size_t>(n), b)) return false;
  out.emplace(as_string_view(b));
  return true;
}
bool get_bytes(Reader& r, Bytes& out) {
  int32_t n;
  ByteSpan b;
  if (!r.get_i32(n)) return false;
  if (n == -1) {
    out.clear();
    return true;
  }
  if (n < 0 || !r.get_span(static_cast<size_t>(n), b)) return false;
  out.assign(b.begin(), b.end());
  return true;
}

// Appends one UTF-16 code unit (or a surrogate pair) of code point cp to the hash.
void hash_code_point(uint32_t cp, int32_t& h) {
  auto mix = [&h](uint32_t unit) { h = static_cast<int32_t>(31u * static_cast<uint32_t>(h) + unit); };
  if (cp >= 0x10000) {
    cp -= 0x10000;
    mix(0xD800 + (cp >> 10));
    mix(0xDC00 + (cp & 0x3FF));
  } else {
    mix(cp);
  }
}

}  // namespace

int32_t java_string_hash(std::string_view s) {
  int32_t h = 0;
  size_t i = 0;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  while (i < s.size()) {
    uint8_t b = p[i];
    uint32_t cp = 0;
    size_t len = 0;
    if (b < 0x80) {
      cp = b;
      len = 1;
    } else if ((b & 0xE0) == 0xC0) {
      cp = b & 0x1F;
      len = 2;
    } else if ((b & 0xF0) == 0xE0) {
      cp = b & 0x0F;
      len = 3;
    } else if ((b & 0xF8) == 0xF0) {
      cp = b & 0x07;
      len = 4;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        ok = false;
      } else {
        cp = (cp << 6) | (p[i + k] & 0x3F);
      }
    }
    // Overlong forms, surrogates and values past U+10FFFF are malformed too.
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      hash_code_point(0xFFFD, h);
      ++i;
      continue;
    }
    hash_code_point(cp, h);
    i += len;
  }
  return h;
}

int32_t partition_for(std::string_view group_id, int32_t partitions) {
  int32_t h = java_string_hash(group_id);
  int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
  return a % partitions;
}

Result<Bytes> encode_offset_key(const OffsetKey& k) {
  HERALD_TRY(check_str("group", k.group));
  HERALD_TRY(check_str("topic", k.topic));
  Writer w(8 + k.group.size() + k.topic.size());
  w.put_i16(kOffsetKeyVersion);
  put_str(w, k.group);
  put_str(w, k.topic);
  w.put_i32(k.partition);
  return w.take();
}

Result<Bytes> encode_group_key(const GroupKey& k) {
  HERALD_TRY(check_str("group", k.group));
  Writer w(4 + k.group.size());
  w.put_i16(kGroupKeyVersion);
  put_str(w, k.group);
  return w.take();
}

Result<Bytes> encode_offset_value(const OffsetValue& v) {
  HERALD_TRY(check_str("offset metadata", v.metadata));
  Writer w(26 + v.metadata.size());
  w.put_i16(kOffsetValueVersion);
  w.put_i64(v.offset);
  w.put_i32(v.leader_epoch);
  put_str(w, v.metadata);
  w.put_i64(v.commit_timestamp);
  return w.take();
}

Result<Bytes> encode_group_value(const GroupValue& v) {
  HERALD_TRY(check_str("protocol type", v.protocol_type));
  HERALD_TRY(check_nullable_str("protocol", v.protocol));
  HERALD_TRY(check_nullable_str("leader", v.leader));
  for (const auto& m : v.members) {
    HERALD_TRY(check_str("member id", m.member_id));
    HERALD_TRY(check_nullable_str("group instance id", m.group_instance_id));
    HERALD_TRY(check_str("client id", m.client_id));
    HERALD_TRY(check_str("client host", m.client_host));
  }
  Writer w(64);
  w.put_i16(kGroupValueVersion);
  put_str(w, v.protocol_type);
  w.put_i32(v.generation);
  put_nullable_str(w, v.protocol);
  put_nullable_str(w, v.leader);
  w.put_i64(v.current_state_timestamp);
  w.put_i32(static_cast<int32_t>(v.members.size()));
  for (const auto& m : v.members) {
    put_str(w, m.member_id);
    put_nullable_str(w, m.group_instance_id);
    put_str(w, m.client_id);
    put_str(w, m.client_host);
    w.put_i32(m.rebalance_timeout_ms);
    w.put_i32(m.session_timeout_ms);
    put_bytes(w, m.subscription);
    put_bytes(w, m.assignment);
  }
  return w.take();
}

Result<RecordKey> decode_key(ByteSpan key) {
  Reader r(key);
  int16_t version;
  if (!r.get_i16(version)) return corrupt("key shorter than its version");
  if (version == 0 || version == 1) {
    OffsetKey k;
    if (!get_str(r, k.group) || !get_str(r, k.topic) || !r.get_i32(k.partition)) return corrupt("offset key");
    return RecordKey{std::move(k)};
  }
  if (version == 2) {
    GroupKey k;
    if (!get_str(r, k.group)) return corrupt("group metadata key");
    return RecordKey{std::move(k)};
  }
  return Error{Errc::kUnsupported, fmt::format("__consumer_offsets key version {}", version)};
}

Result<OffsetValue> decode_offset_value(ByteSpan value) {
  Reader r(value);
  int16_t version;
  if (!r.get_i16(version)) return corrupt("offset value shorter than its version");
  OffsetValue v;
  bool ok = false;
  switch (version) {
    case 0:  // offset, metadata, commit_timestamp
    case 2:
      ok = r.get_i64(v.offset) && get_str(r, v.metadata) && r.get_i64(v.commit_timestamp);
      break;
    case 1: {  // offset, metadata, commit_timestamp, expire_timestamp
      int64_t expire;
      ok = r.get_i64(v.offset) && get_str(r, v.metadata) && r.get_i64(v.commit_timestamp) && r.get_i64(expire);
      break;
    }
    case 3:
      ok = r.get_i64(v.offset) && r.get_i32(v.leader_epoch) && get_str(r, v.metadata) && r.get_i64(v.commit_timestamp);
      break;
    default:
      return Error{Errc::kUnsupported, fmt::format("__consumer_offsets offset value version {}", version)};
  }
  if (!ok) return corrupt(fmt::format("offset value v{}", version));
  return v;
}

Result<GroupValue> decode_group_value(ByteSpan value) {
  Reader r(value);
  int16_t version;
  if (!r.get_i16(version)) return corrupt("group value shorter than its version");
  if (version < 0 || version > 3) {
    return Error{Errc::kUnsupported, fmt::format("__consumer_offsets group value version {}", version)};
  }
  GroupValue v;
  int32_t n;
  if (!get_str(r, v.protocol_type) || !r.get_i32(v.generation) || !get_nullable_str(r, v.protocol) ||
      !get_nullable_str(r, v.leader)) {
    return corrupt("group value header");
  }
  if (version >= 2 && !r.get_i64(v.current_state_timestamp)) return corrupt("group value timestamp");
  if (!r.get_i32(n) || n < 0 || static_cast<size_t>(n) > r.remaining()) return corrupt("group value members");
  v.members.resize(static_cast<size_t>(n));
  for (auto& m : v.members) {
    bool ok = get_str(r, m.member_id);
    if (ok && version >= 3) ok = get_nullable_str(r, m.group_instance_id);
    ok = ok && get_str(r, m.client_id) && get_str(r, m.client_host);
    if (ok && version >= 1) ok = r.get_i32(m.rebalance_timeout_ms);
    ok = ok && r.get_i32(m.session_timeout_ms);
    if (ok && version == 0) m.rebalance_timeout_ms = m.session_timeout_ms;
    ok = ok && get_bytes(r, m.subscription) && get_bytes(r, m.assignment);
    if (!ok) return corrupt("group value member");
  }
  return v;
}

Result<std::vector<std::string>> decode_subscription_topics(ByteSpan metadata) {
  Reader r(metadata);
  int16_t version;
  int32_t n;
  if (!r.get_i16(version) || version < 0 || !r.get_i32(n) || n < 0 || static_cast<size_t>(n) > r.remaining()) {
    return Error{Errc::kCorruption, "consumer subscription header"};
  }
  std::vector<std::string> topics(static_cast<size_t>(n));
  for (auto& t : topics) {
    if (!get_str(r, t)) return Error{Errc::kCorruption, "consumer subscription topic"};
  }
  return topics;
}

}  // namespace herald::broker::group
