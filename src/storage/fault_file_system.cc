#include "storage/fault_file_system.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>

#include "common/log.h"

namespace herald::storage {

namespace {
constexpr const char* kBackupPrefix = ".faultfs-";
std::string parent_of(const std::string& p) { return std::filesystem::path(p).parent_path().string(); }
}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultFileSystem& fs, std::shared_ptr<File> real, std::shared_ptr<FaultFileSystem::Inode> inode,
            uint64_t generation)
      : File(real->path()), fs_(fs), real_(std::move(real)), inode_(std::move(inode)), generation_(generation) {}

  Result<void> write_at(uint64_t offset, ByteSpan data) override {
    std::lock_guard lock(fs_.mu_);
    HERALD_TRY(alive_locked());
    const int err = fs_.check_locked(FaultOp::kWrite, inode_->path);
    if (err != 0) {
      const size_t half = data.size() / 2;
      if (half > 0 && real_->write_at(offset, data.subspan(0, half))) mark_dirty_locked(offset);
      return os_error(err, "pwrite (injected)", path());
    }
    HERALD_TRY(real_->write_at(offset, data));
    mark_dirty_locked(offset);
    return ok();
  }

  Result<size_t> read_at(uint64_t offset, MutableByteSpan dst) const override {
    std::function<void(const std::string&)> hook;
    std::string file;
    {
      std::lock_guard lock(fs_.mu_);
      HERALD_TRY(alive_locked());
      const int err = fs_.check_locked(FaultOp::kRead, inode_->path);
      if (err != 0) return os_error(err, "pread (injected)", path());
      hook = fs_.before_read_;
      if (hook) file = inode_->path;
    }
    if (hook) hook(file);
    return real_->read_at(offset, dst);
  }

  Result<void> sync() override {
    std::lock_guard lock(fs_.mu_);
    HERALD_TRY(alive_locked());
    const int err = fs_.check_locked(FaultOp::kSync, inode_->path);
    if (err != 0) return os_error(err, "fdatasync (injected)", path());
    HERALD_TRY(real_->sync());
    inode_->dirty_from = UINT64_MAX;
    return ok();
  }

  Result<void> truncate(uint64_t size) override {
    std::lock_guard lock(fs_.mu_);
    HERALD_TRY(alive_locked());
    const int err = fs_.check_locked(FaultOp::kTruncate, inode_->path);
    if (err != 0) return os_error(err, "ftruncate (injected)", path());
    HERALD_ASSIGN_OR_RETURN(uint64_t old, real_->size());
    HERALD_TRY(real_->truncate(size));
    if (size > old) mark_dirty_locked(old);
    return ok();
  }

  Result<uint64_t> size() const override {
    {
      std::lock_guard lock(fs_.mu_);
      HERALD_TRY(alive_locked());
    }
    return real_->size();
  }

 private:
  Result<void> alive_locked() const {
    if (generation_ != fs_.generation_ || fs_.crashed_) return os_error(EIO, "file from before a simulated crash", path());
    return ok();
  }
  void mark_dirty_locked(uint64_t offset) { inode_->dirty_from = std::min(inode_->dirty_from, offset); }

  FaultFileSystem& fs_;
  std::shared_ptr<File> real_;
  std::shared_ptr<FaultFileSystem::Inode> inode_;
  const uint64_t generation_;
};

FaultFileSystem::FaultFileSystem() : base_(FileSystem::posix()) {}

FaultFileSystem::~FaultFileSystem() {
  // Leftover backups belong to directory ops never synced nor crashed: drop them.
  for (auto& [dir, ops] : pending_) {
    for (auto& op : ops) {
      if (!op.backup.empty()) ::unlink(op.backup.c_str());
    }
  }
}

void FaultFileSystem::fail_nth(FaultOp op, uint64_t n, int err, bool sticky, std::string path_suffix) {
  std::lock_guard lock(mu_);
  rules_[static_cast<size_t>(op)] = Rule{n, err, sticky, std::move(path_suffix), 0};
}

void FaultFileSystem::clear_faults() {
  std::lock_guard lock(mu_);
  for (auto& r : rules_) r = Rule{};
}

uint64_t FaultFileSystem::count(FaultOp op) const {
  std::lock_guard lock(mu_);
  return counts_[static_cast<size_t>(op)];
}

bool FaultFileSystem::crashed() const {
  std::lock_guard lock(mu_);
  return crashed_;
}

