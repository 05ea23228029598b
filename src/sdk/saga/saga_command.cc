#include "sdk/saga/saga_command.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "sdk/command_args.h"
#include "sdk/envelope.h"
#include "sdk/replica/kafka_handles.h"
#include "sdk/saga/saga.h"

namespace herald::sdk {
namespace {

using nlohmann::json;

// One state change as published on herald.sagas.
struct Change {
  json body;        // the event payload
  int64_t time_ms;  // ce_time
};

std::string str(const json& j, const char* k) {
  auto it = j.find(k);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

int run_saga_command(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
  CLI::App app{"Sagas and their step history (from the herald.sagas topic)", "herald saga"};
  app.require_subcommand(1);
  std::string topic = std::string(kSagaEventsTopic), state, id;
  bool as_json = false;
  ClientArgs client;
  auto common = [&](CLI::App* c) {
    client.add_to(c);
    c->add_option("--topic", topic, "The saga events topic [herald.sagas]");
    c->add_flag("--json", as_json, "One JSON object per line");
  };
  app.footer(R"(
Examples:
  herald saga list --state compensating
  herald saga list --json
  herald saga show 01a21890-25c2-75df-aedd-6f8806a99eb2)");
  auto* list_cmd = app.add_subcommand("list", "One line per saga: its latest state");
  common(list_cmd);
  list_cmd->add_option("--state", state, "Only sagas in this state (running, compensating, completed, compensated, failed)");
  auto* show_cmd = app.add_subcommand("show", "The state changes of one saga, oldest first");
  common(show_cmd);
  show_cmd->add_option("id", id, "Saga id")->required();

  if (auto code = parse_command_args(app, args, out, err)) return *code;
  client.apply_logging();
  const std::string who = "herald saga " + app.get_subcommands().front()->get_name();
  auto fail = [&who](std::FILE* to, const std::string& what) {
    fmt::print(to, "{}: {}\n", who, with_client_error(what));
    return 1;
  };
  if (!state.empty() && !parse_saga_state(state)) {
    return fail(err, fmt::format("--state: unknown state '{}' (one of running, compensating, completed, compensated, "
                                 "failed)",
                                 state));
  }

  kafka::Properties props{{"bootstrap.servers", client.brokers()}, {"group.id", "herald-saga-reader"}};
  if (auto bad = client.properties(props)) return fail(err, *bad);
  // show: every change of one saga; list: each saga's latest change and how many it had.
  std::vector<Change> history;
  struct Latest {
    Change last;
    size_t changes = 0;
  };
  std::map<std::string, Latest> latest;
  std::vector<std::string> first_seen;
  const bool showing = show_cmd->parsed();
  auto read = kafka::read_to_end(props, topic, client.timeout(), [&](const rd_kafka_message_t& m) {
    auto ev = decode_message(m);
    if (!ev || ev->tombstone) return;
    auto body = json::parse(ev->payload, nullptr, false);
    if (!body.is_object()) return;
    std::string sid = str(body, "saga_id");
    if (showing) {
      if (sid == id) history.push_back({std::move(body), ev->time_ms});
      return;
    }
    auto& l = latest[sid];
    if (l.changes++ == 0) first_seen.push_back(sid);
    l.last = {std::move(body), ev->time_ms};
  });
  // No herald.sagas topic yet: no saga has run. A --topic that does not exist is a mistake.
  if (!read && (read.error().code != Errc::kNotFound || topic != kSagaEventsTopic)) {
    return fail(err, read.error().message);
  }

  if (showing) {
    if (history.empty()) return fail(err, fmt::format("no saga '{}' in {}", id, topic));
    for (const auto& c : history) {
      if (as_json) {
        json j = c.body;
        j["time"] = format_rfc3339(c.time_ms);
        fmt::print(out, "{}\n", j.dump());
        continue;
      }
      std::string reason = str(c.body, "reason");
      fmt::print(out, "{}  {:<19} step {} {:<16} -> {}{}\n", format_rfc3339(c.time_ms), str(c.body, "event"),
                 c.body.value("step", 0), str(c.body, "step_name"), str(c.body, "state"),
                 reason.empty() ? "" : "  (" + reason + ")");
    }
    return 0;
  }
  const auto wanted = [&](const Change& last) { return state.empty() || str(last.body, "state") == state; };
  size_t id_width = 0, saga_width = 0;  // columns line up whatever the ids
  for (const auto& sid : first_seen) {
    if (!wanted(latest[sid].last)) continue;
    id_width = std::max(id_width, sid.size());
    saga_width = std::max(saga_width, str(latest[sid].last.body, "saga").size());
  }
  size_t shown = 0;
  for (const auto& sid : first_seen) {
    const Change& last = latest[sid].last;
    if (!wanted(last)) continue;
    ++shown;
    // A step_completed event names the step the saga waits for next.
    const bool next = last.body.contains("next_step");
    const int step = last.body.value(next ? "next_step" : "step", 0);
    const std::string step_name = str(last.body, next ? "next_step_name" : "step_name");
    if (as_json) {
      json j = {{"saga_id", sid},
                {"saga", str(last.body, "saga")},
                {"state", str(last.body, "state")},
                {"step", step},
                {"step_name", step_name},
                {"reason", str(last.body, "reason")},
                {"updated", format_rfc3339(last.time_ms)},
                {"changes", latest[sid].changes}};
      fmt::print(out, "{}\n", j.dump());
      continue;
    }
    std::string reason = str(last.body, "reason");
    fmt::print(out, "{:<{}}  {:<{}}  {:<12} step {} {:<16} {}{}\n", sid, id_width, str(last.body, "saga"), saga_width,
               str(last.body, "state"), step, step_name, format_rfc3339(last.time_ms),
               reason.empty() ? "" : "  (" + reason + ")");
  }
  if (!as_json) fmt::print(out, "{} saga(s)\n", shown);
  return 0;
}

}  // namespace herald::sdk
