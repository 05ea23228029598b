// LastLine: the latest line a client library logged (librdkafka's errors),
// kept so that a command can add it to its failure message instead of
// printing every line as it comes. Thread-safe: libraries log from their own
// threads.
//
//   LastLine last;
//   last.set("[thrd:127.0.0.1:9092/bootstrap]: ... Connection refused");  // from a log callback
//   std::string cause = last.get();  // "... Connection refused" ("" if none)
#pragma once

#include <mutex>
#include <string>
#include <string_view>

namespace herald {

class LastLine {
 public:
  // Keeps `line`, without librdkafka's "[thrd:NAME]: " prefix.
  void set(std::string_view line) {
    if (line.starts_with("[thrd:")) {
      if (auto end = line.find("]: "); end != std::string_view::npos) line.remove_prefix(end + 3);
    }
    std::lock_guard lock(mu_);
    line_ = line;
  }
  std::string get() const {
    std::lock_guard lock(mu_);
    return line_;
  }

 private:
  mutable std::mutex mu_;
  std::string line_;  // GUARDED_BY(mu_)
};

}  // namespace herald
