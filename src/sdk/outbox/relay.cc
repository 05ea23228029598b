#include "sdk/outbox/relay.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <set>

#include "common/clock.h"
#include "common/log.h"
#include "sdk/envelope.h"
#include "sdk/outbox/outbox.h"

namespace herald::sdk {
namespace {

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_flush(rk, 0);
    rd_kafka_destroy(rk);
  }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

// One produced row, filled in by the delivery report callback.
struct Delivery {
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  bool done = false;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* d = static_cast<Delivery*>(msg->_private);
  if (d == nullptr) return;
  d->err = msg->err;
  d->done = true;
}

void on_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  if (level <= 3) {
    HLOG_WARN("outbox relay: librdkafka {}: {}", fac, buf);
  } else {
    HLOG_DEBUG("outbox relay: librdkafka {}: {}", fac, buf);
  }
}

void on_error(rd_kafka_t* rk, int err, const char* reason, void*) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    rd_kafka_fatal_error(rk, buf, sizeof(buf));
    HLOG_ERROR("outbox relay: fatal producer error: {}", buf);
  } else {
    HLOG_DEBUG("outbox relay: producer: {}", reason);
  }
}

struct OutboxRow {
  int64_t id;
  std::string topic;
  std::optional<std::string> key;
  Headers headers;
  std::optional<std::string> payload;
};

}  // namespace

struct OutboxRelay::Impl {
  Store& store;
  RelayOptions opt;
  KafkaPtr producer;
  std::unique_ptr<Lease> lease;
  std::unique_ptr<Listener> listener;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  std::atomic<bool> woken{false};
  mutable std::mutex stats_mu;
  RelayStats stats;
  std::set<std::string, std::less<>> known_topics;  // metadata fetched by this producer

  Impl(Store& s, RelayOptions o) : store(s), opt(std::move(o)) {}

