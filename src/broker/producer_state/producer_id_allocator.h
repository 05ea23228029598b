// Hands out idempotent-producer ids that are never reused, across crashes:
// ids are reserved in blocks, and the end of the block is made durable
// (atomic file replace) before any id of it is handed out.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>

#include "common/result.h"

namespace herald::broker {

class ProducerIdAllocator {
 public:
  static constexpr int64_t kBlockSize = 1000;
  // Loads `path` (format: version u8 = 1, next_block_start i64, crc32c u32).
  // `max_in_logs`: the highest producer id the partitions' producer state
  // knows (-1 if none). Ids handed out start above it whatever the file says:
  // a file that is missing or damaged (logged) must not make the broker give
  // a new producer the id of one whose batches are in the logs, whose
  // sequence numbers would then answer the new producer's first batches as
  // duplicates, acknowledged and never written.
  static Result<std::unique_ptr<ProducerIdAllocator>> open(std::filesystem::path path, int64_t max_in_logs);
  Result<int64_t> next();

 private:
  explicit ProducerIdAllocator(std::filesystem::path path) : path_(std::move(path)) {}
  Result<void> persist(int64_t block_end);
  std::filesystem::path path_;
  std::mutex mu_;
  int64_t next_ = 0;       // guarded by mu_
  int64_t block_end_ = 0;  // guarded by mu_; ids < block_end_ are reserved on disk
};

}  // namespace herald::broker
