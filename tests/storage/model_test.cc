// Randomized model-based test of PartitionLog: seeded random sequences of a few
// hundred operations (append, wait_durable, flush, set_config, apply_retention,
// delete_records_before, compact, clean reopen, reopen after a simulated crash
// through FaultFileSystem, and I/O faults injected into an append, a compaction
// and a recovery) run against a real log and against an in-memory reference
// model; after every operation what the log exposes is checked against the
// model: offsets, the records a read returns (from the log start and from random
// offsets, with small max_bytes too), offset_for_timestamp, max_timestamp, the
// segment files. A third of the maintenance operations run with a reader thread
// beside them; 30% of the iterations sync through a Flusher.
//
// Compaction may choose what it removes (dirty ratio, lag, tombstone clock):
// after a compact() the records the log still returns must be a subset of the
// model, identical in content, and each record it dropped must have been
// removable under Kafka's rules (keyless, or superseded by a later record of
// the same key below the cleanable boundary, or a tombstone older than
// delete.retention.ms); the model then forgets what was dropped. Everything
// else is checked for exact equality.
//
// Environment:
//   HERALD_MODEL_SEED=S      base seed (default: random_device); iteration i uses S + i
//   HERALD_MODEL_ITERS=N     iterations (default 1000, cut by the time budget)
//   HERALD_MODEL_OPS=N       operations per iteration (default 300)
//   HERALD_MODEL_SECONDS=T   time budget for starting iterations (default 40)
//   HERALD_MODEL_SKIP=a,b,c  operation indexes to leave out (replaying a minimized repro)
//   HERALD_MODEL_MINIMIZE=0  do not minimize a failure
//   HERALD_MODEL_VERBOSE=1   print every operation
// A failure prints the seed, the failing operation and a minimized sequence
// with the exact environment that replays it.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "record/batch.h"
#include "record/records.h"
#include "storage/fault_file_system.h"
#include "storage/index_cache.h"
#include "storage/partition_log.h"
#include "storage/test_util.h"

namespace herald::storage {
namespace {

using testing::build_batch;
using testing::kTs;
using testing::read_all_batches;
using testing::RecordSpec;
using testing::TempDir;

const bool kQuiet = [] {
  if (std::getenv("HERALD_LOG_LEVEL") == nullptr) log::set_level("off");
  return true;
}();

uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : dflt;
}

std::set<size_t> env_skip() {
  std::set<size_t> out;
  const char* v = std::getenv("HERALD_MODEL_SKIP");
  if (v == nullptr) return out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.insert(static_cast<size_t>(std::stoull(item)));
  }
  return out;
}

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of (a, b)
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t s) : g(s) {}
  int64_t range(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(g() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(int pct) { return g() % 100 < static_cast<uint64_t>(pct); }
  template <class T>
  T pick(std::initializer_list<T> l) {
    return *(l.begin() + static_cast<ptrdiff_t>(g() % l.size()));
  }
};

// One record of the model.
struct MRec {
  int64_t offset = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;  // nullopt: tombstone (or a keyless null value)
  int64_t ts = 0;
  // The first compact() that ran while this record was below the cleanable boundary: the
  // segment's tombstone clock cannot start earlier.
  struct Cover {
    int64_t at = 0;             // its `now`
    bool exact = false;         // min.cleanable.dirty.ratio 0, no lag, no fault: it cleaned the segment then
    int64_t drm = 0;            // delete.retention.ms then
    uint64_t epoch = 0;         // crashes and faulted operations so far (they may restart the clock)
  };
  std::optional<Cover> cover;
  bool same(const MRec& o) const { return offset == o.offset && key == o.key && value == o.value && ts == o.ts; }
};

std::string show(const MRec& r) {
  return fmt::format("@{} key={} value={} ts={}", r.offset, r.key ? "\"" + *r.key + "\"" : "null",
                     r.value ? fmt::format("({} bytes)", r.value->size()) : "null",
                     r.ts < 0 ? std::string("none") : std::to_string(r.ts - kTs));
}

std::optional<std::string> str(const std::optional<ByteSpan>& b) {
  if (!b) return std::nullopt;
  return std::string(as_string_view(*b));
}

struct ReadBatch {
  record::BatchHeader h;
  std::vector<MRec> recs;
};

// Decodes raw batches; "" or what is wrong.
std::string decode_batches(const std::vector<Bytes>& raw, std::vector<ReadBatch>& out) {
  Bytes scratch;
  for (const Bytes& b : raw) {
    auto h = record::parse_header(b);
    if (!h) return "unparsable batch: " + h.error().to_string();
    auto recs = record::decode_records(b, scratch);
    if (!recs) return fmt::format("batch at {}: {}", h->base_offset, recs.error().to_string());
    ReadBatch rb{*h, {}};
    for (const auto& r : *recs) {
      rb.recs.push_back(MRec{h->base_offset + r.offset_delta, str(r.key), str(r.value),
                             h->base_timestamp + r.timestamp_delta, std::nullopt});
    }
    out.push_back(std::move(rb));
  }
  return "";
}

struct SegFile {
  int64_t base;
  uint64_t size;
  bool operator==(const SegFile&) const = default;
};

std::vector<SegFile> list_segments(const std::filesystem::path& dir) {
  std::vector<SegFile> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (auto b = parse_segment_log_name(e.path().filename().string())) out.push_back({*b, e.file_size()});
  }
  std::sort(out.begin(), out.end(), [](const SegFile& a, const SegFile& b) { return a.base < b.base; });
  return out;
}

std::string show_segs(const std::vector<SegFile>& segs) {
  std::string s;
  for (const auto& f : segs) s += fmt::format("{}{}({}B)", s.empty() ? "" : " ", f.base, f.size);
  return "[" + s + "]";
}

std::string show_config(const LogConfig& c) {
  return fmt::format(
      "policy={} segment.bytes={} segment.ms={} retention.ms={} retention.bytes={} delete.retention.ms={} "
      "min.compaction.lag.ms={} max.compaction.lag.ms={} min.cleanable.dirty.ratio={} flush={} index.interval={}",
      c.compact ? (c.delete_retention ? "compact,delete" : "compact") : "delete", c.segment_bytes, c.segment_ms,
      c.retention_ms, c.retention_bytes, c.delete_retention_ms, c.min_compaction_lag_ms,
      c.max_compaction_lag_ms == INT64_MAX ? std::string("max") : std::to_string(c.max_compaction_lag_ms),
      c.min_cleanable_dirty_ratio, c.flush_policy == FlushPolicy::kAlways ? "always" : "interval",
      c.index_interval_bytes);
}

struct Failure {
  size_t op = 0;
  std::string tag;  // the check that failed (minimization keeps it)
  std::string what;
};

struct Stats {
  std::map<std::string, uint64_t> ops;
  uint64_t records_appended = 0;
  uint64_t compaction_removed = 0;
  uint64_t tombstones_removed = 0;
  uint64_t retention_deleted_segments = 0;
  uint64_t records_below_start_dropped = 0;
  uint64_t crash_lost_records = 0;
  uint64_t max_segments = 0;
  void add(const Stats& o) {
    for (const auto& [k, v] : o.ops) ops[k] += v;
    records_appended += o.records_appended;
    compaction_removed += o.compaction_removed;
    tombstones_removed += o.tombstones_removed;
    retention_deleted_segments += o.retention_deleted_segments;
    records_below_start_dropped += o.records_below_start_dropped;
    crash_lost_records += o.crash_lost_records;
    max_segments = std::max(max_segments, o.max_segments);
  }
};

// Reads the log over and over on its own thread while a maintenance operation (retention,
// DeleteRecords, compaction) runs: every record a read returns must be one of `snapshot` (the
// model before the operation), identical, in increasing offsets; a read below a log start that
// moved meanwhile may fail with kOutOfRange. Also checks offset_for_timestamp answers.
class ConcurrentReader {
 public:
  ConcurrentReader(const PartitionLog& log, const std::vector<MRec>& model, uint64_t seed)
      : log_(log), rng_(seed) {
    for (const auto& m : model) snapshot_.emplace(m.offset, m);
    thread_ = std::thread([this] { loop(); });
  }
  ~ConcurrentReader() { stop(); }
  // Stops the thread; what went wrong ("" if nothing) and how many passes it made.
  std::string stop() {
    if (thread_.joinable()) {
      stop_.store(true);
      thread_.join();
    }
    return error_;
  }
  uint64_t reads() const { return reads_.load(); }

