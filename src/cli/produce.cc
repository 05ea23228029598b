// `herald produce <topic>`: one record per argument, or per line of stdin or
// --file. Idempotent with acks=all (the default), so a retried batch is never
// written twice. Exits non-zero if any record was not acknowledged.
#include "cli/produce.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "cli/checks.h"
#include "cli/datetime.h"
#include "cli/kafka_client.h"
#include "cli/output.h"

namespace herald::cli {
namespace {

struct ProduceOptions {
  std::string topic;
  std::vector<std::string> values;
  std::optional<std::string> key;
  std::string key_separator;
  std::vector<std::string> headers;
  int32_t partition = RD_KAFKA_PARTITION_UA;
  std::string acks = "all";
  std::string file;
  std::string timestamp;
  bool print_offsets = false;
  bool null_value = false;
};

// Shared with the delivery-report callback (runs inside rd_kafka_poll/flush on this thread).
struct DeliveryState {
  uint64_t delivered = 0;
  uint64_t failed = 0;
  bool print_offsets = false;
};

constexpr uint64_t kMaxErrorLines = 10;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<DeliveryState*>(opaque);
  if (m->err) {
    if (++st->failed <= kMaxErrorLines) {
      const bool keyless_refused = m->err == RD_KAFKA_RESP_ERR_INVALID_RECORD && m->key == nullptr;
      std::fprintf(stderr, "herald produce: record not delivered to %s: %s%s\n", rd_kafka_topic_name(m->rkt),
                   describe_error(m->err).c_str(),
                   keyless_refused ? " (the record has no key: a compacted topic takes only records with one)" : "");
    }
    return;
  }
  ++st->delivered;
  if (st->print_offsets) std::printf("%d\t%lld\n", m->partition, static_cast<long long>(m->offset));
}

struct Input {
  std::optional<std::string> key;
  std::optional<std::string> value;
};

class Producer {
 public:
  Producer(rd_kafka_t* rk, const ProduceOptions& o, rd_kafka_headers_t* headers, int64_t ts)
      : rk_(rk), o_(o), headers_(headers), timestamp_(ts) {}

  // Queues one record, waiting while librdkafka's queue is full. Returns false
  // on a local error (reported to stderr; counted as failed by the caller).
  bool send(const Input& in) {
    for (;;) {
      rd_kafka_headers_t* h = headers_ ? rd_kafka_headers_copy(headers_) : nullptr;
      const std::string* v = in.value ? &*in.value : nullptr;
      const std::string* k = in.key ? &*in.key : nullptr;
      // produceva rather than producev: the RD_KAFKA_V_* macros use GNU
      // statement expressions, which -Wpedantic rejects under clang.
      rd_kafka_vu_t vu[7] = {};
      size_t n = 0;
      auto add = [&](rd_kafka_vtype_t type) -> rd_kafka_vu_t& {
        vu[n].vtype = type;
        return vu[n++];
      };
      add(RD_KAFKA_VTYPE_TOPIC).u.cstr = o_.topic.c_str();
      add(RD_KAFKA_VTYPE_PARTITION).u.i32 = o_.partition;
      add(RD_KAFKA_VTYPE_MSGFLAGS).u.i = RD_KAFKA_MSG_F_COPY;
      add(RD_KAFKA_VTYPE_TIMESTAMP).u.i64 = timestamp_;
      if (v) {  // absent: a null value
        auto& x = add(RD_KAFKA_VTYPE_VALUE);
        x.u.mem.ptr = const_cast<char*>(v->data());
        x.u.mem.size = v->size();
      }
      if (k) {
        auto& x = add(RD_KAFKA_VTYPE_KEY);
        x.u.mem.ptr = const_cast<char*>(k->data());
        x.u.mem.size = k->size();
      }
      if (h) add(RD_KAFKA_VTYPE_HEADERS).u.headers = h;  // owned by the message on success
      rd_kafka_error_t* error = rd_kafka_produceva(rk_, vu, n);
      rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
      if (error) rd_kafka_error_destroy(error);
      if (!err) return true;
      if (h) rd_kafka_headers_destroy(h);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk_, 100);
        continue;
      }
      std::fprintf(stderr, "herald produce: cannot queue record: %s\n", describe_error(err).c_str());
      return false;
    }
  }

 private:
  rd_kafka_t* rk_;
  const ProduceOptions& o_;
  rd_kafka_headers_t* headers_;
  int64_t timestamp_;
};

