// Dead letters: what a Replica does with an event its handler keeps failing
// on, and the tools to look at them and bring them back after a fix.
//
// A dead letter is the original record (same key, value and headers) written
// to the dead-letter topic (`<topic>.dlq` by default) with these extra
// headers:
//
//   header                 value
//   ---------------------  ------------------------------------------------
//   herald_dlq_topic       source topic
//   herald_dlq_partition   source partition (decimal)
//   herald_dlq_offset      source offset (decimal)
//   herald_dlq_group       consumer group (replica) that gave up on it
//   herald_dlq_error       the handler's last error message
//   herald_dlq_attempts    how many times the handler ran (decimal)
//   herald_dlq_failed_at   RFC 3339 time of the last failure
//   herald_dlq_timestamp   the source record's timestamp (ms, decimal)
//   herald_dlq_ordered     "1" when later events of the key are parked
//   herald_dlq_value_omitted  the size of the original value, when the letter
//                          with it was too large for the dead-letter topic: the
//                          letter carries no value, and replay reads the
//                          original from the source topic
//
// Replaying a dead letter re-publishes the original record to its source
// topic and partition, with the original headers plus
//
//   herald_replay_of       "<topic>/<partition>/<offset>" of the original
//   herald_replay_group    the group that dead-lettered it
//   herald_replay_ordered  "1" when the letter was ordered
//
// The replica of that group recognises the replay: in ordered mode it applies
// the key's parked events right behind it, in their original order (and drops
// the replay of an ordered letter whose key's chain does not start with it:
// the database applied or skipped it already). Other groups' replicas drop it
// (counted as a duplicate), whatever its ce_id.
//
// Replay cursors (which dead letters were already replayed or skipped) are
// ordinary committed offsets on the dead-letter topic, one consumer group per
// group that dead-lettered: `herald-dlq.<dlq topic>.<group>`. A letter is
// pending while its offset is at or past its group's cursor, so `herald group
// describe herald-dlq.orders.dlq.billing` shows how many are pending.
//
// Ordered mode also keeps parked events in the service's database, table
// herald_parked (see parked.h); list_parked / replay_parked / skip_parked
// work on it directly.
//
// Usage:
//   dlq::DlqOptions o;
//   o.brokers = "127.0.0.1:9092";
//   o.dlq_topic = "orders.dlq";
//   HERALD_ASSIGN_OR_RETURN(auto letters, dlq::list(o, /*pending_only=*/true));
//   HERALD_ASSIGN_OR_RETURN(auto n, dlq::replay(o));   // after the fix
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "sdk/envelope.h"