 private:
  void loop() {
    int64_t off = log_.log_start_offset();
    int64_t prev = -1;
    Bytes scratch;
    while (!stop_.load() && error_.empty()) {
      if (rng_() % 8 == 0) check_timestamp_lookup();
      const uint64_t max_bytes = rng_() % 2 == 0 ? uint64_t{1} << 20 : 1 + rng_() % 500;
      auto rr = log_.read(off, max_bytes, INT64_MAX);
      ++reads_;
      if (!rr) {
        if (rr.error().code == Errc::kOutOfRange && off < log_.log_start_offset()) {
          off = log_.log_start_offset();
          prev = -1;
          continue;
        }
        error_ = fmt::format("concurrent read({}) failed: {}", off, rr.error().to_string());
        return;
      }
      if (rr->slices.empty()) {  // at the end: again from the start
        off = log_.log_start_offset();
        prev = -1;
        std::this_thread::yield();
        continue;
      }
      for (const auto& sl : rr->slices) {
        Bytes buf(sl.size);
        if (auto r = read_slice(sl, buf.data()); !r) {
          error_ = fmt::format("concurrent read({}): read_slice failed: {}", off, r.error().to_string());
          return;
        }
        auto split = record::split_batches(buf);
        if (!split) {
          error_ = fmt::format("concurrent read({}): {}", off, split.error().to_string());
          return;
        }
        for (auto b : *split) {
          auto h = record::parse_header(b);
          auto recs = h ? record::decode_records(b, scratch) : Result<std::vector<record::Record>>(h.error());
          if (!recs) {
            error_ = fmt::format("concurrent read({}): {}", off, recs.error().to_string());
            return;
          }
          for (const auto& r : *recs) {
            const MRec m{h->base_offset + r.offset_delta, str(r.key), str(r.value), h->base_timestamp + r.timestamp_delta,
                         std::nullopt};
            if (m.offset < off) continue;
            auto it = snapshot_.find(m.offset);
            if (m.offset <= prev || it == snapshot_.end() || !it->second.same(m)) {
              error_ = fmt::format("concurrent read({}) returned {} (after offset {}); the model before the "
                                   "operation has {}",
                                   off, show(m), prev, it == snapshot_.end() ? "no such record" : show(it->second));
              return;
            }
            prev = m.offset;
          }
          off = std::max(off, h->last_offset() + 1);
        }
      }
    }
  }

  void check_timestamp_lookup() {
    if (snapshot_.empty()) return;
    auto it = snapshot_.begin();
    std::advance(it, static_cast<ptrdiff_t>(rng_() % snapshot_.size()));
    const int64_t ts = it->second.ts;
    if (ts < 0) return;
    auto got = log_.offset_for_timestamp(ts);
    if (!got) {
      error_ = fmt::format("concurrent offset_for_timestamp({}) failed: {}", ts - kTs, got.error().to_string());
      return;
    }
    if (*got) {
      auto f = snapshot_.find((*got)->offset);
      if (f == snapshot_.end() || f->second.ts != (*got)->timestamp || (*got)->timestamp < ts) {
        error_ = fmt::format("concurrent offset_for_timestamp({}) = {{ts {}, offset {}}}, not a record of the model",
                             ts - kTs, (*got)->timestamp - kTs, (*got)->offset);
      }
    }
  }

  const PartitionLog& log_;
  std::map<int64_t, MRec> snapshot_;
  std::mt19937_64 rng_;
  std::atomic<bool> stop_{false};
  std::string error_;  // written by the thread only, read after join
  std::atomic<uint64_t> reads_{0};
  std::thread thread_;
};

class ModelRun {
 public:
  ModelRun(uint64_t seed, size_t n_ops, std::set<size_t> skip, bool verbose)
      : seed_(seed), n_ops_(n_ops), skip_(std::move(skip)), verbose_(verbose) {}

  std::optional<Failure> go() {
    init();
    if (fail_) return fail_;
    for (size_t i = 0; i < n_ops_; ++i) {
      if (skip_.count(i)) continue;
      op_ = i;
      Rng rng(mix(seed_, i));
      step(rng);
      if (!fail_) check_state(rng);
      if (fail_) {
        fail_->op = i;
        break;
      }
    }
    if (log_) (void)log_->close();
    IndexCache::global().set_budget(kDefaultIndexCacheBytes);
    return fail_;
  }

  const std::vector<std::string>& op_log() const { return op_log_; }
  const Stats& stats() const { return stats_; }
  const std::string& initial() const { return initial_; }

 private:
  // ------------------------------------------------------------------ plumbing

  bool failed() const { return fail_.has_value(); }
  void fail(const std::string& tag, const std::string& what) {
    if (!fail_) fail_ = Failure{op_, tag, what};
  }
  void note(const std::string& desc) {
    op_log_.push_back(fmt::format("#{} {}", op_, desc));
    if (verbose_) std::printf("  %s\n", op_log_.back().c_str());
  }

  OpenOptions options() {
    OpenOptions o;
    o.fs = fs_.get();
    o.clock = [this] { return now_; };
    o.recovery_step_bytes = recovery_step_;
    return o;
  }

  bool open_log() {
    auto l = PartitionLog::open(dir_.path() / "log", cfg_, flusher_.get(), options());
    if (!l) {
      fail("open", "open failed: " + l.error().to_string());
      return false;
    }
    log_ = std::move(l).value();
    return true;
  }

  std::filesystem::path log_dir() const { return dir_.path() / "log"; }
  int64_t active_base() { return list_segments(log_dir()).back().base; }

  // A reopened log ends at `end` (what a crash kept): the model forgets every record from there on.
  // Returns how many it forgot.
  uint64_t truncate_to(int64_t end) {
    const auto from = std::find_if(recs_.begin(), recs_.end(), [&](const MRec& m) { return m.offset >= end; });
    const auto lost = static_cast<uint64_t>(recs_.end() - from);
    recs_.erase(from, recs_.end());
    shadow_.erase(shadow_.lower_bound(end), shadow_.end());
    end_ = end;
    durable_ = end_;
    hw_seen_ = 0;
    rp_ = active_base();
    return lost;
  }
  int64_t expected_hw() const { return cfg_.flush_policy == FlushPolicy::kAlways ? durable_ : end_; }

  // With a flusher, syncs (and seals) happen in the background: before an operation whose
  // outcome depends on which segments are sealed, sync everything so that it is known.
  bool settle(std::string& desc) {
    if (!flusher_) return true;
    desc = "flush; " + desc;
    auto r = log_->flush();
    if (!r) {
      fail("flush", "flush failed: " + r.error().to_string());
      return false;
    }
    durable_ = end_;
    rp_ = active_base();
    return true;
  }

  // Every batch header of the log (also below the log start).
  std::vector<record::BatchHeader> all_headers() {
    std::vector<record::BatchHeader> out;
    auto r = log_->for_each_batch(INT64_MIN, [&](const record::BatchHeader& h) { out.push_back(h); });
    if (!r) fail("for_each_batch", r.error().to_string());
    return out;
  }
  // Largest batch max_timestamp per segment (-1 if none).
  std::vector<int64_t> segment_max_ts(const std::vector<SegFile>& segs) {
    std::vector<int64_t> out(segs.size(), -1);
    for (const auto& h : all_headers()) {
      size_t i = segs.size();
      while (i > 0 && segs[i - 1].base > h.base_offset) --i;
      if (i == 0) {
        fail("for_each_batch", fmt::format("batch at {} below the first segment {}", h.base_offset, segs[0].base));
        return out;
      }
      out[i - 1] = std::max(out[i - 1], h.max_timestamp);
    }
    return out;
  }

  // A third of the maintenance operations run with a reader thread beside them.
  std::unique_ptr<ConcurrentReader> concurrent_reader(Rng& rng) {
    if (!rng.chance(33)) return nullptr;
    auto reader = std::make_unique<ConcurrentReader>(*log_, recs_, rng.g());
    while (reader->reads() == 0) std::this_thread::yield();  // under way before the operation starts
    return reader;
  }
  bool join_reader(std::unique_ptr<ConcurrentReader>& reader) {
    if (!reader) return true;
    const std::string e = reader->stop();
    stats_.ops["concurrent_reads"] += reader->reads();
    reader.reset();
    if (!e.empty()) fail("concurrent-read", e);
    return e.empty();
  }

  void drop_below_start() {
    auto it = std::find_if(recs_.begin(), recs_.end(), [&](const MRec& r) { return r.offset >= start_; });
    stats_.records_below_start_dropped += static_cast<uint64_t>(it - recs_.begin());
    recs_.erase(recs_.begin(), it);
  }

  // ------------------------------------------------------------------ setup

