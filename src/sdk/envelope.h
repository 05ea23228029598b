// Event envelope: the CloudEvents 1.0 Kafka protocol binding, binary content
// mode, as every libherald producer writes and every libherald consumer reads.
//
//   Kafka record          CloudEvents attribute
//   ------------------    ---------------------------------------------------
//   key                   aggregate id (the entity the event is about)
//   value                 data: the payload bytes (JSON by default; raw allowed;
//                         a null value is a tombstone for compacted topics)
//   header ce_specversion "1.0"
//   header ce_id          unique event id; a UUIDv7 unless the caller sets one
//   header ce_type        e.g. "users.email_changed" (selects the handler)
//   header ce_source      e.g. "/users-service"
//   header ce_time        RFC 3339 UTC with milliseconds, "2024-05-01T12:00:00.123Z"
//   header content-type   "application/json" unless the payload is something else
//   header herald_aggregate_version   optional per-aggregate version (decimal)
//   any other header      kept in Event::extensions (ce_subject, traceparent, ...)
//
// Usage (producing; the outbox does this for you):
//   auto ev = Event::json("users.email_changed", "/users", "user-42", {{"email", "a@b.c"}});
//   HERALD_ASSIGN_OR_RETURN(EncodedEvent rec, encode(ev));   // fills ce_id and ce_time
//   // produce rec.key / rec.value / rec.headers with librdkafka
//
// Usage (consuming):
//   HERALD_ASSIGN_OR_RETURN(Event ev, decode_message(*rkmessage));
//   HandlerRegistry<Tx&> handlers;
//   handlers.on_json<EmailChanged>("users.email_changed",
//       [](const EmailChanged& e, const Event& ev, Tx& tx) { ... });
//   if (!handlers.dispatch(ev, tx)) { /* no handler for ev.type: skip or park */ }
//
// Everything here is a value type or a pure function; all of it is safe to use
// from any thread. Decoding never throws; handlers signal failure by throwing.
#pragma once

#include <librdkafka/rdkafka.h>

#include <any>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace herald::sdk {

inline constexpr std::string_view kSpecVersion = "1.0";
inline constexpr std::string_view kJsonContentType = "application/json";
// Header names (the CloudEvents Kafka binding prefixes attributes with "ce_").
inline constexpr std::string_view kHeaderSpecVersion = "ce_specversion";
inline constexpr std::string_view kHeaderId = "ce_id";
inline constexpr std::string_view kHeaderType = "ce_type";
inline constexpr std::string_view kHeaderSource = "ce_source";
inline constexpr std::string_view kHeaderTime = "ce_time";
inline constexpr std::string_view kHeaderContentType = "content-type";
inline constexpr std::string_view kHeaderAggregateVersion = "herald_aggregate_version";

// One Kafka record header. Values are bytes (CloudEvents attributes are UTF-8).
struct Header {
  std::string name;
  std::string value;
  bool operator==(const Header&) const = default;
};
using Headers = std::vector<Header>;

// Where a consumed event was read from.
struct EventPosition {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  bool operator==(const EventPosition&) const = default;
};

// One event, decoded. Fields map 1:1 to the table above.
struct Event {
  std::string id;            // ce_id; empty on produce = generate a UUIDv7
  std::string type;          // ce_type; required (unless tombstone)
  std::string source;        // ce_source; required (unless tombstone)
  std::string aggregate_id;  // record key; may be empty (null key)
  std::string payload;       // record value bytes (ignored when tombstone)
  std::string content_type = std::string(kJsonContentType);
  int64_t time_ms = 0;       // ce_time in ms since the Unix epoch; 0 on produce = now
  std::optional<int64_t> aggregate_version;  // herald_aggregate_version
  bool tombstone = false;    // null record value (delete `aggregate_id` on a compacted topic)
  Headers extensions;        // every other header, in record order
  // Set by Replica on the events its handlers get (e.g. to store the offset
  // that last changed a row); ignored by encode(), never set by decode().
  std::optional<EventPosition> position;

