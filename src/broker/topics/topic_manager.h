// TopicManager: the broker's catalogue of topics and their partition logs.
//
// Layout under the data dir (see docs/storage-format.md):
//   topics/<name>/topic.json        id, partition count, config overrides (atomic rename)
//   topics/<name>/<partition>/      one storage::PartitionLog per partition
//
// Thread-safety: every method may be called from any network thread. Topics
// and partitions are handed out as shared_ptr so a request in flight keeps
// them alive across a concurrent delete.
//
//   auto mgr = TopicManager::open(dir, defaults, &flusher);
//   auto t = (*mgr)->create("orders", 3, {});
//   auto p = (*t)->partition(0);
//   p->log->append(batch);
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "broker/producer_state/producer_state.h"
#include "broker/topics/topic_config.h"
#include "common/result.h"
#include "storage/partition_log.h"

namespace herald::broker {

using TopicId = std::array<uint8_t, 16>;

// One-shot callbacks run when new data becomes readable on a partition
// (its high watermark moves). Long-polling fetches register here.
class DataNotifier {
 public:
  using Id = uint64_t;
  Id add(std::function<void()> fn);
  void remove(Id id);
  void notify_all();

 private:
  std::mutex mu_;
  Id next_ = 1;
  std::map<Id, std::function<void()>> waiters_;
};

struct Partition {
  int32_t index = 0;
  std::unique_ptr<storage::PartitionLog> log;
  // Serializes the idempotence check and the append that follows it.
  std::mutex append_mu;
  ProducerStateTable producers;  // guarded by append_mu
  int64_t snapshot_upto = -1;    // log end the last producer snapshot written covers; guarded by append_mu
  std::mutex snapshot_mu;        // one snapshot written at a time, so a newer one is never overwritten
  std::atomic<bool> removed{false};  // its topic was deleted (the log is closed)
  // Failed appends (a full disk fails every retry): the first is logged, then one line
  // per 10 s with the count, and one when an append works again. Guarded by append_mu.
  uint64_t append_failures = 0;      // since the last append that worked
  uint64_t append_failures_unlogged = 0;
  int64_t append_failure_logged_ms = 0;
  DataNotifier notifier;
};

class Topic {
 public:
  Topic(std::string name, TopicId id, bool internal, TopicConfig config)
      : name_(std::move(name)), id_(id), internal_(internal), config_(std::move(config)) {}

  const std::string& name() const { return name_; }
  const TopicId& id() const { return id_; }
  bool internal() const { return internal_; }
  int32_t partition_count() const;
  // Null when index is out of range.
  std::shared_ptr<Partition> partition(int32_t index) const;
  std::vector<std::shared_ptr<Partition>> partitions() const;
  TopicConfig config() const;

 private:
  friend class TopicManager;
  const std::string name_;
  const TopicId id_;
  const bool internal_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Partition>> partitions_;  // guarded by mu_
  TopicConfig config_;                                  // guarded by mu_
};

// Valid Kafka topic name: 1..249 chars of [a-zA-Z0-9._-], not "." or "..".
bool valid_topic_name(std::string_view name);

class TopicManager {
 public:
  // The broker's own topics, by name, with the config overrides they are created with: their
  // topic.json, when lost or unreadable, is written again (partitions counted from their
  // directories) instead of stopping the start or setting their records aside.
  using InternalTopics = std::map<std::string, std::map<std::string, std::string>, std::less<>>;

  // Opens every topic found under data_dir/topics. `flusher` must outlive the manager.
  static Result<std::unique_ptr<TopicManager>> open(const std::filesystem::path& data_dir,
                                                    TopicConfig defaults, storage::Flusher* flusher,
                                                    const InternalTopics& internal = {});
  ~TopicManager();
  TopicManager(const TopicManager&) = delete;
  TopicManager& operator=(const TopicManager&) = delete;

  std::shared_ptr<Topic> find(std::string_view name) const;
  // Another topic whose name differs from `name` only in '.' against '_' (the two are the same in
  // metric names, so Kafka refuses the second: INVALID_TOPIC_EXCEPTION), if there is one.
  std::optional<std::string> colliding_topic(std::string_view name) const;
  std::vector<std::shared_ptr<Topic>> list() const;
  const TopicConfig& defaults() const { return defaults_; }

