#include "broker/topics/topic_manager.h"

#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "common/clock.h"
#include "common/fs.h"
#include "common/log.h"

namespace herald::broker {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kProducerExpirationMs = 86400000;  // producer.id.expiration.ms

TopicId random_topic_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  TopicId id{};
  for (;;) {
    uint64_t a = rng(), b = rng();
    for (int i = 0; i < 8; ++i) {
      id[static_cast<size_t>(i)] = static_cast<uint8_t>(a >> (8 * i));
      id[static_cast<size_t>(8 + i)] = static_cast<uint8_t>(b >> (8 * i));
    }
    if (std::any_of(id.begin(), id.end(), [](uint8_t x) { return x != 0; })) return id;
  }
}

std::string hex(const TopicId& id) {
  std::string s;
  for (uint8_t b : id) s += fmt::format("{:02x}", b);
  return s;
}

std::optional<TopicId> unhex(const std::string& s) {
  if (s.size() != 32) return std::nullopt;
  TopicId id{};
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    if (std::sscanf(s.c_str() + 2 * i, "%2x", &v) != 1) return std::nullopt;
    id[i] = static_cast<uint8_t>(v);
  }
  return id;
}

fs::path snapshot_path(const fs::path& topic_dir, int32_t index) {
  return topic_dir / fmt::format("{}.producers", index);
}

// A deleted topic's directory is renamed with this and a random suffix, then removed.
constexpr std::string_view kDeletedMarker = "~deleted-";
// Topic directories without topic.json that hold records are renamed with this suffix.
constexpr std::string_view kSetAsideExtension = ".no-metadata";
constexpr size_t kMaxDirName = 255;  // NAME_MAX of ext4, xfs, btrfs

// Whether a topic directory holds any non-empty segment file (in its partition directories).
bool holds_records(const fs::path& topic_dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(topic_dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().extension() == ".log" && it->is_regular_file(ec) && it->file_size(ec) > 0) return true;
  }
  return static_cast<bool>(ec);  // unreadable: assume it does
}

// topic.json of the topic in `dir`, checked: name, partition count and id present.
Result<json> read_meta(const fs::path& dir) {
  const fs::path path = dir / "topic.json";
  auto raw = read_whole_file(path);
  if (!raw) return Error{raw.error().code, fmt::format("{}: {}", path.string(), raw.error().message)};
  json meta = json::parse(raw->begin(), raw->end(), nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("name") || !meta["name"].is_string() ||
      !meta.contains("partitions") || !meta["partitions"].is_number_integer() ||
      !unhex(meta.value("id", std::string()))) {
    return Error{Errc::kCorruption, fmt::format("{}: unreadable topic metadata", path.string())};
  }
  return meta;
}

}  // namespace

DataNotifier::Id DataNotifier::add(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  Id id = next_++;
  waiters_.emplace(id, std::move(fn));
  return id;
}

void DataNotifier::remove(Id id) {
  std::lock_guard lock(mu_);
  waiters_.erase(id);
}

void DataNotifier::notify_all() {
  std::map<Id, std::function<void()>> fire;
  {
    std::lock_guard lock(mu_);
    fire.swap(waiters_);
  }
  for (auto& [id, fn] : fire) fn();
}

int32_t Topic::partition_count() const {
  std::lock_guard lock(mu_);
  return static_cast<int32_t>(partitions_.size());
}

std::shared_ptr<Partition> Topic::partition(int32_t index) const {
  std::lock_guard lock(mu_);
  if (index < 0 || static_cast<size_t>(index) >= partitions_.size()) return nullptr;
  return partitions_[static_cast<size_t>(index)];
}

std::vector<std::shared_ptr<Partition>> Topic::partitions() const {
  std::lock_guard lock(mu_);
  return partitions_;
}

TopicConfig Topic::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

