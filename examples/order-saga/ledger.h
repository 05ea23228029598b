// What payments and inventory have in common: accounts with an available
// and a reserved amount (a customer's credit, an item's stock), and one
// reservation row per order. Reserving moves an amount from available to
// reserved and records the reservation; releasing undoes exactly that, once.
//
//   payments:  customers(id, credit_cents, reserved_cents)
//              credit_reservations(order_id, account_id, amount)
//   inventory: items(id, stock, reserved)
//              stock_reservations(order_id, account_id, amount)
//
// Invariant kept by every transaction: available + reserved of an account
// equals what it was created with, and reserved is the sum of its
// reservations.
#pragma once

#include <httplib.h>

#include <string>

#include "sdk/saga/saga.h"
#include "sdk/store/store.h"

namespace herald::examples::saga {

struct Ledger {
  std::string accounts;      // table and URL path: "customers" -> /customers, /customers/{id}
  std::string available;     // column and JSON field: "credit_cents"
  std::string reserved;      // column and JSON field: "reserved_cents"
  std::string reservations;  // table: "credit_reservations"
  std::string account_ref;   // the saga data field naming the account: "customer_id"
  std::string amount_ref;    // the saga data field with the amount: "amount_cents"
  std::string what;          // for messages: "credit", "stock"

  sdk::Migration schema(const std::string& id) const;

  // The command handlers: reserve for the saga's order, release it.
  sdk::SagaReply reserve(const sdk::SagaCommand& c, sdk::Tx& tx) const;
  sdk::SagaReply release(const sdk::SagaCommand& c, sdk::Tx& tx) const;

  // POST /<accounts> {"id", "<available>"} -> 201 | 400 | 409
  // GET  /<accounts>/{id} -> {"id", "<available>", "<reserved>"} | 404
  // GET  /<accounts>      -> every account
  // GET  /reservations    -> [{"order_id", "account_id", "amount"}]
  void routes(httplib::Server& server, sdk::Store& store) const;
};

}  // namespace herald::examples::saga
