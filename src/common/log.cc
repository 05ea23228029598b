#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <cctype>
#include <cstdlib>
#include <memory>
#include <string>

namespace herald::log {
namespace {

// Level names in any case ("WARN", "Info"), as boolean settings are read.
std::string lower(std::string_view level) {
  std::string out(level);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

spdlog::level::level_enum parse_level(std::string_view level) { return spdlog::level::from_str(lower(level)); }

}  // namespace

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto lg = std::make_shared<spdlog::logger>("herald", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    lg->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    const char* env = std::getenv("HERALD_LOG_LEVEL");
    lg->set_level(env ? parse_level(env) : spdlog::level::info);
    lg->flush_on(spdlog::level::info);
    return lg;
  }();
  return *l;
}

bool valid_level(std::string_view level) {
  // from_str() turns an unknown name into "off": only "off" itself may give it.
  return lower(level) == "off" || parse_level(level) != spdlog::level::off;
}

void set_level(std::string_view level) { logger().set_level(parse_level(level)); }

}  // namespace herald::log