  void init() {
    Rng rng(mix(seed_, UINT64_MAX));
    now_ = kTs;
    nkeys_ = static_cast<int>(rng.range(2, 12));
    cfg_ = LogConfig{};
    switch (rng.range(0, 2)) {
      case 0: cfg_.compact = false; cfg_.delete_retention = true; break;
      case 1: cfg_.compact = true; cfg_.delete_retention = false; break;
      default: cfg_.compact = true; cfg_.delete_retention = true; break;
    }
    cfg_.segment_bytes = rng.pick<int64_t>({250, 500, 900, 1500, 4000});
    cfg_.index_interval_bytes = rng.pick<int32_t>({0, 64, 200, 4096});
    cfg_.retention_ms = rng.pick<int64_t>({-1, -1, 30000, 120000});
    cfg_.retention_bytes = rng.pick<int64_t>({-1, -1, 3000, 8000});
    cfg_.delete_retention_ms = rng.pick<int64_t>({0, 500, 5000, 60000});
    cfg_.min_compaction_lag_ms = rng.pick<int64_t>({0, 0, 2000});
    cfg_.min_cleanable_dirty_ratio = rng.pick<double>({0.0, 0.0, 0.5});
    cfg_.max_compaction_lag_ms = rng.pick<int64_t>({INT64_MAX, INT64_MAX, 10000});
    cfg_.segment_ms = rng.pick<int64_t>({604800000, 604800000, 3000});
    cfg_.flush_policy = rng.chance(25) ? FlushPolicy::kInterval : FlushPolicy::kAlways;
    if (rng.chance(30)) flusher_ = std::make_unique<Flusher>(1);
    // Small steps make every sync persist the active segment's index and move the recovery
    // position, so that crash recovery scans only past it.
    recovery_step_ = rng.pick<uint64_t>({uint64_t{64} << 20, 1, 300, 2000});
    // A tiny index cache budget drops closed segments' indexes after each use: lookups reload
    // them from their files.
    const size_t cache = rng.pick<size_t>({kDefaultIndexCacheBytes, kDefaultIndexCacheBytes, 0, 3000});
    IndexCache::global().set_budget(cache);
    initial_ = fmt::format("seed {}: keys {}, recovery step {} bytes, index cache {} bytes, {}{}", seed_, nkeys_,
                           recovery_step_, cache, show_config(cfg_),
                           flusher_ ? ", with a Flusher (background syncs: timing-dependent)" : "");
    if (verbose_) std::printf("%s\n", initial_.c_str());
    fs_ = std::make_unique<FaultFileSystem>();
    if (!open_log()) return;
    start_ = end_ = durable_ = rp_ = 0;
  }

  // ------------------------------------------------------------------ operations

  void step(Rng& rng) {
    now_ += rng.range(0, 60);
    const int64_t k = rng.range(0, 99);
    if (k < 38) return op_append(rng);
    if (k < 40) return op_faulted_append(rng);
    if (k < 43) return op_wait_durable();
    if (k < 49) return op_flush();
    if (k < 55) return op_set_config(rng);
    if (k < 63) return op_retention(rng);
    if (k < 68) return op_delete_records(rng);
    if (k < 77) return op_compact(rng);
    if (k < 80) return op_faulted_compact(rng);
    if (k < 84) return op_reopen();
    if (k < 88) return op_crash(rng);
    if (k < 90) return op_faulted_reopen(rng);
    return op_clock(rng);
  }

  void op_append(Rng& rng) {
    ++stats_.ops["append"];
    const int n = static_cast<int>(rng.range(1, 20));
    const auto codec = rng.chance(20) ? static_cast<record::Compression>(rng.range(1, 4)) : record::Compression::kNone;
    std::vector<RecordSpec> specs;
    std::vector<MRec> recs;
    const bool no_timestamps = rng.chance(3);  // NO_TIMESTAMP (-1) on every record
    std::string desc = fmt::format("append {} records codec={}:", n, record::compression_name(codec));
    for (int i = 0; i < n; ++i) {
      RecordSpec s;
      if (cfg_.compact || !rng.chance(20)) s.key = "k" + std::to_string(rng.range(0, nkeys_ - 1));
      const bool tombstone = s.key && rng.chance(15);
      if (!tombstone) {
        const int64_t len = rng.chance(8) ? rng.range(100, 300) : rng.range(0, 40);
        std::string v(static_cast<size_t>(len), 'a');
        for (auto& c : v) c = static_cast<char>('a' + rng.range(0, 25));
        s.value = v;
      }
      s.timestamp = now_ + i;
      if (rng.chance(8)) s.timestamp = std::max<int64_t>(kTs - 100000, now_ - rng.range(1, 60000));  // late
      if (rng.chance(2)) s.timestamp = now_ + rng.range(1000, 20000);                                // early
      if (no_timestamps) s.timestamp = -1;
      recs.push_back(MRec{end_ + i, s.key, s.value, s.timestamp, std::nullopt});
      desc += " " + show(recs.back());
      specs.push_back(std::move(s));
    }
    note(desc);
    Bytes b = build_batch(specs, codec);
    auto r = log_->append(b);
    if (!r) return fail("append", "append failed: " + r.error().to_string());
    if (r->base_offset != end_ || r->last_offset != end_ + n - 1) {
      return fail("append", fmt::format("append returned [{}, {}], expected [{}, {}]", r->base_offset,
                                        r->last_offset, end_, end_ + n - 1));
    }
    for (auto& m : recs) {
      shadow_[m.offset] = m;
      recs_.push_back(std::move(m));
    }
    end_ += n;
    stats_.records_appended += static_cast<uint64_t>(n);
  }

  // wait_durable(last offset): fires ok once synced (at once under kInterval); without a
  // flusher only flush() syncs.
  void op_wait_durable() {
    ++stats_.ops["wait_durable"];
    if (end_ == 0) return note("wait_durable: nothing appended yet");
    const int64_t offset = end_ - 1;
    note(fmt::format("wait_durable({}){}", offset,
                     flusher_ || cfg_.flush_policy == FlushPolicy::kInterval ? "" : " + flush"));
    struct State {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<Result<void>> result;
    };
    auto st = std::make_shared<State>();
    log_->wait_durable(offset, [st](Result<void> r) {
      std::lock_guard l(st->mu);
      st->result = std::move(r);
      st->cv.notify_all();
    });
    auto fired = [&] {
      std::lock_guard l(st->mu);
      return st->result.has_value();
    };
    if (!flusher_ && cfg_.flush_policy == FlushPolicy::kAlways) {
      if (durable_ <= offset && fired()) return fail("wait_durable", "wait_durable fired before anything synced it");
      auto r = log_->flush();
      if (!r) return fail("flush", "flush failed: " + r.error().to_string());
      durable_ = end_;
      rp_ = active_base();
    }
    std::unique_lock l(st->mu);
    if (!st->cv.wait_for(l, std::chrono::seconds(20), [&] { return st->result.has_value(); })) {
      return fail("wait_durable", fmt::format("wait_durable({}) did not fire within 20 s", offset));
    }
    if (!*st->result) return fail("wait_durable", "wait_durable failed: " + st->result->error().to_string());
    if (cfg_.flush_policy == FlushPolicy::kAlways) durable_ = std::max(durable_, offset + 1);
  }

  // An append whose write fails (EIO or ENOSPC, torn: half the bytes written): the error is
  // reported, the partial batch truncated away, the log unchanged and still usable.
  void op_faulted_append(Rng& rng) {
    ++stats_.ops["faulted_append"];
    const int err = rng.chance(50) ? ENOSPC : EIO;
    note(fmt::format("append with {} on its write", err == EIO ? "EIO" : "ENOSPC"));
    Bytes b = build_batch({{std::string("k0"), std::string(50, 'x'), now_}});
    fs_->fail_nth(FaultOp::kWrite, 1, err, false, ".log");
    auto r = log_->append(b);
    const bool hit = fs_->faults_injected() > 0;
    fs_->clear_faults();
    if (!hit) return fail("faulted-append", "the injected write fault was not met");
    if (r) return fail("faulted-append", "append succeeded although its write failed");
    const Errc want = err == ENOSPC ? Errc::kNoSpace : Errc::kIoError;
    if (r.error().code != want) return fail("faulted-append", "append failed with " + r.error().to_string());
  }

