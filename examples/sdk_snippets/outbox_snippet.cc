// Snippets for docs/sdk.md, section "Produce through the outbox". Compiled
// with the build (examples/sdk_snippets/CMakeLists.txt) and run by the tests
// (tests/sdk/outbox_test.cc, DocsSnippet); examples/sdk_snippets/check_doc.py
// checks that docs/sdk.md shows exactly the [START]..[END] regions below.
#include "snippets.h"

// [START outbox_includes]
#include "sdk/outbox/outbox.h"
#include "sdk/outbox/relay.h"
#include "sdk/store/store.h"
// [END outbox_includes]

namespace herald::snippets {

using namespace herald::sdk;

Result<void> outbox_example(const std::string& db_url, const std::string& brokers) {
  // [START outbox_open]
  // "sqlite:users.db" (embedded default) or "postgresql://app@db-host/users".
  HERALD_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::open(db_url));
  HERALD_TRY(store->run([](Tx& tx) -> Result<void> {
    return tx.exec_script(
        "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT NOT NULL)");
  }));
  // [END outbox_open]

  // [START outbox_relay]
  RelayOptions relay_options;
  relay_options.brokers = brokers;  // e.g. "127.0.0.1:9092"
  HERALD_ASSIGN_OR_RETURN(auto relay, OutboxRelay::create(*store, relay_options));
  HERALD_TRY(relay->start());  // a thread of this service; or run `herald outbox-relay`
  // [END outbox_relay]

  // [START outbox_write]
  Outbox outbox({.topic = "users", .source = "/users-service"});

  auto change_email = [&](const std::string& user_id, const std::string& email) {
    return store->run([&](Tx& tx) -> Result<void> {
      // The service's own state...
      HERALD_TRY(tx.exec("INSERT INTO users (id, email) VALUES (?, ?) "
                         "ON CONFLICT (id) DO UPDATE SET email = excluded.email",
                         {user_id, email}));
      // ...and the event about it, in the same local transaction.
      auto event = Event::json("users.email_changed", "", user_id, {{"email", email}});
      HERALD_TRY(outbox.add(tx, std::move(event)));
      return ok();
    });
  };
  HERALD_TRY(change_email("user-42", "ada@example.com"));
  // [END outbox_write]

  // [START outbox_stop]
  relay->stop();  // rows not yet acknowledged stay in the outbox for next time
  // [END outbox_stop]
  return ok();
}

}  // namespace herald::snippets
