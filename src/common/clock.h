// Wall-clock and monotonic time in the units Kafka uses.
#pragma once

#include <chrono>
#include <cstdint>

namespace herald {

// Milliseconds since the Unix epoch (Kafka timestamps).
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Monotonic nanoseconds, for durations only.
inline int64_t mono_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace herald
