// Writes a user and the event about it in one transaction, then reads back
// what the outbox holds: proves the SDK links and works from another project.
#include <cstdio>
#include <string>

#include "sdk/envelope.h"
#include "sdk/outbox/outbox.h"
#include "sdk/store/store.h"

using namespace herald;
using namespace herald::sdk;

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto store = Store::open(std::string("sqlite:") + argv[1]);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", store.error().to_string().c_str());
    return 1;
  }
  Outbox outbox({.topic = "users", .source = "/users-service"});
  int64_t waiting = -1;
  auto r = (*store)->run([&](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, email TEXT)"));
    HERALD_TRY(tx.exec("INSERT INTO users VALUES (?, ?)", {"u1", "ann@example.com"}));
    HERALD_TRY(outbox.add(tx, Event::json("users.created", "", "u1", {{"email", "ann@example.com"}})));
    HERALD_ASSIGN_OR_RETURN(auto row, tx.query_one("SELECT count(*) FROM herald_outbox WHERE aggregate_id = 'u1'"));
    waiting = row->int64(0);
    return ok();
  });
  if (!r) {
    std::fprintf(stderr, "transaction: %s\n", r.error().to_string().c_str());
    return 1;
  }
  std::printf("%lld event(s) in the outbox\n", static_cast<long long>(waiting));
  return waiting == 1 ? 0 : 1;
}
