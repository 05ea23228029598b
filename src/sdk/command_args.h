// Parsing for the libherald subcommands that `herald-sdk` hosts (dlq, saga):
// each gets the words after its name as a vector.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
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
      fmt::print(out, "{}", app.help());  // the selected subcommand's help, when there is one
      return 0;
    }
    fmt::print(err, "{}: {}\n", app.get_name(), e.what());
    return 2;
  }
  return std::nullopt;
}

// `--brokers` on several subcommands that share one variable, with env
// HERALD_BROKERS as the fallback. Not CLI11's envname(): with one variable
// bound by several subcommands, CLI11 2.1 applies the environment over the
// value given on the command line.
class BrokersOption {
 public:
  explicit BrokersOption(std::string& target) : target_(target) {}
  void add_to(CLI::App* cmd) {
    given_.push_back(cmd->add_option("--brokers", target_,
                                     "Kafka bootstrap servers (or env HERALD_BROKERS) [127.0.0.1:9092]"));
  }
  // After parsing: HERALD_BROKERS when no --brokers was given.
  void resolve() const {
    for (const auto* o : given_) {
      if (o->count() > 0) return;
    }
    if (const char* env = std::getenv("HERALD_BROKERS"); env != nullptr && *env != '\0') target_ = env;
  }

 private:
  std::string& target_;
  std::vector<CLI::Option*> given_;
};

}  // namespace herald::sdk