void FaultFileSystem::before_read(std::function<void(const std::string& path)> hook) {
  std::lock_guard lock(mu_);
  before_read_ = std::move(hook);
}

uint64_t FaultFileSystem::faults_injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}

int FaultFileSystem::check_locked(FaultOp op, const std::string& path) {
  if (crashed_) return EIO;  // the "machine" is down: nothing after the crash happens
  auto i = static_cast<size_t>(op);
  ++counts_[i];
  Rule& r = rules_[i];
  if (r.n == 0 || !path.ends_with(r.suffix)) return 0;
  const uint64_t n = ++r.seen;
  if (n == r.n || (r.sticky && n > r.n)) {
    ++injected_;
    return r.err;
  }
  return 0;
}

std::shared_ptr<FaultFileSystem::Inode> FaultFileSystem::inode_locked(const std::string& path, bool) {
  auto& slot = inodes_[path];
  if (!slot) {
    slot = std::make_shared<Inode>();
    slot->path = path;
  }
  return slot;
}

std::string FaultFileSystem::backup_name_locked(const std::string& path) {
  return (std::filesystem::path(parent_of(path)) / fmt::format("{}{}", kBackupPrefix, ++backups_)).string();
}

void FaultFileSystem::move_inode_locked(const std::string& from, const std::string& to) {
  auto it = inodes_.find(from);
  if (it == inodes_.end()) {
    inodes_.erase(to);
    return;
  }
  auto node = it->second;
  inodes_.erase(it);
  node->path = to;
  inodes_[to] = node;
}

Result<std::shared_ptr<File>> FaultFileSystem::open(const std::filesystem::path& path, OpenMode mode) {
  std::lock_guard lock(mu_);
  const int err = check_locked(FaultOp::kOpen, path.string());
  if (err != 0) return os_error(err, "open (injected)", path);
  const std::string p = path.string();
  HERALD_ASSIGN_OR_RETURN(bool existed, base_.exists(path));
  HERALD_ASSIGN_OR_RETURN(auto real, base_.open(path, mode));
  if (!existed) pending_[parent_of(p)].push_back(DirOp{DirOp::kCreate, p, "", ""});
  auto node = inode_locked(p, existed);
  if (mode == OpenMode::kTruncate) node->dirty_from = UINT64_MAX;
  return std::shared_ptr<File>(std::make_shared<FaultFile>(*this, std::move(real), node, generation_));
}

Result<void> FaultFileSystem::rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::lock_guard lock(mu_);
  const int err = check_locked(FaultOp::kRename, from.string());
  if (err != 0) return os_error(err, "rename (injected)", from);
  const std::string a = from.string(), b = to.string();
  std::string backup;
  HERALD_ASSIGN_OR_RETURN(bool replaced, base_.exists(to));
  if (replaced) {
    backup = backup_name_locked(b);
    if (::link(b.c_str(), backup.c_str()) != 0) return os_error(errno, "link backup", to);
  }
  auto r = base_.rename(from, to);
  if (!r) {
    if (!backup.empty()) ::unlink(backup.c_str());
    return r;
  }
  if (!backup.empty()) move_inode_locked(b, backup);
  move_inode_locked(a, b);
  pending_[parent_of(b)].push_back(DirOp{DirOp::kRename, a, b, backup});
  return ok();
}

Result<void> FaultFileSystem::remove(const std::filesystem::path& path) {
  std::lock_guard lock(mu_);
  const int err = check_locked(FaultOp::kRemove, path.string());
  if (err != 0) return os_error(err, "unlink (injected)", path);
  const std::string p = path.string();
  const std::string backup = backup_name_locked(p);
  if (::link(p.c_str(), backup.c_str()) != 0) return os_error(errno, "unlink", path);
  auto r = base_.remove(path);
  if (!r) {
    ::unlink(backup.c_str());
    return r;
  }
  move_inode_locked(p, backup);
  pending_[parent_of(p)].push_back(DirOp{DirOp::kRemove, p, "", backup});
  return ok();
}

Result<void> FaultFileSystem::sync_dir(const std::filesystem::path& dir) {
  std::lock_guard lock(mu_);
  const int err = check_locked(FaultOp::kSyncDir, dir.string());
  if (err != 0) return os_error(err, "fsync dir (injected)", dir);
  HERALD_TRY(base_.sync_dir(dir));
  auto it = pending_.find(dir.string());
  if (it != pending_.end()) {
    for (auto& op : it->second) {
      if (!op.backup.empty()) {
        ::unlink(op.backup.c_str());
        inodes_.erase(op.backup);
      }
    }
    pending_.erase(it);
  }
  return ok();
}

