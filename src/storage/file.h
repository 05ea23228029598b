// file.h: the only door from the storage engine to the operating system.
//
// Every byte the segment log reads or writes, every fdatasync, truncate,
// rename, unlink and directory fsync goes through a FileSystem and the File
// objects it opens (leveldb's Env). Production uses FileSystem::posix();
// tests wrap it in FaultFileSystem (fault_file_system.h) to fail the N-th
// write or sync with EIO/ENOSPC and to simulate a crash that loses unsynced
// bytes and unsynced directory entries.
//
//   FileSystem& fs = FileSystem::posix();
//   HERALD_ASSIGN_OR_RETURN(auto f, fs.open(dir / "00000000000000000000.log", OpenMode::kCreate));
//   HERALD_TRY(f->write_at(0, bytes));
//   HERALD_TRY(f->sync());                 // fdatasync
//   HERALD_TRY(fs.sync_dir(dir));          // make the new name durable
//
// Threading: a File may be used from several threads at once (pread/pwrite
// are positional); the caller orders writes. FileSystem methods are
// thread-safe. Files are shared_ptr-owned so that a reader can keep a segment
// open after the log deleted or replaced it (FileSlice in partition_log.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"

namespace herald::storage {

// Maps errno to an Error: ENOSPC/EDQUOT/EFBIG -> kNoSpace, ENOENT -> kNotFound,
// EEXIST -> kAlreadyExists, anything else -> kIoError. `what` names the call.
Error os_error(int err, std::string_view what, const std::filesystem::path& path);

class File {
 public:
  virtual ~File() = default;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Writes all of `data` at `offset`, retrying short writes and EINTR. On
  // error a prefix of `data` may have been written; the caller truncates.
  virtual Result<void> write_at(uint64_t offset, ByteSpan data) = 0;
  // Reads up to dst.size() bytes at `offset`. Returns the number read, which
  // is smaller than dst.size() only at end of file.
  virtual Result<size_t> read_at(uint64_t offset, MutableByteSpan dst) const = 0;
  // fdatasync: every write that returned before this call is durable after it.
  virtual Result<void> sync() = 0;
  virtual Result<void> truncate(uint64_t size) = 0;
  // Current size in bytes (fstat).
  virtual Result<uint64_t> size() const = 0;
  // The OS file descriptor for sendfile/splice, or -1 when there is none.
  virtual int native_handle() const { return -1; }

  const std::filesystem::path& path() const { return path_; }

  // Reads exactly dst.size() bytes; kTruncated if the file ends first.
  Result<void> read_exact(uint64_t offset, MutableByteSpan dst) const;

 protected:
  explicit File(std::filesystem::path path) : path_(std::move(path)) {}

 private:
  std::filesystem::path path_;
};

enum class OpenMode : uint8_t {
  kRead,       // read only; kNotFound if missing
  kReadWrite,  // read and write; kNotFound if missing
  kCreate,     // read and write; created empty if missing
  kTruncate,   // read and write; created if missing, emptied if present
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual Result<std::shared_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) = 0;
  // rename(2): atomically replaces `to` if it exists. Durable after sync_dir.
  virtual Result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // unlink(2). kNotFound if missing. Open File objects stay readable.
  virtual Result<void> remove(const std::filesystem::path& path) = 0;
  // fsync of a directory: creates, renames and unlinks in it become durable.
  virtual Result<void> sync_dir(const std::filesystem::path& dir) = 0;
  // mkdir -p.
  virtual Result<void> create_dirs(const std::filesystem::path& dir) = 0;
  // rmdir of an empty directory.
  virtual Result<void> remove_dir(const std::filesystem::path& dir) = 0;
  // Names (not paths) of the entries of `dir`, unsorted, without "." and "..".
  virtual Result<std::vector<std::string>> list_dir(const std::filesystem::path& dir) = 0;
  virtual Result<bool> exists(const std::filesystem::path& path) = 0;

  // The process-wide real file system (never destroyed).
  static FileSystem& posix();

  // Writes `content` to `path` so that after a crash it holds either the old
  // or the new content: write path.tmp, fdatasync, rename, sync_dir.
  Result<void> atomic_write(const std::filesystem::path& path, ByteSpan content);
  // Whole file; kNotFound if missing.
  Result<Bytes> read_all(const std::filesystem::path& path);
};

}  // namespace herald::storage
