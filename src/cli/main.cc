// herald: the broker (`herald serve`) and the command-line tools.
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/consume.h"
#include "cli/group.h"
#include "cli/outbox_relay.h"
#include "cli/produce.h"
#include "cli/serve.h"
#include "cli/topic.h"

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
  herald group reset-offsets billing --topic users --to-datetime 2024-05-01T12:00:00Z
)");
  std::function<int()> action;
  herald::cli::add_serve_command(app, action);
  herald::cli::add_topic_command(app, action);
  herald::cli::add_produce_command(app, action);
  herald::cli::add_consume_command(app, action);
  herald::cli::add_group_command(app, action);
  herald::cli::add_outbox_relay_command(app, action);
  CLI11_PARSE(app, argc, argv);
  return action ? action() : 2;
}
