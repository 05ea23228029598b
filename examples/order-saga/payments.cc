// payments: owns customers' credit. A saga participant: it reserves credit
// for an order (payments.reserve_credit) and releases it again when the
// order saga compensates (payments.release_credit). Commands arrive on
// payments.commands through a Replica, so each is applied exactly once, and
// the reply leaves through the outbox in the same transaction.
//
//   POST /customers        {"id","credit_cents"} -> 201 | 400 | 409
//   GET  /customers/{id}   {"id","credit_cents","reserved_cents"} | 404
//   GET  /customers        every customer
//   GET  /reservations     [{"order_id","account_id","amount"}]
//   GET  /health, /ready   the command replica's position and lag
//
//   payments --listen 127.0.0.1:8091 --brokers 127.0.0.1:9092 --db payments.db
#include "ledger.h"
#include "saga_service.h"

int main(int argc, char** argv) {
  using namespace herald::examples::saga;
  static const Ledger credit{.accounts = "customers",
                             .available = "credit_cents",
                             .reserved = "reserved_cents",
                             .reservations = "credit_reservations",
                             .account_ref = "customer_id",
                             .amount_ref = "amount_cents",
                             .what = "credit"};
  return run_participant(argc, argv, {
      .name = "payments",
      .description = "payments: owns customer credit; reserves and releases it for order sagas",
      .schema = credit.schema("example_payments_v1"),
      .commands = [](herald::sdk::SagaParticipant& p) {
        p.on("payments.reserve_credit", [](const auto& c, auto& tx) { return credit.reserve(c, tx); });
        p.on("payments.release_credit", [](const auto& c, auto& tx) { return credit.release(c, tx); });
      },
      .routes = [](httplib::Server& s, herald::sdk::Store& store) { credit.routes(s, store); },
  });
}
