// The broker's metrics in Prometheus's text exposition format (0.0.4), which
// `herald serve --metrics-listen` serves at /metrics. Request latencies and
// connection counts are kept as requests finish (server/connection.cc),
// fdatasync latencies by the logs' syncs (storage::Flusher); partitions and
// consumer groups are read when the page is asked for, so an idle broker
// pays nothing for them.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "broker/broker.h"
#include "broker/broker_impl.h"
#include "protocol/api_keys.h"

namespace herald::broker {
namespace {

// A label value: backslash, double quote and newline escaped.
std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Page {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <class T>
  void sample(std::string_view name, std::string_view labels, T value) {
    out_ += labels.empty() ? fmt::format("{} {}\n", name, value) : fmt::format("{}{{{}}} {}\n", name, labels, value);
  }
  void histogram(std::string_view name, std::string_view labels, const LatencyHistogram::Snapshot& s) {
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < s.cumulative.size(); ++i) {
      out_ += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, LatencyHistogram::kBoundsSeconds[i],
                          s.cumulative[i]);
    }
    out_ += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, s.count);
    sample(fmt::format("{}_sum", name), labels, s.sum_seconds);
    sample(fmt::format("{}_count", name), labels, s.count);
  }
  void raw(std::string_view samples) { out_ += samples; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

std::string BrokerImpl::metrics_text() {
  Page p;
  p.family("herald_start_time_seconds", "gauge", "When the broker started, seconds since the epoch");
  p.sample("herald_start_time_seconds", "", static_cast<double>(start_ms_) / 1000);

  size_t open = 0;
  {
    std::lock_guard lock(conn_mu_);
    open = connections_.size();
  }
  p.family("herald_connections", "gauge", "Open client connections");
  p.sample("herald_connections", "", open);
  p.family("herald_connections_accepted_total", "counter", "Client connections accepted");
  p.sample("herald_connections_accepted_total", "", request_metrics_.connections_accepted.load());
  p.family("herald_connections_closed_on_error_total", "counter",
           "Connections closed for a malformed, oversized, truncated or unserved request");
  p.sample("herald_connections_closed_on_error_total", "", request_metrics_.connections_closed_on_error.load());
  p.family("herald_unsent_response_bytes", "gauge",
           "Responses built and not yet written to their clients (bounded by response_memory_mb)");
  p.sample("herald_unsent_response_bytes", "", request_metrics_.unsent_response_bytes.load());

  p.family("herald_request_duration_seconds", "histogram",
           "Requests answered, by API, from the frame read to the response ready (a Fetch's long-poll wait "
           "included)");
  for (const protocol::ApiInfo& api : protocol::all_apis()) {
    if (api.api_key < 0 || static_cast<size_t>(api.api_key) >= request_metrics_.latency.size()) continue;
    auto s = request_metrics_.latency[static_cast<size_t>(api.api_key)].snapshot();
    if (s.count > 0) p.histogram("herald_request_duration_seconds", fmt::format("api=\"{}\"", api.name), s);
  }
  p.family("herald_fdatasync_duration_seconds", "histogram", "fdatasync calls on partition logs");
  p.histogram("herald_fdatasync_duration_seconds", "", flusher_->sync_latency().snapshot());

  struct Row {
    std::string labels;
    int64_t start, hw, end;
    uint64_t bytes;
    size_t segments;
  };
  std::vector<Row> rows;
  std::map<std::pair<std::string, int32_t>, int64_t> high_watermarks;
  for (const auto& topic : topics_->list()) {
    for (const auto& part : topic->partitions()) {
      if (part->removed.load()) continue;
      const auto& log = *part->log;
      rows.push_back({fmt::format("topic=\"{}\",partition=\"{}\"", topic->name(), part->index), log.log_start_offset(),
                      log.high_watermark(), log.log_end_offset(), log.size_bytes(), log.segment_count()});
      high_watermarks[{topic->name(), part->index}] = rows.back().hw;
    }
  }
  auto partition_family = [&](std::string_view name, std::string_view help, auto field) {
    p.family(name, "gauge", help);
    for (const Row& r : rows) p.sample(name, r.labels, r.*field);
  };
  partition_family("herald_partition_log_start_offset", "First offset still stored", &Row::start);
  partition_family("herald_partition_high_watermark", "Offset after the last record consumers can read (durable)",
                   &Row::hw);
  partition_family("herald_partition_log_end_offset", "Offset the next appended record gets", &Row::end);
  partition_family("herald_partition_size_bytes", "Bytes of the partition's segment files", &Row::bytes);
  partition_family("herald_partition_segments", "Segment files of the partition", &Row::segments);

  std::string members, committed, lag;
  for (const auto& id : groups_->group_ids()) {
    auto g = groups_->snapshot(id);
    if (!g) continue;
    const std::string gl = fmt::format("group=\"{}\"", escape(id));
    members += fmt::format("herald_group_members{{{},state=\"{}\"}} {}\n", gl, g->state, g->members.size());
    for (const auto& [tp, offset] : g->committed) {
      const std::string l = fmt::format("{},topic=\"{}\",partition=\"{}\"", gl, escape(tp.first), tp.second);
      committed += fmt::format("herald_group_committed_offset{{{}}} {}\n", l, offset);
      auto hw = high_watermarks.find(tp);
      if (hw != high_watermarks.end() && offset >= 0) {
        lag += fmt::format("herald_group_lag{{{}}} {}\n", l, std::max<int64_t>(hw->second - offset, 0));
      }
    }
  }
  p.family("herald_group_members", "gauge", "Members of each consumer group, with its state");
  p.raw(members);
  p.family("herald_group_committed_offset", "gauge", "Each group's committed offset (the next record it reads)");
  p.raw(committed);
  p.family("herald_group_lag", "gauge", "High watermark minus the committed offset, in records");
  p.raw(lag);
  return p.take();
}

std::string Broker::metrics_text() { return impl_->metrics_text(); }

}  // namespace herald::broker
