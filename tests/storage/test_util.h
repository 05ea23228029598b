// Helpers for the storage tests: temp directories, batches built with
// BatchBuilder, reading a whole log back.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "record/batch.h"
#include "record/builder.h"
#include "record/records.h"
#include "storage/partition_log.h"

namespace herald::storage::testing {

inline constexpr int64_t kTs = 1700000000000;

// Where test directories go: $HERALD_TEST_TMPDIR, else /dev/shm (tmpfs: fsync
// is nearly free, which keeps the suite fast under ASan), else $TMPDIR or /tmp.
inline std::filesystem::path test_tmp_root() {
  if (const char* d = std::getenv("HERALD_TEST_TMPDIR")) return d;
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  const char* t = std::getenv("TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// A fresh directory under test_tmp_root(), removed by the destructor.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = test_tmp_root() /
            ("herald-storage-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

struct RecordSpec {
  std::optional<std::string> key;
  std::optional<std::string> value;
  int64_t timestamp = kTs;
};

inline Bytes build_batch(const std::vector<RecordSpec>& records,
                         record::Compression c = record::Compression::kNone) {
  record::BatchBuilder b(c);
  for (const auto& r : records) {
    std::optional<ByteSpan> k, v;
    if (r.key) k = as_bytes(*r.key);
    if (r.value) v = as_bytes(*r.value);
    auto a = b.add(k, v, r.timestamp);
    EXPECT_TRUE(a.has_value()) << (a ? "" : a.error().to_string());
  }
  auto built = b.build();
  EXPECT_TRUE(built.has_value());
  return std::move(built).value();
}

// `n` records of `value_size` bytes each ("k<tag>-<i>" keys), timestamps ts, ts+1, ...
inline Bytes make_batch(int n, size_t value_size = 16, int64_t ts = kTs, int tag = 0,
                        record::Compression c = record::Compression::kNone) {
  std::vector<RecordSpec> recs;
  for (int i = 0; i < n; ++i) {
    std::string v(value_size, static_cast<char>('a' + (i + tag) % 26));
    recs.push_back({"k" + std::to_string(tag) + "-" + std::to_string(i), v, ts + i});
  }
  return build_batch(recs, c);
}

// Every batch of the log from `from`, as raw bytes (read + read_slice).
inline std::vector<Bytes> read_all_batches(const PartitionLog& log, int64_t from = -1,
                                           int64_t max_offset = INT64_MAX) {
  std::vector<Bytes> out;
  int64_t offset = from < 0 ? log.log_start_offset() : from;
  for (;;) {
    auto rr = log.read(offset, 1 << 20, max_offset);
    EXPECT_TRUE(rr.has_value()) << rr.error().to_string();
    if (!rr || rr->slices.empty()) break;
    for (const auto& s : rr->slices) {
      Bytes buf(s.size);
      auto r = read_slice(s, buf.data());
      EXPECT_TRUE(r.has_value()) << r.error().to_string();
      if (!r) return out;
      auto split = record::split_batches(buf);
      EXPECT_TRUE(split.has_value());
      for (auto b : *split) {
        out.emplace_back(b.begin(), b.end());
        auto h = record::parse_header(b);
        offset = h->last_offset() + 1;
      }
    }
  }
  return out;
}

// append() of a temporary batch.
inline Result<AppendInfo> append(PartitionLog& log, Bytes batch) { return log.append(batch); }

inline record::BatchHeader header_of(const Bytes& b) { return record::parse_header(b).value(); }

}  // namespace herald::storage::testing