  // An event whose payload is `data` serialized as JSON (content-type application/json).
  static Event json(std::string type, std::string source, std::string aggregate_id,
                    const nlohmann::json& data);
  // A tombstone for `aggregate_id` (null value). type/source may be empty; when
  // set they are sent as headers so consumers can tell why the key was deleted.
  static Event make_tombstone(std::string aggregate_id, std::string type = {},
                              std::string source = {});

  // The payload parsed as JSON; kInvalidArgument if it is not valid JSON.
  Result<nlohmann::json> json_payload() const;
  // The value of extension header `name`, if present (first occurrence).
  std::optional<std::string> extension(std::string_view name) const;

  bool operator==(const Event&) const = default;
};

// An event in Kafka form: what a producer sends and a consumer receives.
struct EncodedEvent {
  std::string key;                   // aggregate id ("" = null key)
  std::optional<std::string> value;  // payload; nullopt = tombstone
  Headers headers;                   // ce_* first, then content-type, version, extensions
};

// Validates `ev` and returns its Kafka form. Fills a missing id (UUIDv7) and a
// zero time_ms (now) in the result; `ev` itself is not modified.
// Errors: kInvalidArgument when type or source is empty (non-tombstone), or
// when an extension header collides with one of the reserved names above.
Result<EncodedEvent> encode(const Event& ev);

// Like encode(), but fills id/time in `ev` itself so the caller learns them.
Result<EncodedEvent> encode_in_place(Event& ev);

// Decodes one record. `value` nullopt = tombstone (then the ce_* headers are
// optional). Errors (kInvalidArgument, message names the header): missing
// ce_specversion/ce_id/ce_type/ce_source on a non-tombstone, a specversion
// whose major is not 1, an unparsable ce_time or herald_aggregate_version.
// A missing content-type means application/json; a missing ce_time means 0.
Result<Event> decode(std::string_view key, const std::optional<std::string_view>& value,
                     const Headers& headers);

// decode() into an existing Event, reusing its string buffers (for consumers
// that decode many events in a loop). Every field of `ev` is overwritten
// (position reset); on error `ev` holds a partial decode.
Result<void> decode_into(Event& ev, std::string_view key, const std::optional<std::string_view>& value,
                         const Headers& headers);

// decode() over a librdkafka message (key, payload, headers). Does not check
// msg.err: the caller handles consumer errors first.
Result<Event> decode_message(const rd_kafka_message_t& msg);

// Copies every header of `msg` (empty if it has none).
Headers message_headers(const rd_kafka_message_t& msg);
// The same into `out`, reusing its strings' buffers.
void message_headers_into(const rd_kafka_message_t& msg, Headers& out);

// A new librdkafka header list holding `headers`; the caller owns it (pass it
// to rd_kafka_producev(RD_KAFKA_V_HEADERS(h)), which takes ownership on success).
rd_kafka_headers_t* make_kafka_headers(const Headers& headers);

// `s` as text any TEXT column takes (PostgreSQL refuses invalid UTF-8 and NUL
// bytes): each bad byte becomes U+FFFD, and text longer than `max_bytes` is
// cut at a character boundary and ends with U+2026.
std::string text_for_db(std::string_view s, size_t max_bytes);

// Headers <-> compact JSON text [["name","value"],...] (how the outbox table
// stores them). A value that is not valid UTF-8 is stored as
// ["name","<base64>","b64"], so any byte string round-trips.
std::string headers_to_json(const Headers& headers);
Result<Headers> headers_from_json(std::string_view text);

// RFC 3339 helpers. format gives UTC with milliseconds ("...T12:00:00.123Z").
// parse accepts 'Z' or a numeric offset, 'T'/'t'/' ' separators and any number
// of fraction digits (truncated to ms); kInvalidArgument otherwise.
std::string format_rfc3339(int64_t unix_ms);
Result<int64_t> parse_rfc3339(std::string_view text);

