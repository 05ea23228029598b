// Parsing for the libherald subcommands that `herald-sdk` hosts (dlq, saga):
// each gets the words after its name as a vector.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace herald::sdk {

// Parses `args` into `app`. Returns nullopt to go on, or the exit code to
// return now: 0 after printing the help (--help), 2 after a usage error
// (printed to `err` as "<app name>: <message>").
inline std::optional<int> parse_command_args(CLI::App& app, const std::vector<std::string>& args, std::FILE* out,
                                             std::FILE* err) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      fmt::print(out, "{}", app.help());
      for (auto* sub : app.get_subcommands()) fmt::print(out, "{}", sub->help());
      return 0;
    }
    fmt::print(err, "{}: {}\n", app.get_name(), e.what());
    return 2;
  }
  return std::nullopt;
}

}  // namespace herald::sdk
