// Snippets for docs/sdk.md, section "Events". See outbox_snippet.cc.
#include <nlohmann/json.hpp>

#include "sdk/envelope.h"
#include "snippets.h"

namespace herald::snippets {

using namespace herald::sdk;

// [START envelope_type]
struct EmailChanged {
  std::string email;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EmailChanged, email)
// [END envelope_type]

Result<void> envelope_example() {
  // [START envelope_encode]
  Event ev = Event::json("users.email_changed", "/users-service", "user-42",
                         EmailChanged{"ada@example.com"});
  ev.aggregate_version = 7;  // optional: header herald_aggregate_version
  HERALD_ASSIGN_OR_RETURN(EncodedEvent rec, encode_in_place(ev));
  // rec.key == "user-42", *rec.value == R"({"email":"ada@example.com"})",
  // rec.headers: ce_specversion, ce_id (a fresh UUIDv7 = ev.id), ce_type,
  // ce_source, ce_time, content-type, herald_aggregate_version.
  // [END envelope_encode]

  // [START envelope_handlers]
  HandlerRegistry<std::map<std::string, std::string>&> handlers;
  handlers.on_json<EmailChanged>(
      "users.email_changed",
      [](const EmailChanged& e, const Event& event, std::map<std::string, std::string>& emails) {
        emails[event.aggregate_id] = e.email;
      });

  HERALD_ASSIGN_OR_RETURN(Event decoded, decode(rec.key, *rec.value, rec.headers));
  std::map<std::string, std::string> emails;
  bool handled = handlers.dispatch(decoded, emails);  // false: no handler for that ce_type
  // [END envelope_handlers]
  if (!handled || emails["user-42"] != "ada@example.com" || decoded.id != ev.id) {
    return Error{Errc::kCorruption, "envelope snippet: round trip failed"};
  }
  return ok();
}

}  // namespace herald::snippets