  // Creates a topic. kAlreadyExists, kInvalidArgument (name, a colliding name, partitions, config:
  // message says which).
  // With validate_only nothing is written.
  Result<std::shared_ptr<Topic>> create(const std::string& name, int32_t partitions,
                                        const std::map<std::string, std::string>& configs,
                                        bool validate_only = false, bool internal = false);
  // With `id`, only that incarnation of `name`: kNotFound when the topic of that name now is
  // another one (deleted and created again since the caller looked).
  Result<void> remove(const std::string& name, std::optional<TopicId> id = std::nullopt);
  // Grows the topic to `total` partitions (kInvalidArgument if not larger).
  Result<void> add_partitions(const std::string& name, int32_t total, bool validate_only);
  // Applies a new set of overrides (already validated by the caller with TopicConfig::set/reset).
  Result<void> set_config(const std::string& name, const TopicConfig& config);

  // DeleteRecords: the partition's producer state is snapshotted first, so that a restart after a
  // crash still knows the producers whose batches go (a retry is answered as a duplicate).
  Result<int64_t> delete_records_before(const Topic& topic, Partition& p, int64_t offset);
  // Retention and compaction on every partition (called periodically by the broker). Each sweep
  // first checks that the data dir path still names the directory opened at start.
  void run_maintenance(int64_t now_ms);
  // kIoError once a sweep found the data dir removed or replaced (rm -rf, a tmp cleaner, a move)
  // while the broker ran: a restart would not find anything written from then on, so appends
  // (produce, offset commits) and topic changes are refused; reads go on.
  Result<void> writable() const;
  // Closes every log cleanly (flush + checkpoint) and writes producer-state snapshots.
  void close();

 private:
  struct DirId {
    uint64_t dev = 0;
    uint64_t ino = 0;
    bool operator==(const DirId&) const = default;
  };
  TopicManager(std::filesystem::path data_dir, DirId data_dir_id, TopicConfig defaults, storage::Flusher* flusher)
      : data_dir_(std::move(data_dir)), data_dir_id_(data_dir_id), defaults_(std::move(defaults)), flusher_(flusher) {}
  // kOutOfRange when opening `partitions` more partitions (a descriptor each) would leave fewer
  // than a reserve of the process's file descriptors free: refused up front, not after minutes of
  // opening and removing them again while accept() fails.
  static Result<void> check_descriptors(int64_t partitions);
  // The directory `path` names now; an error (errno's message) when there is none.
  static Result<DirId> dir_id(const std::filesystem::path& path);
  // Sets data_dir_lost_ (and logs why) when data_dir_ no longer names the directory opened.
  void check_data_dir();
  Result<std::shared_ptr<Topic>> load_topic(const std::filesystem::path& dir);
  // Writes topic.json of internal topic `name` from scratch; false when it has no partition
  // directory (nothing to keep).
  Result<bool> rebuild_meta(const std::filesystem::path& dir, const std::string& name,
                            const std::map<std::string, std::string>& configs);
  Result<std::shared_ptr<Partition>> open_partition(const std::filesystem::path& topic_dir, int32_t index,
                                                    const TopicConfig& config);
  // Writes the partition's producer-state snapshot if the log grew since the last one.
  Result<void> snapshot_producers(const Topic& topic, Partition& p, int64_t now_ms);
  // Writes topic.json; `partitions` >= 0 overrides the topic's current count.
  Result<void> write_meta(const Topic& topic, int32_t partitions = -1);
  std::filesystem::path topic_dir(const std::string& name) const { return data_dir_ / "topics" / name; }

  const std::filesystem::path data_dir_;
  const DirId data_dir_id_;
  std::atomic<bool> data_dir_lost_{false};
  const TopicConfig defaults_;
  storage::Flusher* const flusher_;
  mutable std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_;  // guarded by mu_
  std::mutex admin_mu_;  // serializes create/remove/alter (they touch files)
};

}  // namespace herald::broker