  // Power loss, then an open that meets an I/O fault during recovery (it may fail or cope), then
  // another power loss and a fault-free open: recovery must be restartable.
  void op_faulted_reopen(Rng& rng) {
    ++stats_.ops["faulted_reopen"];
    const auto mode1 = rng.pick<CrashMode>({CrashMode::kKeepUnsynced, CrashMode::kDropUnsynced, CrashMode::kRandom});
    const auto mode2 = rng.pick<CrashMode>({CrashMode::kKeepUnsynced, CrashMode::kDropUnsynced, CrashMode::kRandom});
    const auto op = rng.pick<FaultOp>({FaultOp::kWrite, FaultOp::kSync, FaultOp::kSyncDir, FaultOp::kRename,
                                       FaultOp::kRemove, FaultOp::kOpen, FaultOp::kTruncate, FaultOp::kRead});
    const int err = rng.chance(25) ? ENOSPC : EIO;
    const auto n = static_cast<uint64_t>(rng.range(1, 6));
    static const char* const kOpNames[] = {"open", "write", "read", "sync", "sync_dir", "truncate", "rename", "remove"};
    static const char* const kModes[] = {"keep-unsynced", "drop-unsynced", "random"};
    const bool keep = rng.chance(50);  // a log that opened despite the fault is used from then on
    note(fmt::format("crash({}); open with {} at its {}th {}; {}", kModes[static_cast<int>(mode1)],
                     err == EIO ? "EIO" : "ENOSPC", n, kOpNames[static_cast<int>(op)],
                     keep ? "if it opened, go on with it, else open again"
                          : fmt::format("crash({}); open", kModes[static_cast<int>(mode2)])));
    if (flusher_) durable_ = std::max(durable_, log_->durable_offset());
    ++epoch_;
    fs_->crash(mode1, mix(seed_, op_ + 3000000));
    log_.reset();
    fs_ = std::make_unique<FaultFileSystem>();
    fs_->fail_nth(op, n, err);
    auto l = PartitionLog::open(log_dir(), cfg_, flusher_.get(), options());
    stats_.ops[l ? "faulted_reopen_opened" : "faulted_reopen_failed"]++;
    fs_->clear_faults();
    if (l && keep) {
      log_ = std::move(l).value();
    } else {
      if (!keep) fs_->crash(mode2, mix(seed_, op_ + 4000000));
      l = Error{Errc::kClosed, ""};  // a log that opened is dropped (its close fails after a crash)
      if (!keep) fs_ = std::make_unique<FaultFileSystem>();
      if (!open_log()) return;
    }
    const int64_t got_end = log_->log_end_offset();
    const int64_t lo = std::max(durable_, start_);
    if (log_->log_start_offset() != start_ || got_end < lo || got_end > std::max(end_, start_)) {
      return fail("faulted-reopen", fmt::format("after the reopen log start/end are {}/{}: expected {}/[{}, {}]",
                                                log_->log_start_offset(), got_end, start_, lo, end_));
    }
    truncate_to(got_end);
  }

  void op_flush() {
    ++stats_.ops["flush"];
    note("flush");
    auto r = log_->flush();
    if (!r) return fail("flush", "flush failed: " + r.error().to_string());
    durable_ = end_;
    rp_ = active_base();
  }

  void op_clock(Rng& rng) {
    ++stats_.ops["clock"];
    const int64_t d = rng.pick<int64_t>({1000, 5000, 20000, 70000});
    now_ += d;
    note(fmt::format("advance clock by {} to {}", d, now_ - kTs));
  }

  void op_set_config(Rng& rng) {
    ++stats_.ops["set_config"];
    LogConfig c = cfg_;
    const int changes = static_cast<int>(rng.range(1, 3));
    for (int i = 0; i < changes; ++i) {
      switch (rng.range(0, 10)) {
        case 0:
          switch (rng.range(0, 2)) {
            case 0: c.compact = false; c.delete_retention = true; break;
            case 1: c.compact = true; c.delete_retention = false; break;
            default: c.compact = true; c.delete_retention = true; break;
          }
          break;
        case 1: c.retention_bytes = rng.pick<int64_t>({-1, 1500, 3000, 8000}); break;
        case 2: c.retention_ms = rng.pick<int64_t>({-1, 5000, 30000, 120000}); break;
        case 3: c.segment_bytes = rng.pick<int64_t>({250, 500, 900, 1500, 4000}); break;
        case 4: c.min_compaction_lag_ms = rng.pick<int64_t>({0, 0, 1000, 10000}); break;
        case 5: c.delete_retention_ms = rng.pick<int64_t>({0, 100, 2000, 20000}); break;
        case 6: c.min_cleanable_dirty_ratio = rng.pick<double>({0.0, 0.3, 0.9}); break;
        case 7: c.max_compaction_lag_ms = rng.pick<int64_t>({INT64_MAX, 5000}); break;
        case 8: c.segment_ms = rng.pick<int64_t>({604800000, 4000}); break;
        case 9: c.flush_policy = rng.chance(50) ? FlushPolicy::kInterval : FlushPolicy::kAlways; break;
        default: c.index_interval_bytes = rng.pick<int32_t>({0, 128, 4096}); break;
      }
    }
    note("set_config " + show_config(c));
    const bool was_always = cfg_.flush_policy == FlushPolicy::kAlways;
    cfg_ = c;
    log_->set_config(c);
    if (!was_always && c.flush_policy == FlushPolicy::kAlways) {  // syncs (and seals) twice
      durable_ = end_;
      rp_ = active_base();
    }
  }

  void op_retention(Rng& rng) {
    ++stats_.ops["retention"];
    if (rng.chance(30)) now_ += rng.pick<int64_t>({5000, 30000, 100000});
    std::string desc = fmt::format("apply_retention(now={})", now_ - kTs);
    if (!settle(desc)) return;
    note(desc);
    // The expected outcome (Kafka: deleteLogStartOffsetBreachedSegments, then retention.ms by
    // each segment's largest timestamp, then retention.bytes, oldest first while they hold,
    // closed segments only; the active one is rolled first once its newest record expired).
    auto segs = list_segments(log_dir());
    auto maxts = segment_max_ts(segs);
    if (failed()) return;
    const bool by_time = cfg_.delete_retention && cfg_.retention_ms >= 0;
    const bool by_size = cfg_.delete_retention && cfg_.retention_bytes >= 0;
    int64_t new_rp = rp_, new_durable = durable_;
    if (by_time && segs.back().size > 0 && maxts.back() >= 0 && maxts.back() < now_ - cfg_.retention_ms) {
      segs.push_back({end_, 0});
      maxts.push_back(-1);
      new_rp = end_;
      new_durable = end_;
    }
    std::vector<size_t> closed;
    for (size_t i = 0; i + 1 < segs.size() && segs[i].base < new_rp; ++i) closed.push_back(i);
    size_t n_doomed = 0;
    size_t i = 0;
    for (; i < closed.size() && segs[closed[i] + 1].base <= start_; ++i) ++n_doomed;
    if (by_time) {
      for (; i < closed.size(); ++i) {
        // A segment without timestamps ages by its file's mtime (as Kafka): the real clock,
        // years past this test's fake one, so it has not expired.
        if (maxts[closed[i]] < 0) break;
        if (maxts[closed[i]] >= now_ - cfg_.retention_ms) break;
        ++n_doomed;
      }
    }
    if (by_size) {
      int64_t total = 0;
      for (const auto& s : segs) total += static_cast<int64_t>(s.size);
      int64_t diff = total - cfg_.retention_bytes;
      for (size_t d = 0; d < n_doomed; ++d) diff -= static_cast<int64_t>(segs[closed[d]].size);
      for (; i < closed.size(); ++i) {
        const auto size = static_cast<int64_t>(segs[closed[i]].size);
        if (diff - size < 0) break;
        diff -= size;
        ++n_doomed;
      }
    }
    int64_t new_start = start_;
    std::vector<SegFile> expect_segs;
    for (size_t j = 0; j < segs.size(); ++j) {
      if (j < n_doomed) {
        new_start = std::max(new_start, segs[j + 1].base);
      } else {
        expect_segs.push_back(segs[j]);
      }
    }
    const auto before = list_segments(log_dir());
    auto reader = concurrent_reader(rng);
    auto r = log_->apply_retention(now_);
    if (!join_reader(reader)) return;
    if (!r) return fail("retention", "apply_retention failed: " + r.error().to_string());
    rp_ = new_rp;
    durable_ = new_durable;
    const auto after = list_segments(log_dir());
    if (log_->log_start_offset() != new_start || after != expect_segs) {
      return fail("retention", fmt::format("apply_retention(now={}): log start {} (expected {}), segments {} "
                                           "(expected {}); before: {} recovery point {} start {}",
                                           now_ - kTs, log_->log_start_offset(), new_start, show_segs(after),
                                           show_segs(expect_segs), show_segs(before), rp_, start_));
    }
    stats_.retention_deleted_segments += n_doomed;
    start_ = new_start;
    drop_below_start();
  }

  void op_delete_records(Rng& rng) {
    ++stats_.ops["delete_records"];
    int64_t arg;
    if (rng.chance(15)) {
      arg = -1;
    } else if (rng.chance(10)) {
      arg = rng.range(std::max<int64_t>(0, start_ - 3), end_ + 2);
    } else {
      arg = rng.range(start_, std::min(end_, start_ + rng.range(1, 60)));
    }
    std::string desc = fmt::format("delete_records_before({})", arg);
    if (!settle(desc)) return;
    note(desc);
    const int64_t target = arg == -1 ? expected_hw() : arg;
    const auto segs = list_segments(log_dir());
    auto reader = concurrent_reader(rng);
    auto r = log_->delete_records_before(arg);
    if (!join_reader(reader)) return;
    if (target > end_) {
      if (r || r.error().code != Errc::kOutOfRange) {
        return fail("delete_records", fmt::format("delete_records_before({}) past the log end {}: {}", arg, end_,
                                                  r ? "succeeded" : r.error().to_string()));
      }
      return;
    }
    if (!r) return fail("delete_records", "delete_records_before failed: " + r.error().to_string());
    const int64_t new_start = std::max(start_, target);
    std::vector<SegFile> expect;
    bool deleting = target > start_;
    for (size_t i = 0; i < segs.size(); ++i) {
      // Closed, sealed segments wholly below the new start go (in order, while they qualify).
      if (deleting && i + 1 < segs.size() && segs[i].base < rp_ && segs[i + 1].base <= target) continue;
      deleting = false;
      expect.push_back(segs[i]);
    }
    const auto after = list_segments(log_dir());
    if (*r != new_start || log_->log_start_offset() != new_start || after != expect) {
      return fail("delete_records",
                  fmt::format("delete_records_before({}): returned {}, log start {} (expected {}), segments {} "
                              "(expected {}); recovery point {}",
                              arg, *r, log_->log_start_offset(), new_start, show_segs(after), show_segs(expect), rp_));
    }
    start_ = new_start;
    drop_below_start();
  }

