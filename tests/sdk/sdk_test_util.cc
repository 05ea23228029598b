#include "sdk_test_util.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>

#include "common/clock.h"

namespace herald::sdk::testing {

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "herald-sdk-test.XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) std::abort();
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::optional<std::string> pg_base_url() {
  const char* file = std::getenv("HERALD_SDK_PG_URL_FILE");
  if (file == nullptr || *file == 0) return std::nullopt;
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  if (url.empty()) return std::nullopt;
  return url;
}

Result<void> pg_exec(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    return Error{Errc::kIoError, "connect: " + msg};
  }
  PGresult* r = PQexec(c, sql.c_str());
  bool good = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!good) return Error{Errc::kIoError, sql + ": " + msg};
  return ok();
}

std::unique_ptr<PgDatabase> PgDatabase::create(const std::string& prefix) {
  auto base = pg_base_url();
  if (!base) {
    ADD_FAILURE() << "HERALD_SDK_PG_URL_FILE is not set or empty (run under ctest with the pg "
                     "fixture, or point it at a file holding a libpq URL)";
    std::abort();
  }
  auto db = std::unique_ptr<PgDatabase>(new PgDatabase());
  db->base_ = *base;
  std::random_device rd;
  db->name_ = "sdk_" + prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 100000);
  if (auto r = pg_exec(db->base_, "CREATE DATABASE " + db->name_); !r) {
    ADD_FAILURE() << r.error().to_string();
    std::abort();
  }
  auto slash = db->base_.rfind('/');
  db->url_ = db->base_.substr(0, slash + 1) + db->name_;
  return db;
}

PgDatabase::~PgDatabase() {
  (void)pg_exec(base_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

Result<Event> Record::event() const {
  std::optional<std::string_view> v;
  if (value) v = *value;
  return decode(key.value_or(""), v, headers);
}

namespace {

struct Rk {
  rd_kafka_t* rk = nullptr;
  ~Rk() {
    if (rk) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }
};

Result<rd_kafka_t*> make_consumer(const std::string& brokers) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", brokers},
      {"group.id", "herald-sdk-test-reader"},
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
      {"log_level", "3"},
  };
  for (auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Error{Errc::kInvalidArgument, err};
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (!rk) return Error{Errc::kIoError, err};
  return rk;
}

// partition -> (low, high), empty when the topic does not exist.
Result<std::vector<std::pair<int64_t, int64_t>>> watermarks(rd_kafka_t* rk,
                                                             const std::string& topic) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (err) return Error{Errc::kIoError, std::string("metadata: ") + rd_kafka_err2str(err)};
  std::vector<std::pair<int64_t, int64_t>> out;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      int64_t lo = 0, hi = 0;
      auto e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000);
      if (e) {
        rd_kafka_metadata_destroy(md);
        return Error{Errc::kIoError, std::string("watermarks: ") + rd_kafka_err2str(e)};
      }
      out.emplace_back(lo, hi);
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

}  // namespace

Result<void> create_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::map<std::string, std::string>& configs) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof(err));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk) return Error{Errc::kIoError, err};
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof(err));
  for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
  Result<void> out = ok();
  if (!ev) {
    out = Error{Errc::kIoError, "create_topic: timed out"};
  } else if (rd_kafka_event_error(ev)) {
    out = Error{Errc::kIoError, std::string("create_topic: ") + rd_kafka_event_error_string(ev)};
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    if (n == 1 && rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      out = Error{Errc::kIoError,
                  std::string("create_topic: ") + rd_kafka_topic_result_error_string(res[0])};
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return out;
}

Result<int64_t> topic_size(const std::string& brokers, const std::string& topic) {
  HERALD_ASSIGN_OR_RETURN(rd_kafka_t * raw, make_consumer(brokers));
  Rk rk{raw};
  HERALD_ASSIGN_OR_RETURN(auto wm, watermarks(rk.rk, topic));
  int64_t n = 0;
  for (auto [lo, hi] : wm) n += hi - lo;
  return n;
}

Result<std::vector<Record>> read_topic(const std::string& brokers, const std::string& topic,
                                       size_t min_count, std::chrono::milliseconds timeout) {
  int64_t deadline = mono_ns() + std::chrono::nanoseconds(timeout).count();
  HERALD_ASSIGN_OR_RETURN(rd_kafka_t * raw, make_consumer(brokers));
  Rk rk{raw};
  std::vector<std::pair<int64_t, int64_t>> wm;
  for (;;) {
    HERALD_ASSIGN_OR_RETURN(wm, watermarks(rk.rk, topic));
    int64_t n = 0;
    for (auto [lo, hi] : wm) n += hi - lo;
    if (n >= static_cast<int64_t>(min_count)) break;
    if (mono_ns() > deadline) {
      return Error{Errc::kOutOfRange, "read_topic " + topic + ": only " + std::to_string(n) +
                                          " of " + std::to_string(min_count) + " records"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<Record> out;
  for (int32_t p = 0; p < static_cast<int32_t>(wm.size()); ++p) {
    auto [lo, hi] = wm[static_cast<size_t>(p)];
    if (hi <= lo) continue;
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = lo;
    rd_kafka_assign(rk.rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    int64_t next = lo;
    while (next < hi) {
      if (mono_ns() > deadline) return Error{Errc::kOutOfRange, "read_topic: timed out reading"};
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.rk, 200);
      if (!m) continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_message_destroy(m);
        continue;
      }
      if (m->err) {
        std::string e = rd_kafka_message_errstr(m);
        rd_kafka_message_destroy(m);
        return Error{Errc::kIoError, "read_topic: " + e};
      }
      Record r;
      r.partition = m->partition;
      r.offset = m->offset;
      if (m->key) r.key = std::string(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) r.value = std::string(static_cast<const char*>(m->payload), m->len);
      r.headers = message_headers(*m);
      next = m->offset + 1;
      rd_kafka_message_destroy(m);
      out.push_back(std::move(r));
    }
    rd_kafka_assign(rk.rk, nullptr);
  }
  return out;
}

}  // namespace herald::sdk::testing
