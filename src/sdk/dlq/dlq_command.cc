#include "sdk/dlq/dlq_command.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>

#include "sdk/command_args.h"
#include "sdk/dlq/dead_letter.h"
#include "sdk/dlq/parked.h"

namespace herald::sdk::dlq {
namespace {

struct Options {
  ClientArgs client;
  std::string topic;
  std::string dlq_topic;
  std::string group;
  std::string store;
  std::string key;
  bool has_key = false;
  bool all = false;
  bool json = false;
};

void add_common(CLI::App* cmd, Options& o) {
  o.client.add_to(cmd);
  cmd->add_option("--topic", o.topic, "Source topic (dead letters in <topic>.dlq)");
  cmd->add_option("--dlq-topic", o.dlq_topic, "Dead-letter topic (default: <topic>.dlq)");
  cmd->add_option("--group", o.group, "Only dead letters of this consumer group (replica)");
}

Result<DlqOptions> dlq_options(const Options& o) {
  DlqOptions d;
  d.brokers = o.client.brokers();
  d.dlq_topic = !o.dlq_topic.empty() ? o.dlq_topic : (o.topic.empty() ? "" : o.topic + std::string(kDefaultSuffix));
  if (d.dlq_topic.empty()) return Error{Errc::kInvalidArgument, "give --topic or --dlq-topic"};
  d.group = o.group;
  d.timeout = o.client.timeout();
  if (auto bad = o.client.properties(d.kafka)) return Error{Errc::kInvalidArgument, *bad};
  return d;
}

nlohmann::json headers_json(const Headers& h) {
  auto arr = nlohmann::json::array();
  for (const auto& x : h) arr.push_back({x.name, x.value});
  return arr;
}

void print_letter(std::FILE* out, const DeadLetter& d, bool json) {
  if (json) {
    nlohmann::json j = {{"dlq_topic", d.dlq_topic},
                        {"dlq_partition", d.dlq_partition},
                        {"dlq_offset", d.dlq_offset},
                        {"topic", d.failure.topic},
                        {"partition", d.failure.partition},
                        {"offset", d.failure.offset},
                        {"group", d.failure.group},
                        {"error", d.failure.error},
                        {"attempts", d.failure.attempts},
                        {"failed_at", format_rfc3339(d.failure.failed_at_ms)},
                        {"ordered", d.failure.ordered},
                        {"value_omitted", d.failure.value_omitted >= 0},
                        {"pending", d.pending},
                        {"key", d.key ? nlohmann::json(*d.key) : nlohmann::json(nullptr)},
                        {"value", d.value ? nlohmann::json(*d.value) : nlohmann::json(nullptr)},
                        {"headers", headers_json(d.headers)}};
    fmt::print(out, "{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print(out, "{}/{}@{}{}  from {}/{}@{}  group={} attempts={} failed_at={} key={}{}\n    error: {}\n",
             d.dlq_topic, d.dlq_partition, d.dlq_offset, d.pending ? "" : " (replayed or skipped)", d.failure.topic,
             d.failure.partition, d.failure.offset, d.failure.group, d.failure.attempts,
             format_rfc3339(d.failure.failed_at_ms), d.key ? *d.key : "(null)",
             d.failure.value_omitted >= 0 ? fmt::format(" (value of {} bytes omitted)", d.failure.value_omitted) : "",
             d.failure.error);
}

void print_parked(std::FILE* out, const ParkedEvent& e, bool json) {
  static const char* kStates[] = {"waiting", "dead", "replay"};
  const char* state = kStates[static_cast<int>(e.state) % 3];
  if (json) {
    nlohmann::json j = {{"group", e.group},   {"topic", e.topic},       {"partition", e.partition},
                        {"offset", e.offset}, {"key", e.key},           {"state", state},
                        {"error", e.error},   {"attempts", e.attempts}, {"parked_at", format_rfc3339(e.parked_at_ms)},
                        {"headers", headers_json(e.headers)}};
    fmt::print(out, "{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  fmt::print(out, "{}/{}@{}  key={} state={}{}\n", e.topic, e.partition, e.offset, e.key, state,
             e.error.empty() ? "" : fmt::format(" attempts={} error: {}", e.attempts, e.error));
}

}  // namespace

int run_dlq_command(const std::vector<std::string>& args, std::FILE* out, std::FILE* err) {
  CLI::App app{"Inspect, replay or skip dead letters", "herald dlq"};
  app.require_subcommand(1);
  app.footer(R"(
Examples:
  herald dlq list --topic users --group billing          # pending dead letters of group billing on users
  herald dlq replay --topic users --group billing        # re-publish them after a fix
  herald dlq skip --topic users --group billing          # pass over them
  herald dlq parked --store sqlite:billing.db --group billing        # ordered mode: parked keys
  herald dlq replay --store sqlite:billing.db --group billing --topic users --key user-7)");
  Options o;
  auto* list_cmd = app.add_subcommand("list", "Print dead letters (pending ones unless --all)");
  add_common(list_cmd, o);
  list_cmd->add_flag("--all", o.all, "Also letters already replayed or skipped");
  list_cmd->add_flag("--json", o.json, "One JSON object per line");

  auto* replay_cmd = app.add_subcommand(
      "replay", "Re-publish pending dead letters to their source topic (with --store: replay parked keys)");
  add_common(replay_cmd, o);
  auto* replay_store =
      replay_cmd->add_option("--store", o.store, "Ordered mode: the replica's database URL; marks parked keys for replay");
  replay_cmd->add_option("--key", o.key, "With --store: only this key")->needs(replay_store);

  auto* skip_cmd = app.add_subcommand(
      "skip", "Pass over pending dead letters (ordered mode: with --store, their parked heads are dropped too)");
  add_common(skip_cmd, o);
  auto* skip_store = skip_cmd->add_option(
      "--store", o.store, "Ordered mode: the replica's database URL (needed when a pending letter is ordered)");
  skip_cmd->add_option("--key", o.key, "With --store: only drop this parked key's head")->needs(skip_store);

  auto* parked_cmd = app.add_subcommand("parked", "Print parked events of a replica (ordered mode)");
  add_common(parked_cmd, o);
  parked_cmd->add_option("--store", o.store, "The replica's database URL")->required();
  parked_cmd->add_flag("--json", o.json, "One JSON object per line");

  if (auto code = parse_command_args(app, args, out, err)) return *code;
  o.client.apply_logging();
  const std::string who = "herald dlq " + app.get_subcommands().front()->get_name();
  auto fail = [&who](std::FILE* to, const Error& e) {
    fmt::print(to, "{}: {}\n", who, with_client_error(e.message));
    return 1;
  };
  for (auto* sub : {replay_cmd, skip_cmd}) {
    if (sub->parsed() && sub->count("--key")) o.has_key = true;
  }

  // The replica's own database: never created or migrated here, so a mistyped --store is an
  // error instead of an empty new database with "0 parked event(s)".
  auto open_store = [&]() -> Result<std::unique_ptr<Store>> {
    if (o.group.empty()) return Error{Errc::kInvalidArgument, "--store needs --group"};
    HERALD_ASSIGN_OR_RETURN(auto store,
                            Store::open(o.store, StoreOptions{.create_schema = false, .create_sqlite_file = false}));
    auto tables = store->run([](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.query("SELECT 1 FROM herald_migrations LIMIT 1"));
      return ok();
    }, 1, TxOptions{.read_only = true});
    if (!tables) {
      return Error{Errc::kNotFound, fmt::format("{} has no Herald SDK tables: is it the replica's database?", o.store)};
    }
    return store;
  };

  if (parked_cmd->parsed()) {
    auto store = open_store();
    if (!store) return fail(err, store.error());
    auto rows = list_parked(**store, o.group, o.topic);
    if (!rows) return fail(err, rows.error());
    for (const auto& e : *rows) print_parked(out, e, o.json);
    if (!o.json) fmt::print(out, "{} parked event(s)\n", rows->size());
    return 0;
  }
  std::unique_ptr<Store> store;
  if (!o.store.empty()) {
    auto opened = open_store();
    if (!opened) return fail(err, opened.error());
    store = std::move(*opened);
  }
  if (store && replay_cmd->parsed()) {
    auto n = replay_parked(*store, o.group, o.topic, o.has_key ? std::optional<std::string>(o.key) : std::nullopt);
    if (!n) return fail(err, n.error());
    fmt::print(out, "{} parked key(s) marked for replay; the replica applies them in order\n", *n);
    return 0;
  }
  if (store && o.has_key) {
    if (o.topic.empty()) return fail(err, Error{Errc::kInvalidArgument, "skip --store --key needs --topic"});
    auto n = skip_parked(*store, o.group, o.topic, o.key);
    if (!n) return fail(err, n.error());
    fmt::print(out, "{} dead head(s) dropped; the rest of the key's events follow\n", *n);
    return 0;
  }

  auto d = dlq_options(o);
  if (!d) return fail(err, d.error());
  // A misspelt name would read as "no dead letters". The dead-letter topic itself appears with the
  // first letter, so only a missing source topic is an error.
  for (const auto& t : {o.topic, d->dlq_topic}) {
    if (t.empty()) continue;
    auto exists = topic_exists(*d, t);
    if (!exists) return fail(err, exists.error());
    if (*exists) continue;
    if (t == o.topic) return fail(err, Error{Errc::kNotFound, fmt::format("topic '{}' does not exist", t)});
    fmt::print(err, "{}: topic '{}' does not exist: no letter has been written to it yet\n", who, t);
  }
  if (list_cmd->parsed()) {
    auto letters = list(*d, !o.all);
    if (!letters) return fail(err, letters.error());
    for (const auto& l : *letters) print_letter(out, l, o.json);
    if (!o.json) fmt::print(out, "{} dead letter(s){}\n", letters->size(), o.all ? "" : " pending");
    return 0;
  }
  if (replay_cmd->parsed()) {
    auto st = replay(*d);
    if (!st) return fail(err, st.error());
    fmt::print(out, "replayed {} dead letter(s) from {}\n", st->replayed, d->dlq_topic);
    for (const auto& u : st->unreplayable) fmt::print(err, "{}: not replayed, passed over: {}\n", who, u);
    return st->unreplayable.empty() ? 0 : 1;
  }
  // An ordered letter heads its key's chain in the replica's database: skipping only the letter would
  // leave the key's later events parked for good.
  int64_t heads = 0;
  auto st = skip(*d, [&](const DeadLetter& l) -> Result<void> {
    if (!l.failure.ordered) return ok();
    if (!store) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("{}/{}@{} is an ordered dead letter: later events of its key wait behind it in the "
                               "replica's database; give --store <database url> to drop it there too (nothing "
                               "was skipped)",
                               l.failure.topic, l.failure.partition, l.failure.offset)};
    }
    HERALD_ASSIGN_OR_RETURN(int64_t n, skip_parked_at(*store, l.failure.group, l.failure.topic, l.failure.partition,
                                                      l.failure.offset));
    heads += n;
    return ok();
  });
  if (!st) return fail(err, st.error());
  fmt::print(out, "skipped {} dead letter(s) in {}", st->skipped, d->dlq_topic);
  if (store) fmt::print(out, "; {} parked head(s) dropped, the rest of their keys' events follow", heads);
  fmt::print(out, "\n");
  return 0;
}

}  // namespace herald::sdk::dlq