  void op_compact(Rng& rng) {
    ++stats_.ops["compact"];
    if (rng.chance(25)) now_ += rng.pick<int64_t>({2000, 10000, 60000});
    std::string desc = fmt::format("compact(now={})", now_ - kTs);
    if (!settle(desc)) return;
    // Sometimes keep a few batches as a live producer's last ones (they stay, maybe emptied).
    std::vector<int64_t> keep;
    if (cfg_.compact && rng.chance(30)) {
      std::vector<int64_t> bases;
      for (const auto& h : all_headers()) {
        if (h.base_offset >= start_ && h.base_offset < rp_) bases.push_back(h.base_offset);
      }
      for (int i = 0; i < 3 && !bases.empty(); ++i) {
        keep.push_back(bases[static_cast<size_t>(rng.range(0, static_cast<int64_t>(bases.size()) - 1))]);
      }
      std::sort(keep.begin(), keep.end());
      keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
      std::string k;
      for (int64_t b : keep) k += (k.empty() ? "" : ",") + std::to_string(b);
      desc += " keeping batches [" + k + "]";
    }
    note(desc);
    const auto before = list_segments(log_dir());
    auto reader = concurrent_reader(rng);
    auto r = log_->compact(now_, keep);
    if (!join_reader(reader)) return;
    if (!r) return fail("compact", "compact failed: " + r.error().to_string());
    if (r->segments_cleaned > 0) shadow_exact_ = false;
    if (!keep.empty()) {
      const auto headers = all_headers();
      for (int64_t b : keep) {
        if (std::none_of(headers.begin(), headers.end(), [&](const record::BatchHeader& h) { return h.base_offset == b; })) {
          return fail("compact-keep", fmt::format("compact dropped batch {}, passed in keep_batches", b));
        }
      }
    }
    const bool exact = cfg_.compact && cfg_.min_compaction_lag_ms == 0 && cfg_.min_cleanable_dirty_ratio == 0;
    judge_compaction(before, rp_, /*files_checked=*/true, exact);
    if (failed() || !exact) return;
    ++stats_.ops["compact_completeness_checked"];
    // With no lag and a dirty ratio of 0 a pass is always due and cleans every closed segment:
    // below the boundary only the latest record of each key is left, and no keyless one.
    std::map<std::string, int64_t> latest;
    for (const auto& m : recs_) {
      if (m.offset < rp_ && m.key) latest[*m.key] = m.offset;
    }
    for (const auto& m : recs_) {
      if (m.offset >= rp_) break;
      if (!m.key || latest[*m.key] != m.offset) {
        return fail("compact-incomplete",
                    fmt::format("after compact(now={}) with min.cleanable.dirty.ratio 0 and no lag, {} is still "
                                "there below the boundary {}, {}",
                                now_ - kTs, show(m), rp_,
                                m.key ? fmt::format("superseded by @{}", latest[*m.key]) : std::string("keyless")));
      }
      // A tombstone goes once delete.retention.ms (+ the clock's grain of an eighth of it) has
      // passed since the pass that first cleaned its segment.
      const int64_t drm = cfg_.delete_retention_ms;
      if (!m.value && m.cover && m.cover->exact && m.cover->drm == drm && m.cover->epoch == epoch_ &&
          now_ - m.cover->at >= drm + std::max<int64_t>(1, drm / 8)) {
        return fail("tombstone-kept",
                    fmt::format("after compact(now={}) with min.cleanable.dirty.ratio 0 and no lag, tombstone {} is "
                                "still there: its segment was first cleaned at {}, delete.retention.ms is {}",
                                now_ - kTs, show(m), m.cover->at - kTs, drm));
      }
    }
  }

  // A compaction (perhaps interrupted by a fault, then a crash or a close, and a reopen) left
  // the log as it is now: check it against the model of before it and adopt what it dropped.
  // `boundary`: the first segment compaction could not touch. Records at or past the log end
  // (lost in a crash) must be gone from the model already.
  void judge_compaction(const std::vector<SegFile>& before, int64_t boundary, bool files_checked, bool exact_pass) {
    std::vector<ReadBatch> batches;
    if (auto e = decode_batches(read_all_batches(*log_, start_), batches); !e.empty()) return fail("read", e);
    std::vector<const MRec*> actual;
    for (const auto& b : batches) {
      for (const auto& m : b.recs) {
        if (m.offset >= start_) actual.push_back(&m);
      }
    }
    // Each returned record is in the model, identical; each dropped one was removable.
    std::vector<MRec> kept;
    size_t a = 0;
    std::map<std::string, std::vector<const MRec*>> by_key;  // model records per key, by offset
    for (const auto& m : recs_) {
      if (m.key) by_key[*m.key].push_back(&m);
    }
    for (size_t i = 0; i < recs_.size(); ++i) {
      const MRec& m = recs_[i];
      if (a < actual.size() && actual[a]->offset == m.offset) {
        if (!actual[a]->same(m)) {
          return fail("compact-content", fmt::format("after compact the log returns {} where the model has {}",
                                                     show(*actual[a]), show(m)));
        }
        kept.push_back(m);
        ++a;
        continue;
      }
      if (a < actual.size() && actual[a]->offset < m.offset) {
        return fail("compact-content",
                    fmt::format("after compact the log returns {}, which is not in the model", show(*actual[a])));
      }
      // m was dropped.
      std::string why;
      if (!cfg_.compact) {
        why = "the log is not compacted";
      } else if (m.offset >= boundary) {
        why = fmt::format("it lies at or past the first unsealed segment {} (active or not yet synced)", boundary);
      } else if (!m.key) {
        ++stats_.compaction_removed;
        continue;  // keyless records go once compacted (as Kafka's cleaner)
      } else {
        bool superseded = false;
        for (const MRec* later : by_key[*m.key]) {
          if (later->offset > m.offset && later->offset < boundary &&
              (cfg_.min_compaction_lag_ms == 0 || later->ts <= now_ - cfg_.min_compaction_lag_ms)) {
            superseded = true;
            break;
          }
        }
        const bool expired_tombstone =
            !m.value && m.cover && now_ - m.cover->at >= cfg_.delete_retention_ms;
        if (superseded || expired_tombstone) {
          ++stats_.compaction_removed;
          if (!m.value) ++stats_.tombstones_removed;
          continue;
        }
        why = !m.value ? fmt::format("it is the latest record of its key and a tombstone first reachable by "
                                     "compaction at {} (delete.retention.ms {}, now {})",
                                     m.cover ? std::to_string(m.cover->at - kTs) : "never",
                                     cfg_.delete_retention_ms, now_ - kTs)
                       : "no later record of its key lies below the cleanable boundary (or past min lag)";
      }
      return fail("compact-dropped", fmt::format("compact(now={}) dropped {}: {}; segments before {} after {}, "
                                                 "recovery point {}",
                                                 now_ - kTs, show(m), why, show_segs(before),
                                                 show_segs(list_segments(log_dir())), rp_));
    }
    if (a < actual.size()) {
      return fail("compact-content",
                  fmt::format("after compact the log returns {}, which is not in the model", show(*actual[a])));
    }
    // Nothing at or past the boundary changed on disk; segments only disappear (merged).
    const auto after = list_segments(log_dir());
    for (const auto& s : files_checked ? before : std::vector<SegFile>{}) {
      if (s.base < boundary) continue;
      if (std::find(after.begin(), after.end(), s) == after.end()) {
        return fail("compact-files", fmt::format("segment {} (at or past the first unsealed segment {}) changed: "
                                                 "before {} after {}",
                                                 s.base, boundary, show_segs(before), show_segs(after)));
      }
    }
    for (const auto& s : files_checked ? after : std::vector<SegFile>{}) {
      auto it = std::find_if(before.begin(), before.end(), [&](const SegFile& b) { return b.base == s.base; });
      if (it == before.end()) {
        return fail("compact-files",
                    fmt::format("compaction created segment {}: before {} after {}", s.base, show_segs(before),
                                show_segs(after)));
      }
    }
    if (files_checked && !after.empty() && !before.empty() && after.front().base != before.front().base) {
      return fail("compact-files",
                  fmt::format("first segment changed: before {} after {}", show_segs(before), show_segs(after)));
    }
    for (auto& m : kept) {
      if (cfg_.compact && m.offset < boundary && !m.cover) {
        m.cover = MRec::Cover{now_, exact_pass, cfg_.delete_retention_ms, epoch_};
      }
    }
    for (const auto& m : recs_) {
      if (std::none_of(kept.begin(), kept.end(), [&](const MRec& k) { return k.offset == m.offset; })) {
        shadow_.erase(m.offset);
      }
    }
    recs_ = std::move(kept);
  }

