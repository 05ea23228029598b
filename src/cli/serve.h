// The `serve` subcommand of the herald CLI.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace herald::cli {

// Registers `serve` on `app`; when it is selected, `action` runs it and returns the exit code.
void add_serve_command(CLI::App& app, std::function<int()>& action);

}  // namespace herald::cli
