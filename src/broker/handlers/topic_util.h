// Small helpers shared by the admin handlers.
#pragma once

#include <optional>
#include <string>

namespace herald::broker {

inline std::string topic_name_of(const std::string& s) { return s; }
inline std::string topic_name_of(const std::optional<std::string>& s) { return s.value_or(std::string()); }

}  // namespace herald::broker