bool valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::unique_ptr<TopicManager>> TopicManager::open(const fs::path& data_dir, TopicConfig defaults,
                                                         storage::Flusher* flusher, const InternalTopics& internal) {
  std::error_code ec;
  fs::create_directories(data_dir / "topics", ec);
  if (ec) return Error{Errc::kIoError, fmt::format("create {}: {}", (data_dir / "topics").string(), ec.message())};
  HERALD_ASSIGN_OR_RETURN(DirId id, dir_id(data_dir));
  std::unique_ptr<TopicManager> mgr(new TopicManager(data_dir, id, std::move(defaults), flusher));
  for (const auto& entry : fs::directory_iterator(data_dir / "topics")) {
    if (!entry.is_directory()) continue;
    if (entry.path().filename().string().find(kDeletedMarker) != std::string::npos) {
      HLOG_INFO("removing the directory of a deleted topic, {}", entry.path().string());
      fs::remove_all(entry.path(), ec);
      continue;
    }
    if (auto it = internal.find(entry.path().filename().string()); it != internal.end()) {
      auto meta = read_meta(entry.path());
      if (!meta) {
        HLOG_ERROR("{}; writing it again", meta.error().message);
        HERALD_ASSIGN_OR_RETURN(bool rebuilt, mgr->rebuild_meta(entry.path(), it->first, it->second));
        if (!rebuilt) continue;
      }
    }
    if (!fs::exists(entry.path() / "topic.json")) {
      if (entry.path().extension() == kSetAsideExtension) continue;
      if (!holds_records(entry.path())) {
        // A create that crashed before its metadata was written: nothing was acknowledged.
        HLOG_WARN("removing incomplete topic directory {}", entry.path().string());
        fs::remove_all(entry.path(), ec);
        continue;
      }
      // Records but no metadata: the file was lost or removed. Never delete data on a guess.
      // Under its name, shortened to fit NAME_MAX (a topic name may take 249 of its 255 bytes).
      const std::string stem = entry.path().filename().string().substr(0, kMaxDirName - 16);
      fs::path aside = entry.path().parent_path() / (stem + std::string(kSetAsideExtension));
      for (int n = 2; fs::exists(aside, ec); ++n) {  // set aside before, under the same name
        aside = entry.path().parent_path() / fmt::format("{}.{}{}", stem, n, kSetAsideExtension);
      }
      fs::rename(entry.path(), aside, ec);
      if (ec) return Error{Errc::kIoError, fmt::format("rename {}: {}", entry.path().string(), ec.message())};
      HERALD_TRY(fsync_dir(data_dir / "topics"));
      HLOG_ERROR("topic directory {} holds records but no topic.json: set aside as {}, not served (restore "
                 "its topic.json and rename it back to serve it again)",
                 entry.path().string(), aside.string());
      continue;
    }
    auto topic = mgr->load_topic(entry.path());
    if (!topic && topic.error().code == Errc::kCorruption) {
      return Error{Errc::kCorruption, fmt::format("{} (restore it from a backup; or move {} out of the data dir to "
                                                  "start without that topic)",
                                                  topic.error().message, entry.path().string())};
    }
    if (!topic) return std::move(topic).error();
    mgr->topics_.emplace((*topic)->name(), std::move(*topic));
  }
  return mgr;
}

TopicManager::~TopicManager() { close(); }

Result<std::shared_ptr<Partition>> TopicManager::open_partition(const fs::path& topic_dir, int32_t index,
                                                                const TopicConfig& config) {
  auto p = std::make_shared<Partition>();
  p->index = index;
  HERALD_ASSIGN_OR_RETURN(p->log, storage::PartitionLog::open(topic_dir / std::to_string(index), config.log, flusher_));
  // Rebuild idempotent-producer state: the last snapshot, then the batches after it; without one,
  // every batch still on disk (below the log start too: DeleteRecords does not forget producers).
  int64_t from = 0;
  const fs::path snap_path = snapshot_path(topic_dir, index);
  if (auto snap = read_whole_file(snap_path); snap) {
    auto upto = p->producers.decode_snapshot(*snap);
    if (upto && *upto <= p->log->log_end_offset()) {
      from = *upto;
    } else {
      p->producers = ProducerStateTable{};
      if (upto) {
        // The log ends before what the snapshot covers (its tail was lost). Once appends pass that
        // offset again the snapshot would look valid and describe other batches: it goes now.
        HLOG_WARN("{}: producer snapshot covers up to offset {}, beyond the log end {}: removed, state "
                  "rebuilt from the log",
                  snap_path.string(), *upto, p->log->log_end_offset());
        std::error_code ec;
        fs::remove(snap_path, ec);
        if (ec) return Error{Errc::kIoError, fmt::format("remove {}: {}", snap_path.string(), ec.message())};
        HERALD_TRY(fsync_dir(topic_dir));
      }
    }
  }
  // The batches after the snapshot count as appended now: their timestamps are the producers'
  // (CreateTime, possibly days old for a backfill), and a producer that wrote just before a crash
  // must not expire at the restart.
  int64_t now = now_ms();
  auto replayed = p->log->for_each_batch(from, [&](const record::BatchHeader& h) {
    if (h.producer_id >= 0 && h.base_offset >= from) {
      p->producers.record(h.producer_id, h.producer_epoch, h.base_sequence, h.last_sequence(), h.base_offset,
                          h.last_offset(), now);
    }
  });
  if (!replayed && replayed.error().code != Errc::kCorruption) return replayed.error();
  if (!replayed) {
    // A damaged batch in a closed segment: reads of it fail (KAFKA_STORAGE_ERROR) and every other
    // record stays readable, so the partition opens; only the producers' state after the damage is
    // missing, so a retry of a batch written after it could be appended again.
    HLOG_ERROR("{}: idempotent-producer state rebuilt only up to damage in the log: {}", topic_dir.string(),
               replayed.error().to_string());
  }
  p->producers.expire(now, kProducerExpirationMs);
  return p;
}

