// Plumbing shared by the Users/Billing example services (users, billing,
// notifications): command-line flags, the HTTP server's life cycle, JSON
// replies, topic creation, signal handling and the "replica of users" that
// billing and notifications both keep.
//
// Nothing here is Herald-specific: the services talk to the broker only
// through librdkafka and libherald, so `--brokers` may point at Herald or at
// an Apache Kafka / Redpanda cluster.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/result.h"
#include "sdk/replica/replica.h"
#include "sdk/store/store.h"

namespace herald::examples {

// The topic Users publishes to: compacted (the latest event per user is a
// complete snapshot), keyed by user id.
inline constexpr const char* kUsersTopic = "users";
inline constexpr int kUsersPartitions = 3;

// ce_type values of the users topic.
inline constexpr const char* kUserCreated = "user.created";
inline constexpr const char* kUserEmailChanged = "user.email_changed";
inline constexpr const char* kUserDeleted = "user.deleted";

// Flags every service takes.
struct CommonFlags {
  std::string listen = "127.0.0.1:0";    // --listen HOST:PORT (PORT 0 = any free port)
  std::string brokers = "127.0.0.1:9092";  // --brokers HOST:PORT[,HOST:PORT...]
  std::string db;                        // --db PATH | sqlite:PATH | postgresql://...
  std::string port_file;                 // --port-file F: the bound port is written there
  std::string log_level = "info";        // --log-level
  std::vector<std::string> kafka;        // --kafka KEY=VALUE: extra librdkafka settings
};

// Splits "HOST:PORT"; kInvalidArgument when malformed.
Result<std::pair<std::string, int>> parse_host_port(std::string_view s);

// KEY=VALUE strings -> pairs; kInvalidArgument on an entry without '='.
Result<std::vector<std::pair<std::string, std::string>>> parse_properties(const std::vector<std::string>& kv);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (call it first in
// main, so every thread started later inherits the mask) and ignores SIGPIPE.
// Until wait_for_shutdown_signal() is called (start-up), one of them ends the
// process at once, exit status 0.
void block_shutdown_signals();
// Waits for one of them; returns its number. When `healthy` is given it is
// checked twice a second and the wait ends (returning 0) once it says false.
int wait_for_shutdown_signal(const std::function<bool()>& healthy = {});

// Creates `topic` with `partitions` partitions and `configs` unless it exists.
// Retries while the cluster cannot be reached, for up to `timeout`.
Result<void> ensure_topic(const std::string& brokers, const std::string& topic, int partitions,
                          const std::vector<std::pair<std::string, std::string>>& configs,
                          const std::vector<std::pair<std::string, std::string>>& extra_kafka,
                          std::chrono::milliseconds timeout);

// The users topic as every service creates it.
Result<void> ensure_users_topic(const CommonFlags& flags);

// An httplib server bound at construction, serving on its own thread.
class HttpService {
 public:
  HttpService();
  ~HttpService();
  httplib::Server& server() { return server_; }
  // Binds `listen` (port 0 = any) and writes the port to `port_file` if set.
  Result<int> bind(const std::string& listen, const std::string& port_file);
  void start();  // serves on a background thread
  void stop();   // stops accepting, finishes running requests, joins
  int port() const { return port_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

// Replies.
void reply_json(httplib::Response& res, int status, const nlohmann::json& body);
void reply_error(httplib::Response& res, int status, std::string_view message);

// Parses the request body as a JSON object; on failure replies 400 and returns nullopt.
std::optional<nlohmann::json> parse_body(const httplib::Request& req, httplib::Response& res);

// Validation shared by the services.
bool valid_user_id(std::string_view id);   // [A-Za-z0-9._-]{1,64}
bool valid_email(std::string_view email);  // local@domain.tld, no spaces, <= 254 chars

// A JSON object's string member; nullopt when missing or not a string.
std::optional<std::string> string_field(const nlohmann::json& j, const char* name);

// ---- a replica of the users topic -----------------------------------------
//
// Billing (table `customers`) and notifications (table `contacts`) keep the
// same columns: id, name, email, version (the user's version in Users, which
// counts its changes), updated_at (ce_time of the event that last changed the
// row, ms), updated_partition and updated_offset (where in the users topic
// that event is). The table is created by its own migrations.

// The migrations that create `table` (ids `<id_prefix>_v1`, `_v2`).
std::vector<sdk::Migration> users_replica_migrations(const std::string& id_prefix, const std::string& table);

// Registers the handlers that keep `table` equal to the users topic:
// user.created / user.email_changed upsert the full state the event carries,
// user.deleted (a tombstone) and any other tombstone delete the row.
// `on_change(kind, id, email)` runs after each change inside the transaction
// (e.g. to log); may be empty.
using ChangeHook = std::function<void(std::string_view kind, const std::string& id, const std::string& email)>;
void add_users_handlers(sdk::ReplicaHandlers& handlers, const std::string& table, ChangeHook on_change = {});

// One row of a users replica as JSON, or nullopt when `id` is not there.
Result<std::optional<nlohmann::json>> read_replica_row(sdk::Store& store, const std::string& table,
                                                       const std::string& id);
// Every row, ordered by id.
Result<nlohmann::json> read_replica_rows(sdk::Store& store, const std::string& table);

// Replica status as JSON: {"ready", "lag", "partitions":[{topic, partition,
// position, high_watermark, lag, caught_up}], "stats":{...}}.
nlohmann::json replica_status_json(const sdk::Replica& replica);

// A ReplicaConfig for the users topic with the example's defaults (short
// session timeout so a SIGKILLed instance's partitions move on quickly).
sdk::ReplicaConfig users_replica_config(const CommonFlags& flags, const std::string& group,
                                        const std::string& client_id);

// Registers GET /health and GET /ready for a replica-keeping service. `extra`
// adds fields to /health.
void add_replica_endpoints(httplib::Server& server, const std::string& service, const sdk::Replica& replica,
                           std::function<void(nlohmann::json&)> extra = {});

// Adds --listen, --brokers, --db, --port-file, --log-level, --kafka to `app`.
}  // namespace herald::examples

namespace CLI {
class App;
}
namespace herald::examples {
void add_common_flags(CLI::App& app, CommonFlags& flags, const std::string& default_db);
// Sets up logging (level, a service-name prefix).
void setup_logging(const std::string& service, const std::string& level);
}  // namespace herald::examples
