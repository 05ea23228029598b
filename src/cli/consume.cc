// `herald consume <topic>`: print records, one a line, for people and pipes.
//
// Without --group the command assigns the partitions itself and starts where
// --from says. With --group it joins the consumer group (or, with --partition,
// reads those partitions under the group's committed offsets) and commits the
// position of each record only after that record was written to stdout, so a
// killed or broken pipe never skips records for the group (at-least-once).
//
// Unless --follow is given, the command exits once it has reached the end of
// every partition it reads (the high watermark as of that moment).
#include "cli/consume.h"

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "cli/checks.h"
#include "cli/datetime.h"
#include "cli/kafka_client.h"
#include "cli/output.h"

namespace herald::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

struct ConsumeOptions {
  std::string topic;
  std::string from;
  std::vector<int32_t> partitions;
  int64_t count = -1;
  std::string group;
  bool follow = false;
  OutputFormat format = OutputFormat::kPlain;
  bool print_key = false;
  bool print_headers = false;
  bool print_offset = false;
  bool print_partition = false;
  bool print_timestamp = false;
  std::string separator = "\t";
};

using TopicPartition = std::pair<std::string, int32_t>;

// State the rebalance callback shares with the poll loop (same thread: the
// callback runs inside rd_kafka_consumer_poll).
struct ConsumerState {
  bool subscribed = false;
  bool got_assignment = false;
  std::set<TopicPartition> assigned;
  std::set<TopicPartition> at_end;                 // reported PARTITION_EOF, nothing read since
  std::map<TopicPartition, int64_t> to_store;      // next offsets of printed, not yet stored records
  bool write_failed = false;
  int write_errno = 0;
};

// Makes sure everything printed so far reached stdout, then hands the
// positions after those records to librdkafka, which commits them.
void flush_and_store(rd_kafka_t* rk, ConsumerState& st, bool commit_offsets) {
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    if (!st.write_failed) st.write_errno = errno;
    st.write_failed = true;  // broken pipe: those records were not delivered
    st.to_store.clear();
    return;
  }
  if (!commit_offsets || st.to_store.empty()) {
    st.to_store.clear();
    return;
  }
  auto list = make_partition_list(static_cast<int>(st.to_store.size()));
  for (const auto& [tp, next] : st.to_store) {
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = next;
  }
  rd_kafka_offsets_store(rk, list.get());  // a partition revoked meanwhile is skipped (per-partition error)
  st.to_store.clear();
}

struct RebalanceContext {
  ConsumerState* state;
  bool commit_offsets;
};

void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts, void* opaque) {
  auto* ctx = static_cast<RebalanceContext*>(opaque);
  ConsumerState& st = *ctx->state;
  bool cooperative = std::string(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative) {
      if (auto* e = rd_kafka_incremental_assign(rk, parts)) rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk, parts);
      st.assigned.clear();
    }
    for (int i = 0; i < parts->cnt; ++i) st.assigned.insert({parts->elems[i].topic, parts->elems[i].partition});
    st.got_assignment = true;
    return;
  }
  // Revoked: store what was printed first so that it is committed on revoke.
  flush_and_store(rk, st, ctx->commit_offsets);
  if (cooperative) {
    if (auto* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
    for (int i = 0; i < parts->cnt; ++i) {
      TopicPartition tp{parts->elems[i].topic, parts->elems[i].partition};
      st.assigned.erase(tp);
      st.at_end.erase(tp);
    }
  } else {
    rd_kafka_assign(rk, nullptr);
    st.assigned.clear();
    st.at_end.clear();
  }
}

void append_bytes(std::string& out, const void* data, size_t size) {
  if (data) out.append(static_cast<const char*>(data), size);
}

// Formats one record as one output line (newline included).
std::string format_record(const ConsumeOptions& o, const rd_kafka_message_t* m) {
  rd_kafka_timestamp_type_t ts_type;
  int64_t ts = rd_kafka_message_timestamp(m, &ts_type);
  rd_kafka_headers_t* hdrs = nullptr;  // owned by the message
  rd_kafka_message_headers(m, &hdrs);
  auto for_each_header = [&](auto&& fn) {
    if (!hdrs) return;
    const char* name;
    const void* val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
      fn(name, val, size);
    }
  };
  if (o.format == OutputFormat::kJson) {
    // Fields in the documented order.
    nlohmann::ordered_json j{{"topic", rd_kafka_topic_name(m->rkt)},
                             {"partition", m->partition},
                             {"offset", m->offset},
                             {"timestamp", ts},
                             {"timestamp_type", ts_type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? "log_append" : "create"},
                             {"key", bytes_to_json(m->key, m->key_len)},
                             {"value", bytes_to_json(m->payload, m->len)},
                             {"headers", nlohmann::ordered_json::array()}};
    for_each_header([&](const char* name, const void* val, size_t size) {
      j["headers"].push_back({{"key", name}, {"value", bytes_to_json(val, size)}});
    });
    std::string s = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    s += '\n';
    return s;
  }
  std::string line;
  auto field = [&](std::string_view f) {
    line.append(f);
    line.append(o.separator);
  };
  if (o.print_partition) field(std::to_string(m->partition));
  if (o.print_offset) field(std::to_string(m->offset));
  if (o.print_timestamp) field(ts >= 0 ? format_timestamp(ts) : "-");
  if (o.print_key) {
    append_bytes(line, m->key, m->key_len);
    line.append(o.separator);
  }
  if (o.print_headers) {
    bool first = true;
    for_each_header([&](const char* name, const void* val, size_t size) {
      if (!first) line += ',';
      first = false;
      line += name;
      line += '=';
      append_bytes(line, val, size);
    });
    line.append(o.separator);
  }
  append_bytes(line, m->payload, m->len);
  line += '\n';
  return line;
}

