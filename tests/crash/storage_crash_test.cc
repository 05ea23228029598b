// Whole-process crash test of the storage engine (label "crash").
//
// The parent re-executes this binary as a child (HERALD_CRASH_CHILD set). The
// child opens the log with the kAlways flush policy and a Flusher, appends
// batches from two threads, and after each wait_durable() reports
// (base offset, last offset, CRC-32C of the stored bytes) on a pipe. The
// parent SIGKILLs it after a seeded random delay, sometimes tears the tail of
// the last segment the way a power cut would, reopens the log (crash
// recovery), and checks:
//   - every batch acknowledged in this or an earlier trial is there, byte-identical;
//   - offsets are dense from 0, no offset is used twice;
//   - nothing after a torn tail is readable (the tail is cut at the last whole batch);
// then closes the log cleanly for the next child. Prints the seed; set
// HERALD_CRASH_SEED to repeat a run, HERALD_CRASH_TRIALS to change the count.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "record/builder.h"
#include "storage/partition_log.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

struct Ack {
  int64_t base;
  int64_t last;
  uint32_t crc;
  uint32_t pad;
};
static_assert(sizeof(Ack) == 24);

LogConfig crash_config() {
  LogConfig c;
  c.segment_bytes = 256 * 1024;  // rolls every few dozen batches
  c.index_interval_bytes = 4096;
  c.flush_policy = FlushPolicy::kAlways;
  return c;
}

// ---------------------------------------------------------------- child

