#include "sdk/replica/kafka_handles.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

#include "common/last_line.h"
#include "common/log.h"

namespace herald::sdk::kafka {

std::string describe(rd_kafka_resp_err_t err) {
  return fmt::format("{} ({})", rd_kafka_err2str(err), rd_kafka_err2name(err));
}

namespace {

std::atomic<bool> g_quiet{false};
LastLine g_last_error;

void on_client_log(const rd_kafka_t*, int level, const char* facility, const char* line) {
  if (level <= 3) g_last_error.set(line);
  if (g_quiet.load(std::memory_order_relaxed)) return;
  if (level <= 3) {
    HLOG_WARN("librdkafka {}: {}", facility, line);
  } else if (level <= 5) {
    HLOG_INFO("librdkafka {}: {}", facility, line);
  } else {
    HLOG_DEBUG("librdkafka {}: {}", facility, line);
  }
}

}  // namespace

void set_quiet_client_log(bool quiet) { g_quiet.store(quiet, std::memory_order_relaxed); }

std::string last_client_error() { return g_last_error.get(); }

Result<ConfPtr> make_conf(const Properties& props) {
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), on_client_log);
  char errstr[512];
  (void)rd_kafka_conf_set(conf.get(), kReconnectBackoffMaxKey, kReconnectBackoffMax, errstr, sizeof errstr);
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      return Error{Errc::kInvalidArgument, fmt::format("librdkafka property {}={}: {}", k, v, errstr)};
    }
  }
  return conf;
}

Result<HandlePtr> make_handle(rd_kafka_type_t type, ConfPtr conf) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), errstr, sizeof errstr);
  if (rk == nullptr) return Error{Errc::kInvalidArgument, fmt::format("rd_kafka_new: {}", errstr)};
  (void)conf.release();  // owned by rk now
  return HandlePtr(rk);
}

namespace {

// How long a cancellable wait goes without looking at its flag.
constexpr std::chrono::milliseconds kCancelSlice{100};

bool cancelled(const std::atomic<bool>* cancel) { return cancel != nullptr && cancel->load(); }

Error cancelled_error(const std::string& what) { return Error{Errc::kClosed, what + ": stopping"}; }

}  // namespace

Result<int32_t> partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout,
                                const std::atomic<bool>* cancel) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto slice = cancel ? std::min(timeout, kCancelSlice) : timeout;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  rd_kafka_resp_err_t err;
  while ((err = rd_kafka_metadata(rk, 0, rkt, &md, static_cast<int>(slice.count()))) == RD_KAFKA_RESP_ERR__TIMED_OUT &&
         !cancelled(cancel) && std::chrono::steady_clock::now() < deadline) {
  }
  rd_kafka_topic_destroy(rkt);
  if (cancelled(cancel) && err != RD_KAFKA_RESP_ERR_NO_ERROR) return cancelled_error("metadata for " + topic);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kIoError, fmt::format("metadata for {}: {}", topic, describe(err))};
  }
  Result<int32_t> out = Error{Errc::kNotFound, fmt::format("topic '{}' does not exist", topic)};
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (topic != t.topic) continue;
    if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0) out = t.partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

