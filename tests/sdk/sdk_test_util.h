// Helpers shared by the SDK tests: an embedded broker, throwaway PostgreSQL
// databases on the "pg" CTest fixture's cluster, temp dirs, and a plain
// librdkafka reader that returns every record of a topic.
//
//   auto broker = TestBroker::start();                 // 127.0.0.1:<ephemeral>
//   auto db = PgDatabase::create("outbox");            // fresh database, dropped at exit
//   auto recs = read_topic(broker->brokers(), "users", 5000, std::chrono::seconds(30));
//
// PostgreSQL tests find the cluster through HERALD_SDK_PG_URL_FILE (set by
// tests/sdk/CMakeLists.txt for tests with FIXTURES_REQUIRED pg); the file
// holds a libpq URL of the "postgres" database.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "sdk/envelope.h"

namespace herald::broker {
class Broker;
}

namespace herald::sdk::testing {

class TestBroker {
 public:
  // Starts an ephemeral broker with `partitions` partitions per auto-created topic.
  static std::unique_ptr<TestBroker> start(int partitions = 1, bool auto_create_topics = true);
  ~TestBroker();
  uint16_t port() const;
  std::string brokers() const;  // "127.0.0.1:<port>"
  void stop();

 private:
  std::unique_ptr<broker::Broker> broker_;
};

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The fixture cluster's base URL, or nullopt when HERALD_SDK_PG_URL_FILE is unset.
std::optional<std::string> pg_base_url();

// A fresh PostgreSQL database; dropped (WITH FORCE) by the destructor.
class PgDatabase {
 public:
  // Aborts the test (gtest FAIL via exception-free abort) if the cluster is unreachable.
  static std::unique_ptr<PgDatabase> create(const std::string& prefix);
  ~PgDatabase();
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string base_;
  std::string name_;
  std::string url_;
};

// Runs one SQL statement on `url` outside a transaction (CREATE/DROP DATABASE).
Result<void> pg_exec(const std::string& url, const std::string& sql);

struct Record {
  int32_t partition = 0;
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  Headers headers;
  Result<Event> event() const;  // decode()
};

// Every record of `topic`, partition by partition in offset order, once at
// least `min_count` records exist in total (waits up to `timeout` for them).
// kOutOfRange when fewer arrived in time; a missing topic counts as empty.
Result<std::vector<Record>> read_topic(const std::string& brokers, const std::string& topic,
                                       size_t min_count, std::chrono::milliseconds timeout);

// Creates `topic` with `partitions` partitions (CreateTopics via librdkafka).
Result<void> create_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::map<std::string, std::string>& configs = {});

// Total records in `topic` (sum of high watermarks minus low watermarks).
Result<int64_t> topic_size(const std::string& brokers, const std::string& topic);

}  // namespace herald::sdk::testing
