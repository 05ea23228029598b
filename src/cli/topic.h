// `herald topic ...`: topic administration over the Kafka admin APIs.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace herald::cli {

// Registers `topic` and its subcommands on `app`; the selected one sets `action`.
void add_topic_command(CLI::App& app, std::function<int()>& action);

}  // namespace herald::cli
