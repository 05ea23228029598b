// `herald dlq list|replay|skip|parked`: the dead-letter tools, as one
// function the CLI can wire without knowing their options.
//
//   herald dlq list   --topic orders [--group billing] [--all] [--json]
//   herald dlq replay --topic orders [--group billing]          re-publish pending letters
//   herald dlq skip   --topic orders [--group billing]          pass over pending letters
//   herald dlq parked --store URL --group billing [--topic orders] [--json]
//   herald dlq replay --store URL --group billing [--topic orders] [--key K]   (ordered mode, in the DB)
//   herald dlq skip   --store URL --group billing --topic orders --key K       drop a parked key's dead head
//
// Common options: --brokers HOST:PORT (env HERALD_BROKERS), --dlq-topic NAME
// (default <topic>.dlq), --property KEY=VALUE (librdkafka), --timeout SECONDS.
//
// Wiring it into src/cli/main.cc (CLI11):
//   auto* dlq = app.add_subcommand("dlq", "Inspect, replay or skip dead letters")->prefix_command();
//   dlq->callback([&action, dlq] {
//     action = [args = dlq->remaining()] { return herald::sdk::dlq::run_dlq_command(args); };
//   });
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace herald::sdk::dlq {

// Runs one dlq subcommand; `args` are the words after "dlq" (e.g. {"replay",
// "--topic", "orders"}). Prints results to `out`, errors to `err`. Returns the
// process exit code: 0 success, 1 failure, 2 usage error.
int run_dlq_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

}  // namespace herald::sdk::dlq
