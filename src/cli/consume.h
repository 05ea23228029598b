// `herald consume ...`: see consume.cc.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace herald::cli {

// Registers `consume` on `app`; when it is selected, `action` runs it and returns the exit code.
void add_consume_command(CLI::App& app, std::function<int()>& action);

}  // namespace herald::cli