Result<std::shared_ptr<Topic>> TopicManager::load_topic(const fs::path& dir) {
  HERALD_ASSIGN_OR_RETURN(json meta, read_meta(dir));
  TopicConfig config = defaults_;
  config.overrides.clear();  // the broker's defaults stay defaults (a later restart may change them)
  const json configs = meta.value("configs", json::object());
  for (const auto& [k, v] : configs.items()) {
    if (!v.is_string()) {
      HLOG_WARN("topic {}: ignoring stored config {}: not a string", dir.filename().string(), k);
      continue;
    }
    if (auto r = config.set(k, v.get<std::string>()); !r) {
      HLOG_WARN("topic {}: ignoring stored config: {}", dir.filename().string(), r.error().message);
    }
  }
  auto id = unhex(meta.value("id", std::string()));
  auto topic = std::make_shared<Topic>(meta["name"].get<std::string>(), *id, meta.value("internal", false), config);
  int32_t n = meta["partitions"].get<int32_t>();
  for (int32_t i = 0; i < n; ++i) {
    if (std::error_code ec; !fs::exists(dir / std::to_string(i), ec) && !ec) {
      HLOG_ERROR("{}: partition directory {} missing: the partition starts empty at offset 0, and whatever it "
                 "held is lost",
                 dir.string(), i);
    }
    HERALD_ASSIGN_OR_RETURN(auto p, open_partition(dir, i, config));
    topic->partitions_.push_back(std::move(p));
  }
  return topic;
}

Result<bool> TopicManager::rebuild_meta(const fs::path& dir, const std::string& name,
                                        const std::map<std::string, std::string>& configs) {
  int32_t partitions = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool numeric = !n.empty() && n.size() < 10 && std::all_of(n.begin(), n.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (e.is_directory() && numeric) {
      partitions = std::max(partitions, std::stoi(n) + 1);
    }
  }
  if (ec) return Error{Errc::kIoError, fmt::format("list {}: {}", dir.string(), ec.message())};
  if (partitions == 0) {
    HLOG_WARN("{}: no partition directory; removed (created again on first use)", dir.string());
    fs::remove_all(dir, ec);
    if (ec) return Error{Errc::kIoError, fmt::format("remove {}: {}", dir.string(), ec.message())};
    return false;
  }
  TopicConfig config = defaults_;
  config.overrides.clear();
  for (const auto& [k, v] : configs) HERALD_TRY(config.set(k, v));
  HERALD_TRY(write_meta(Topic(name, random_topic_id(), /*internal=*/true, config), partitions));
  HLOG_WARN("{}: topic.json written again ({} partitions)", dir.string(), partitions);
  return true;
}

Result<void> TopicManager::write_meta(const Topic& topic, int32_t partitions) {
  json meta;
  meta["name"] = topic.name();
  meta["id"] = hex(topic.id());
  meta["internal"] = topic.internal();
  {
    std::lock_guard lock(topic.mu_);
    meta["partitions"] = partitions >= 0 ? static_cast<size_t>(partitions) : topic.partitions_.size();
    meta["configs"] = topic.config_.overrides;
  }
  std::string s = meta.dump(2);
  return atomic_write_file(topic_dir(topic.name()) / "topic.json", as_bytes(s));
}

std::shared_ptr<Topic> TopicManager::find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second;
}