Result<std::map<int32_t, int64_t>> read_to_end(const Properties& props, const std::string& topic,
                                               std::chrono::milliseconds timeout,
                                               const std::function<void(const rd_kafka_message_t&)>& fn) {
  Properties all{kDeepFetchQueue};
  all.insert(all.end(), props.begin(), props.end());
  all.emplace_back("enable.auto.commit", "false");
  all.emplace_back("enable.partition.eof", "true");
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(all));
  HERALD_ASSIGN_OR_RETURN(auto consumer, make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  rd_kafka_t* rk = consumer.get();
  HERALD_ASSIGN_OR_RETURN(int32_t n, partition_count(rk, topic, timeout));
  auto list = make_list(n);
  std::map<int32_t, int64_t> ends, next;
  for (int32_t p = 0; p < n; ++p) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return Error{Errc::kIoError, fmt::format("watermarks of {}/{}: {}", topic, p, describe(err))};
    }
    ends[p] = hi;
    next[p] = lo;
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = lo;
  }
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk, list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kIoError, fmt::format("assign {}: {}", topic, describe(err))};
  }
  auto done = [&] {
    return std::all_of(next.begin(), next.end(), [&](const auto& kv) { return kv.second >= ends[kv.first]; });
  };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return Error{Errc::kIoError, fmt::format("timed out reading {}", topic)};
    MessagePtr m(rd_kafka_consumer_poll(rk, 100));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      next[m->partition] = std::max(next[m->partition], ends[m->partition]);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      HLOG_DEBUG("reading {}: {}", topic, rd_kafka_message_errstr(m.get()));
      continue;
    }
    deadline = std::chrono::steady_clock::now() + timeout;
    if (m->offset >= ends[m->partition]) continue;
    next[m->partition] = m->offset + 1;
    fn(*m);
  }
  rd_kafka_consumer_close(rk);
  return ends;
}

Result<std::optional<std::string>> read_value_at(const Properties& props, const std::string& topic,
                                                 int32_t partition, int64_t offset, std::chrono::milliseconds timeout) {
  Properties all = props;
  all.emplace_back("enable.auto.commit", "false");
  all.emplace_back("enable.partition.eof", "true");
  all.emplace_back("auto.offset.reset", "error");
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(all));
  HERALD_ASSIGN_OR_RETURN(auto consumer, make_handle(RD_KAFKA_CONSUMER, std::move(conf)));
  rd_kafka_t* rk = consumer.get();
  auto list = make_list(1);
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset = offset;
  if (rd_kafka_resp_err_t err = rd_kafka_assign(rk, list.get()); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return Error{Errc::kIoError, fmt::format("assign {}/{}: {}", topic, partition, describe(err))};
  }
  const std::string where = fmt::format("{}/{}@{}", topic, partition, offset);
  // A copy: the handle cannot be destroyed while one of its messages lives.
  Result<std::optional<std::string>> out = Error{Errc::kIoError, fmt::format("timed out reading {}", where)};
  for (auto deadline = std::chrono::steady_clock::now() + timeout; std::chrono::steady_clock::now() < deadline;) {
    MessagePtr m(rd_kafka_consumer_poll(rk, 100));
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset == offset) {
      out = m->payload ? std::optional<std::string>(std::string(static_cast<const char*>(m->payload), m->len))
                       : std::nullopt;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
               m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
      out = Error{Errc::kNotFound, fmt::format("{} is no longer in the log", where)};
    } else {
      HLOG_DEBUG("reading {}: {}", where, rd_kafka_message_errstr(m.get()));
      continue;
    }
    break;
  }
  rd_kafka_consumer_close(rk);
  return out;
}