  // A compaction that meets an I/O fault (EIO or ENOSPC at its n-th operation of a kind), then a
  // clean close or a crash, and a reopen: the log holds the old or the new set of segments
  // (either is a legal compaction outcome), nothing else.
  void op_faulted_compact(Rng& rng) {
    ++stats_.ops["faulted_compact"];
    if (!cfg_.compact) return op_compact(rng);
    if (rng.chance(25)) now_ += rng.pick<int64_t>({2000, 10000, 60000});
    const auto op = rng.pick<FaultOp>({FaultOp::kWrite, FaultOp::kSync, FaultOp::kSyncDir, FaultOp::kRename,
                                       FaultOp::kRemove, FaultOp::kOpen});
    const int err = rng.chance(25) ? ENOSPC : EIO;
    const auto n = static_cast<uint64_t>(rng.range(1, 12));
    const bool crash = rng.chance(70);
    const auto mode = rng.pick<CrashMode>({CrashMode::kKeepUnsynced, CrashMode::kDropUnsynced, CrashMode::kRandom});
    static const char* const kOpNames[] = {"open", "write", "read", "sync", "sync_dir", "truncate", "rename", "remove"};
    std::string desc = fmt::format("compact(now={}) with {} at its {}th {}, then {}", now_ - kTs,
                                   err == EIO ? "EIO" : "ENOSPC", n, kOpNames[static_cast<int>(op)],
                                   !crash ? std::string("close + reopen")
                                          : fmt::format("crash({}) + reopen",
                                                        mode == CrashMode::kKeepUnsynced   ? "keep-unsynced"
                                                        : mode == CrashMode::kDropUnsynced ? "drop-unsynced"
                                                                                           : "random"));
    if (!settle(desc)) return;
    note(desc);
    const auto before = list_segments(log_dir());
    const int64_t boundary = rp_;
    fs_->fail_nth(op, n, err);
    auto r = log_->compact(now_);
    const bool faulted = fs_->faults_injected() > 0;
    fs_->clear_faults();
    if (faulted) ++stats_.ops["faulted_compact_hit"];
    if (!faulted && !r) return fail("compact", "compact failed without a fault: " + r.error().to_string());
    shadow_exact_ = false;
    // The log keeps serving reads meanwhile (a swap that failed half-way waits for the reopen).
    ++epoch_;
    judge_compaction(before, boundary, /*files_checked=*/false, /*exact_pass=*/false);
    if (failed()) return;
    if (flusher_) durable_ = std::max(durable_, log_->durable_offset());
    if (crash) {
      fs_->crash(mode, mix(seed_, op_ + 2000000));
      log_.reset();
      fs_ = std::make_unique<FaultFileSystem>();
    } else {
      (void)log_->close();  // may report the fault's aftermath; the reopen must sort it out
      log_.reset();
    }
    if (!open_log()) return;
    const int64_t got_end = log_->log_end_offset();
    const int64_t lo = std::max(durable_, start_);
    if (log_->log_start_offset() != start_ || got_end < (crash ? lo : end_) || got_end > end_) {
      return fail("faulted-compact", fmt::format("after the reopen log start/end are {}/{}: expected {}/[{}, {}]",
                                                 log_->log_start_offset(), got_end, start_, crash ? lo : end_, end_));
    }
    truncate_to(got_end);
    judge_compaction(before, boundary, /*files_checked=*/false, /*exact_pass=*/false);
  }

  void op_reopen() {
    ++stats_.ops["reopen"];
    note("close + reopen");
    auto c = log_->close();
    if (!c) return fail("close", "close failed: " + c.error().to_string());
    log_.reset();
    if (!open_log()) return;
    durable_ = end_;
    rp_ = active_base();
  }

  void op_crash(Rng& rng) {
    const auto mode = rng.pick<CrashMode>({CrashMode::kKeepUnsynced, CrashMode::kKeepUnsynced,
                                           CrashMode::kDropUnsynced, CrashMode::kRandom});
    const uint64_t crash_seed = mix(seed_, op_ + 1000000);
    const char* name = mode == CrashMode::kKeepUnsynced   ? "keep-unsynced"
                       : mode == CrashMode::kDropUnsynced ? "drop-unsynced"
                                                          : "random";
    ++stats_.ops[std::string("crash-") + name];
    note(fmt::format("crash({}) + reopen", name));
    ++epoch_;
    if (flusher_) durable_ = std::max(durable_, log_->durable_offset());
    fs_->crash(mode, crash_seed);
    log_.reset();  // its close() fails: the files died in the crash
    fs_ = std::make_unique<FaultFileSystem>();
    if (!open_log()) return;
    const int64_t lo = std::max(durable_, start_);
    const int64_t hi = std::max(end_, start_);
    const int64_t got_end = log_->log_end_offset();
    const int64_t got_start = log_->log_start_offset();
    if (got_start != start_) {
      return fail("crash", fmt::format("after crash({}) the log start is {}, was {}", name, got_start, start_));
    }
    const bool ok = mode == CrashMode::kKeepUnsynced   ? got_end == end_
                    : mode == CrashMode::kDropUnsynced && !flusher_ ? got_end == lo
                                                                    : got_end >= lo && got_end <= hi;
    if (!ok) {
      return fail("crash", fmt::format("after crash({}) the log end is {}: expected {} (durable {}, end {}, start {})",
                                       name, got_end,
                                       mode == CrashMode::kKeepUnsynced                ? std::to_string(end_)
                                       : mode == CrashMode::kDropUnsynced && !flusher_ ? std::to_string(lo)
                                                                                       : fmt::format("[{}, {}]", lo, hi),
                                       durable_, end_, start_));
    }
    stats_.crash_lost_records += truncate_to(got_end);
  }

  // ------------------------------------------------------------------ checks