  Result<void> make_producer() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& k, const std::string& v) -> Result<void> {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        return Error{Errc::kInvalidArgument, fmt::format("outbox relay: {}={}: {}", k, v, err)};
      }
      return ok();
    };
    auto configure = [&]() -> Result<void> {
      HERALD_TRY(set("bootstrap.servers", opt.brokers));
      HERALD_TRY(set("client.id", "herald-outbox-relay"));
      HERALD_TRY(set("linger.ms", "2"));
      for (const auto& [k, v] : opt.kafka_config) HERALD_TRY(set(k, v));
      HERALD_TRY(set("enable.idempotence", "true"));
      HERALD_TRY(set("acks", "all"));
      HERALD_TRY(set("message.timeout.ms", std::to_string(opt.delivery_timeout.count())));
      return ok();
    };
    if (auto r = configure(); !r) {
      rd_kafka_conf_destroy(conf);
      return r;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
      rd_kafka_conf_destroy(conf);
      return Error{Errc::kInvalidArgument, fmt::format("outbox relay: producer: {}", err)};
    }
    producer.reset(rk);
    return ok();
  }

  void record_error(const Error& e) {
    HLOG_WARN("outbox relay: {}", e.to_string());
    std::lock_guard lock(stats_mu);
    ++stats.errors;
    stats.last_error = e.to_string();
  }

  // True when this relay holds (or just took) the lease.
  Result<bool> ensure_lease() {
    if (lease && lease->valid()) return true;
    if (lease) HLOG_WARN("outbox relay: lost the lease {}", opt.lease_name);
    lease.reset();
    HERALD_ASSIGN_OR_RETURN(lease, store.try_lease(opt.lease_name));
    bool have = lease != nullptr;
    {
      std::lock_guard lock(stats_mu);
      stats.has_lease = have;
    }
    if (have) HLOG_INFO("outbox relay: publishing (lease {} taken)", opt.lease_name);
    return have;
  }

  Result<std::vector<OutboxRow>> read_batch() {
    HERALD_ASSIGN_OR_RETURN(auto tx, store.begin({.read_only = true}));
    HERALD_ASSIGN_OR_RETURN(
        auto rows, tx->query("SELECT id, topic, msg_key, headers, payload FROM herald_outbox "
                             "ORDER BY id LIMIT ?",
                             {opt.batch_size}));
    tx->rollback();
    std::vector<OutboxRow> out;
    out.reserve(rows.size());
    for (auto& r : rows) {
      HERALD_ASSIGN_OR_RETURN(Headers h, headers_from_json(r.text(3)));
      out.push_back(OutboxRow{r.int64(0), r.text(1), r[2], std::move(h), r[4]});
    }
    return out;
  }

  Result<void> delete_rows(const std::vector<int64_t>& ids) {
    if (ids.empty()) return ok();
    bool pg = store.dialect() == Dialect::kPostgres;
    std::string list = pg ? "{" : "[";
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) list += ',';
      list += std::to_string(ids[i]);
    }
    list += pg ? "}" : "]";
    return store.run([&](Tx& tx) -> Result<void> {
      HERALD_TRY(tx.exec(pg ? "DELETE FROM herald_outbox WHERE id = ANY(?::bigint[])"
                            : "DELETE FROM herald_outbox WHERE id IN (SELECT value FROM json_each(?))",
                         {list}));
      return ok();
    });
  }

  // librdkafka 2.0 asks for the metadata of a topic it has not produced to
  // only on its 1 s topic scan; ask now, so the first events of a topic (and
  // of a freshly started relay) do not wait a second.
  void warm_up(const std::vector<OutboxRow>& rows) {
    for (const auto& r : rows) {
      if (known_topics.count(r.topic)) continue;
      rd_kafka_topic_t* t = rd_kafka_topic_new(producer.get(), r.topic.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      if (rd_kafka_metadata(producer.get(), 0, t, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
      }
      rd_kafka_topic_destroy(t);
      known_topics.insert(r.topic);
    }
  }

  // Produces `rows` in order and waits for every delivery report.
  std::vector<Delivery> produce(const std::vector<OutboxRow>& rows) {
    std::vector<Delivery> slots(rows.size());
    warm_up(rows);
    rd_kafka_t* rk = producer.get();
    for (size_t i = 0; i < rows.size(); ++i) {
      const OutboxRow& r = rows[i];
      rd_kafka_headers_t* hdrs = make_kafka_headers(r.headers);
      // The RD_KAFKA_V_* macros do not parenthesize their arguments: pass plain names.
      void* key = r.key ? const_cast<char*>(r.key->data()) : nullptr;
      size_t key_len = r.key ? r.key->size() : 0;
      void* value = r.payload ? const_cast<char*>(r.payload->data()) : nullptr;
      size_t value_len = r.payload ? r.payload->size() : 0;
      const char* topic = r.topic.c_str();
      Delivery* slot = &slots[i];
      rd_kafka_resp_err_t err;
      for (;;) {
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, value_len),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(slot), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(rk, 10);
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(hdrs);
        slots[i].err = err;
        slots[i].done = true;
      }
    }
    // Every report must have arrived before `slots` goes away; message.timeout.ms
    // bounds this. On stop, purge so that shutting down does not wait for it.
    while (rd_kafka_outq_len(rk) > 0) {
      if (stopping) rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk, 100);
    }
    rd_kafka_poll(rk, 0);
    return slots;
  }

  Result<size_t> publish_once() {
    HERALD_ASSIGN_OR_RETURN(bool have, ensure_lease());
    if (!have) return size_t{0};
    HERALD_ASSIGN_OR_RETURN(auto rows, read_batch());
    if (rows.empty()) return size_t{0};
    auto slots = produce(rows);
    std::vector<int64_t> acked;
    acked.reserve(rows.size());
    uint64_t failed = 0;
    rd_kafka_resp_err_t first_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (slots[i].done && slots[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        acked.push_back(rows[i].id);
      } else {
        ++failed;
        if (first_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          first_err = slots[i].done ? slots[i].err : RD_KAFKA_RESP_ERR__TIMED_OUT;
        }
      }
    }
    HERALD_TRY(delete_rows(acked));
    {
      std::lock_guard lock(stats_mu);
      stats.published += acked.size();
      if (!acked.empty()) ++stats.batches;
      stats.failed_deliveries += failed;
    }
    char buf[512];
    if (rd_kafka_fatal_error(producer.get(), buf, sizeof(buf)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      HLOG_WARN("outbox relay: recreating the producer after a fatal error: {}", buf);
      producer.reset();
      known_topics.clear();
      HERALD_TRY(make_producer());
    }
    if (failed > 0) {
      return Error{Errc::kIoError,
                   fmt::format("outbox relay: {} of {} deliveries failed (first: {}); they stay "
                               "in the outbox",
                               failed, rows.size(), rd_kafka_err2str(first_err))};
    }
    return acked.size();
  }

  // Sleeps up to `d`, returning early on stop(), wake() or a notification.
  void idle(std::chrono::milliseconds d) {
    int64_t deadline = mono_ns() + std::chrono::nanoseconds(d).count();
    while (!stopping && !woken.exchange(false)) {
      int64_t left = (deadline - mono_ns()) / 1'000'000;
      if (left <= 0) return;
      auto slice = std::chrono::milliseconds(std::min<int64_t>(left, 50));
      if (listener) {
        auto r = listener->wait(slice);
        if (!r) {
          record_error(r.error());
          listener.reset();
        } else if (*r) {
          return;
        }
      } else {
        std::this_thread::sleep_for(slice);
      }
    }
  }

  void loop() {
    bool pg = store.dialect() == Dialect::kPostgres;
    auto poll = opt.min_poll;
    while (!stopping) {
      if (!listener) {
        // Listen before scanning, so that no commit falls between the two.
        auto l = store.listen(kOutboxChannel);
        if (l) {
          listener = std::move(*l);
        } else {
          record_error(l.error());
        }
      }
      auto r = publish_once();
      if (!r) {
        record_error(r.error());
        idle(opt.error_backoff);
        continue;
      }
      if (*r > 0) {
        poll = opt.min_poll;
        continue;
      }
      bool have;
      {
        std::lock_guard lock(stats_mu);
        have = stats.has_lease;
      }
      if (!have) {
        idle(opt.standby_retry);
      } else if (pg) {
        idle(opt.idle_wait);
      } else {
        idle(poll);
        poll = std::min(poll * 2, opt.max_poll);
      }
    }
  }
};

