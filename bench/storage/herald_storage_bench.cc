// herald_storage_bench: storage engine figures against the disk's own limits,
// measured in the same run (not a test; no assertions).
//
//   herald_storage_bench [--dir D] [--reps N] [--seconds S] [--read-gib G] [--startup-gib G] [--only append,read,startup]
//
// append   1 KiB records in ~16 KiB batches, kAlways, group commit by the Flusher:
//          (a) one writer, append + wait_durable each (sync per ~16 KiB), vs fio 16k + fdatasync
//              (mean of a fio run before and one after: the disk may be shared);
//          (b) 4 writers (group commit batches syncs), vs fio at the same bytes per sync (between
//              two herald runs), and fio 1m.
// read     replay of a log from the page cache: read() + read_slice (CRC checked) into a 1 MiB buffer.
// startup  >= 5 GiB in >= 40 segments: open() after a clean close, and after SIGKILL with
//          0 / 16 / 64 MiB of unflushed tail (recovery scans only what follows the
//          recovery position, however much synced data the active segment holds).
// Every figure is printed per repetition and as a median of the repetitions, as
// plain "name key=value" lines for bench/RESULTS.md.
#include <fcntl.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "record/builder.h"
#include "storage/partition_log.h"

namespace herald::storage {
namespace {

struct Options {
  std::filesystem::path dir = "/tmp/herald-storage-bench";
  int reps = 3;
  double seconds = 5;
  double read_gib = 2;
  double startup_gib = 5.2;
  std::string only = "append,read,startup";
  int writers = 4;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double seconds_since(int64_t t0) { return static_cast<double>(mono_ns() - t0) / 1e9; }

// 16 records x 1 KiB values: ~16.7 KB per batch.
Bytes make_16k_batch(int tag) {
  record::BatchBuilder b(record::Compression::kNone);
  std::string value(1024, static_cast<char>('a' + tag % 26));
  for (int i = 0; i < 16; ++i) {
    std::string key = "key-" + std::to_string(tag) + "-" + std::to_string(i);
    (void)b.add(as_bytes(key), as_bytes(value), now_ms());
  }
  return b.build().value();
}

void fresh_dir(const std::filesystem::path& p) {
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
}

// ---------------------------------------------------------------- fio

struct FioResult {
  double mbps = 0;
  bool ok = false;
};

FioResult run_fio(const std::filesystem::path& dir, const std::string& bs, double seconds) {
  fresh_dir(dir / "fio");
  const std::string cmd = "fio --name=a --filename=" + (dir / "fio" / "f.dat").string() +
                          " --rw=write --bs=" + bs + " --fdatasync=1 --size=16G --ioengine=psync --fallocate=none"
                          " --time_based --runtime=" + std::to_string(static_cast<int>(seconds)) +
                          " --output-format=json 2>/dev/null";
  FioResult r;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  std::filesystem::remove_all(dir / "fio");
  const auto w = out.find("\"write\" : {");
  if (w == std::string::npos) return r;
  const auto b = out.find("\"bw_bytes\"", w);
  if (b == std::string::npos) return r;
  const auto colon = out.find(':', b);
  r.mbps = std::strtod(out.c_str() + colon + 1, nullptr) / 1e6;
  r.ok = r.mbps > 0;
  return r;
}

// ---------------------------------------------------------------- append

struct AppendResult {
  double mbps = 0;
  double appends_per_s = 0;
  double syncs_per_s = 0;
  double bytes_per_sync = 0;
  double p50_us = 0;
  double p99_us = 0;
};

AppendResult bench_append(const std::filesystem::path& dir, int writers, double seconds) {
  fresh_dir(dir);
  Flusher flusher;
  LogConfig c;
  c.flush_policy = FlushPolicy::kAlways;
  auto log = PartitionLog::open(dir, c, &flusher).value();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bytes{0}, appends{0};
  std::vector<std::vector<double>> lat(static_cast<size_t>(writers));
  const uint64_t rounds0 = flusher.rounds();
  const int64_t t0 = mono_ns();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      Bytes batch = make_16k_batch(w);
      std::binary_semaphore done(0);
      auto& l = lat[static_cast<size_t>(w)];
      while (!stop.load(std::memory_order_relaxed)) {
        const int64_t s = mono_ns();
        auto info = log->append(batch);
        if (!info) {
          std::fprintf(stderr, "append: %s\n", info.error().to_string().c_str());
          std::exit(1);
        }
        log->wait_durable(info->last_offset, [&](Result<void> r) {
          if (!r) std::fprintf(stderr, "sync: %s\n", r.error().to_string().c_str());
          done.release();
        });
        done.acquire();
        l.push_back(static_cast<double>(mono_ns() - s) / 1e3);
        bytes += batch.size();
        appends++;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double dt = seconds_since(t0);
  const double rounds = static_cast<double>(flusher.rounds() - rounds0);
  (void)log->close();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  AppendResult r;
  r.mbps = static_cast<double>(bytes.load()) / dt / 1e6;
  r.appends_per_s = static_cast<double>(appends.load()) / dt;
  r.syncs_per_s = rounds / dt;
  r.bytes_per_sync = rounds > 0 ? static_cast<double>(bytes.load()) / rounds : 0;
  if (!all.empty()) {
    r.p50_us = all[all.size() / 2];
    r.p99_us = all[all.size() * 99 / 100];
  }
  std::filesystem::remove_all(dir);
  return r;
}

// ---------------------------------------------------------------- fill

// Appends 16 KiB batches (kInterval, no background sync) until `bytes`, then closes (one sync at the end).
// With stop_after_roll, continues until the batch that starts a new segment so the active segment is tiny.
void fill(const std::filesystem::path& dir, uint64_t bytes, int64_t segment_bytes) {
  fresh_dir(dir);
  LogConfig c;
  c.flush_policy = FlushPolicy::kInterval;
  c.segment_bytes = segment_bytes;
  auto log = PartitionLog::open(dir, c, nullptr).value();
  Bytes batch = make_16k_batch(7);
  size_t segments = log->segment_count();
  for (uint64_t written = 0;;) {
    if (!log->append(batch)) std::exit(1);
    written += batch.size();
    if (log->segment_count() != segments) {
      segments = log->segment_count();
      if (written >= bytes) break;  // stop right after a roll: the active segment holds one batch
    }
  }
  if (!log->close()) std::exit(1);
}

// ---------------------------------------------------------------- read

struct ReadResult2 {
  double gbps = 0;
  double gbps_unchecked = 0;
};

double replay(const PartitionLog& log, bool checked, uint64_t* total) {
  std::vector<uint8_t> buf(2 << 20);
  int64_t offset = log.log_start_offset();
  uint64_t bytes = 0;
  const int64_t t0 = mono_ns();
  for (;;) {
    auto rr = log.read(offset, 1 << 20, INT64_MAX);
    if (!rr || rr->slices.empty()) break;
    uint64_t pos = 0;
    for (const auto& s : rr->slices) {
      auto r = checked ? read_slice(s, buf.data() + pos) : read_slice_unchecked(s, buf.data() + pos);
      if (!r) std::exit(2);
      pos += s.size;
    }
    // Next offset: last batch's last offset + 1 (walk the headers in the buffer).
    uint64_t p = 0;
    int64_t last = offset;
    while (p < pos) {
      auto h = record::parse_header(ByteSpan(buf.data() + p, pos - p)).value();
      last = h.last_offset();
      p += h.size_bytes();
    }
    offset = last + 1;
    bytes += pos;
  }
  *total = bytes;
  return static_cast<double>(bytes) / seconds_since(t0) / 1e9;
}

// The same files read with plain 1 MiB preads: the page-cache copy limit of
// this machine at this moment, measured in the same run.
double raw_pread(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<uint8_t> buf(1 << 20);
  uint64_t bytes = 0;
  const int64_t t0 = mono_ns();
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) std::exit(2);
    for (off_t off = 0;;) {
      const ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
      if (n <= 0) break;
      off += n;
      bytes += static_cast<uint64_t>(n);
    }
    ::close(fd);
  }
  return static_cast<double>(bytes) / seconds_since(t0) / 1e9;
}

// ---------------------------------------------------------------- startup

double open_ms(const std::filesystem::path& dir) {
  const int64_t t0 = mono_ns();
  auto log = PartitionLog::open(dir, LogConfig{.segment_bytes = 128 << 20}, nullptr);
  const double ms = static_cast<double>(mono_ns() - t0) / 1e6;
  if (!log) {
    std::fprintf(stderr, "open: %s\n", log.error().to_string().c_str());
    std::exit(1);
  }
  (void)(*log)->close();
  return ms;
}

// A child appends `tail` bytes without any sync, then the parent SIGKILLs it
// and times the recovering open().
double crash_open_ms(const std::filesystem::path& dir, uint64_t tail) {
  int fds[2];
  if (::pipe(fds) != 0) std::exit(1);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    LogConfig c;
    c.segment_bytes = 128 << 20;
    c.flush_policy = FlushPolicy::kInterval;
    auto log = PartitionLog::open(dir, c, nullptr).value();
    Bytes batch = make_16k_batch(3);
    for (uint64_t w = 0; w < tail; w += batch.size()) (void)log->append(batch);
    char x = 'r';
    if (::write(fds[1], &x, 1) != 1) std::_Exit(1);
    for (;;) ::pause();
  }
  ::close(fds[1]);
  char x;
  if (::read(fds[0], &x, 1) != 1) std::exit(1);
  ::close(fds[0]);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return open_ms(dir);
}

void print(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace
}  // namespace herald::storage

int main(int argc, char** argv) {
  using namespace herald::storage;
  using herald::Bytes;
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--dir") o.dir = v;
    else if (k == "--reps") o.reps = std::stoi(v);
    else if (k == "--seconds") o.seconds = std::stod(v);
    else if (k == "--read-gib") o.read_gib = std::stod(v);
    else if (k == "--startup-gib") o.startup_gib = std::stod(v);
    else if (k == "--only") o.only = v;
    else if (k == "--writers") o.writers = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  herald::log::set_level("warn");
  struct utsname u;
  ::uname(&u);
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  print(fmt::format("# herald_storage_bench {} host={} kernel={} cpus={} dir={} reps={} crc32c_hw={}", date,
                    u.nodename, u.release, std::thread::hardware_concurrency(), o.dir.string(), o.reps,
                    herald::crc32c::hardware_accelerated()));
  std::filesystem::create_directories(o.dir);
  std::map<std::string, std::vector<double>> m;

  if (o.only.find("append") != std::string::npos) {
    for (int rep = 1; rep <= o.reps; ++rep) {
      auto f16 = run_fio(o.dir, "16k", o.seconds);
      print(fmt::format("fio_append_16KiB_fdatasync rep={} MBps={:.1f}", rep, f16.mbps));
      auto s = bench_append(o.dir / "log", 1, o.seconds);
      print(fmt::format("herald_append_1writer_16KiB rep={} MBps={:.1f} appends_per_s={:.0f} syncs_per_s={:.0f} "
                        "bytes_per_sync={:.0f} p50_us={:.0f} p99_us={:.0f}",
                        rep, s.mbps, s.appends_per_s, s.syncs_per_s, s.bytes_per_sync, s.p50_us, s.p99_us));
      // fio again right after: the herald run is compared with the mean of the
      // two fio runs around it (a shared disk drifts).
      auto f16b = run_fio(o.dir, "16k", o.seconds);
      print(fmt::format("fio_append_16KiB_fdatasync rep={}b MBps={:.1f}", rep, f16b.mbps));
      f16.mbps = (f16.mbps + f16b.mbps) / 2;
      auto g = bench_append(o.dir / "log", o.writers, o.seconds);
      print(fmt::format("herald_append_{}writers_16KiB rep={} MBps={:.1f} appends_per_s={:.0f} syncs_per_s={:.0f} "
                        "bytes_per_sync={:.0f} p50_us={:.0f} p99_us={:.0f}",
                        o.writers, rep, g.mbps, g.appends_per_s, g.syncs_per_s, g.bytes_per_sync, g.p50_us, g.p99_us));
      // fio at the granularity group commit reached (bytes per fdatasync), rounded to 4 KiB.
      const long gran = std::max(4L, std::lround(g.bytes_per_sync / 4096.0) * 4);
      auto fg = run_fio(o.dir, std::to_string(gran) + "k", o.seconds);
      print(fmt::format("fio_append_{}KiB_fdatasync rep={} MBps={:.1f}", gran, rep, fg.mbps));
      auto g2 = bench_append(o.dir / "log", o.writers, o.seconds);
      print(fmt::format("herald_append_{}writers_16KiB rep={}b MBps={:.1f} bytes_per_sync={:.0f}", o.writers, rep,
                        g2.mbps, g2.bytes_per_sync));
      g.mbps = (g.mbps + g2.mbps) / 2;
      auto f1m = run_fio(o.dir, "1m", o.seconds);
      print(fmt::format("fio_append_1MiB_fdatasync rep={} MBps={:.1f}", rep, f1m.mbps));
      m["fio16"].push_back(f16.mbps);
      m["one"].push_back(s.mbps);
      m["one_p50"].push_back(s.p50_us);
      m["group"].push_back(g.mbps);
      m["group_bps"].push_back(g.bytes_per_sync);
      m["fiog"].push_back(fg.mbps);
      m["fio1m"].push_back(f1m.mbps);
      if (f16.mbps > 0) m["ratio_one"].push_back(s.mbps / f16.mbps);
      if (fg.mbps > 0) m["ratio_group"].push_back(g.mbps / fg.mbps);
      if (f1m.mbps > 0) m["ratio_1m"].push_back(g.mbps / f1m.mbps);
    }
  }
  if (o.only.find("read") != std::string::npos) {
    const auto dir = o.dir / "read";
    fill(dir, static_cast<uint64_t>(o.read_gib * (1 << 30)), 256 << 20);
    uint64_t total = 0;
    {
      auto warm = PartitionLog::open(dir, LogConfig{.segment_bytes = 256 << 20}, nullptr).value();
      replay(*warm, false, &total);  // bring the files into the page cache
    }
    for (int rep = 1; rep <= o.reps; ++rep) {
      // A fresh open: the first replay CRC-checks every batch, later ones skip bytes already checked.
      auto log = PartitionLog::open(dir, LogConfig{.segment_bytes = 256 << 20}, nullptr).value();
      const double raw1 = raw_pread(dir);
      const double first = replay(*log, true, &total);
      const double again = replay(*log, true, &total);
      const double unchecked = replay(*log, false, &total);
      const double raw2 = raw_pread(dir);
      const double raw = (raw1 + raw2) / 2;
      print(fmt::format("herald_replay_pagecache rep={} bytes={} GBps_first_read_crc_checked={:.2f} "
                        "GBps_reread={:.2f} GBps_no_crc={:.2f} GBps_raw_pread_1MiB={:.2f}",
                        rep, total, first, again, unchecked, raw));
      m["read"].push_back(first);
      m["read_again"].push_back(again);
      m["read_unchecked"].push_back(unchecked);
      m["read_raw"].push_back(raw);
      m["read_ratio_first"].push_back(first / raw);
      m["read_ratio_again"].push_back(again / raw);
    }
    std::filesystem::remove_all(dir);
  }
  if (o.only.find("startup") != std::string::npos) {
    const auto dir = o.dir / "startup";
    const int64_t t0 = herald::mono_ns();
    fill(dir, static_cast<uint64_t>(o.startup_gib * (1 << 30)), 128 << 20);
    const double fill_s = static_cast<double>(herald::mono_ns() - t0) / 1e9;
    uint64_t total = 0;
    size_t segments = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() == ".log") {
        total += e.file_size();
        ++segments;
      }
    }
    print(fmt::format("startup_data bytes={} segments={} fill_and_close_s={:.1f}", total, segments, fill_s));
    for (int rep = 1; rep <= o.reps; ++rep) {
      const double clean = open_ms(dir);
      print(fmt::format("herald_open_after_clean_close rep={} ms={:.2f}", rep, clean));
      m["open_clean"].push_back(clean);
    }
    for (uint64_t tail_mib : {0, 16, 64}) {
      for (int rep = 1; rep <= o.reps; ++rep) {
        const double ms = crash_open_ms(dir, tail_mib << 20);
        print(fmt::format("herald_open_after_sigkill tail_MiB={} rep={} ms={:.2f}", tail_mib, rep, ms));
        m["open_kill_" + std::to_string(tail_mib)].push_back(ms);
        // open_ms closed the log cleanly: the tail is now synced data in the
        // active segment, which the next recovery must not rescan.
      }
    }
    std::filesystem::remove_all(dir);
  }

  print("# medians");
  auto med = [&](const char* k) { return median(m[k]); };
  if (!m["one"].empty()) {
    print(fmt::format("append 1 writer, ~16.7 KB batch + fdatasync each: herald {:.1f} MB/s (p50 {:.0f} us) vs fio "
                      "16k+fdatasync {:.1f} MB/s -> ratio {:.2f}",
                      med("one"), med("one_p50"), med("fio16"), med("ratio_one")));
    print(fmt::format("append {} writers, group commit ({:.0f} KB per fdatasync): herald {:.1f} MB/s vs fio same "
                      "granularity {:.1f} MB/s -> ratio {:.2f}; vs fio 1m+fdatasync {:.1f} MB/s -> ratio {:.2f}",
                      o.writers, med("group_bps") / 1000, med("group"), med("fiog"), med("ratio_group"),
                      med("fio1m"), med("ratio_1m")));
  }
  if (!m["read"].empty()) {
    print(fmt::format("replay from page cache (read + read_slice, 1 MiB per read): first read after open with "
                      "CRC check {:.2f} GB/s; re-read {:.2f} GB/s; without CRC {:.2f} GB/s; plain 1 MiB pread of the "
                      "same files {:.2f} GB/s -> ratios {:.2f} (first) / {:.2f} (re-read)",
                      med("read"), med("read_again"), med("read_unchecked"), med("read_raw"),
                      med("read_ratio_first"), med("read_ratio_again")));
  }
  if (!m["open_clean"].empty()) {
    print(fmt::format("open after clean close: {:.2f} ms; after SIGKILL with 0 / 16 / 64 MiB unflushed: {:.1f} / "
                      "{:.1f} / {:.1f} ms",
                      med("open_clean"), med("open_kill_0"), med("open_kill_16"), med("open_kill_64")));
  }
  return 0;
}
