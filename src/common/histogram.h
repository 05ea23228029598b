// A duration histogram with fixed buckets (100 us to 10 s), updated without locks
// from any thread and read as Prometheus's cumulative buckets.
//
//   LatencyHistogram h;
//   h.observe(std::chrono::steady_clock::now() - start);
//   auto s = h.snapshot();   // s.cumulative[i]: observations <= kBoundsSeconds[i]; s.count, s.sum_seconds
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace herald {

class LatencyHistogram {
 public:
  static constexpr std::array<double, 15> kBoundsSeconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                            0.005,  0.01,    0.025,  0.05,  0.1,
                                                            0.25,   0.5,     1,      2.5,   10};

  void observe(std::chrono::nanoseconds d) {
    const int64_t ns = d.count() < 0 ? 0 : d.count();
    size_t i = 0;
    while (i < kBoundsSeconds.size() && static_cast<double>(ns) > kBoundsSeconds[i] * 1e9) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  struct Snapshot {
    std::array<uint64_t, kBoundsSeconds.size()> cumulative{};
    uint64_t count = 0;  // the +Inf bucket
    double sum_seconds = 0;
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (size_t i = 0; i < counts_.size(); ++i) {
      s.count += counts_[i].load(std::memory_order_relaxed);
      if (i < s.cumulative.size()) s.cumulative[i] = s.count;
    }
    s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace herald
