#include "broker/broker.h"

#include <asio/experimental/as_tuple.hpp>

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "broker/broker_impl.h"
#include "broker/group/group_coordinator.h"
#include "broker/group/offsets_format.h"
#include "broker/server/connection.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"
#include "storage/index_cache.h"

namespace herald::broker {
namespace fs = std::filesystem;
namespace {
constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);
constexpr const char* kVersion = "0.1.0";

Result<std::unique_ptr<asio::ip::tcp::acceptor>> open_acceptor(asio::io_context& io, std::string_view what,
                                                                const std::string& host, uint16_t port) {
  std::error_code ec;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(host, ec), port);
  if (ec) {  // a host name (localhost, my-host): its first address
    asio::ip::tcp::resolver resolver(io);
    auto found = resolver.resolve(host, std::to_string(port), asio::ip::resolver_base::passive, ec);
    if (ec || found.empty()) {
      return Error{Errc::kInvalidArgument,
                   fmt::format("{} address '{}': {}", what, host, ec ? ec.message() : "no address")};
    }
    ep = found.begin()->endpoint();
  }
  auto a = std::make_unique<asio::ip::tcp::acceptor>(io);
  a->open(ep.protocol(), ec);
  if (!ec) a->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) a->bind(ep, ec);
  if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{Errc::kIoError, fmt::format("{} on {}:{}: {}", what, host, port, ec.message())};
  return a;
}
}  // namespace

BrokerImpl::~BrokerImpl() { stop(); }

Result<void> BrokerImpl::load_cluster_id() {
  fs::path path = config_.data_dir / "cluster_id";
  // 22 characters of URL-safe base64 over 16 random bytes, as Kafka's cluster ids look.
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  auto raw = read_whole_file(path);
  if (raw) {
    cluster_id_.assign(raw->begin(), raw->end());
    const bool valid = cluster_id_.size() == 22 && cluster_id_.find_first_not_of(kAlphabet) == std::string::npos;
    if (valid) return ok();
    // Clients show it, and some stumble on bytes that are not an id (one crashed on non-UTF-8).
    HLOG_ERROR("{}: not a cluster id (22 characters of URL-safe base64); a new one is made", path.string());
    cluster_id_.clear();
  } else if (raw.error().code != Errc::kNotFound) {
    return std::move(raw).error();
  } else if (std::error_code ec; fs::exists(config_.data_dir / "topics", ec)) {
    HLOG_WARN("{}: missing though the data dir holds topics; a new cluster id is made", path.string());
  }
  std::random_device rd;
  for (int i = 0; i < 22; ++i) cluster_id_.push_back(kAlphabet[rd() % 64]);
  return atomic_write_file(path, as_bytes(cluster_id_));
}

// One broker per data dir: a second one would append to the same segment files at the same
// offsets and lose the first one's acknowledged records. The lock (flock, released when the
// process dies, however it dies) is held until stop(); the file names the holder's pid.
Result<void> BrokerImpl::lock_data_dir() {
  const fs::path path = config_.data_dir / ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Error{Errc::kIoError, fmt::format("{}: {}", path.string(), std::strerror(errno))};
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string holder(pid, n > 0 ? static_cast<size_t>(n) : 0);
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
      return Error{Errc::kIoError, fmt::format("data dir {} is in use by another broker (pid {})",
                                               config_.data_dir.string(), holder.empty() ? "unknown" : holder)};
    }
    return Error{Errc::kIoError, fmt::format("lock {}: {}", path.string(), std::strerror(err))};
  }
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    HLOG_WARN("{}: cannot record the pid: {}", path.string(), std::strerror(errno));  // the lock holds anyway
  }
  lock_fd_ = fd;
  return ok();
}