  void check_state(Rng& rng) {
    // Offsets.
    const int64_t hw = log_->high_watermark();
    // With a flusher under kAlways the high watermark moves on its own: between what is known
    // to be synced and the log end, and never back.
    const bool hw_ok = flusher_ && cfg_.flush_policy == FlushPolicy::kAlways
                           ? hw >= std::max(durable_, hw_seen_) && hw <= end_
                           : hw == expected_hw();
    if (log_->log_start_offset() != start_ || log_->log_end_offset() != end_ || !hw_ok) {
      return fail("offsets", fmt::format("log start/end/high watermark {}/{}/{}, model {}/{}/{}{}",
                                         log_->log_start_offset(), log_->log_end_offset(), hw, start_, end_,
                                         expected_hw(), flusher_ ? fmt::format(" (at least {})", hw_seen_) : ""));
    }
    if (!flusher_ && log_->durable_offset() != durable_) {
      return fail("offsets", fmt::format("durable offset {}, model {}", log_->durable_offset(), durable_));
    }
    hw_seen_ = std::max(hw_seen_, hw);
    if (flusher_ && cfg_.flush_policy == FlushPolicy::kAlways) durable_ = std::max(durable_, hw);
    // Segment files agree with the log's view.
    const auto segs = list_segments(log_dir());
    uint64_t total = 0;
    for (const auto& s : segs) total += s.size;
    stats_.max_segments = std::max<uint64_t>(stats_.max_segments, segs.size());
    if (segs.empty() || log_->segment_count() != segs.size() || log_->size_bytes() != total ||
        segs.front().base > start_ || segs.back().base > end_) {
      return fail("segments", fmt::format("segment files {} vs segment_count {} size_bytes {}, start {} end {}",
                                          show_segs(segs), log_->segment_count(), log_->size_bytes(), start_, end_));
    }

    // A full read from the log start returns exactly the model's records.
    std::vector<ReadBatch> batches;
    if (auto e = decode_batches(read_all_batches(*log_, start_), batches); !e.empty()) return fail("read", e);
    if (!check_batches(batches, start_, "read from log start")) return;
    if (!check_records(batches, start_, "read from log start")) return;
    if (start_ < end_ && (batches.empty() || batches.back().h.last_offset() != end_ - 1)) {
      return fail("read", fmt::format("the last batch read ends at {}, log end {}",
                                      batches.empty() ? -1 : batches.back().h.last_offset(), end_));
    }
    // Reads bounded by the high watermark stop before it.
    if (hw < end_) {
      std::vector<ReadBatch> upto;
      if (auto e = decode_batches(read_all_batches(*log_, start_, hw), upto); !e.empty()) return fail("read", e);
      size_t expect = 0;
      while (start_ < hw && expect < batches.size() && batches[expect].h.base_offset < hw) ++expect;
      if (upto.size() != expect) {
        return fail("read-hw", fmt::format("read up to the high watermark {} returned {} batches, expected {}", hw,
                                           upto.size(), expect));
      }
    }
    // Reads from random offsets.
    for (int i = 0; i < 2; ++i) {
      const int64_t from = rng.range(start_, end_);
      std::vector<ReadBatch> part;
      if (auto e = decode_batches(read_all_batches(*log_, from), part); !e.empty()) return fail("read", e);
      const std::string ctx = fmt::format("read from {}", from);
      if (!check_batches(part, from, ctx) || !check_records(part, from, ctx)) return;
    }
    // One read with a small max_bytes (KIP-74: at least the first batch with records).
    {
      const int64_t from = rng.range(start_, end_);
      const auto max_bytes = static_cast<uint64_t>(rng.range(1, 400));
      auto rr = log_->read(from, max_bytes, INT64_MAX);
      if (!rr) return fail("read-small", fmt::format("read({}, {}) failed: {}", from, max_bytes, rr.error().to_string()));
      std::vector<Bytes> raw;
      for (const auto& s : rr->slices) {
        Bytes buf(s.size);
        if (auto r = read_slice(s, buf.data()); !r) return fail("read-small", r.error().to_string());
        auto split = record::split_batches(buf);
        if (!split) return fail("read-small", split.error().to_string());
        for (auto b : *split) raw.emplace_back(b.begin(), b.end());
      }
      std::vector<ReadBatch> part;
      if (auto e = decode_batches(raw, part); !e.empty()) return fail("read-small", e);
      const std::string ctx = fmt::format("read({}, max_bytes {})", from, max_bytes);
      if (from < end_ && part.empty()) return fail("read-small", ctx + " returned nothing before the log end");
      if (!check_batches(part, from, ctx)) return;
      // The records it returns are a prefix of the model's from `from` on.
      auto it = std::find_if(recs_.begin(), recs_.end(), [&](const MRec& m) { return m.offset >= from; });
      for (const auto& b : part) {
        for (const auto& m : b.recs) {
          if (m.offset < from) continue;
          if (it == recs_.end() || !it->same(m)) {
            return fail("read-small", fmt::format("{} returned {}, model has {}", ctx, show(m),
                                                  it == recs_.end() ? "nothing" : show(*it)));
          }
          ++it;
        }
      }
      size_t first_with_records = part.size();
      for (size_t i = 0; i < part.size(); ++i) {
        if (part[i].h.records_count > 0) {
          first_with_records = i;
          break;
        }
      }
      if (part.size() > first_with_records + 1 && rr->total_bytes > max_bytes) {
        return fail("read-small", fmt::format("{} returned {} bytes in {} batches", ctx, rr->total_bytes, part.size()));
      }
    }
    // Out-of-range reads.
    if (auto rr = log_->read(end_ + 1, 1 << 20, INT64_MAX); rr || rr.error().code != Errc::kOutOfRange) {
      return fail("read-range", fmt::format("read({}) past the log end {} did not fail with kOutOfRange", end_ + 1, end_));
    }
    if (start_ > 0) {
      if (auto rr = log_->read(start_ - 1, 1 << 20, INT64_MAX); rr || rr.error().code != Errc::kOutOfRange) {
        return fail("read-range", fmt::format("read({}) below the log start did not fail with kOutOfRange", start_ - 1));
      }
    }
    if (auto rr = log_->read(end_, 1 << 20, INT64_MAX); !rr || !rr->slices.empty()) {
      return fail("read-range", fmt::format("read at the log end {} is not empty", end_));
    }

    check_offset_for_timestamp(rng);
    if (!failed()) check_max_timestamp(segs);
  }

  // Batch-level invariants of a read starting at `from`.
  bool check_batches(const std::vector<ReadBatch>& batches, int64_t from, const std::string& ctx) {
    int64_t prev_last = -1;
    for (size_t i = 0; i < batches.size(); ++i) {
      const auto& b = batches[i];
      if (i == 0 && b.h.last_offset() < from) {
        fail("batches", fmt::format("{}: first batch [{}, {}] ends before {}", ctx, b.h.base_offset, b.h.last_offset(), from));
        return false;
      }
      if (i == 0 && b.h.base_offset > from && from >= start_) {
        // A gap before the first batch is fine only if nothing of the model lies in it.
        for (const auto& m : recs_) {
          if (m.offset >= from && m.offset < b.h.base_offset) {
            fail("batches", fmt::format("{}: first batch starts at {}, skipping {}", ctx, b.h.base_offset, show(m)));
            return false;
          }
        }
      }
      if (b.h.base_offset <= prev_last || b.h.last_offset() >= end_) {
        fail("batches", fmt::format("{}: batch [{}, {}] after one ending at {} (log end {})", ctx, b.h.base_offset,
                                    b.h.last_offset(), prev_last, end_));
        return false;
      }
      prev_last = b.h.last_offset();
      if (static_cast<size_t>(b.h.records_count) != b.recs.size()) {
        fail("batches", fmt::format("{}: batch at {} says {} records, holds {}", ctx, b.h.base_offset,
                                    b.h.records_count, b.recs.size()));
        return false;
      }
      int64_t prev = b.h.base_offset - 1, max_ts = -1;
      for (const auto& m : b.recs) {
        if (m.offset <= prev || m.offset > b.h.last_offset()) {
          fail("batches", fmt::format("{}: batch [{}, {}] holds record {} out of order", ctx, b.h.base_offset,
                                      b.h.last_offset(), m.offset));
          return false;
        }
        prev = m.offset;
        max_ts = std::max(max_ts, m.ts);
      }
      if (!b.recs.empty() && (b.h.max_timestamp < max_ts ||
                              (b.h.records_count == b.h.last_offset_delta + 1 && b.h.max_timestamp != max_ts))) {
        fail("batches", fmt::format("{}: batch at {} has max_timestamp {}, its records' largest is {}", ctx,
                                    b.h.base_offset, b.h.max_timestamp - kTs, max_ts - kTs));
        return false;
      }
    }
    return true;
  }

  // The records at or after `from` equal the model's.
  bool check_records(const std::vector<ReadBatch>& batches, int64_t from, const std::string& ctx) {
    auto it = std::find_if(recs_.begin(), recs_.end(), [&](const MRec& m) { return m.offset >= from; });
    for (const auto& b : batches) {
      for (const auto& m : b.recs) {
        if (m.offset < from) continue;
        if (it == recs_.end() || !it->same(m)) {
          fail("records", fmt::format("{}: the log returns {}, the model has {}", ctx, show(m),
                                      it == recs_.end() ? "nothing more" : show(*it)));
          return false;
        }
        ++it;
      }
    }
    if (it != recs_.end()) {
      fail("records", fmt::format("{}: the log lacks {} (and {} more)", ctx, show(*it), recs_.end() - it - 1));
      return false;
    }
    return true;
  }

  // ListOffsets by timestamp: the first record (in offset order, at or after the log start)
  // whose timestamp is >= ts.
  void check_offset_for_timestamp(Rng& rng) {
    std::vector<int64_t> targets = {0, now_ + 10000000};
    for (int i = 0; i < 4 && !recs_.empty(); ++i) {
      const auto& m = recs_[static_cast<size_t>(rng.range(0, static_cast<int64_t>(recs_.size()) - 1))];
      if (m.ts >= 0) targets.push_back(m.ts + rng.range(-1, 1));
    }
    for (int64_t ts : targets) {
      std::optional<TimestampOffset> expect;
      for (const auto& m : recs_) {
        if (m.ts >= ts) {
          expect = TimestampOffset{m.ts, m.offset};
          break;
        }
      }
      auto got = log_->offset_for_timestamp(ts);
      if (!got) return fail("offset_for_timestamp", got.error().to_string());
      if (*got != expect) {
        auto s = [](const std::optional<TimestampOffset>& t) {
          return t ? fmt::format("{{ts {}, offset {}}}", t->timestamp - kTs, t->offset) : std::string("none");
        };
        return fail("offset_for_timestamp",
                    fmt::format("offset_for_timestamp({}) = {}, expected {}", ts - kTs, s(*got), s(expect)));
      }
    }
  }

