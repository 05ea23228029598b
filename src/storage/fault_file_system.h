// fault_file_system.h: a FileSystem over the real one that (1) fails the N-th
// operation of a kind with a chosen errno and (2) simulates a power loss.
// For tests (storage, broker); never used in production paths.
//
//   FaultFileSystem fs;
//   fs.fail_nth(FaultOp::kSync, 3, EIO);          // the 3rd fdatasync from now fails
//   auto log = PartitionLog::open(dir, config, nullptr, {.fs = &fs});
//   ... workload ...
//   fs.crash(CrashMode::kRandom, seed);           // lose what was not synced
//   log.reset();                                  // its files are dead now (EIO)
//   auto again = PartitionLog::open(dir, config, nullptr, {.fs = &fs});
//
// The crash model (SQLite test6.c, leveldb fault_injection_test.cc, pebble
// vfs/mem_fs.go CrashClone):
//   - per file, bytes written since its last sync are kept, dropped, cut at a
//     random point, or cut with garbage at the end (kRandom picks per file);
//   - directory operations (create, rename, unlink) since the last sync_dir of
//     that directory are undone, newest first (kRandom keeps a random prefix);
//   - truncations and O_TRUNC are taken as durable (a simplification).
// After crash() every operation through this object fails with EIO (the
// machine is down); "reboot" by opening the directory through a new
// FaultFileSystem (or the posix one).
// A failed write (injected) writes the first half of its bytes first: a torn
// write, as ENOSPC in the middle of a pwrite would leave.
// Thread-safe (one mutex; operations are serialized).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "storage/file.h"

namespace herald::storage {

enum class FaultOp : uint8_t { kOpen, kWrite, kRead, kSync, kSyncDir, kTruncate, kRename, kRemove };
inline constexpr size_t kFaultOpCount = 8;

enum class CrashMode : uint8_t {
  kKeepUnsynced,  // the OS happened to write everything back
  kDropUnsynced,  // nothing unsynced survives
  kRandom,        // per file / per directory, seeded
};

class FaultFileSystem final : public FileSystem {
 public:
  FaultFileSystem();
  ~FaultFileSystem() override;

  // Fails the n-th (1-based, counted from now) operation of kind `op` with
  // errno `err`; with `sticky`, every later one too. Replaces an earlier rule for op.
  // A non-empty `path_suffix` counts only operations on paths ending with it
  // (e.g. ".log": the segments' data, not their indexes or the checkpoint).
  void fail_nth(FaultOp op, uint64_t n, int err, bool sticky = false, std::string path_suffix = {});
  void clear_faults();
  // Operations of that kind seen since construction (including failed ones).
  uint64_t count(FaultOp op) const;
  // Number of faults injected so far.
  uint64_t faults_injected() const;
  // Runs `hook(path)` before each read of a file, outside this object's lock (so the hook may use
  // it): for tests that change the directory while a reader is half-way through.
  void before_read(std::function<void(const std::string& path)> hook);

  void crash(CrashMode mode, uint64_t seed);
  bool crashed() const;

  Result<std::shared_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override;
  Result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  Result<void> remove(const std::filesystem::path& path) override;
  Result<void> sync_dir(const std::filesystem::path& dir) override;
  Result<void> create_dirs(const std::filesystem::path& dir) override;
  Result<void> remove_dir(const std::filesystem::path& dir) override;
  Result<std::vector<std::string>> list_dir(const std::filesystem::path& dir) override;
  Result<bool> exists(const std::filesystem::path& path) override;

 private:
  friend class FaultFile;
  struct Inode {
    std::string path;
    uint64_t dirty_from = UINT64_MAX;  // lowest byte written since the last sync
  };
  struct DirOp {
    enum Kind : uint8_t { kCreate, kRename, kRemove } kind;
    std::string a;       // created / renamed-from / removed path
    std::string b;       // renamed-to
    std::string backup;  // hard link keeping what rename/unlink replaced ("" if nothing)
  };
  struct Rule {
    uint64_t n = 0;  // fail the n-th matching operation; 0 = none
    int err = 0;
    bool sticky = false;
    std::string suffix;  // only operations on paths ending with it count ("" = all)
    uint64_t seen = 0;   // matching operations since the rule was set
  };

  // Counts the op on `path`; returns the errno to inject, or 0. Requires mu_.
  int check_locked(FaultOp op, const std::string& path);
  std::shared_ptr<Inode> inode_locked(const std::string& path, bool pre_existing);
  std::string backup_name_locked(const std::string& path);
  void move_inode_locked(const std::string& from, const std::string& to);
  Result<void> dead_check(const std::filesystem::path& p) const;

  FileSystem& base_;
  mutable std::mutex mu_;
  std::function<void(const std::string&)> before_read_;  // GUARDED_BY(mu_)
  uint64_t generation_ = 0;
  bool crashed_ = false;
  uint64_t counts_[kFaultOpCount] = {};
  Rule rules_[kFaultOpCount];
  uint64_t injected_ = 0;
  uint64_t backups_ = 0;
  std::map<std::string, std::shared_ptr<Inode>> inodes_;
  std::map<std::string, std::vector<DirOp>> pending_;  // by directory
};

}  // namespace herald::storage
