// Outbox: write the service's own state and the events about it in ONE local
// transaction (the transactional outbox pattern). The events wait in the
// herald_outbox table until OutboxRelay publishes them; so the database and
// the log can never disagree: an event exists iff its transaction committed.
//
// Usage:
//   Outbox outbox({.topic = "users", .source = "/users-service"});
//   HERALD_TRY(store->run([&](Tx& tx) -> Result<void> {
//     HERALD_TRY(tx.exec("UPDATE users SET email = ? WHERE id = ?", {email, id}));
//     HERALD_TRY(outbox.add(tx, Event::json("users.email_changed", "", id, {{"email", email}})));
//     return ok();
//   }));
//   // OutboxRelay (a thread in this service, or `herald outbox-relay`) publishes it.
//
// Ordering: events of one aggregate are published in the commit order of their
// transactions. SQLite serializes writers, so insertion order is commit order.
// PostgreSQL does not: add() takes a transaction-scoped advisory lock on the
// aggregate id first (pg_advisory_xact_lock), so two transactions that add
// events for the same aggregate run their add()s one after the other and the
// second one's row ids are larger. Consequences for the caller: a transaction
// adding events for aggregate A waits for any other open transaction that
// added events for A; adding events for several aggregates in different
// orders in concurrent transactions can deadlock (PostgreSQL aborts one; it
// is_retryable(), and Store::run retries it). Events with an empty aggregate id
// have a null record key, which the producer spreads over partitions: no order,
// and no lock (concurrent transactions adding them do not wait for each other).
//
// An Outbox holds only options: it is cheap, immutable and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "sdk/envelope.h"
#include "sdk/store/store.h"

namespace herald::sdk {

// The channel Tx::notify()/Store::listen() use to wake relays.
inline constexpr std::string_view kOutboxChannel = "herald_outbox";

struct OutboxOptions {
  std::string topic;   // topic used by add(tx, event); may be empty if every add names one
  std::string source;  // ce_source for events that leave it empty
  // PostgreSQL: the commit NOTIFYs the relay, which publishes at once. A committing transaction
  // that notified holds PostgreSQL's notification lock (one for the whole cluster) until its
  // commit is durable, so such commits run one at a time: with many concurrent writers that, not
  // the disk, limits the commit rate. Off: no NOTIFY (for the whole transaction), and the relay
  // finds the rows at its next rescan, so set its RelayOptions::idle_wait to the delay you accept
  // (a busy relay rescans at once). SQLite: no effect.
  bool notify = true;
};

class Outbox {
 public:
  explicit Outbox(OutboxOptions options = {}) : options_(std::move(options)) {}

  // Adds `event` for options().topic to the outbox inside `tx`. Fills a missing
  // ce_id (UUIDv7), ce_time (now) and ce_source (options().source). Returns the
  // ce_id. Nothing is visible to the relay until `tx` commits; a rollback drops
  // it. Errors: kInvalidArgument (no topic, invalid event), store errors.
  Result<std::string> add(Tx& tx, Event event) const;
  Result<std::string> add(Tx& tx, std::string_view topic, Event event) const;

  const OutboxOptions& options() const { return options_; }

 private:
  OutboxOptions options_;
};

// Rows currently waiting in the outbox (for health checks and tests).
Result<int64_t> outbox_pending(Store& store);

}  // namespace herald::sdk