// The initial assignment for the no-subscription modes.
Result<PartitionListPtr> initial_assignment(rd_kafka_t* rk, const ConsumeOptions& o, const TopicInfo& info,
                                            const std::optional<StartPosition>& from, int timeout_ms) {
  std::vector<int32_t> parts = o.partitions;
  if (parts.empty()) {
    for (const auto& p : info.partitions) parts.push_back(p.id);
  }
  for (int32_t p : parts) {
    if (p < 0 || static_cast<size_t>(p) >= info.partitions.size()) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("topic '{}' has no partition {} (it has {})", o.topic, p, info.partitions.size())};
    }
  }
  auto list = make_partition_list(static_cast<int>(parts.size()));
  std::vector<std::optional<int64_t>> by_time;
  if (from && from->kind == StartPosition::Kind::kTimestamp) {
    HERALD_ASSIGN_OR_RETURN(by_time, offsets_for_time(rk, o.topic, parts, from->value, timeout_ms));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    int64_t offset = RD_KAFKA_OFFSET_STORED;  // with --group: the committed offset
    if (from) {
      switch (from->kind) {
        case StartPosition::Kind::kEarliest: offset = RD_KAFKA_OFFSET_BEGINNING; break;
        case StartPosition::Kind::kLatest: offset = RD_KAFKA_OFFSET_END; break;
        case StartPosition::Kind::kTail: offset = RD_KAFKA_OFFSET_TAIL(from->value); break;
        case StartPosition::Kind::kTimestamp: offset = by_time[i] ? *by_time[i] : RD_KAFKA_OFFSET_END; break;
        case StartPosition::Kind::kOffset: {
          HERALD_ASSIGN_OR_RETURN(auto w, query_watermarks(rk, o.topic, parts[i], timeout_ms));
          offset = std::clamp(from->value, w.log_start, w.high_watermark);
          break;
        }
      }
    }
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), parts[i])->offset = offset;
  }
  return list;
}

