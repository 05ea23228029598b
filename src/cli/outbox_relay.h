// The `outbox-relay` subcommand of the herald CLI: runs libherald's
// OutboxRelay as a sidecar process next to a service that writes events with
// sdk::Outbox, so the service itself needs no Kafka client thread.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace herald::cli {

// Registers `outbox-relay` on `app`; when it is selected, `action` runs it and
// returns the exit code (0 after SIGINT/SIGTERM or a completed --once, 1 on
// errors, 2 on bad arguments).
void add_outbox_relay_command(CLI::App& app, std::function<int()>& action);

}  // namespace herald::cli