// Typed handlers by ce_type: a small registry for the consuming side.
//
// `Args...` are the extra arguments every handler receives, e.g. the local
// transaction (`HandlerRegistry<Tx&>`). A handler signals failure by throwing;
// dispatch() lets the exception through so the caller can retry or park the
// event. Register everything before the first dispatch(); after that the
// registry is read-only and may be shared by threads.
//
// prepare() does a typed handler's parsing ahead of time, without running
// it: a Replica calls it on its decoder thread, so that JSON parsing and
// from_json overlap with the previous batch's handlers. The result goes back
// to dispatch(); it holds the converted value or the exception the
// conversion threw (thrown again by dispatch(), as if parsed there).
template <class... Args>
class HandlerRegistry {
 public:
  using Handler = std::function<void(const Event&, Args...)>;
  using Prepared = std::any;  // empty, a T of on_json<T>, or a std::exception_ptr

  // Raw handler for `ce_type` (replaces an earlier one for the same type).
  HandlerRegistry& on(std::string ce_type, Handler h) {
    handlers_[std::move(ce_type)] = Entry{
        [h = std::move(h)](const Event& ev, const Prepared*, Args... args) { h(ev, std::forward<Args>(args)...); },
        nullptr};
    return *this;
  }

  // Typed handler: the payload is parsed as JSON and converted to T with
  // nlohmann's from_json (NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE etc.); then
  // f(const T&, const Event&, Args...) runs. A payload that does not parse or
  // convert throws nlohmann::json::exception, i.e. counts as a handler failure.
  // The conversion may run on another thread than f (see prepare()). A
  // tombstone has no payload to convert: one of this ce_type goes to the
  // fallback (otherwise()) instead, like a tombstone of an unhandled type.
  template <class T, class F>
  HandlerRegistry& on_json(std::string ce_type, F f) {
    auto run = [f = std::move(f)](const Event& ev, const Prepared* prepared, Args... args) {
      if (prepared != nullptr && prepared->has_value()) {
        if (const auto* error = std::any_cast<std::exception_ptr>(prepared)) std::rethrow_exception(*error);
        f(*std::any_cast<T>(prepared), ev, std::forward<Args>(args)...);
        return;
      }
      T value = nlohmann::json::parse(ev.payload).template get<T>();
      f(value, ev, std::forward<Args>(args)...);
    };
    auto prepare = [](const Event& ev) -> Prepared {
      try {
        return Prepared(nlohmann::json::parse(ev.payload).template get<T>());
      } catch (...) {
        return Prepared(std::current_exception());
      }
    };
    handlers_[std::move(ce_type)] = Entry{std::move(run), std::move(prepare)};
    return *this;
  }

  // The parsing of ev's typed handler, for dispatch(ev, &prepared, ...);
  // empty when its handler is not typed.
  Prepared prepare(const Event& ev) const {
    const Entry* entry = find(ev);
    if (entry == nullptr || !entry->prepare) return {};
    return entry->prepare(ev);
  }

  // Handler for every ce_type without its own handler (and for tombstones
  // whose type is empty).
  HandlerRegistry& otherwise(Handler h) {
    fallback_ = std::move(h);
    return *this;
  }

  // Runs the handler for ev.type, or the fallback. Returns false when neither
  // exists (nothing ran). Exceptions from the handler propagate.
  bool dispatch(const Event& ev, Args... args) const {
    return dispatch(ev, static_cast<const Prepared*>(nullptr), std::forward<Args>(args)...);
  }
  // The same with what prepare(ev) returned (nullptr: parse now).
  bool dispatch(const Event& ev, const Prepared* prepared, Args... args) const {
    if (const Entry* entry = find(ev)) {
      entry->run(ev, prepared, std::forward<Args>(args)...);
      return true;
    }
    if (fallback_) {
      fallback_(ev, std::forward<Args>(args)...);
      return true;
    }
    return false;
  }

  bool handles(std::string_view ce_type) const {
    return fallback_ || handlers_.find(ce_type) != handlers_.end();
  }

 private:
  struct Entry {
    std::function<void(const Event&, const Prepared*, Args...)> run;
    std::function<Prepared(const Event&)> prepare;  // null for raw handlers
  };
  // ev's own handler; none for a tombstone whose handler is typed.
  const Entry* find(const Event& ev) const {
    auto it = handlers_.find(ev.type);
    if (it == handlers_.end() || (ev.tombstone && it->second.prepare)) return nullptr;
    return &it->second;
  }

  std::map<std::string, Entry, std::less<>> handlers_;
  Handler fallback_;
};

}  // namespace herald::sdk