namespace herald::sdk::dlq {

inline constexpr std::string_view kHeaderTopic = "herald_dlq_topic";
inline constexpr std::string_view kHeaderPartition = "herald_dlq_partition";
inline constexpr std::string_view kHeaderOffset = "herald_dlq_offset";
inline constexpr std::string_view kHeaderGroup = "herald_dlq_group";
inline constexpr std::string_view kHeaderError = "herald_dlq_error";
inline constexpr size_t kMaxErrorBytes = 4096;  // herald_dlq_error and herald_parked.error are cut to this (valid UTF-8)
inline constexpr std::string_view kHeaderAttempts = "herald_dlq_attempts";
inline constexpr std::string_view kHeaderFailedAt = "herald_dlq_failed_at";
inline constexpr std::string_view kHeaderTimestamp = "herald_dlq_timestamp";
inline constexpr std::string_view kHeaderOrdered = "herald_dlq_ordered";
inline constexpr std::string_view kHeaderValueOmitted = "herald_dlq_value_omitted";
inline constexpr std::string_view kHeaderReplayOf = "herald_replay_of";
inline constexpr std::string_view kHeaderReplayGroup = "herald_replay_group";
inline constexpr std::string_view kHeaderReplayOrdered = "herald_replay_ordered";

inline constexpr std::string_view kDefaultSuffix = ".dlq";

// Why and where an event failed.
struct Failure {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string group;
  std::string error;
  int attempts = 0;
  int64_t failed_at_ms = 0;
  int64_t timestamp_ms = -1;  // source record timestamp; -1 unknown
  bool ordered = false;
  int64_t value_omitted = -1;  // the original value's size when the letter carries none (else -1)
};

// One dead letter as read back from the dead-letter topic.
struct DeadLetter {
  std::string dlq_topic;
  int32_t dlq_partition = 0;
  int64_t dlq_offset = 0;
  Failure failure;
  std::optional<std::string> key;    // nullopt = null key
  std::optional<std::string> value;  // nullopt = null value (tombstone)
  Headers headers;                   // the original headers (herald_dlq_* removed)
  bool pending = true;               // list(): not yet replayed or skipped (after the replay cursor)
};

// The headers of a dead letter: `original` (minus any earlier herald_dlq_* and
// herald_replay_* headers) followed by the herald_dlq_* headers of `f`.
Headers dead_letter_headers(const Headers& original, const Failure& f);

// Reads a dead letter's description back from its headers. kInvalidArgument
// when a herald_dlq_* header is missing or malformed.
Result<DeadLetter> parse_dead_letter(std::optional<std::string_view> key, std::optional<std::string_view> value,
                                     const Headers& headers);

// The headers a replayed record carries: `original` plus herald_replay_*
// (herald_replay_ordered "1" when the letter was ordered: its replica parked
// the key's later events behind it).
Headers replay_headers(const Headers& original, const Failure& f);

// "<topic>/<partition>/<offset>", the value of herald_replay_of.
std::string coordinates(std::string_view topic, int32_t partition, int64_t offset);

// The replay coordinates and group of a record, when it is a replay.
struct ReplayOf {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string group;
  bool ordered = false;
};
std::optional<ReplayOf> replay_of(const Headers& headers);

// ---- working with the dead-letter topic ----

struct DlqOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string dlq_topic;         // e.g. "orders.dlq"
  std::string group;             // only letters of this consumer group ("" = every group)
  std::vector<std::pair<std::string, std::string>> kafka;  // extra librdkafka properties
  std::chrono::milliseconds timeout{10000};
};

// The consumer group that keeps the replay cursor of `group`'s letters in `dlq_topic`.
std::string cursor_group(std::string_view dlq_topic, std::string_view group);

// Whether `topic` exists (asked without creating it).
Result<bool> topic_exists(const DlqOptions& o, const std::string& topic);

// Dead letters in the topic, oldest first per partition. pending_only: only
// those after the replay cursor (not yet replayed or skipped).
Result<std::vector<DeadLetter>> list(const DlqOptions& o, bool pending_only);

struct ReplayStats {
  int64_t replayed = 0;        // re-published to their source topic
  int64_t skipped = 0;         // passed over (skip())
  // replay(): letters without their value whose original is no longer in the source topic
  // either (retention, DeleteRecords): nothing can replay them; passed over, one line each.
  std::vector<std::string> unreplayable;
};

// Re-publishes every pending dead letter (of o.group, when set) to its source
// topic and partition, in DLQ order, waiting for each acknowledgement, then
// moves the cursors of the groups concerned past them. A crash midway may
// replay a letter twice; the replica drops the second copy by ce_id (a plain
// record, which has none, by the original's place, herald_replay_of). A letter
// that went without its value and whose original is gone from the source is
// passed over and listed in `unreplayable`; a source that cannot be read now
// is an error, and no cursor moves.
Result<ReplayStats> replay(const DlqOptions& o);

// Moves the cursors past every pending letter (of o.group, when set) without
// re-publishing them. `each`, when set, is called for every pending letter
// first; an error from it stops the skip before any cursor moves.
Result<ReplayStats> skip(const DlqOptions& o, const std::function<Result<void>(const DeadLetter&)>& each = {});

}  // namespace herald::sdk::dlq