Result<Input> to_input(const ProduceOptions& o, const std::string& text) {
  Input in;
  if (o.null_value) {
    in.key = text;  // a tombstone: the input is the key
    return in;
  }
  if (!o.key_separator.empty()) {
    auto pos = text.find(o.key_separator);
    if (pos == std::string::npos) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("no key separator '{}' in '{}'", o.key_separator, text.substr(0, 80))};
    }
    in.key = text.substr(0, pos);
    in.value = text.substr(pos + o.key_separator.size());
  } else {
    in.key = o.key;
    in.value = text;
  }
  return in;
}

Result<int> run(const ClientOptions& copts, const ProduceOptions& o) {
  std::string acks = o.acks == "-1" ? "all" : o.acks;
  if (acks == "0" && o.print_offsets) {
    return Error{Errc::kInvalidArgument, "--print-offsets with --acks 0: an unacknowledged record has no offset"};
  }
  int64_t ts = 0;  // 0: the producer stamps the current time
  if (!o.timestamp.empty()) {
    HERALD_ASSIGN_OR_RETURN(ts, parse_datetime(o.timestamp));
    if (ts == 0) {  // would be sent as "now" without a word
      return Error{Errc::kInvalidArgument, "--timestamp: 0 (1970-01-01T00:00:00Z) cannot be sent: librdkafka takes a "
                                           "timestamp of 0 as 'now'"};
    }
  }
  std::unique_ptr<rd_kafka_headers_t, decltype(&rd_kafka_headers_destroy)> headers(nullptr,
                                                                                  &rd_kafka_headers_destroy);
  if (!o.headers.empty()) {
    headers.reset(rd_kafka_headers_new(o.headers.size()));
    for (const auto& kv : o.headers) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Error{Errc::kInvalidArgument, fmt::format("--header '{}': expected KEY=VALUE", kv)};
      }
      rd_kafka_header_add(headers.get(), kv.data(), static_cast<ssize_t>(eq), kv.data() + eq + 1,
                          static_cast<ssize_t>(kv.size() - eq - 1));
    }
  }
  std::istream* input = &std::cin;
  std::ifstream file;
  if (o.values.empty() && !o.file.empty() && o.file != "-") {
    file.open(o.file, std::ios::binary);
    if (!file) return Error{Errc::kNotFound, fmt::format("cannot open --file '{}'", o.file)};
    input = &file;
  }

  DeliveryState state;
  state.print_offsets = o.print_offsets;
  std::vector<std::pair<std::string, std::string>> settings{
      {"acks", acks},
      {"enable.idempotence", acks == "all" ? "true" : "false"},
      {"message.timeout.ms", std::to_string(copts.timeout_ms)},
      {"partitioner", "murmur2_random"},  // the Java client's: same key, same partition
      {"linger.ms", "5"},
  };
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(copts, settings));
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &on_delivery);
  rd_kafka_conf_set_opaque(conf.get(), &state);
  HERALD_ASSIGN_OR_RETURN(auto rk, make_handle(RD_KAFKA_PRODUCER, std::move(conf)));

  // Fail fast on a missing topic (this also lets a broker that auto-creates
  // topics create it) and on a partition that does not exist.
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms));
  if (o.partition != RD_KAFKA_PARTITION_UA &&
      (o.partition < 0 || static_cast<size_t>(o.partition) >= info.partitions.size())) {
    return Error{Errc::kInvalidArgument, fmt::format("topic '{}' has no partition {} (it has {})", o.topic,
                                                     o.partition, info.partitions.size())};
  }

  Producer producer(rk.get(), o, headers.get(), ts);
  uint64_t local_failures = 0;
  auto send_text = [&](const std::string& text) {
    auto in = to_input(o, text);
    if (!in) {
      std::fprintf(stderr, "herald produce: %s\n", in.error().message.c_str());
      ++local_failures;
      return;
    }
    if (!producer.send(*in)) ++local_failures;
    rd_kafka_poll(rk.get(), 0);  // serve delivery reports as we go
  };
  if (!o.values.empty()) {
    for (const auto& v : o.values) send_text(v);
  } else {
    std::string line;
    while (std::getline(*input, line)) send_text(line);
  }
  // Wait for every queued record to be acknowledged (or to time out).
  while (rd_kafka_outq_len(rk.get()) > 0) {
    rd_kafka_flush(rk.get(), 1000);
  }
  if (o.print_offsets) std::fflush(stdout);
  uint64_t failed = state.failed + local_failures;
  if (state.failed > kMaxErrorLines) {
    std::fprintf(stderr, "herald produce: ... and %llu more delivery errors\n",
                 static_cast<unsigned long long>(state.failed - kMaxErrorLines));
  }
  if (failed > 0) {
    std::fprintf(stderr, "herald produce: %llu record(s) delivered, %llu failed\n",
                 static_cast<unsigned long long>(state.delivered), static_cast<unsigned long long>(failed));
    return 1;
  }
  return 0;
}

}  // namespace

