#include "sdk/dlq/dead_letter.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "common/log.h"
#include "common/parse.h"
#include "sdk/replica/kafka_handles.h"

namespace herald::sdk::dlq {
namespace {

bool is_herald_header(std::string_view name) {
  return name.starts_with("herald_dlq_") || name.starts_with("herald_replay_");
}

const std::string* find(const Headers& h, std::string_view name) {
  for (const auto& x : h) {
    if (x.name == name) return &x.value;
  }
  return nullptr;
}

Result<std::string> need(const Headers& h, std::string_view name) {
  if (const auto* v = find(h, name)) return *v;
  return Error{Errc::kInvalidArgument, fmt::format("dead letter: header {} missing", name)};
}

kafka::Properties consumer_props(const DlqOptions& o, const std::string& group_id) {
  kafka::Properties props = {{"bootstrap.servers", o.brokers},
                             {"group.id", group_id},
                             {"enable.auto.commit", "false"},
                             {"enable.auto.offset.store", "false"},
                             {"auto.offset.reset", "earliest"},
                             {"enable.partition.eof", "true"}};
  props.insert(props.end(), o.kafka.begin(), o.kafka.end());
  return props;
}

// Every dead letter in the topic (of o.group when set), up to the high
// watermarks read at the start; `ends` gets those watermarks.
struct Scan {
  std::vector<DeadLetter> letters;
  std::map<int32_t, int64_t> ends;  // partition -> high watermark read at the start
};

Result<Scan> scan(const DlqOptions& o) {
  if (o.dlq_topic.empty()) return Error{Errc::kInvalidArgument, "no dead-letter topic given"};
  Scan s;
  auto ends = kafka::read_to_end(consumer_props(o, "herald-dlq-reader"), o.dlq_topic, o.timeout,
                                 [&](const rd_kafka_message_t& m) {
    std::optional<std::string_view> key, value;
    if (m.key) key = std::string_view(static_cast<const char*>(m.key), m.key_len);
    if (m.payload) value = std::string_view(static_cast<const char*>(m.payload), m.len);
    auto dl = parse_dead_letter(key, value, message_headers(m));
    if (!dl) {
      HLOG_WARN("dlq: {}/{}@{} is not a dead letter: {}", o.dlq_topic, m.partition, m.offset, dl.error().message);
      return;
    }
    if (!o.group.empty() && dl->failure.group != o.group) return;
    dl->dlq_topic = o.dlq_topic;
    dl->dlq_partition = m.partition;
    dl->dlq_offset = m.offset;
    s.letters.push_back(std::move(dl).value());
  });
  if (!ends) {
    if (ends.error().code == Errc::kNotFound) return s;  // no dead letters yet
    return ends.error();
  }
  s.ends = std::move(*ends);
  return s;
}

// The replay cursors of the groups whose letters are in `s` (of o.group only
// when set): group -> (partition -> first pending offset).
using Cursors = std::map<std::string, std::map<int32_t, int64_t>>;

Result<Cursors> read_cursors(const DlqOptions& o, const Scan& s) {
  Cursors out;
  for (const auto& d : s.letters) out[d.failure.group];
  if (!o.group.empty()) out[o.group];
  for (auto& [group, offsets] : out) {
    HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf(consumer_props(o, cursor_group(o.dlq_topic, group))));
    HERALD_ASSIGN_OR_RETURN(auto consumer, kafka::make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
    auto list = kafka::make_list(static_cast<int>(s.ends.size()));
    for (auto& [p, end] : s.ends) rd_kafka_topic_partition_list_add(list.get(), o.dlq_topic.c_str(), p);
    rd_kafka_resp_err_t err = rd_kafka_committed(consumer.get(), list.get(), static_cast<int>(o.timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error{Errc::kIoError, fmt::format("replay cursor {}: {}", cursor_group(o.dlq_topic, group),
                                               kafka::describe(err))};
    }
    for (int i = 0; i < list->cnt; ++i) offsets[list->elems[i].partition] = std::max<int64_t>(0, list->elems[i].offset);
    rd_kafka_consumer_close(consumer.get());
  }
  return out;
}

bool pending(const Cursors& c, const DeadLetter& d) {
  auto g = c.find(d.failure.group);
  if (g == c.end()) return true;
  auto p = g->second.find(d.dlq_partition);
  return p == g->second.end() || d.dlq_offset >= p->second;
}

// Moves the cursor of every group in `c` to the ends of the scan.
Result<void> move_cursors(const DlqOptions& o, const Scan& s, const Cursors& c) {
  if (s.ends.empty()) return ok();
  for (const auto& [group, offsets] : c) {
    HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf(consumer_props(o, cursor_group(o.dlq_topic, group))));
    HERALD_ASSIGN_OR_RETURN(auto consumer, kafka::make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
    auto list = kafka::make_list(static_cast<int>(s.ends.size()));
    for (auto& [p, end] : s.ends) rd_kafka_topic_partition_list_add(list.get(), o.dlq_topic.c_str(), p)->offset = end;
    rd_kafka_resp_err_t err = rd_kafka_commit(consumer.get(), list.get(), 0);
    rd_kafka_consumer_close(consumer.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error{Errc::kIoError, fmt::format("move cursor {}: {}", cursor_group(o.dlq_topic, group),
                                               kafka::describe(err))};
    }
  }
  return ok();
}

}  // namespace

std::string coordinates(std::string_view topic, int32_t partition, int64_t offset) {
  return fmt::format("{}/{}/{}", topic, partition, offset);
}

Headers dead_letter_headers(const Headers& original, const Failure& f) {
  Headers out;
  out.reserve(original.size() + 9);
  for (const auto& h : original) {
    if (!is_herald_header(h.name)) out.push_back(h);
  }
  out.push_back({std::string(kHeaderTopic), f.topic});
  out.push_back({std::string(kHeaderPartition), std::to_string(f.partition)});
  out.push_back({std::string(kHeaderOffset), std::to_string(f.offset)});
  out.push_back({std::string(kHeaderGroup), f.group});
  // Bounded as in herald_parked: an error quoting a large payload must not make the dead letter too
  // large for the topic.
  out.push_back({std::string(kHeaderError), text_for_db(f.error, kMaxErrorBytes)});
  out.push_back({std::string(kHeaderAttempts), std::to_string(f.attempts)});
  out.push_back({std::string(kHeaderFailedAt), format_rfc3339(f.failed_at_ms)});
  out.push_back({std::string(kHeaderTimestamp), std::to_string(f.timestamp_ms)});
  out.push_back({std::string(kHeaderOrdered), f.ordered ? "1" : "0"});
  if (f.value_omitted >= 0) out.push_back({std::string(kHeaderValueOmitted), std::to_string(f.value_omitted)});
  return out;
}

Result<DeadLetter> parse_dead_letter(std::optional<std::string_view> key, std::optional<std::string_view> value,
                                     const Headers& headers) {
  DeadLetter d;
  HERALD_ASSIGN_OR_RETURN(d.failure.topic, need(headers, kHeaderTopic));
  HERALD_ASSIGN_OR_RETURN(auto part, need(headers, kHeaderPartition));
  HERALD_ASSIGN_OR_RETURN(d.failure.partition, parse_integer<int32_t>(kHeaderPartition, part));
  HERALD_ASSIGN_OR_RETURN(auto off, need(headers, kHeaderOffset));
  HERALD_ASSIGN_OR_RETURN(d.failure.offset, parse_integer<int64_t>(kHeaderOffset, off));
  HERALD_ASSIGN_OR_RETURN(d.failure.group, need(headers, kHeaderGroup));
  HERALD_ASSIGN_OR_RETURN(d.failure.error, need(headers, kHeaderError));
  HERALD_ASSIGN_OR_RETURN(auto att, need(headers, kHeaderAttempts));
  HERALD_ASSIGN_OR_RETURN(d.failure.attempts, parse_integer<int>(kHeaderAttempts, att));
  HERALD_ASSIGN_OR_RETURN(auto at, need(headers, kHeaderFailedAt));
  HERALD_ASSIGN_OR_RETURN(d.failure.failed_at_ms, parse_rfc3339(at));
  if (const auto* ts = find(headers, kHeaderTimestamp)) {
    HERALD_ASSIGN_OR_RETURN(d.failure.timestamp_ms, parse_integer<int64_t>(kHeaderTimestamp, *ts));
  }
  if (const auto* o = find(headers, kHeaderOrdered)) d.failure.ordered = *o == "1";
  if (const auto* v = find(headers, kHeaderValueOmitted)) {
    HERALD_ASSIGN_OR_RETURN(d.failure.value_omitted, parse_integer<int64_t>(kHeaderValueOmitted, *v));
  }
  if (key) d.key = std::string(*key);
  if (value) d.value = std::string(*value);
  for (const auto& h : headers) {
    if (!is_herald_header(h.name)) d.headers.push_back(h);
  }
  return d;
}

Headers replay_headers(const Headers& original, const Failure& f) {
  Headers out;
  for (const auto& h : original) {
    if (!is_herald_header(h.name)) out.push_back(h);
  }
  out.push_back({std::string(kHeaderReplayOf), coordinates(f.topic, f.partition, f.offset)});
  out.push_back({std::string(kHeaderReplayGroup), f.group});
  if (f.ordered) out.push_back({std::string(kHeaderReplayOrdered), "1"});
  return out;
}

std::optional<ReplayOf> replay_of(const Headers& headers) {
  const std::string* of = find(headers, kHeaderReplayOf);
  if (of == nullptr) return std::nullopt;
  // "<topic>/<partition>/<offset>"; the topic itself may contain '/'? Kafka
  // topic names cannot, so split at the last two slashes.
  auto b = of->rfind('/');
  if (b == std::string::npos || b == 0) return std::nullopt;
  auto a = of->rfind('/', b - 1);
  if (a == std::string::npos) return std::nullopt;
  ReplayOf r;
  r.topic = of->substr(0, a);
  auto p = parse_integer<int32_t>(kHeaderReplayOf, std::string_view(*of).substr(a + 1, b - a - 1));
  auto o = parse_integer<int64_t>(kHeaderReplayOf, std::string_view(*of).substr(b + 1));
  if (!p || !o) return std::nullopt;
  r.partition = *p;
  r.offset = *o;
  if (const std::string* g = find(headers, kHeaderReplayGroup)) r.group = *g;
  if (const std::string* ord = find(headers, kHeaderReplayOrdered)) r.ordered = *ord == "1";
  return r;
}

std::string cursor_group(std::string_view dlq_topic, std::string_view group) {
  return fmt::format("herald-dlq.{}.{}", dlq_topic, group);
}

Result<bool> topic_exists(const DlqOptions& o, const std::string& topic) {
  // A consumer's metadata request never creates the topic (a producer's may).
  HERALD_ASSIGN_OR_RETURN(auto conf, kafka::make_conf(consumer_props(o, "herald-dlq-reader")));
  HERALD_ASSIGN_OR_RETURN(auto consumer, kafka::make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  auto n = kafka::partition_count(consumer.get(), topic, o.timeout);
  if (!n && n.error().code == Errc::kNotFound) return false;
  if (!n) return n.error();
  return true;
}

Result<std::vector<DeadLetter>> list(const DlqOptions& o, bool pending_only) {
  HERALD_ASSIGN_OR_RETURN(auto s, scan(o));
  HERALD_ASSIGN_OR_RETURN(auto cursors, read_cursors(o, s));
  std::vector<DeadLetter> out;
  for (auto& d : s.letters) {
    d.pending = pending(cursors, d);
    if (d.pending || !pending_only) out.push_back(std::move(d));
  }
  return out;
}

Result<ReplayStats> replay(const DlqOptions& o) {
  HERALD_ASSIGN_OR_RETURN(auto s, scan(o));
  HERALD_ASSIGN_OR_RETURN(auto cursors, read_cursors(o, s));
  ReplayStats st;
  std::unique_ptr<kafka::SyncProducer> producer;
  for (const auto& d : s.letters) {
    if (!pending(cursors, d)) continue;
    if (!producer) {
      HERALD_ASSIGN_OR_RETURN(producer, kafka::SyncProducer::create(o.brokers, o.kafka));
    }
    std::optional<std::string_view> key, value;
    if (d.key) key = *d.key;
    if (d.value) value = *d.value;
    std::optional<std::string> original;  // a letter without its value: the value comes from the source
    if (d.failure.value_omitted >= 0) {
      auto v = kafka::read_value_at(consumer_props(o, "herald-dlq-reader"), d.failure.topic, d.failure.partition,
                                    d.failure.offset, o.timeout);
      if (!v && v.error().code != Errc::kNotFound) return v.error();  // the source cannot be read now: try later
      if (!v) {
        // Its value is gone for good: keeping the letter pending would stop every later replay.
        st.unreplayable.push_back(fmt::format("{}/{}@{} carries no value (it was too large) and its original {} is "
                                              "no longer in the log: {}",
                                              d.dlq_topic, d.dlq_partition, d.dlq_offset,
                                              coordinates(d.failure.topic, d.failure.partition, d.failure.offset),
                                              v.error().message));
        HLOG_ERROR("dlq: {}", st.unreplayable.back());
        continue;
      }
      original = std::move(*v);
      value = original;
    }
    HERALD_ASSIGN_OR_RETURN(int64_t at, producer->send(d.failure.topic, d.failure.partition, key, value,
                                                       replay_headers(d.headers, d.failure)));
    HLOG_INFO("dlq: replayed {}/{}@{} ({}) to {}/{}@{}", d.dlq_topic, d.dlq_partition, d.dlq_offset,
              coordinates(d.failure.topic, d.failure.partition, d.failure.offset), d.failure.topic,
              d.failure.partition, at);
    st.replayed++;
  }
  HERALD_TRY(move_cursors(o, s, cursors));
  return st;
}

Result<ReplayStats> skip(const DlqOptions& o, const std::function<Result<void>(const DeadLetter&)>& each) {
  HERALD_ASSIGN_OR_RETURN(auto s, scan(o));
  HERALD_ASSIGN_OR_RETURN(auto cursors, read_cursors(o, s));
  ReplayStats st;
  for (const auto& d : s.letters) {
    if (!pending(cursors, d)) continue;
    if (each) HERALD_TRY(each(d));
    st.skipped++;
  }
  HERALD_TRY(move_cursors(o, s, cursors));
  return st;
}

}  // namespace herald::sdk::dlq
