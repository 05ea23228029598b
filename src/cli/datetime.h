// Time and start-position parsing for the CLI: ISO-8601 datetimes (what
// `consume --from` and `group reset-offsets --to-datetime` accept) and the
// `--from` grammar of `herald consume`.
//
// Usage:
//   HERALD_ASSIGN_OR_RETURN(int64_t ms, parse_datetime("2024-05-01T12:00:00Z"));
//   format_timestamp(ms)  // "2024-05-01T12:00:00.000Z"
//   HERALD_ASSIGN_OR_RETURN(StartPosition from, parse_start_position("-10"));  // the last 10 records
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace herald::cli {

// Milliseconds since the Unix epoch for an ISO-8601 datetime:
//   YYYY-MM-DD
//   YYYY-MM-DDTHH:MM[:SS[.fraction]]   ('T' or one space between date and time)
// followed by an optional zone: 'Z', ±HH, ±HHMM or ±HH:MM. Without a zone the
// time is local time (as Kafka's --to-datetime does). "@<ms>" is taken as
// epoch milliseconds. Returns kInvalidArgument naming the input otherwise.
Result<int64_t> parse_datetime(std::string_view text);

// "2024-05-01T12:00:00.123Z" (UTC, millisecond precision).
std::string format_timestamp(int64_t ms);

// Where `consume --from` starts reading a partition.
struct StartPosition {
  enum class Kind : uint8_t {
    kEarliest,   // log start
    kLatest,     // high watermark: only records produced from now on
    kOffset,     // an absolute offset (`value`)
    kTail,       // `value` records before the high watermark ("-N")
    kTimestamp,  // first record with timestamp >= `value` ms
  };
  Kind kind = Kind::kEarliest;
  int64_t value = 0;
};

// earliest | beginning | latest | end | OFFSET | -N | @MS | ISO-8601 datetime.
Result<StartPosition> parse_start_position(std::string_view text);

}  // namespace herald::cli
