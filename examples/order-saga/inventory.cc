// inventory: owns item stock. A saga participant: it reserves stock for an
// order (inventory.reserve_stock) and releases it when the order saga
// compensates (inventory.release_stock), exactly once per command, replying
// through the outbox in the same transaction.
//
//   POST /items            {"id","stock"} -> 201 | 400 | 409
//   GET  /items/{id}       {"id","stock","reserved"} | 404
//   GET  /items            every item
//   GET  /reservations     [{"order_id","account_id","amount"}]
//   GET  /health, /ready   the command replica's position and lag
//
//   inventory --listen 127.0.0.1:8092 --brokers 127.0.0.1:9092 --db inventory.db
#include "ledger.h"
#include "saga_service.h"

int main(int argc, char** argv) {
  using namespace herald::examples::saga;
  static const Ledger stock{.accounts = "items",
                            .available = "stock",
                            .reserved = "reserved",
                            .reservations = "stock_reservations",
                            .account_ref = "item",
                            .amount_ref = "quantity",
                            .what = "stock"};
  return run_participant(argc, argv, {
      .name = "inventory",
      .description = "inventory: owns item stock; reserves and releases it for order sagas",
      .schema = stock.schema("example_inventory_v1"),
      .commands = [](herald::sdk::SagaParticipant& p) {
        p.on("inventory.reserve_stock", [](const auto& c, auto& tx) { return stock.reserve(c, tx); });
        p.on("inventory.release_stock", [](const auto& c, auto& tx) { return stock.release(c, tx); });
      },
      .routes = [](httplib::Server& s, herald::sdk::Store& store) { stock.routes(s, store); },
  });
}
