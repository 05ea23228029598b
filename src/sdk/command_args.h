// Parsing for the libherald subcommands that `herald-sdk` hosts (dlq, saga):
// each gets the words after its name as a vector.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "sdk/replica/kafka_handles.h"

namespace herald::sdk {

// A command's failure message, with librdkafka's last error when there was one (the cause of a
// "Broker transport failure", say).
inline std::string with_client_error(const std::string& message) {
  const std::string last = kafka::last_client_error();
  return last.empty() ? message : fmt::format("{}\n  (last client error: {})", message, last);
}

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

// The connection options of every client command (docs/cli.md, "Connecting"), on several
// subcommands that share one set of variables: -b/--brokers (env HERALD_BROKERS), --timeout
// SECONDS, -X/--property KEY=VALUE, --debug. HERALD_BROKERS is not CLI11's envname(): with one
// variable bound by several subcommands, CLI11 2.1 applies the environment over the value given
// on the command line.
class ClientArgs {
 public:
  void add_to(CLI::App* cmd) {
    given_.push_back(cmd->add_option("-b,--brokers", brokers_,
                                     "Kafka bootstrap servers (or env HERALD_BROKERS) [127.0.0.1:9092]"));
    cmd->add_option("--timeout", timeout_s_, "Seconds to wait for the broker [10]")->check(CLI::Range(0.001, 1e6));
    cmd->add_option("-X,--property", properties_, "Extra librdkafka setting KEY=VALUE, repeatable")
        ->allow_extra_args(false);
    cmd->add_flag("--debug", debug_, "Print librdkafka's protocol debug log to stderr");
  }
  // After parsing: the bootstrap servers (HERALD_BROKERS when no --brokers was given).
  std::string brokers() const {
    for (const auto* o : given_) {
      if (o->count() > 0) return brokers_;
    }
    if (const char* env = std::getenv("HERALD_BROKERS"); env != nullptr && *env != '\0') return env;
    return brokers_;
  }
  // After parsing: librdkafka's log is only kept for with_client_error(), or with --debug, all of
  // it goes to stderr.
  void apply_logging() const {
    kafka::set_quiet_client_log(!debug_);
    if (debug_) log::set_level("debug");
  }
  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  }
  // The -X settings (and --debug's) as librdkafka properties; an error names a malformed one.
  std::optional<std::string> properties(std::vector<std::pair<std::string, std::string>>& out) const {
    for (const auto& kv : properties_) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return fmt::format("--property '{}': expected KEY=VALUE", kv);
      out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (debug_) out.emplace_back("debug", "broker,protocol,cgrp,topic");
    return std::nullopt;
  }

 private:
  std::string brokers_ = "127.0.0.1:9092";
  double timeout_s_ = 10;
  std::vector<std::string> properties_;
  bool debug_ = false;
  std::vector<CLI::Option*> given_;
};

}  // namespace herald::sdk
