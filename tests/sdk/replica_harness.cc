#include "replica_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "sdk_test_util.h"

namespace herald::sdk::testing {

namespace {

rd_kafka_t* new_handle(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& props,
                       void (*dr)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr, void* opaque = nullptr) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      throw std::runtime_error(k + ": " + err);
    }
  }
  if (dr) rd_kafka_conf_set_dr_msg_cb(conf, dr);
  if (opaque) rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) throw std::runtime_error(err);
  return rk;
}

}  // namespace

Result<void> make_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::vector<std::pair<std::string, std::string>>& configs) {
  rd_kafka_t* rk = new_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"log_level", "3"}});
  char err[512];
  rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), partitions, 1, err, sizeof err);
  for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
  Result<void> out = ok();
  if (!ev) {
    out = Error{Errc::kIoError, "create topic: timeout"};
  } else if (rd_kafka_event_error(ev)) {
    out = Error{Errc::kIoError, std::string("create topic: ") + rd_kafka_event_error_string(ev)};
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      auto e = rd_kafka_topic_result_error(res[i]);
      if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        out = Error{Errc::kIoError, std::string("create topic: ") + rd_kafka_err2str(e)};
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_destroy(rk);
  return out;
}

Result<void> delete_records(const std::string& brokers, const std::string& topic, int32_t partition,
                            int64_t before) {
  rd_kafka_t* rk = new_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"log_level", "3"}});
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset = before;
  rd_kafka_DeleteRecords_t* dr = rd_kafka_DeleteRecords_new(list);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteRecords(rk, &dr, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
  Result<void> out = ok();
  if (!ev) {
    out = Error{Errc::kIoError, "delete records: timeout"};
  } else if (rd_kafka_event_error(ev)) {
    out = Error{Errc::kIoError, std::string("delete records: ") + rd_kafka_event_error_string(ev)};
  } else {
    const rd_kafka_topic_partition_list_t* res =
        rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
    for (int i = 0; res && i < res->cnt; ++i) {
      if (res->elems[i].err) out = Error{Errc::kIoError, std::string("delete records: ") + rd_kafka_err2str(res->elems[i].err)};
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_DeleteRecords_destroy(dr);
  rd_kafka_destroy(rk);
  return out;
}

Result<void> delete_topic(const std::string& brokers, const std::string& topic) {
  rd_kafka_t* rk = new_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"log_level", "3"}});
  rd_kafka_DeleteTopic_t* dt = rd_kafka_DeleteTopic_new(topic.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteTopics(rk, &dt, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 15000);
  Result<void> out = ok();
  if (!ev) {
    out = Error{Errc::kIoError, "delete topic: timeout"};
  } else if (rd_kafka_event_error(ev)) {
    out = Error{Errc::kIoError, std::string("delete topic: ") + rd_kafka_event_error_string(ev)};
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      if (auto e = rd_kafka_topic_result_error(res[i])) out = Error{Errc::kIoError, std::string("delete topic: ") + rd_kafka_err2str(e)};
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_queue_destroy(q);
  rd_kafka_DeleteTopic_destroy(dt);
  rd_kafka_destroy(rk);
  return out;
}

// ---------------------------------------------------------------- producer

struct EventProducer::State {
  rd_kafka_t* rk = nullptr;
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> failed{0};
  std::string last_error;
};

namespace {
void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* s = static_cast<EventProducer::State*>(opaque);
  if (m->err) {
    s->failed++;
    s->last_error = rd_kafka_err2str(m->err);
  } else {
    s->delivered++;
  }
}
}  // namespace

EventProducer::EventProducer(const std::string& brokers, int linger_ms, const std::string& compression)
    : s_(std::make_unique<State>()) {
  s_->rk = new_handle(RD_KAFKA_PRODUCER,
                      {{"bootstrap.servers", brokers},
                       {"enable.idempotence", "true"},
                       {"linger.ms", std::to_string(linger_ms)},
                       {"compression.type", compression},
                       {"log_level", "3"}},
                      &on_delivery, s_.get());
}

EventProducer::~EventProducer() {
  rd_kafka_flush(s_->rk, 10000);
  rd_kafka_destroy(s_->rk);
}