std::optional<std::string> TopicManager::colliding_topic(std::string_view name) const {
  auto metric_name = [](std::string_view n) {
    std::string out(n);
    std::replace(out.begin(), out.end(), '.', '_');
    return out;
  };
  const std::string m = metric_name(name);
  std::shared_lock lock(mu_);
  for (const auto& [other, t] : topics_) {
    if (other != name && metric_name(other) == m) return other;
  }
  return std::nullopt;
}

std::vector<std::shared_ptr<Topic>> TopicManager::list() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<Topic>> out;
  out.reserve(topics_.size());
  for (const auto& [name, t] : topics_) out.push_back(t);
  return out;
}

Result<std::shared_ptr<Topic>> TopicManager::create(const std::string& name, int32_t partitions,
                                                    const std::map<std::string, std::string>& configs,
                                                    bool validate_only, bool internal) {
  if (!valid_topic_name(name)) {
    return Error{Errc::kInvalidArgument, fmt::format("invalid topic name '{}': use 1-249 of [a-zA-Z0-9._-]", name)};
  }
  if (partitions <= 0 || partitions > 100000) {
    return Error{Errc::kOutOfRange, fmt::format("invalid partition count {}", partitions)};
  }
  TopicConfig config = defaults_;
  config.overrides.clear();
  for (const auto& [k, v] : configs) HERALD_TRY(config.set(k, v));
  HERALD_TRY(config.check());
  std::lock_guard admin(admin_mu_);
  if (find(name)) return Error{Errc::kAlreadyExists, fmt::format("topic '{}' already exists", name)};
  if (auto other = colliding_topic(name)) {
    return Error{Errc::kInvalidArgument, fmt::format("topic '{}' collides with existing topic '{}'", name, *other)};
  }
  HERALD_TRY(check_descriptors(partitions));
  if (validate_only) return std::make_shared<Topic>(name, TopicId{}, internal, config);
  HERALD_TRY(writable());

  auto topic = std::make_shared<Topic>(name, random_topic_id(), internal, config);
  fs::path dir = topic_dir(name);
  // A failure (out of descriptors, a full disk, permissions) closes what was opened, so that the
  // removal itself has descriptors, and leaves nothing behind but a log line.
  auto undo = [&](Error e) {
    for (auto& p : topic->partitions_) (void)p->log->close();
    topic->partitions_.clear();
    std::error_code rm;
    fs::remove_all(dir, rm);
    HLOG_WARN("creating topic {} failed: {}{}", name, e.to_string(),
              rm ? fmt::format("; removing {}: {} (removed at the next start)", dir.string(), rm.message()) : "");
    return e;
  };
  std::error_code ec;
  // No topic has this name, so a directory of that name is a leftover (a
  // delete whose removal failed): a new topic must not find its records.
  if (fs::remove_all(dir, ec); ec) {
    return undo(Error{Errc::kIoError, fmt::format("remove leftover {}: {}", dir.string(), ec.message())});
  }
  fs::create_directories(dir, ec);
  if (ec) return undo(Error{Errc::kIoError, fmt::format("create {}: {}", dir.string(), ec.message())});
  if (auto r = fsync_dir(dir.parent_path()); !r) return undo(r.error());  // the new directory's entry in topics/
  for (int32_t i = 0; i < partitions; ++i) {
    auto p = open_partition(dir, i, config);
    if (!p) return undo(std::move(p).error());
    topic->partitions_.push_back(std::move(*p));
  }
  if (auto r = write_meta(*topic); !r) return undo(r.error());
  {
    std::unique_lock lock(mu_);
    topics_.emplace(name, topic);
  }
  HLOG_INFO("created topic {} with {} partition{}", name, partitions, partitions == 1 ? "" : "s");
  return topic;
}