Result<void> BrokerImpl::start() {
  int64_t t0 = mono_ns();
  // Request frames and fetch buffers are up to a few MiB each; keep them on the heap instead of
  // a fresh mmap (page faults + zeroing) per request.
  ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 256 << 20);
  if (config_.ephemeral) {
    std::error_code tec;
    const fs::path tmp = fs::temp_directory_path(tec);
    if (tec) return Error{Errc::kIoError, fmt::format("--ephemeral: temporary directory (TMPDIR): {}", tec.message())};
    std::string tmpl = (tmp / "herald-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Error{Errc::kIoError, fmt::format("--ephemeral: mkdtemp {}: {}", tmpl, std::strerror(errno))};
    }
    config_.data_dir = tmpl;
  }
  std::error_code ec;
  fs::create_directories(config_.data_dir, ec);
  if (ec) return Error{Errc::kIoError, fmt::format("data dir {}: {}", config_.data_dir.string(), ec.message())};
  HERALD_TRY(lock_data_dir());
  HERALD_TRY(load_cluster_id());

  storage::IndexCache::global().set_budget(config_.index_cache_bytes);
  flusher_ = std::make_unique<storage::Flusher>(config_.flush_threads);
  HERALD_ASSIGN_OR_RETURN(topics_, TopicManager::open(config_.data_dir, config_.topic_defaults, flusher_.get(),
                                                      {{std::string(group::kOffsetsTopic),
                                                        group::offsets_topic_configs()}}));
  int64_t max_producer_id = -1;
  for (const auto& t : topics_->list()) {
    for (const auto& p : t->partitions()) {
      std::lock_guard lk(p->append_mu);
      max_producer_id = std::max(max_producer_id, p->producers.max_producer_id());
    }
  }
  HERALD_ASSIGN_OR_RETURN(producer_ids_, ProducerIdAllocator::open(config_.data_dir / "producer_ids", max_producer_id));
  int64_t recovery_ms = (mono_ns() - t0) / 1000000;

  const int threads = std::max(1, config_.threads);
  for (int i = 0; i < threads; ++i) ios_.push_back(std::make_unique<asio::io_context>(1));
  // Committed offsets and group generations are replayed from __consumer_offsets before the
  // first connection is accepted. Group timers run on the first network thread.
  groups_ = std::make_unique<group::GroupCoordinator>(group::GroupConfig::from(config_), *topics_, io().get_executor());
  HERALD_TRY(groups_->start());
  HERALD_ASSIGN_OR_RETURN(acceptor_, open_acceptor(io(), "listen", config_.listen_host, config_.listen_port));
  port_ = acceptor_->local_endpoint().port();
  if (config_.metrics_port >= 0) {
    HERALD_ASSIGN_OR_RETURN(metrics_acceptor_, open_acceptor(io(), "metrics", config_.metrics_host,
                                                             static_cast<uint16_t>(config_.metrics_port)));
    metrics_port_ = metrics_acceptor_->local_endpoint().port();
  }
  const bool any_address = config_.listen_host == "0.0.0.0" || config_.listen_host == "::";
  advertised_host_ = config_.advertised_host.empty() ? (any_address ? std::string("127.0.0.1") : config_.listen_host)
                                                     : config_.advertised_host;
  if (any_address && config_.advertised_host.empty()) {
    HLOG_WARN("listening on every address but advertising 127.0.0.1 (no --advertised-host): clients on other "
              "machines reach the bootstrap address, then fail to connect to 127.0.0.1");
  }

  admin_ = std::make_unique<asio::thread_pool>(1);
  asio::co_spawn(io(), accept_loop(), asio::detached);
  if (metrics_acceptor_) asio::co_spawn(io(), metrics_accept_loop(), asio::detached);
  for (auto& ctx : ios_) {
    threads_.emplace_back([c = ctx.get()] {
      auto guard = asio::make_work_guard(*c);
      c->run();
    });
  }
  maintenance_thread_ = std::thread([this] { maintenance_loop(); });
  started_ = true;
  // An IPv6 address in brackets, as in --listen: "[::1]:9092", not "::1:9092".
  auto host = [](const std::string& h) { return h.find(':') != std::string::npos ? "[" + h + "]" : h; };
  HLOG_INFO("herald {} listening on {}:{} data dir {} ({} topics, recovery {} ms)", kVersion, host(config_.listen_host),
            port_, config_.data_dir.string(), topics_->list().size(), recovery_ms);
  if (metrics_acceptor_) HLOG_INFO("metrics at http://{}:{}/metrics", host(config_.metrics_host), metrics_port_);
  return ok();
}