void add_produce_command(CLI::App& app, std::function<int()>& action) {
  auto o = std::make_shared<ProduceOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = app.add_subcommand("produce", "Write records to a topic: one per VALUE argument, else one per input line");
  cmd->add_option("topic", o->topic, "Topic to write to")->required();
  cmd->add_option("values", o->values, "Record values; without them, each line of stdin (or --file) is a record");
  auto* key = cmd->add_option("-k,--key", o->key, "Key of every record (default: no key)");
  auto* sep = cmd->add_option("-K,--key-separator", o->key_separator,
                              "Split each value/line at the first SEP into KEY SEP VALUE (e.g. -K ':' for "
                              "'user-1:hello')")
                   ->excludes(key);
  cmd->add_option("-H,--header", o->headers, "Header KEY=VALUE on every record, repeatable")
      ->allow_extra_args(false);
  cmd->add_option("-p,--partition", o->partition, "Write to this partition [by key hash, or spread when no key]")
      ->check(integer_check(0));
  cmd->add_option("--acks", o->acks,
                  "all: on disk before acknowledged, idempotent (no duplicates on retry); 1: leader wrote it; "
                  "0: no acknowledgement")
      ->check(CLI::IsMember({"all", "-1", "1", "0"}))
      ->capture_default_str();
  cmd->add_option("-f,--file", o->file, "Read records from this file, one per line ('-' = stdin)")
      ->check(CLI::Validator(
          [](std::string& v) { return v == "-" || std::filesystem::is_regular_file(v) ? "" : "no such file: " + v; },
          "FILE"));
  cmd->add_option("-t,--timestamp", o->timestamp,
                  "Record timestamp for every record: ISO-8601 datetime or @EPOCH_MS [now]");
  cmd->add_flag("--tombstones", o->null_value,
                "Each argument/line is a KEY; send it with a null value (on a compacted topic this deletes the key)")
      ->excludes(key)
      ->excludes(sep);
  cmd->add_flag("--print-offsets", o->print_offsets, "Print PARTITION<TAB>OFFSET of each acknowledged record");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Records are acknowledged before the command exits; it exits 1 if any record
was not delivered (each failure is reported on stderr). --timeout bounds how
long each record may wait for its acknowledgement.

Examples:
  herald produce orders '{"id":1,"total":9.5}'
  herald produce orders --key order-1 --header ce_type=OrderPlaced '{"id":1}'
  printf 'user-1:alice@example.com\nuser-2:bob@example.com\n' | herald produce users -K ':'
  herald produce users --tombstones user-2              # delete user-2 from a compacted topic
  herald produce audit --file events.jsonl --acks 1
  herald produce orders --timestamp 2024-05-01T12:00:00Z 'backfilled'
)");
  cmd->callback([&action, o, copts] {
    action = [o, copts] {
      auto r = run(*copts, *o);
      if (!r) return exit_code(r, "produce");
      return *r;
    };
  });
}

}  // namespace herald::cli
