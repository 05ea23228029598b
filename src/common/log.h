// Logging: spdlog under a Herald name, so call sites read
//   HLOG_INFO("recovered {} in {} ms", dir, ms);
// One process-wide logger writing to stderr; level from HERALD_LOG_LEVEL or set_level().
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace herald::log {

// Sets the level by name ("trace", "debug", "info", "warn", "error", "off").
void set_level(std::string_view level);
// One of the names set_level() knows, in any case (spdlog turns any other into "off").
bool valid_level(std::string_view level);
spdlog::logger& logger();

}  // namespace herald::log

#define HLOG_TRACE(...) ::herald::log::logger().trace(__VA_ARGS__)
#define HLOG_DEBUG(...) ::herald::log::logger().debug(__VA_ARGS__)
#define HLOG_INFO(...) ::herald::log::logger().info(__VA_ARGS__)
#define HLOG_WARN(...) ::herald::log::logger().warn(__VA_ARGS__)
#define HLOG_ERROR(...) ::herald::log::logger().error(__VA_ARGS__)