Result<int> run(const ClientOptions& copts, const ConsumeOptions& o) {
  std::optional<StartPosition> from;
  if (!o.from.empty()) {
    HERALD_ASSIGN_OR_RETURN(from, parse_start_position(o.from));
  }
  const bool with_group = !o.group.empty();
  const bool subscribe = with_group && o.partitions.empty();
  if (with_group && from && from->kind != StartPosition::Kind::kEarliest &&
      from->kind != StartPosition::Kind::kLatest) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("--from '{}' with --group: a group member starts at the group's committed offsets; "
                             "move them with `herald group reset-offsets {} --topic {} ...` (the group must be "
                             "idle), or consume without --group",
                             o.from, o.group, o.topic)};
  }
  if (!with_group && !from) from = StartPosition{StartPosition::Kind::kEarliest, 0};

  ConsumerState state;
  RebalanceContext rctx{&state, with_group};
  std::vector<std::pair<std::string, std::string>> settings{
      {"enable.partition.eof", "true"},
      {"enable.auto.offset.store", "false"},  // we store after printing
      // librdkafka stops fetching a partition whose queue holds queued.min.messages (100,000 by
      // default) and looks again only up to a second later: printing is slower than fetching, so
      // a long read would spend most of its time waiting (1 M records: 5-6 s instead of 0.7-1.1).
      {"queued.min.messages", "1000000"},
      {"auto.offset.reset",
       from && from->kind == StartPosition::Kind::kLatest ? "latest" : "earliest"},
  };
  if (with_group) {
    settings.emplace_back("group.id", o.group);
    settings.emplace_back("enable.auto.commit", "true");
  } else {
    // librdkafka's assign() needs a group.id even when nothing is committed
    // or joined; this one is never used for either.
    settings.emplace_back("group.id", kScratchGroup);
    settings.emplace_back("enable.auto.commit", "false");
  }
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(copts, settings));
  if (subscribe) {
    rd_kafka_conf_set_rebalance_cb(conf.get(), &on_rebalance);
    rd_kafka_conf_set_opaque(conf.get(), &rctx);
  }
  HERALD_ASSIGN_OR_RETURN(auto rk, make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  HERALD_ASSIGN_OR_RETURN(auto info, fetch_topic(rk.get(), o.topic, copts.timeout_ms));

  // Without --follow: each partition's high watermark when the command first
  // reads it. librdkafka reports no end of partition while every fetch brings
  // records, so under steady traffic only this snapshot ends the command.
  // Taken before the assignment where there is one: a query sent after it
  // waits behind the partition's first fetch, a long poll on an idle log.
  std::map<TopicPartition, int64_t> ends;
  int64_t lo = 0, hi = 0;  // the watermarks end_of() read last
  auto end_of = [&](const TopicPartition& tp) {
    auto it = ends.find(tp);
    if (it != ends.end()) return it->second;
    if (rd_kafka_query_watermark_offsets(rk.get(), tp.first.c_str(), tp.second, &lo, &hi, copts.timeout_ms) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      lo = 0;
      hi = INT64_MAX;  // unknown: the end-of-partition event decides
    }
    return ends[tp] = hi;
  };

  if (subscribe) {
    auto topics = make_partition_list(1);
    rd_kafka_topic_partition_list_add(topics.get(), o.topic.c_str(), RD_KAFKA_PARTITION_UA);
    if (auto err = rd_kafka_subscribe(rk.get(), topics.get())) {
      return Error{Errc::kIoError, fmt::format("subscribe to '{}': {}", o.topic, describe_error(err))};
    }
    state.subscribed = true;
  } else {
    // With --group, every partition starts at the group's committed offset; --from (earliest or
    // latest) is only the auto.offset.reset for a partition without one.
    HERALD_ASSIGN_OR_RETURN(auto list, initial_assignment(rk.get(), o, info, with_group ? std::nullopt : from,
                                                          copts.timeout_ms));
    for (int i = 0; !o.follow && i < list->cnt; ++i) {
      // A partition that starts at its end has nothing to print: done at once.
      const TopicPartition tp{o.topic, list->elems[i].partition};
      const int64_t start = list->elems[i].offset;
      if (end_of(tp) == INT64_MAX) continue;
      const bool from_log_start = start == RD_KAFKA_OFFSET_BEGINNING || start <= RD_KAFKA_OFFSET_TAIL_BASE;
      if (start == RD_KAFKA_OFFSET_END || start >= hi || (from_log_start && lo >= hi)) state.at_end.insert(tp);
    }
    if (auto err = rd_kafka_assign(rk.get(), list.get())) {
      return Error{Errc::kIoError, fmt::format("assign: {}", describe_error(err))};
    }
    for (int i = 0; i < list->cnt; ++i) state.assigned.insert({o.topic, list->elems[i].partition});
    state.got_assignment = true;
  }

  struct sigaction sa {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  int64_t printed = 0;
  int exit_status = 0;
  auto started = std::chrono::steady_clock::now();
  auto done = [&] {
    if (o.count >= 0 && printed >= o.count) return true;
    if (o.follow || !state.got_assignment) return false;
    for (const auto& tp : state.assigned) {
      if (!state.at_end.count(tp)) return false;
    }
    return true;
  };
  while (!g_stop.load() && !state.write_failed && !done()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 200);
    if (!m) {
      flush_and_store(rk.get(), state, with_group);
      if (done()) break;
      if (!o.follow && !state.got_assignment &&
          std::chrono::steady_clock::now() - started > std::chrono::milliseconds(copts.timeout_ms)) {
        std::fprintf(stderr, "herald consume: no partitions assigned to group '%s' within %d s\n", o.group.c_str(),
                     copts.timeout_ms / 1000);
        exit_status = 1;
        break;
      }
      continue;
    }
    std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> msg(m, &rd_kafka_message_destroy);
    TopicPartition tp{m->rkt ? rd_kafka_topic_name(m->rkt) : o.topic, m->partition};
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      state.at_end.insert(tp);
      if (done()) break;
      continue;
    }
    if (m->err) {
      std::string what = describe_error(m->err);
      if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          m->err == RD_KAFKA_RESP_ERR__FATAL || m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
          m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        std::fprintf(stderr, "herald consume: %s\n", what.c_str());
        exit_status = 1;
        break;
      }
      std::fprintf(stderr, "herald consume: warning: %s\n", what.c_str());
      continue;
    }
    if (!o.follow && m->offset >= end_of(tp)) {  // written after the snapshot
      state.at_end.insert(tp);
      if (done()) break;
      continue;
    }
    std::string line = format_record(o, m);
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size()) {
      state.write_failed = true;
      state.write_errno = errno;
      break;
    }
    ++printed;
    state.to_store[tp] = m->offset + 1;
    if (o.follow) {
      state.at_end.erase(tp);
      flush_and_store(rk.get(), state, with_group);
      continue;
    }
    if (m->offset + 1 < end_of(tp)) {
      state.at_end.erase(tp);
    } else {
      state.at_end.insert(tp);
      if (done()) break;
    }
    if (printed % 1000 == 0) flush_and_store(rk.get(), state, with_group);
  }
  flush_and_store(rk.get(), state, with_group);
  if (with_group && !state.write_failed) {
    // Commit what was stored, synchronously, so the group's position is
    // durable when we exit (auto-commit would otherwise do it on close).
    auto err = rd_kafka_commit(rk.get(), nullptr, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      std::fprintf(stderr, "herald consume: committing offsets for group '%s' failed: %s\n", o.group.c_str(),
                   describe_error(err).c_str());
      exit_status = 1;
    }
  }
  if (state.subscribed) rd_kafka_unsubscribe(rk.get());
  if (state.write_failed) {
    // As a command killed by SIGPIPE (128 + 13) when the reader went away; any other error is reported.
    if (state.write_errno == EPIPE) return 141;
    std::fprintf(stderr, "herald consume: writing to stdout failed: %s\n", std::strerror(state.write_errno));
    return 1;
  }
  return exit_status;
}

}  // namespace

