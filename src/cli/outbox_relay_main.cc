// herald-outbox-relay: the `herald outbox-relay` command as its own executable.
// `herald` execs it (see main.cc) so that the broker process never loads the
// database client libraries (libpq, SQLite and what they pull in).
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/outbox_relay.h"

int main(int argc, char** argv) {
  CLI::App app{"herald outbox-relay: publish a service's transactional outbox", "herald"};
  app.require_subcommand(1);
  std::function<int()> action;
  herald::cli::add_outbox_relay_command(app, action);
  CLI11_PARSE(app, argc, argv);
  return action ? action() : 2;
}