OutboxRelay::OutboxRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OutboxRelay::~OutboxRelay() { stop(); }

Result<std::unique_ptr<OutboxRelay>> OutboxRelay::create(Store& store, RelayOptions options) {
  if (options.batch_size <= 0) return Error{Errc::kInvalidArgument, "outbox relay: batch_size <= 0"};
  auto impl = std::make_unique<Impl>(store, std::move(options));
  HERALD_TRY(impl->make_producer());
  return std::unique_ptr<OutboxRelay>(new OutboxRelay(std::move(impl)));
}

Result<void> OutboxRelay::start() {
  if (impl_->running.exchange(true)) {
    return Error{Errc::kInvalidArgument, "outbox relay: already running"};
  }
  impl_->stopping = false;
  impl_->thread = std::thread([this] { impl_->loop(); });
  return ok();
}

Result<void> OutboxRelay::run() {
  if (impl_->running.exchange(true)) {
    return Error{Errc::kInvalidArgument, "outbox relay: already running"};
  }
  impl_->loop();
  impl_->running = false;
  return ok();
}

void OutboxRelay::stop() {
  impl_->stopping = true;
  if (impl_->thread.joinable()) {
    impl_->thread.join();
    impl_->running = false;
  }
}

void OutboxRelay::wake() { impl_->woken = true; }

Result<size_t> OutboxRelay::publish_once() { return impl_->publish_once(); }

Result<void> OutboxRelay::drain(std::chrono::milliseconds timeout) {
  int64_t deadline = mono_ns() + std::chrono::nanoseconds(timeout).count();
  for (;;) {
    HERALD_ASSIGN_OR_RETURN(size_t n, publish_once());
    if (n == 0) {
      HERALD_ASSIGN_OR_RETURN(int64_t left, outbox_pending(impl_->store));
      if (left == 0) return ok();
    }
    if (mono_ns() > deadline) return Error{Errc::kOutOfRange, "outbox relay: drain timed out"};
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

RelayStats OutboxRelay::stats() const {
  std::lock_guard lock(impl_->stats_mu);
  return impl_->stats;
}

}  // namespace herald::sdk
