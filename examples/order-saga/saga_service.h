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
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common.h"
#include "sdk/saga/saga.h"
#include "sdk/store/store.h"

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