Result<void> TopicManager::remove(const std::string& name, std::optional<TopicId> id) {
  std::lock_guard admin(admin_mu_);
  std::shared_ptr<Topic> topic;
  {
    std::unique_lock lock(mu_);
    auto it = topics_.find(name);
    if (it == topics_.end() || (id && it->second->id() != *id)) {
      return Error{Errc::kNotFound, fmt::format("unknown topic '{}'", name)};
    }
    topic = it->second;
    topics_.erase(it);
  }
  fs::path dir = topic_dir(name);
  for (auto& p : topic->partitions()) {
    p->removed.store(true);
    (void)p->log->close();
    p->notifier.notify_all();  // waiting fetches answer UNKNOWN_TOPIC_OR_PARTITION now
  }
  // Out of the way under a name no topic can have ('~') in one step, then gone: after a crash, or if
  // the removal fails, what is left is swept at the next start.
  std::error_code ec;
  // The name shortened so that the whole fits NAME_MAX; the marker alone makes open() sweep it.
  const std::string suffix = hex(random_topic_id());
  const std::string kept = name.substr(0, kMaxDirName - kDeletedMarker.size() - suffix.size());
  fs::path gone = dir.parent_path() / (kept + std::string(kDeletedMarker) + suffix);
  fs::rename(dir, gone, ec);
  if (ec) {  // metadata first, then the files (a directory without topic.json is no topic)
    gone = dir;
    fs::remove(dir / "topic.json", ec);
    (void)fsync_dir(dir);
  }
  (void)fsync_dir(dir.parent_path());
  fs::remove_all(gone, ec);
  if (ec) HLOG_WARN("deleted topic {}: removing {}: {} (removed at the next start)", name, gone.string(), ec.message());
  (void)fsync_dir(dir.parent_path());
  HLOG_INFO("deleted topic {}", name);
  return ok();
}

Result<void> TopicManager::add_partitions(const std::string& name, int32_t total, bool validate_only) {
  std::lock_guard admin(admin_mu_);
  auto topic = find(name);
  if (!topic) return Error{Errc::kNotFound, fmt::format("unknown topic '{}'", name)};
  int32_t current = topic->partition_count();
  if (total <= current) {
    return Error{Errc::kInvalidArgument,
                 fmt::format("topic '{}' has {} partitions; the new count {} must be larger", name, current, total)};
  }
  if (total > 100000) return Error{Errc::kInvalidArgument, fmt::format("partition count {} too large", total)};
  HERALD_TRY(check_descriptors(total - current));
  if (validate_only) return ok();
  HERALD_TRY(writable());
  TopicConfig config = topic->config();
  std::vector<std::shared_ptr<Partition>> added;
  auto close_added = [&added] {
    for (auto& p : added) {
      if (auto r = p->log->close(); !r) HLOG_WARN("closing a partition not added: {}", r.error().to_string());
    }
  };
  for (int32_t i = current; i < total; ++i) {
    auto p = open_partition(topic_dir(name), i, config);
    if (!p) {
      close_added();
      return p.error();
    }
    added.push_back(std::move(*p));
  }
  // The new count is on disk before any client can write to the new partitions:
  // otherwise a restart would drop what they acknowledged.
  if (auto r = write_meta(*topic, total); !r) {
    close_added();
    return r;
  }
  std::lock_guard lock(topic->mu_);
  for (auto& p : added) topic->partitions_.push_back(std::move(p));
  return ok();
}

Result<void> TopicManager::set_config(const std::string& name, const TopicConfig& config) {
  std::lock_guard admin(admin_mu_);
  HERALD_TRY(writable());
  auto topic = find(name);
  if (!topic) return Error{Errc::kNotFound, fmt::format("unknown topic '{}'", name)};
  const auto apply = [&](const TopicConfig& c) {
    {
      std::lock_guard lock(topic->mu_);
      topic->config_ = c;
    }
    // Outside mu_: a switch to flush.policy=always syncs each log, and network threads take mu_
    // for every Produce, Fetch and Metadata of this topic.
    for (auto& p : topic->partitions()) p->log->set_config(c.log);
  };
  const TopicConfig old = topic->config();
  apply(config);
  auto r = write_meta(*topic);
  if (!r) apply(old);  // refused: what runs is what a restart would load
  return r;
}

Result<void> TopicManager::snapshot_producers(const Topic& topic, Partition& p, int64_t now) {
  std::lock_guard snapshot(p.snapshot_mu);
  Bytes snap;
  int64_t upto = -1;
  {
    std::lock_guard lock(p.append_mu);
    p.producers.expire(now, kProducerExpirationMs);
    upto = p.log->log_end_offset();
    if (upto == p.snapshot_upto) return ok();
    snap = p.producers.encode_snapshot(upto);
  }
  HERALD_TRY(p.log->while_open([&] { return atomic_write_file(snapshot_path(topic_dir(topic.name()), p.index), snap); }));
  std::lock_guard lock(p.append_mu);
  p.snapshot_upto = upto;
  return ok();
}

