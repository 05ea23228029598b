#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace herald::log {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = std::make_shared<spdlog::logger>("herald", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    const char* env = std::getenv("HERALD_LOG_LEVEL");
    lg->set_level(env ? spdlog::level::from_str(env) : spdlog::level::info);
    lg->flush_on(spdlog::level::info);
    return lg;
  }();
  return *l;
}

bool valid_level(std::string_view level) {
  for (std::string_view l : {"trace", "debug", "info", "warn", "warning", "err", "error", "critical", "off"}) {
    if (level == l) return true;
  }
  return false;
}

void set_level(std::string_view level) {
  logger().set_level(spdlog::level::from_str(std::string(level)));
}

}  // namespace herald::log
