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

std::optional<int> ServiceRuntime::init(int argc, char** argv, const std::string& description,
                                        const sdk::Migration& schema, const std::function<void(CLI::App&)>& more) {
  CLI::App app{description};
  add_common_flags(app, flags, name + ".db");
  app.add_option("--instance-id", instance_id,
                 "Kafka group.instance.id (static membership: a restarted instance gets its partitions back at once)");
  if (more) more(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  block_shutdown_signals();
  setup_logging(name, flags.log_level);

  auto opened = sdk::Store::open(flags.db);
  if (!opened) {
    HLOG_ERROR("opening database {}: {}", flags.db, opened.error().to_string());
    return 1;
  }
  store = std::move(*opened);
  if (auto r = store->migrate({schema}); !r) {
    HLOG_ERROR("creating tables: {}", r.error().to_string());
    return 1;
  }
  auto extra = parse_properties(flags.kafka);
  if (!extra) {
    HLOG_ERROR("{}", extra.error().to_string());
    return 2;
  }
  extra_kafka = std::move(*extra);
  sdk::RelayOptions ropts;
  ropts.brokers = flags.brokers;
  ropts.kafka_config = extra_kafka;
  auto created = sdk::OutboxRelay::create(*store, ropts);
  if (!created) {
    HLOG_ERROR("outbox relay: {}", created.error().to_string());
    return 1;
  }
  relay = std::move(*created);
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> ServiceRuntime::consumer_kafka() const {
  std::vector<std::pair<std::string, std::string>> kv = {
      {"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "1000"}, {"client.id", fmt::format("{}-{}", name, getpid())}};
  if (!instance_id.empty()) kv.emplace_back("group.instance.id", instance_id);
  kv.insert(kv.end(), extra_kafka.begin(), extra_kafka.end());
  return kv;
}

int ServiceRuntime::serve(const Consumer& consumer, const std::string& detail,
                          std::function<void(json&)> health_extra) {
  add_replica_endpoints(http.server(), name, consumer.replica, std::move(health_extra));
  auto port = http.bind(flags.listen, flags.port_file);
  if (!port) {
    HLOG_ERROR("{}", port.error().to_string());
    return 1;
  }
  if (auto r = relay->start(); !r) {
    HLOG_ERROR("outbox relay: {}", r.error().to_string());
    return 1;
  }
  if (auto r = consumer.start(); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }
  http.start();
  HLOG_INFO("{} listening on http://127.0.0.1:{} (brokers {}, db {}{})", name, *port, flags.brokers, flags.db, detail);

  int sig = wait_for_shutdown_signal([&] { return consumer.replica.running(); });
  if (sig != 0) {
    HLOG_INFO("signal {}: shutting down", sig);
  } else {
    HLOG_ERROR("the consumer stopped on its own; exiting so that a supervisor restarts {}", name);
  }
  http.stop();
  consumer.stop();
  auto r = consumer.join();
  relay->stop();
  if (!r) HLOG_ERROR("{}", r.error().to_string());
  return r && sig != 0 ? 0 : 1;
}

int run_participant(int argc, char** argv, const ParticipantService& svc) {
  ServiceRuntime rt;
  rt.name = svc.name;
  if (auto code = rt.init(argc, argv, svc.description, svc.schema)) return *code;
  const std::string topic = svc.name + ".commands";
  if (auto r = ensure_topic(rt.flags.brokers, topic, kPartitions, {}, rt.extra_kafka, std::chrono::seconds(60)); !r) {
    HLOG_ERROR("{}", r.error().to_string());
    return 1;
  }
  sdk::SagaParticipant participant(svc.name, "/" + svc.name);
  svc.commands(participant);
  sdk::ReplicaHandlers handlers;
  if (auto r = participant.attach(*rt.store, handlers); !r) {
    HLOG_ERROR("saga participant: {}", r.error().to_string());
    return 1;
  }
  sdk::ReplicaConfig rc;
  rc.brokers = rt.flags.brokers;
  rc.group_id = svc.name;
  rc.topics = {topic};
  rc.kafka = rt.consumer_kafka();
  rc.dlq_producer = rt.extra_kafka;
  auto replica = sdk::Replica::create(rc, *rt.store, std::move(handlers));
  if (!replica) {
    HLOG_ERROR("replica: {}", replica.error().to_string());
    return 1;
  }
  sdk::Replica& r = **replica;
  r.on_ready([&svc] { HLOG_INFO("{} caught up with {}.commands: ready", svc.name, svc.name); });
  svc.routes(rt.http.server(), *rt.store);
  return rt.serve({r, [&r] { return r.start(); }, [&r] { r.stop(); }, [&r] { return r.join(); }}, "");
}

}  // namespace herald::examples::saga
