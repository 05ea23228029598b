#include "sdk/outbox/outbox.h"

#include "common/clock.h"

namespace herald::sdk {

Result<std::string> Outbox::add(Tx& tx, Event event) const {
  return add(tx, options_.topic, std::move(event));
}

Result<std::string> Outbox::add(Tx& tx, std::string_view topic, Event event) const {
  if (topic.empty()) return Error{Errc::kInvalidArgument, "outbox: no topic for the event"};
  if (event.source.empty()) event.source = options_.source;
  HERALD_ASSIGN_OR_RETURN(EncodedEvent rec, encode_in_place(event));
  Params params{event.aggregate_id,
                topic,
                rec.key.empty() ? Param() : Param::blob(rec.key),
                headers_to_json(rec.headers),
                rec.value ? Param::blob(*rec.value) : Param(),
                event.id,
                now_ms()};
  if (tx.dialect() == Dialect::kPostgres) {
    // The aggregate's lock is taken (FROM clause) before the row gets its id (the
    // default nextval of the INSERT's target list): see the ordering note in
    // outbox.h. Events without an aggregate have no order to keep and take none
    // (all of them would share one lock, one writer at a time). The statement
    // trigger on herald_outbox sends the NOTIFY, unless turned off here.
    std::string from;
    if (!event.aggregate_id.empty()) {
      from = "pg_advisory_xact_lock(1214606445, hashtext(?::text))";
      params.push_back(event.aggregate_id);
    }
    if (!options_.notify) from += std::string(from.empty() ? "" : ", ") + "set_config('herald.outbox_notify', 'off', true)";
    HERALD_TRY(tx.exec(
        "INSERT INTO herald_outbox (aggregate_id, topic, msg_key, headers, payload, ce_id, "
        "created_at) SELECT ?::text, ?::text, ?::bytea, ?::text, ?::bytea, ?::text, ?::bigint" +
            (from.empty() ? "" : " FROM " + from),
        params));
  } else {
    HERALD_TRY(tx.exec(
        "INSERT INTO herald_outbox (aggregate_id, topic, msg_key, headers, payload, ce_id, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        params));
    HERALD_TRY(tx.notify(kOutboxChannel));
  }
  return std::move(event.id);
}

Result<int64_t> outbox_pending(Store& store) {
  HERALD_ASSIGN_OR_RETURN(auto tx, store.begin({.read_only = true}));
  HERALD_ASSIGN_OR_RETURN(auto row, tx->query_one("SELECT count(*) FROM herald_outbox"));
  tx->rollback();
  return row ? row->int64(0) : 0;
}

}  // namespace herald::sdk