Result<void> ensure_topic(rd_kafka_t* rk, const std::string& topic, int32_t partitions,
                          std::chrono::milliseconds timeout, const std::atomic<bool>* cancel) {
  char errstr[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, -1, errstr, sizeof errstr);
  if (nt == nullptr) return Error{Errc::kInvalidArgument, fmt::format("create topic {}: {}", topic, errstr)};
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(opts, static_cast<int>(timeout.count()), errstr, sizeof errstr);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  const auto total = timeout + std::chrono::seconds(1);
  const auto slice = cancel ? std::min(total, kCancelSlice) : total;
  const auto deadline = std::chrono::steady_clock::now() + total;
  rd_kafka_event_t* ev;
  while ((ev = rd_kafka_queue_poll(q, static_cast<int>(slice.count()))) == nullptr && !cancelled(cancel) &&
         std::chrono::steady_clock::now() < deadline) {
  }
  Result<void> out = ok();
  if (ev == nullptr && cancelled(cancel)) {
    out = cancelled_error("create topic " + topic);
  } else if (ev == nullptr) {
    out = Error{Errc::kIoError, fmt::format("create topic {}: timed out", topic)};
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    out = Error{Errc::kIoError, fmt::format("create topic {}: {}", topic, rd_kafka_event_error_string(ev))};
  } else {
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        out = Error{Errc::kIoError, fmt::format("create topic {}: {}", topic, describe(e))};
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  return out;
}

Result<std::unique_ptr<SyncProducer>> SyncProducer::create(const std::string& brokers, const Properties& extra) {
  Properties props = {{"bootstrap.servers", brokers},
                      {"enable.idempotence", "true"},
                      {"acks", "all"},
                      {"linger.ms", "0"},
                      // The broker's limit for the topic decides (a dead letter is its event plus
                      // headers), not librdkafka's default of 1,000,000 bytes.
                      {"message.max.bytes", "100000000"},
                      {"message.timeout.ms", "30000"}};
  props.insert(props.end(), extra.begin(), extra.end());
  HERALD_ASSIGN_OR_RETURN(auto conf, make_conf(props));
  std::unique_ptr<SyncProducer> p(new SyncProducer());
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &SyncProducer::on_delivery);
  rd_kafka_conf_set_opaque(conf.get(), p.get());  // heap-allocated: stays put while rk_ lives
  HERALD_ASSIGN_OR_RETURN(p->rk_, make_handle(RD_KAFKA_PRODUCER, std::move(conf)));
  return p;
}

// Runs inside rd_kafka_poll()/rd_kafka_flush() on the calling thread.
void SyncProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<SyncProducer*>(opaque);
  Delivery& d = self->delivery_;
  if (d.id == 0 || reinterpret_cast<uintptr_t>(msg->_private) != d.id) return;  // abandoned earlier
  d.err = msg->err;
  d.offset = msg->offset;
  d.done = true;
}

Result<int64_t> SyncProducer::send(const std::string& topic, int32_t partition,
                                   std::optional<std::string_view> key, std::optional<std::string_view> value,
                                   const Headers& headers, int64_t timestamp_ms, const std::atomic<bool>* cancel) {
  Delivery& d = delivery_;
  d = Delivery{.id = ++last_id_};
  rd_kafka_headers_t* hdrs = make_kafka_headers(headers);
  const void* key_ptr = key ? key->data() : nullptr;
  const size_t key_len = key ? key->size() : 0;
  void* value_ptr = value ? const_cast<char*>(value->data()) : nullptr;
  const size_t value_len = value ? value->size() : 0;
  void* opaque = reinterpret_cast<void*>(static_cast<uintptr_t>(d.id));
  rd_kafka_resp_err_t err = rd_kafka_producev(
      rk_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(key_ptr, key_len), RD_KAFKA_V_VALUE(value_ptr, value_len),
      RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  // A record too large for the topic can never succeed: kInvalidArgument, the rest kIoError.
  auto failed = [&](rd_kafka_resp_err_t e) {
    const bool too_large = e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
    return Error{too_large ? Errc::kInvalidArgument : Errc::kIoError,
                 fmt::format("produce to {}: {}", topic, describe(e))};
  };
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    d.id = 0;
    rd_kafka_headers_destroy(hdrs);
    return failed(err);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout_ + std::chrono::seconds(5);
  while (!d.done) {
    rd_kafka_poll(rk_.get(), 50);
    if (!d.done && (cancelled(cancel) || std::chrono::steady_clock::now() > deadline)) {
      // Give the record up (purged, so librdkafka stops retrying it; one
      // already in flight may still have been written). Its report comes on
      // this or a later poll or flush, even from replica.cc's stop(); with
      // d.id reset it is ignored whenever it comes.
      rd_kafka_purge(rk_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(rk_.get(), 0);
      d.id = 0;
      if (cancelled(cancel)) return cancelled_error("produce to " + topic);
      return Error{Errc::kIoError, fmt::format("produce to {}: no delivery report", topic)};
    }
  }
  d.id = 0;
  if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) return failed(d.err);
  return d.offset;
}

}  // namespace herald::sdk::kafka
