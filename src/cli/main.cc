// herald: the broker (`herald serve`) and the command-line tools.
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/serve.h"

int main(int argc, char** argv) {
  CLI::App app{"herald: a durable event log that speaks the Kafka protocol, and tools for it"};
  app.require_subcommand(1);
  std::function<int()> action;
  herald::cli::add_serve_command(app, action);
  CLI11_PARSE(app, argc, argv);
  return action ? action() : 2;
}