Result<void> FaultFileSystem::dead_check(const std::filesystem::path& p) const {
  std::lock_guard lock(mu_);
  if (crashed_) return os_error(EIO, "file system after a simulated crash", p);
  return ok();
}

Result<void> FaultFileSystem::create_dirs(const std::filesystem::path& dir) {
  HERALD_TRY(dead_check(dir));
  return base_.create_dirs(dir);
}
Result<void> FaultFileSystem::remove_dir(const std::filesystem::path& dir) {
  HERALD_TRY(dead_check(dir));
  return base_.remove_dir(dir);
}
Result<bool> FaultFileSystem::exists(const std::filesystem::path& path) {
  HERALD_TRY(dead_check(path));
  return base_.exists(path);
}

Result<std::vector<std::string>> FaultFileSystem::list_dir(const std::filesystem::path& dir) {
  HERALD_TRY(dead_check(dir));
  HERALD_ASSIGN_OR_RETURN(auto names, base_.list_dir(dir));
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) { return n.rfind(kBackupPrefix, 0) == 0; }),
              names.end());
  return names;
}

void FaultFileSystem::crash(CrashMode mode, uint64_t seed) {
  std::lock_guard lock(mu_);
  ++generation_;
  crashed_ = true;
  std::mt19937_64 rng(seed);
  // 1. File contents: what was written since the last sync.
  for (auto& [path, node] : inodes_) {
    if (node->dirty_from == UINT64_MAX) continue;
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(path, ec);
    const uint64_t from = node->dirty_from;
    node->dirty_from = UINT64_MAX;
    if (ec || from >= size || mode == CrashMode::kKeepUnsynced) continue;
    uint64_t keep = from;  // kDropUnsynced
    bool garbage = false;
    if (mode == CrashMode::kRandom) {
      switch (rng() % 4) {
        case 0: keep = size; break;
        case 1: keep = from; break;
        case 2: keep = from + rng() % (size - from + 1); break;
        default:
          keep = from + rng() % (size - from + 1);
          garbage = keep > from;
          break;
      }
    }
    if (garbage) {
      // The last sector-ish chunk of what survives holds junk.
      const uint64_t g_from = std::max(from, keep - std::min<uint64_t>(keep - from, 1 + rng() % 512));
      std::vector<uint8_t> junk(keep - g_from);
      for (auto& b : junk) b = static_cast<uint8_t>(rng());
      std::FILE* f = std::fopen(path.c_str(), "r+b");
      if (f != nullptr) {
        std::fseek(f, static_cast<long>(g_from), SEEK_SET);
        std::fwrite(junk.data(), 1, junk.size(), f);
        std::fclose(f);
      }
    }
    if (keep < size) std::filesystem::resize_file(path, keep, ec);
  }
  // 2. Directory entries: undo a suffix of the unsynced operations, newest first.
  for (auto& [dir, ops] : pending_) {
    size_t keep = ops.size();
    if (mode == CrashMode::kDropUnsynced) keep = 0;
    if (mode == CrashMode::kRandom) keep = rng() % (ops.size() + 1);
    for (size_t i = ops.size(); i-- > keep;) {
      const DirOp& op = ops[i];
      switch (op.kind) {
        case DirOp::kCreate:
          ::unlink(op.a.c_str());
          inodes_.erase(op.a);
          break;
        case DirOp::kRename:
          ::rename(op.b.c_str(), op.a.c_str());
          move_inode_locked(op.b, op.a);
          if (!op.backup.empty()) {
            ::rename(op.backup.c_str(), op.b.c_str());
            move_inode_locked(op.backup, op.b);
          }
          break;
        case DirOp::kRemove:
          ::rename(op.backup.c_str(), op.a.c_str());
          move_inode_locked(op.backup, op.a);
          break;
      }
    }
    for (size_t i = 0; i < keep; ++i) {
      if (!ops[i].backup.empty()) {
        ::unlink(ops[i].backup.c_str());
        inodes_.erase(ops[i].backup);
      }
    }
  }
  pending_.clear();
}

}  // namespace herald::storage
