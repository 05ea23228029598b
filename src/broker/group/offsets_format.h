// The records the group coordinator keeps in the internal compacted topic
// `__consumer_offsets`, in Apache Kafka's own key/value layout, so that tools
// which read that topic understand it (docs/groups.md).
//
// Keys and values are classic (non-flexible) encodings: i16-length strings,
// i32-length bytes, each record prefixed by an i16 schema version.
//
//   offset commit key   v0/v1  group str, topic str, partition i32
//   group metadata key  v2     group str
//   offset commit value v3     offset i64, leader_epoch i32, metadata str, commit_timestamp i64
//                              (reads v0-v3: see decode_offset_value)
//   group metadata value v3    protocol_type str, generation i32, protocol str?, leader str?,
//                              current_state_timestamp i64,
//                              members [member_id str, group_instance_id str?, client_id str,
//                                       client_host str, rebalance_timeout i32,
//                                       session_timeout i32, subscription bytes, assignment bytes]
//   null value                 tombstone (offset deleted / group deleted)
//
// A group's records all go to partition partition_for(group, N), Kafka's
// abs(String.hashCode(group)) % N, so one partition holds a group's history
// in order. Decoders face bytes from disk: they never throw and return
// kCorruption / kUnsupported instead.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace herald::broker::group {

inline constexpr std::string_view kOffsetsTopic = "__consumer_offsets";

// The config overrides kOffsetsTopic is created with.
inline std::map<std::string, std::string> offsets_topic_configs() {
  return {
      {"cleanup.policy", "compact"},
      {"flush.policy", "always"},      // commits are answered only once durable
      {"segment.bytes", "104857600"},  // Kafka's offsets.topic.segment.bytes
  };
}

// java.lang.String.hashCode() of the UTF-16 form of `utf8` (malformed UTF-8
// bytes count as U+FFFD, as Java's decoder replaces them).
int32_t java_string_hash(std::string_view utf8);
// Kafka's Utils.abs(hash) % partitions (abs(INT32_MIN) = 0). partitions > 0.
int32_t partition_for(std::string_view group_id, int32_t partitions);

struct OffsetKey {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  bool operator==(const OffsetKey&) const = default;
};
struct GroupKey {
  std::string group;
  bool operator==(const GroupKey&) const = default;
};
using RecordKey = std::variant<OffsetKey, GroupKey>;

struct OffsetValue {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp = -1;
  bool operator==(const OffsetValue&) const = default;
};

struct StoredMember {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t rebalance_timeout_ms = 0;
  int32_t session_timeout_ms = 0;
  Bytes subscription;  // the member's metadata for the selected protocol
  Bytes assignment;
  bool operator==(const StoredMember&) const = default;
};

struct GroupValue {
  std::string protocol_type;
  int32_t generation = 0;
  std::optional<std::string> protocol;
  std::optional<std::string> leader;
  int64_t current_state_timestamp = -1;
  std::vector<StoredMember> members;
  bool operator==(const GroupValue&) const = default;
};

// kInvalidArgument for a string longer than 32767 bytes (it does not fit an
// i16 length): nothing is written rather than a record the decoder rejects.
Result<Bytes> encode_offset_key(const OffsetKey& k);      // version 1
Result<Bytes> encode_group_key(const GroupKey& k);        // version 2
Result<Bytes> encode_offset_value(const OffsetValue& v);  // version 3
Result<Bytes> encode_group_value(const GroupValue& v);    // version 3

// kUnsupported for an unknown key version (the caller skips the record).
Result<RecordKey> decode_key(ByteSpan key);
// Value versions 0-3 (v4, flexible, is kUnsupported).
Result<OffsetValue> decode_offset_value(ByteSpan value);
// Value versions 0-3.
Result<GroupValue> decode_group_value(ByteSpan value);

// The topics of a "consumer" protocol subscription (Kafka's
// ConsumerProtocolSubscription): i16 version, [str] topics, ... Only the topic list is read.
Result<std::vector<std::string>> decode_subscription_topics(ByteSpan metadata);

}  // namespace herald::broker::group
