// herald-sdk: the libherald commands of the CLI, `herald outbox-relay`,
// `herald dlq` and `herald saga`, as their own executable. `herald` execs it (see main.cc) so
// that the broker process never loads the database client libraries (libpq,
// SQLite and what they pull in).
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/outbox_relay.h"
#include "cli/stdout_check.h"
#include "sdk/dlq/dlq_command.h"
#include "sdk/saga/saga_command.h"

int main(int argc, char** argv) {
  CLI::App app{"herald's libherald commands", "herald"};
  app.require_subcommand(1);
  std::function<int()> action;
  herald::cli::add_outbox_relay_command(app, action);
  auto* dlq = app.add_subcommand("dlq", "Inspect, replay or skip dead letters (libherald replicas)");
  dlq->prefix_command();
  dlq->set_help_flag();
  dlq->callback([&action, dlq] { action = [args = dlq->remaining()] { return herald::sdk::dlq::run_dlq_command(args); }; });
  auto* saga = app.add_subcommand("saga", "List sagas and show their step history (libherald orchestrators)");
  saga->prefix_command();
  saga->set_help_flag();
  saga->callback([&action, saga] { action = [args = saga->remaining()] { return herald::sdk::run_saga_command(args); }; });
  CLI11_PARSE(app, argc, argv);
  return action ? herald::cli::checked_stdout_status(action()) : 2;
}