int child_main(const std::string& dir, uint64_t seed, int fd) {
  log::set_level("off");
  Flusher flusher;
  auto opened = PartitionLog::open(dir, crash_config(), &flusher);
  if (!opened) {
    std::fprintf(stderr, "child: open: %s\n", opened.error().to_string().c_str());
    return 3;
  }
  auto& log = *opened;
  std::atomic<int> in_flight{0};
  const int64_t deadline = now_ms() + 30000;  // never outlive a lost parent for long
  auto appender = [&](int t) {
    std::mt19937_64 rng(seed * 31 + static_cast<uint64_t>(t));
    for (uint64_t i = 0; now_ms() < deadline; ++i) {
      const int n = 1 + static_cast<int>(rng() % 16);
      const auto codec = rng() % 4 == 0 ? record::Compression::kLz4 : record::Compression::kNone;
      record::BatchBuilder b(codec);
      for (int r = 0; r < n; ++r) {
        std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        std::string value(static_cast<size_t>(rng() % 1024), static_cast<char>('a' + rng() % 26));
        (void)b.add(as_bytes(key), as_bytes(value), now_ms());
      }
      Bytes batch = b.build().value();
      auto info = log->append(batch);
      if (!info) {
        std::fprintf(stderr, "child: append: %s\n", info.error().to_string().c_str());
        std::_Exit(4);
      }
      Ack ack{info->base_offset, info->last_offset, crc32c::value(batch), 0};
      in_flight++;
      log->wait_durable(info->last_offset, [fd, ack, &in_flight](Result<void> r) {
        if (r) {
          ssize_t w = ::write(fd, &ack, sizeof ack);  // < PIPE_BUF: atomic
          (void)w;
        }
        in_flight--;
      });
      while (in_flight.load() > 64) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  };
  std::thread a(appender, 0), b(appender, 1);
  a.join();
  b.join();
  return 0;
}

// ---------------------------------------------------------------- parent

std::vector<std::filesystem::path> segment_logs(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (parse_segment_log_name(e.path().filename().string())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void append_bytes(const std::filesystem::path& p, const Bytes& b) {
  std::FILE* f = std::fopen(p.c_str(), "ab");
  ASSERT_NE(f, nullptr);
  std::fwrite(b.data(), 1, b.size(), f);
  std::fclose(f);
}

TEST(StorageCrash, AcknowledgedBatchesSurviveSigkill) {
  const char* env_seed = std::getenv("HERALD_CRASH_SEED");
  const uint64_t seed = env_seed != nullptr ? std::stoull(env_seed) : std::random_device{}();
  const char* env_trials = std::getenv("HERALD_CRASH_TRIALS");
  const int trials = env_trials != nullptr ? std::atoi(env_trials) : 30;
  std::printf("storage crash test: seed %llu, %d trials (HERALD_CRASH_SEED=%llu to repeat)\n",
              static_cast<unsigned long long>(seed), trials, static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  // Real disk (not tmpfs) so fdatasync takes real time and kills land mid-sync.
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp != nullptr ? tmp : "/tmp") /
                                    ("herald-crash-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::map<int64_t, Ack> acked;  // every acknowledgement, across trials
  uint64_t torn = 0, garbage = 0;
  log::set_level("warn");

  for (int trial = 0; trial < trials; ++trial) {
    const std::string ctx = fmt::format("seed {} trial {}", seed, trial);
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ASSERT_EQ(::fcntl(fds[1], F_SETFD, 0), 0);  // the write end survives exec
    const uint64_t child_seed = rng();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const std::string arg = fmt::format("{};{};{}", dir.string(), child_seed, fds[1]);
      ::setenv("HERALD_CRASH_CHILD", arg.c_str(), 1);
      ::execl("/proc/self/exe", "storage_crash_test", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    ::close(fds[1]);
    // Collect acks until the kill time.
    const int64_t kill_after_ms = 30 + static_cast<int64_t>(rng() % 400);
    const int64_t start = now_ms();
    std::vector<Ack> got;
    Bytes pending;
    auto drain = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      uint8_t buf[4096];
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0) return false;
      pending.insert(pending.end(), buf, buf + n);
      while (pending.size() >= sizeof(Ack)) {
        Ack a;
        std::memcpy(&a, pending.data(), sizeof a);
        pending.erase(pending.begin(), pending.begin() + sizeof(Ack));
        got.push_back(a);
      }
      return true;
    };
    while (now_ms() - start < kill_after_ms) drain(5);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << ctx << ": child exited on its own with status " << status;
    while (drain(0)) {
    }
    ::close(fds[0]);
    for (const auto& a : got) {
      ASSERT_FALSE(acked.count(a.base)) << ctx << ": offset " << a.base << " acknowledged twice";
      acked[a.base] = a;
    }

    // Sometimes tear the tail as a power cut would: half a batch, or junk.
    const auto logs = segment_logs(dir);
    ASSERT_FALSE(logs.empty()) << ctx;
    const auto last_file = logs.back();
    const uint64_t size_before = std::filesystem::file_size(last_file);
    const int tear = static_cast<int>(rng() % 3);
    if (tear == 1 && size_before >= 61) {
      Bytes head(61 + rng() % 500);
      std::FILE* f = std::fopen(last_file.c_str(), "rb");
      ASSERT_EQ(std::fread(head.data(), 1, 61, f), 61u);  // a real header of a batch too long for what follows
      std::fclose(f);
      append_bytes(last_file, head);
      ++torn;
    } else if (tear == 2) {
      Bytes junk(1 + rng() % 3000);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      append_bytes(last_file, junk);
      ++garbage;
    }

    // Recover and verify.
    auto opened = PartitionLog::open(dir, crash_config(), nullptr);
    ASSERT_TRUE(opened) << ctx << ": " << opened.error().to_string();
    auto& log = *opened;
    EXPECT_LE(std::filesystem::file_size(last_file), size_before) << ctx << ": torn tail not cut";
    EXPECT_EQ(log->log_start_offset(), 0) << ctx;
    int64_t next = 0;
    std::map<int64_t, std::pair<int64_t, uint32_t>> present;
    for (;;) {
      auto rr = log->read(next, 4 << 20, INT64_MAX);
      ASSERT_TRUE(rr) << ctx << ": " << rr.error().to_string();
      if (rr->slices.empty()) break;
      for (const auto& s : rr->slices) {
        Bytes buf(s.size);
        auto r = read_slice(s, buf.data());
        ASSERT_TRUE(r) << ctx << ": " << r.error().to_string();
        auto batches = record::split_batches(buf);
        ASSERT_TRUE(batches) << ctx;
        for (ByteSpan b : *batches) {
          auto h = record::parse_header(b).value();
          ASSERT_EQ(h.base_offset, next) << ctx << ": offsets not dense";
          present[h.base_offset] = {h.last_offset(), crc32c::value(b)};
          next = h.last_offset() + 1;
        }
      }
    }
    EXPECT_EQ(next, log->log_end_offset()) << ctx;
    EXPECT_EQ(log->read(next + 1, 100, INT64_MAX).error().code, Errc::kOutOfRange) << ctx;
    for (const auto& [base, a] : acked) {
      auto it = present.find(base);
      ASSERT_NE(it, present.end()) << ctx << ": acknowledged batch at " << base << " lost (log end " << next << ")";
      ASSERT_EQ(it->second.first, a.last) << ctx;
      ASSERT_EQ(it->second.second, a.crc) << ctx << ": batch at " << base << " differs";
    }
    // Recovered data was synced at open: what is present now is durable, so
    // unacknowledged survivors count as acknowledged from here on.
    for (const auto& [base, lc] : present) {
      if (!acked.count(base)) acked[base] = Ack{base, lc.first, lc.second, 0};
    }
    std::printf("trial %2d: killed after %3lld ms, %4zu acks, log end %lld%s\n", trial,
                static_cast<long long>(kill_after_ms), got.size(), static_cast<long long>(next),
                tear == 1 ? ", torn batch appended" : tear == 2 ? ", junk appended" : "");
    ASSERT_TRUE(log->close()) << ctx;
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("storage crash test: %d trials, %zu batches verified, %llu torn tails, %llu junk tails\n", trials,
              acked.size(), static_cast<unsigned long long>(torn), static_cast<unsigned long long>(garbage));
  RecordProperty("trials", trials);
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace herald::storage

int main(int argc, char** argv) {
  if (const char* child = std::getenv("HERALD_CRASH_CHILD")) {
    std::string s(child);
    const auto a = s.find(';');
    const auto b = s.find(';', a + 1);
    return herald::storage::child_main(s.substr(0, a), std::stoull(s.substr(a + 1, b - a - 1)),
                                       std::stoi(s.substr(b + 1)));
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
