// herald: the broker (`herald serve`) and the command-line tools.
#include <CLI/CLI.hpp>

#include <fmt/core.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cli/consume.h"
#include "cli/group.h"
#include "cli/produce.h"
#include "cli/serve.h"
#include "cli/stdout_check.h"
#include "cli/topic.h"

namespace {

// `herald outbox-relay`, `herald dlq` and `herald saga` run `herald-sdk <command> ...`,
// found next to this executable or else on PATH: libherald links the database
// client libraries (libpq, SQLite), which `herald serve` should not load.
int exec_sdk_command(const std::string& command, const std::vector<std::string>& args) {
  std::vector<std::string> argv_s = {"herald", command};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::string sibling = (self.parent_path() / "herald-sdk").string();
    if (::access(sibling.c_str(), X_OK) == 0) ::execv(sibling.c_str(), argv.data());
  }
  ::execvp("herald-sdk", argv.data());
  fmt::print(stderr, "herald {}: cannot run herald-sdk ({}); it is built next to herald\n", command,
             std::strerror(errno));
  return 1;
}

void add_sdk_command(CLI::App& app, std::function<int()>& action, const std::string& name, const std::string& what) {
  auto* cmd = app.add_subcommand(name, what);
  cmd->prefix_command();  // every argument, --help included, goes to herald-sdk
  cmd->set_help_flag();
  cmd->callback([&action, cmd, name] {
    action = [name, args = cmd->remaining()] { return exec_sdk_command(name, args); };
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"herald: a durable event log that speaks the Kafka protocol, and tools for it", "herald"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "herald " HERALD_VERSION);
  app.footer(R"(
The client commands (topic, produce, consume, group) talk to any Kafka-protocol
broker: --brokers HOST:PORT or env HERALD_BROKERS [127.0.0.1:9092].
Run `herald <command> --help` for each command's options and examples.

Examples:
  herald serve --data-dir ./data
  herald topic create users --partitions 3
  echo '{"email":"a@example.com"}' | herald produce users --key user-1
  herald consume users --from earliest --print-key
  herald group describe billing
  herald saga list --state compensating
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T12:00:00Z
)");
  std::function<int()> action;
  herald::cli::add_serve_command(app, action);
  herald::cli::add_topic_command(app, action);
  herald::cli::add_produce_command(app, action);
  herald::cli::add_consume_command(app, action);
  herald::cli::add_group_command(app, action);
  add_sdk_command(app, action, "outbox-relay",
                  "Publish a service's transactional outbox (libherald) to the brokers, as a sidecar");
  add_sdk_command(app, action, "dlq", "Inspect, replay or skip dead letters (libherald replicas)");
  add_sdk_command(app, action, "saga", "List sagas and show their step history (libherald orchestrators)");
  // CLI11 would answer a mistyped command with "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known |= sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      fmt::print(stderr, "herald: unknown command '{}' (commands: {})\nRun with --help for more information.\n",
                 argv[1], names);
      return 2;
    }
  }
  CLI11_PARSE(app, argc, argv);
  return action ? herald::cli::checked_stdout_status(action()) : 2;
}