Result<void> EventProducer::send(const std::string& topic, const EncodedEvent& rec, int32_t partition) {
  for (;;) {
    rd_kafka_headers_t* h = make_kafka_headers(rec.headers);
    const void* kp = rec.key.empty() ? nullptr : rec.key.data();
    size_t kl = rec.key.size();
    void* vp = rec.value ? const_cast<char*>(rec.value->data()) : nullptr;
    size_t vl = rec.value ? rec.value->size() : 0;
    auto err = rd_kafka_producev(s_->rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(kp, kl),
                                 RD_KAFKA_V_VALUE(vp, vl), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    rd_kafka_headers_destroy(h);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return Error{Errc::kIoError, rd_kafka_err2str(err)};
    rd_kafka_poll(s_->rk, 10);
  }
  rd_kafka_poll(s_->rk, 0);
  return ok();
}

Result<void> EventProducer::flush(std::chrono::milliseconds timeout) {
  auto err = rd_kafka_flush(s_->rk, static_cast<int>(timeout.count()));
  if (err) return Error{Errc::kIoError, std::string("flush: ") + rd_kafka_err2str(err)};
  if (s_->failed.load() > 0) return Error{Errc::kIoError, "delivery failed: " + s_->last_error};
  return ok();
}

int64_t EventProducer::delivered() const { return s_->delivered.load(); }

// ---------------------------------------------------------------- fold

EncodedEvent fold_event(const std::string& key, int64_t amount) {
  auto ev = Event::json("fold.add", "/sdk-test", key, {{"amount", amount}});
  auto enc = encode(ev);
  if (!enc) throw std::runtime_error(enc.error().to_string());
  return std::move(enc).value();
}

Result<void> create_fold_table(Store& store) {
  return store.run([](Tx& tx) -> Result<void> {
    HERALD_TRY(tx.exec_script("CREATE TABLE IF NOT EXISTS fold (k TEXT PRIMARY KEY, cnt BIGINT NOT NULL, "
                              "total BIGINT NOT NULL)"));
    return ok();
  });
}

void fold_add(Tx& tx, const std::string& key, int64_t amount) {
  auto r = tx.exec("INSERT INTO fold (k, cnt, total) VALUES (?, 1, ?) ON CONFLICT (k) DO UPDATE SET "
                   "cnt = fold.cnt + 1, total = fold.total + excluded.total",
                   {key, static_cast<long long>(amount)});
  if (!r) throw std::runtime_error(r.error().to_string());
}

void install_fold(ReplicaHandlers& h) {
  h.on("fold.add", [](const Event& ev, Tx& tx) {
    auto j = nlohmann::json::parse(ev.payload);
    fold_add(tx, ev.aggregate_id, j.at("amount").get<int64_t>());
  });
}

Result<Fold> fold_of_db(Store& store) {
  Fold out;
  HERALD_TRY(store.run([&](Tx& tx) -> Result<void> {
    out.clear();
    HERALD_ASSIGN_OR_RETURN(auto rows, tx.query("SELECT k, cnt, total FROM fold"));
    for (const auto& r : rows) out[r.text(0)] = FoldRow{r.int64(1), r.int64(2)};
    return ok();
  }));
  return out;
}

Result<LogFold> fold_of_log(const std::string& brokers, const std::string& topic, size_t min_count,
                            std::chrono::milliseconds timeout) {
  HERALD_ASSIGN_OR_RETURN(auto recs, read_topic(brokers, topic, min_count, timeout));
  LogFold out;
  std::set<std::string> seen;
  for (const auto& r : recs) {
    out.records++;
    out.ends[r.partition] = std::max(out.ends[r.partition], r.offset + 1);
    HERALD_ASSIGN_OR_RETURN(auto ev, r.event());
    if (ev.type != "fold.add") continue;
    if (!seen.insert(ev.id).second) {
      out.duplicates++;
      continue;
    }
    auto j = nlohmann::json::parse(ev.payload);
    auto& row = out.fold[ev.aggregate_id];
    row.count++;
    row.total += j.at("amount").get<int64_t>();
  }
  return out;
}

Result<std::map<int32_t, int64_t>> stored_offsets(Store& store, const std::string& group, const std::string& topic) {
  std::map<int32_t, int64_t> out;
  HERALD_TRY(store.run([&](Tx& tx) -> Result<void> {
    HERALD_ASSIGN_OR_RETURN(out, load_offsets(tx, group, topic));
    return ok();
  }));
  return out;
}

Result<std::map<int32_t, int64_t>> end_offsets(const std::string& brokers, const std::string& topic) {
  rd_kafka_t* rk = new_handle(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}, {"log_level", "3"}});
  std::map<int32_t, int64_t> out;
  Result<void> status = ok();
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, t, &md, 10000);
  rd_kafka_topic_destroy(t);
  if (err) {
    status = Error{Errc::kIoError, rd_kafka_err2str(err)};
  } else {
    if (md->topic_cnt == 1 && !md->topics[0].err) {
      for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
        int64_t lo = 0, hi = 0;
        if (auto e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000); e) {
          status = Error{Errc::kIoError, rd_kafka_err2str(e)};
          break;
        }
        out[p] = hi;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  if (!status) return status.error();
  return out;
}