Result<int64_t> TopicManager::delete_records_before(const Topic& topic, Partition& p, int64_t offset) {
  HERALD_TRY(snapshot_producers(topic, p, now_ms()));
  return p.log->delete_records_before(offset);
}

Result<void> TopicManager::check_descriptors(int64_t partitions) {
  rlimit lim{};
  std::error_code ec;
  int64_t open = 0;
  for (fs::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) ++open;
  if (ec || ::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return ok();  // cannot tell
  const auto limit = static_cast<int64_t>(lim.rlim_cur);
  const int64_t reserve = limit / 8;  // for connections, compaction, segment rolls
  if (open + partitions + reserve <= limit) return ok();
  return Error{Errc::kOutOfRange,
               fmt::format("{} new partitions need {} file descriptors (one each); {} of the broker's limit of {} are "
                           "open and {} are kept for connections and file work: raise the limit (ulimit -n)",
                           partitions, partitions, open, limit, reserve)};
}

Result<TopicManager::DirId> TopicManager::dir_id(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Error{Errc::kIoError, fmt::format("{}: {}", path.string(), std::strerror(errno))};
  }
  return DirId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

void TopicManager::check_data_dir() {
  if (data_dir_lost_.load(std::memory_order_relaxed)) return;
  auto now = dir_id(data_dir_);
  if (now && *now == data_dir_id_) return;
  data_dir_lost_.store(true, std::memory_order_relaxed);
  HLOG_ERROR("data dir {} is not the directory this broker opened any more ({}): a restart would not find "
             "what is written from now on, so produce requests and topic changes are refused (KAFKA_STORAGE_ERROR), "
             "and offset commits (COORDINATOR_NOT_AVAILABLE); stop the broker and check the data dir",
             data_dir_.string(), now ? "another directory has its name" : now.error().message);
}

Result<void> TopicManager::writable() const {
  if (!data_dir_lost_.load(std::memory_order_relaxed)) return ok();
  return Error{Errc::kIoError, fmt::format("data dir {} was removed or replaced while the broker ran", data_dir_.string())};
}

void TopicManager::run_maintenance(int64_t now) {
  check_data_dir();
  if (data_dir_lost_.load(std::memory_order_relaxed)) return;  // every file written would be lost
  for (auto& topic : list()) {
    for (auto& p : topic->partitions()) {
      // Producer state is snapshotted whenever the log has grown, so that a restart after a crash
      // replays only the batches since (the open path refuses a snapshot past the recovered log end),
      // and before retention, so that no producer whose batches it deletes is forgotten. Retention
      // goes on when the snapshot fails: on a full disk it is what frees space.
      // kClosed: the topic was deleted since list(); its files are not this log's any more.
      if (auto r = snapshot_producers(*topic, *p, now); !r) {
        if (r.error().code == Errc::kClosed) continue;
        HLOG_WARN("producer snapshot {}/{}: {}", topic->name(), p->index, r.error().to_string());
      }
      if (auto r = p->log->apply_retention(now); !r && r.error().code != Errc::kClosed) {
        HLOG_ERROR("retention {}/{}: {}", topic->name(), p->index, r.error().to_string());
      }
      if (p->log->config().compact) {
        std::vector<int64_t> keep;
        {
          std::lock_guard lock(p->append_mu);
          keep = p->producers.last_batch_offsets();
        }
        if (auto r = p->log->compact(now, keep); !r && r.error().code != Errc::kClosed) {
          HLOG_ERROR("compaction {}/{}: {}", topic->name(), p->index, r.error().to_string());
        }
      }
    }
  }
}

void TopicManager::close() {
  std::unique_lock lock(mu_);
  for (auto& [name, topic] : topics_) {
    for (auto& p : topic->partitions()) {
      if (auto r = p->log->close(); !r) {
        HLOG_ERROR("closing {}/{}: {}", name, p->index, r.error().to_string());
        continue;
      }
      std::lock_guard plock(p->append_mu);
      Bytes snap = p->producers.encode_snapshot(p->log->log_end_offset());
      if (auto r = atomic_write_file(snapshot_path(topic_dir(name), p->index), snap); !r) {
        HLOG_WARN("producer snapshot {}/{}: {}", name, p->index, r.error().to_string());
      }
    }
  }
  topics_.clear();
}

}  // namespace herald::broker