  // ListOffsets -3: the largest timestamp of the segments still holding records at or after the
  // log start (also their records below it, as Kafka), paired with the first record that has it.
  void check_max_timestamp(const std::vector<SegFile>& segs) {
    auto maxts = segment_max_ts(segs);
    if (failed()) return;
    std::optional<int64_t> best;
    int64_t live_from = -1;
    for (size_t i = 0; i < segs.size(); ++i) {
      const int64_t seg_end = i + 1 < segs.size() ? segs[i + 1].base : end_;
      if (segs[i].size == 0 || seg_end <= start_) continue;
      if (live_from < 0) live_from = segs[i].base;
      if (maxts[i] >= 0 && (!best || maxts[i] > *best)) best = maxts[i];
    }
    const auto got = log_->max_timestamp();
    auto s = [](const std::optional<TimestampOffset>& t) {
      return t ? fmt::format("{{ts {}, offset {}}}", t->timestamp - kTs, t->offset) : std::string("none");
    };
    if (!best) {
      if (got) fail("max_timestamp", fmt::format("max_timestamp() = {} on a log with no live records", s(got)));
      return;
    }
    if (!got || got->timestamp != *best || got->offset < live_from || got->offset >= end_) {
      return fail("max_timestamp", fmt::format("max_timestamp() = {}, expected ts {} at an offset in [{}, {})", s(got),
                                               *best - kTs, live_from, end_));
    }
    if (shadow_exact_) {
      std::optional<int64_t> first;
      for (auto it = shadow_.lower_bound(live_from); it != shadow_.end(); ++it) {
        if (it->second.ts == *best) {
          first = it->first;
          break;
        }
      }
      if (first != got->offset) {
        return fail("max_timestamp", fmt::format("max_timestamp() = {}, the first record with ts {} is at {}", s(got),
                                                 *best - kTs, first ? std::to_string(*first) : "none"));
      }
    }
  }

  // ------------------------------------------------------------------ state

  const uint64_t seed_;
  const size_t n_ops_;
  const std::set<size_t> skip_;
  const bool verbose_;
  size_t op_ = 0;
  std::optional<Failure> fail_;
  std::vector<std::string> op_log_;
  std::string initial_;
  Stats stats_;

  TempDir dir_;
  std::unique_ptr<FaultFileSystem> fs_;  // declared before log_: outlives it
  std::unique_ptr<Flusher> flusher_;     // null: nothing syncs in the background
  std::unique_ptr<PartitionLog> log_;
  LogConfig cfg_;
  int64_t now_ = kTs;
  int nkeys_ = 4;
  uint64_t recovery_step_ = uint64_t{64} << 20;
  uint64_t epoch_ = 0;  // crashes and faulted operations so far (see MRec::Cover)

  // The model.
  std::vector<MRec> recs_;      // records at or after the log start, by offset
  std::map<int64_t, MRec> shadow_;  // every record appended and not dropped (also below the start)
  bool shadow_exact_ = true;    // false once compaction rewrote a segment (it may drop unseen records)
  int64_t start_ = 0, end_ = 0;
  int64_t durable_ = 0;  // every offset below was synced (no flusher: only flush/close/reopen/... sync)
  int64_t hw_seen_ = 0;  // the largest high watermark seen since the last crash
  int64_t rp_ = 0;       // recovery point: segments below it are sealed (retention/compaction may touch them)
};

// Greedy chunked minimization (ddmin-like) of the failing sequence: keeps a removal when the
// run still fails with the same check.
std::pair<std::set<size_t>, Failure> minimize(uint64_t seed, const Failure& f0, double budget_s) {
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  std::set<size_t> skip;
  Failure f = f0;
  auto live = [&] {
    std::vector<size_t> v;
    for (size_t i = 0; i < f.op; ++i) {
      if (!skip.count(i)) v.push_back(i);
    }
    return v;
  };
  for (size_t chunk = std::max<size_t>(1, live().size() / 2);; chunk = std::max<size_t>(1, chunk / 2)) {
    bool progress = false;
    auto ops = live();
    for (size_t pos = 0; pos < ops.size() && elapsed() < budget_s;) {
      std::set<size_t> trial = skip;
      for (size_t j = pos; j < std::min(ops.size(), pos + chunk); ++j) trial.insert(ops[j]);
      ModelRun r(seed, f.op + 1, trial, false);
      auto g = r.go();
      if (g && g->tag == f.tag) {
        skip = trial;
        for (size_t j = g->op + 1; j <= f.op; ++j) skip.erase(j);
        f = *g;
        progress = true;
        ops = live();
      } else {
        pos += chunk;
      }
    }
    if (elapsed() >= budget_s || (chunk == 1 && !progress)) break;
  }
  std::set<size_t> out;
  for (size_t i : skip) {
    if (i < f.op) out.insert(i);
  }
  return {out, f};
}

std::string join(const std::set<size_t>& s) {
  std::string out;
  for (size_t i : s) out += (out.empty() ? "" : ",") + std::to_string(i);
  return out;
}

TEST(StorageModel, RandomOperationsMatchReferenceModel) {
  const char* env_seed = std::getenv("HERALD_MODEL_SEED");
  const uint64_t base_seed = env_seed != nullptr ? std::stoull(env_seed) : std::random_device{}();
  const uint64_t iters = env_u64("HERALD_MODEL_ITERS", 1000);
  const auto n_ops = static_cast<size_t>(env_u64("HERALD_MODEL_OPS", 300));
  const double budget_s = static_cast<double>(env_u64("HERALD_MODEL_SECONDS", 40));
  const bool verbose = env_u64("HERALD_MODEL_VERBOSE", 0) != 0;
  const std::set<size_t> skip = env_skip();
  std::printf("storage model test: base seed %llu (HERALD_MODEL_SEED=%llu to repeat), %zu ops per iteration\n",
              static_cast<unsigned long long>(base_seed), static_cast<unsigned long long>(base_seed), n_ops);
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  Stats total;
  uint64_t done = 0;
  for (uint64_t it = 0; it < iters && (it == 0 || elapsed() < budget_s); ++it) {
    const uint64_t seed = base_seed + it;
    ModelRun run(seed, n_ops, skip, verbose);
    auto f = run.go();
    total.add(run.stats());
    ++done;
    if (!f) continue;
    std::string msg = fmt::format("seed {} (iteration {}), operation #{} failed check '{}':\n  {}\n{}\n", seed, it,
                                  f->op, f->tag, f->what, run.initial());
    const auto& log = run.op_log();
    const size_t tail = std::min<size_t>(log.size(), 25);
    msg += fmt::format("last {} of {} operations:\n", tail, log.size());
    for (size_t i = log.size() - tail; i < log.size(); ++i) msg += "  " + log[i] + "\n";
    msg += fmt::format("replay: HERALD_MODEL_SEED={} HERALD_MODEL_ITERS=1 HERALD_MODEL_OPS={}{} HERALD_MODEL_VERBOSE=1\n",
                       seed, f->op + 1, skip.empty() ? "" : " HERALD_MODEL_SKIP=" + join(skip));
    if (env_u64("HERALD_MODEL_MINIMIZE", 1) != 0 && skip.empty()) {
      auto [min_skip, mf] = minimize(seed, *f, 120);
      ModelRun replay(seed, mf.op + 1, min_skip, false);
      auto rf = replay.go();
      msg += fmt::format("minimized to {} operations, failing at #{} ('{}'):\n  {}\n{}\n",
                         replay.op_log().size(), mf.op, mf.tag, rf ? rf->what : "(did not fail on replay!)",
                         replay.initial());
      for (const auto& line : replay.op_log()) msg += "  " + line + "\n";
      msg += fmt::format("replay: HERALD_MODEL_SEED={} HERALD_MODEL_ITERS=1 HERALD_MODEL_OPS={} HERALD_MODEL_SKIP={} "
                         "HERALD_MODEL_VERBOSE=1\n",
                         seed, mf.op + 1, join(min_skip));
    }
    ADD_FAILURE() << msg;
    break;
  }
  std::string ops;
  for (const auto& [k, v] : total.ops) ops += fmt::format(" {}={}", k, v);
  std::printf(
      "storage model test: %llu iterations x %zu ops in %.1f s (seeds %llu..%llu); ops:%s; records appended %llu, "
      "dropped by compaction %llu (tombstones %llu), segments deleted by retention %llu, records below the start "
      "dropped %llu, records lost in crashes %llu, max segments %llu\n",
      static_cast<unsigned long long>(done), n_ops, elapsed(), static_cast<unsigned long long>(base_seed),
      static_cast<unsigned long long>(base_seed + done - 1), ops.c_str(),
      static_cast<unsigned long long>(total.records_appended), static_cast<unsigned long long>(total.compaction_removed),
      static_cast<unsigned long long>(total.tombstones_removed),
      static_cast<unsigned long long>(total.retention_deleted_segments),
      static_cast<unsigned long long>(total.records_below_start_dropped),
      static_cast<unsigned long long>(total.crash_lost_records), static_cast<unsigned long long>(total.max_segments));
}

}  // namespace
}  // namespace herald::storage
