// Plumbing shared by the order-saga services (orders, payments, inventory):
// topic and command names, and the life cycle of a participant service
// (database, command replica, outbox relay, HTTP, signals).
//
// The saga "order" (declared in orders.cc):
//   step reserve_credit  payments.commands   payments.reserve_credit / payments.release_credit
//   step reserve_stock   inventory.commands  inventory.reserve_stock / inventory.release_stock
// then the order is APPROVED; a refusal or a timeout compensates the steps
// already done and the order is REJECTED with the reason.
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "sdk/outbox/relay.h"
#include "sdk/saga/saga.h"
#include "sdk/store/store.h"

namespace CLI {
class App;
}

namespace herald::examples::saga {

inline constexpr const char* kPaymentsCommands = "payments.commands";
inline constexpr const char* kInventoryCommands = "inventory.commands";
inline constexpr const char* kOrdersReplies = "orders.saga-replies";
inline constexpr int kPartitions = 3;

// A positive (or non-negative) integer member of a JSON object.
std::optional<int64_t> int_field(const nlohmann::json& j, const char* name, int64_t min);

// Reads one JSON value from the store (for GET handlers): `fn` runs in a
// read-only transaction; a database error replies 503.
bool read_json(sdk::Store& store, httplib::Response& res,
               const std::function<Result<void>(sdk::Tx&)>& fn);

// The life cycle every service of the example shares: flags, database,
// outbox relay, HTTP server, and the consumer (a command replica or the saga
// orchestrator) whose stopping on its own ends the process.
struct ServiceRuntime {
  std::string name;
  CommonFlags flags;
  std::string instance_id;  // --instance-id
  std::vector<std::pair<std::string, std::string>> extra_kafka;  // --kafka
  std::unique_ptr<sdk::Store> store;
  std::unique_ptr<sdk::OutboxRelay> relay;
  HttpService http;

  // Parses the flags (`more` adds the service's own), opens the store,
  // applies `schema` and creates the relay. Returns an exit code when the
  // process must end now, nullopt to go on.
  std::optional<int> init(int argc, char** argv, const std::string& description, const sdk::Migration& schema,
                          const std::function<void(CLI::App&)>& more = {});
  // librdkafka settings for the service's consumer: a short session,
  // static membership with --instance-id, then --kafka.
  std::vector<std::pair<std::string, std::string>> consumer_kafka() const;

  // How serve() drives the consumer.
  struct Consumer {
    sdk::Replica& replica;  // for /health, /ready and "still running"
    std::function<Result<void>()> start;
    std::function<void()> stop;
    std::function<Result<void>()> join;
  };
  // Binds HTTP (routes already added), starts the relay and the consumer,
  // and runs until SIGTERM/SIGINT or until the consumer stops on its own;
  // then stops everything. Returns the exit code.
  int serve(const Consumer& consumer, const std::string& detail,
            std::function<void(nlohmann::json&)> health_extra = {});
};

struct ParticipantService {
  std::string name;            // "payments": group id, command topic "<name>.commands", ce_source "/<name>"
  std::string description;     // --help text
  sdk::Migration schema;       // the service's own tables
  std::function<void(sdk::SagaParticipant&)> commands;            // registers the command handlers
  std::function<void(httplib::Server&, sdk::Store&)> routes;      // the service's HTTP API
};

// main() of a participant: flags (--listen, --brokers, --db, --port-file,
// --log-level, --kafka, --instance-id), then runs until SIGTERM/SIGINT.
int run_participant(int argc, char** argv, const ParticipantService& svc);

}  // namespace herald::examples::saga
