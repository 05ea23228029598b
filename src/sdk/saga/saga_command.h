// `herald saga list|show`: sagas and their step history, read from the
// herald.sagas topic every SagaOrchestrator publishes its state changes to.
//
//   herald saga list [--state running|compensating|completed|compensated|failed] [--json]
//   herald saga show <saga-id> [--json]
//
// Options: --brokers HOST:PORT (env HERALD_BROKERS), --topic NAME (default
// herald.sagas), --property KEY=VALUE (librdkafka), --timeout SECONDS.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace herald::sdk {

// Runs one saga subcommand; `args` are the words after "saga". Returns the
// exit code: 0 success, 1 failure (or `show` of an unknown id), 2 usage error.
int run_saga_command(const std::vector<std::string>& args, std::FILE* out = stdout, std::FILE* err = stderr);

}  // namespace herald::sdk
