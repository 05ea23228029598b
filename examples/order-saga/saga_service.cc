#include "saga_service.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include "common/log.h"
#include "sdk/outbox/relay.h"
#include "sdk/replica/replica.h"

namespace herald::examples::saga {

using nlohmann::json;

std::optional<int64_t> int_field(const json& j, const char* name, int64_t min) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  int64_t v = it->get<int64_t>();
  if (v < min) return std::nullopt;
  return v;
}

bool read_json(sdk::Store& store, httplib::Response& res, const std::function<Result<void>(sdk::Tx&)>& fn) {
  auto r = store.run(fn, 5, sdk::TxOptions{.read_only = true});
  if (!r) {
    HLOG_ERROR("database: {}", r.error().to_string());
    reply_error(res, 503, fmt::format("database unavailable: {}", r.error().message));
    return false;
  }
  return true;
}

int run_participant(int argc, char** argv, const ParticipantService& svc) {
  CLI::App app{svc.description};
  CommonFlags flags;
  add_common_flags(app, flags, svc.name + ".db");
  std::string instance_id;
  app.add_option("--instance-id", instance_id,
                 "Kafka group.instance.id (static membership: a restarted instance gets its partitions back at once)");
  CLI11_PARSE(app, argc, argv);

  block_shutdown_signals();
  setup_logging(svc.name, flags.log_level);

  auto store = sdk::Store::open(flags.db);
  if (!store) {
    HLOG_ERROR("opening database {}: {}", flags.db, store.error().to_string());
    return 1;
  }
  if (auto r = (*store)->migrate({svc.schema}); !r) {
    HLOG_ERROR("creating tables: {}", r.error().to_string());
    return 1;
  }
  auto extra = parse_properties(flags.kafka);
  if (!extra) {
    HLOG_ERROR("{}", extra.error().to_string());
    return 2;
  }
  const std::string topic = svc.name + ".commands";
  if (auto r = ensure_topic(flags.brokers, topic, kPartitions, {}, *extra, std::chrono::seconds(60)); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }

  sdk::SagaParticipant participant(svc.name, "/" + svc.name);
  svc.commands(participant);
  sdk::ReplicaHandlers handlers;
  if (auto r = participant.attach(**store, handlers); !r) {
    HLOG_ERROR("saga participant: {}", r.error().to_string());
    return 1;
  }
  sdk::ReplicaConfig rc;
  rc.brokers = flags.brokers;
  rc.group_id = svc.name;
  rc.client_id = fmt::format("{}-{}", svc.name, getpid());
  rc.topics = {topic};
  rc.kafka = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "1000"}};
  if (!instance_id.empty()) rc.kafka.emplace_back("group.instance.id", instance_id);
  rc.kafka.insert(rc.kafka.end(), extra->begin(), extra->end());
  rc.dlq_producer = *extra;
  auto replica = sdk::Replica::create(rc, **store, std::move(handlers));
  if (!replica) {
    HLOG_ERROR("replica: {}", replica.error().to_string());
    return 1;
  }
  (*replica)->on_ready([&svc] { HLOG_INFO("{} caught up with {}.commands: ready", svc.name, svc.name); });
  sdk::RelayOptions ropts;
  ropts.brokers = flags.brokers;
  ropts.kafka_config = *extra;
  auto relay = sdk::OutboxRelay::create(**store, ropts);
  if (!relay) {
    HLOG_ERROR("outbox relay: {}", relay.error().to_string());
    return 1;
  }

  HttpService http;
  svc.routes(http.server(), **store);
  add_replica_endpoints(http.server(), svc.name, **replica);
  auto port = http.bind(flags.listen, flags.port_file);
  if (!port) {
    HLOG_ERROR("{}", port.error().to_string());
    return 1;
  }
  if (auto r = (*relay)->start(); !r) {
    HLOG_ERROR("outbox relay: {}", r.error().to_string());
    return 1;
  }
  if (auto r = (*replica)->start(); !r) {
    HLOG_ERROR("replica: {}", r.error().to_string());
    return 1;
  }
  http.start();
  HLOG_INFO("{} listening on http://127.0.0.1:{} (brokers {}, db {})", svc.name, *port, flags.brokers, flags.db);

  int sig = wait_for_shutdown_signal([&] { return (*replica)->running(); });
  if (sig != 0) {
    HLOG_INFO("signal {}: shutting down", sig);
  } else {
    HLOG_ERROR("the command replica stopped on its own; exiting so that a supervisor restarts {}", svc.name);
  }
  http.stop();
  (*replica)->stop();
  auto r = (*replica)->join();
  (*relay)->stop();
  if (!r) HLOG_ERROR("replica: {}", r.error().to_string());
  return r && sig != 0 ? 0 : 1;
}

}  // namespace herald::examples::saga