TestStore open_test_store(const std::string& kind, const std::filesystem::path& dir, const std::string& name) {
  TestStore ts;
  if (kind == "postgres") {
    std::shared_ptr<PgDatabase> db = PgDatabase::create(name);
    ts.url = db->url();
    ts.keepalive = db;
  } else {
    ts.url = "sqlite:" + (dir / (name + ".db")).string();
  }
  auto s = Store::open(ts.url);
  if (!s) {
    ADD_FAILURE() << "open " << ts.url << ": " << s.error().to_string();
    std::abort();
  }
  ts.store = std::move(*s);
  return ts;
}

// ---------------------------------------------------------------- processes

std::unique_ptr<Child> Child::spawn(const std::string& exe, const std::vector<std::string>& args,
                                    const std::filesystem::path& log) {
  std::vector<std::string> all = {exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(exe.c_str(), argv.data());
    ::_exit(127);
  }
  auto c = std::unique_ptr<Child>(new Child());
  c->pid_ = pid;
  return c;
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void Child::kill(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

std::optional<int> Child::wait(std::chrono::milliseconds timeout) {
  if (reaped_) return 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return st;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Child::alive() {
  if (reaped_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

std::string helper_path() {
  const char* p = std::getenv("HERALD_SDK_REPLICA_HELPER");
  if (p == nullptr || *p == 0) {
    ADD_FAILURE() << "HERALD_SDK_REPLICA_HELPER is not set (run under ctest)";
    std::abort();
  }
  return p;
}

std::string tail_file(const std::filesystem::path& p, size_t lines) {
  std::ifstream in(p);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::ostringstream out;
  for (auto& l : last) out << l << "\n";
  return out.str();
}

std::optional<HelperStats> read_helper_stats(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  try {
    nlohmann::json j;
    in >> j;
    HelperStats s;
    s.applied = j.at("applied").get<int64_t>();
    s.duplicates = j.at("duplicates").get<int64_t>();
    s.transactions = j.at("transactions").get<int64_t>();
    s.ready = j.at("ready").get<bool>();
    for (const auto& part : j.at("partitions")) {
      s.partitions.emplace_back(part.at(0).get<std::string>(), part.at(1).get<int32_t>());
    }
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

RunningReplica::RunningReplica(ReplicaConfig cfg, Store& store, ReplicaHandlers h) {
  auto c = Replica::create(std::move(cfg), store, std::move(h));
  if (!c) {
    ADD_FAILURE() << c.error().to_string();
    std::abort();
  }
  r_ = std::move(*c);
  auto s = r_->start();
  EXPECT_TRUE(s) << s.error().to_string();
}

RunningReplica::~RunningReplica() {
  r_->stop();
  auto j = r_->join();
  EXPECT_TRUE(j) << j.error().to_string();
}

ReplicaConfig test_config(const std::string& brokers, const std::string& group, const std::string& topic) {
  ReplicaConfig c;
  c.brokers = brokers;
  c.group_id = group;
  c.topics = {topic};
  c.max_batch_delay = std::chrono::milliseconds(10);
  c.broker_commit_interval = std::chrono::milliseconds(100);
  c.retry_backoff = std::chrono::milliseconds(5);
  c.kafka = {{"log_level", "3"}};
  c.dlq_producer = {{"log_level", "3"}};
  return c;
}

std::string store_param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace herald::sdk::testing