asio::awaitable<void> BrokerImpl::accept_loop() {
  std::chrono::steady_clock::time_point last_accept_warning{};
  for (;;) {
    asio::io_context& target = *ios_[next_io_++ % ios_.size()];
    auto [ec, socket] = co_await acceptor_->async_accept(target, use_nothrow);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
      // Out of file descriptors (or memory): the connection stays in the
      // backlog, so retrying at once would spin. Retry every 100 ms; warn once
      // a second.
      const auto now = std::chrono::steady_clock::now();
      if (now - last_accept_warning >= std::chrono::seconds(1)) {
        HLOG_WARN("accept: {}; retrying every 100 ms", ec.message());
        last_accept_warning = now;
      }
      asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_nothrow);
      continue;
    }
    auto conn = std::make_shared<Connection>(*this, std::move(socket));
    register_connection(conn);
    conn->start();
  }
}

void BrokerImpl::maintenance_loop() {
  const auto interval = std::chrono::milliseconds(config_.maintenance_interval_ms);
  std::unique_lock lock(maintenance_mu_);
  while (!maintenance_cv_.wait_for(lock, interval, [this] { return maintenance_stop_; })) {
    lock.unlock();
    topics_->run_maintenance(now_ms());
    lock.lock();
  }
}

void BrokerImpl::register_connection(const std::shared_ptr<Connection>& c) {
  request_metrics_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(conn_mu_);
  connections_.emplace(c.get(), c);
}

void BrokerImpl::unregister_connection(Connection* c) {
  std::lock_guard lock(conn_mu_);
  connections_.erase(c);
}

void BrokerImpl::stop() {
  {
    std::lock_guard lock(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  if (started_) {
    {
      std::lock_guard lock(maintenance_mu_);
      maintenance_stop_ = true;
    }
    maintenance_cv_.notify_all();
    maintenance_thread_.join();  // waits for a sweep in progress
    asio::post(io(), [this] {
      std::error_code ec;
      acceptor_->close(ec);
      if (metrics_acceptor_) metrics_acceptor_->close(ec);
    });
    // Close outside conn_mu_: dropping the last reference runs ~Connection, which unregisters.
    std::vector<std::shared_ptr<Connection>> live;
    {
      std::lock_guard lock(conn_mu_);
      for (auto& [_, w] : connections_) {
        if (auto c = w.lock()) live.push_back(std::move(c));
      }
    }
    for (auto& c : live) c->close();
    live.clear();
    // Give in-flight handlers a moment to finish, then stop the threads.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (auto& ctx : ios_) ctx->stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Admin work in progress finishes while the topics exist; its completion is queued on a stopped
    // io_context and destroyed with it below.
    admin_->join();
  }
  if (groups_) groups_->stop();
  if (topics_) topics_->close();
  groups_.reset();  // its timers live on ios_
  ios_.clear();  // destroys suspended handler frames while topics and flusher still exist
  acceptor_.reset();
  metrics_acceptor_.reset();
  topics_.reset();
  flusher_.reset();
  if (config_.ephemeral) {
    std::error_code ec;
    fs::remove_all(config_.data_dir, ec);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the data dir
  lock_fd_ = -1;
  if (started_) HLOG_INFO("herald stopped");
  {
    std::lock_guard lock(stop_mu_);
    done_ = true;
  }
  stop_cv_.notify_all();
}

void BrokerImpl::wait() {
  std::unique_lock lock(stop_mu_);
  stop_cv_.wait(lock, [this] { return done_; });
}

Result<std::unique_ptr<Broker>> Broker::start(BrokerConfig config) {
  auto impl = std::make_unique<BrokerImpl>(std::move(config));
  HERALD_TRY(impl->start());
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Broker::Broker(std::unique_ptr<BrokerImpl> impl) : impl_(std::move(impl)) {}
Broker::~Broker() { stop(); }
uint16_t Broker::port() const { return impl_->port(); }
const fs::path& Broker::data_dir() const { return impl_->config().data_dir; }
uint16_t Broker::metrics_port() const { return impl_->metrics_port(); }
void Broker::wait() { impl_->wait(); }
void Broker::stop() { impl_->stop(); }

}  // namespace herald::broker