void add_consume_command(CLI::App& app, std::function<int()>& action) {
  auto o = std::make_shared<ConsumeOptions>();
  auto copts = std::make_shared<ClientOptions>();
  auto* cmd = app.add_subcommand("consume", "Print a topic's records, one a line (or one JSON object a line)");
  cmd->add_option("topic", o->topic, "Topic to read")->required();
  cmd->add_option("--from", o->from,
                  "Where to start: earliest | latest | OFFSET | -N (the last N of each partition) | "
                  "ISO-8601 datetime (first record at or after it) | @EPOCH_MS "
                  "[earliest; with --group: the committed offset, else earliest]");
  cmd->add_option("-p,--partition", o->partitions, "Read only this partition, repeatable or a,b,c [all]")
      ->delimiter(',')
      ->check(integer_check(0));
  cmd->add_option("-n,--count", o->count, "Exit after printing N records")
      ->check(integer_check(0, std::numeric_limits<int64_t>::max()));
  cmd->add_option("-g,--group", o->group,
                  "Consume as a member of this consumer group, committing each record's offset after printing it");
  cmd->add_flag("-F,--follow", o->follow, "Keep waiting for new records (default: exit at the end of the log)");
  add_format_option(cmd, o->format, "one object a line with topic, partition, offset, timestamp, key, value, headers");
  cmd->add_flag("--print-key", o->print_key, "Plain format: print the key before the value");
  cmd->add_flag("--print-headers", o->print_headers, "Plain format: print headers as k=v,k2=v2 before the value");
  cmd->add_flag("--print-offset", o->print_offset, "Plain format: print the offset");
  cmd->add_flag("--print-partition", o->print_partition, "Plain format: print the partition");
  cmd->add_flag("--print-timestamp", o->print_timestamp, "Plain format: print the record timestamp (ISO-8601, UTC)");
  cmd->add_option("--separator", o->separator, "Plain format: field separator [TAB]");
  add_client_options(cmd, *copts);
  cmd->footer(R"(
Plain output is one line per record: the selected fields in the order
partition, offset, timestamp, key, headers, then the value, separated by TAB.
In JSON, key/value/header values are strings when they are UTF-8 text and
{"base64": "..."} otherwise; a null key or value is null.

With --group (and no --partition) the command joins the group like any other
member and shares the partitions with them; offsets are committed only for
records already written to stdout. Records a pipe's reader never reads (it
exited early, as `| head -2` does) count as written: take N records with
--count N instead. With --group and --partition it reads those
partitions from the group's committed offsets without joining. Either way
--from earliest|latest applies only to partitions where the group has no
committed offset; to move committed offsets, use `herald group reset-offsets`.

Examples:
  herald consume orders                                   # everything so far, then exit
  herald consume orders --follow --print-key --print-offset
  herald consume orders --from -10 --partition 0          # last 10 records of partition 0
  herald consume orders --from 2024-05-01T12:00:00Z --format json | jq .value
  herald consume orders --group billing --count 100       # next 100 for group billing
  herald consume orders --from latest --follow --format json
)");
  cmd->callback([&action, o, copts] {
    action = [o, copts] {
      auto r = run(*copts, *o);
      if (!r) return exit_code(r, "consume");
      return *r;
    };
  });
}

}  // namespace herald::cli
