#include "storage/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace herald::storage {

Error os_error(int err, std::string_view what, const std::filesystem::path& path) {
  Errc code = Errc::kIoError;
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      code = Errc::kNoSpace;
      break;
    case ENOENT:
      code = Errc::kNotFound;
      break;
    case EEXIST:
      code = Errc::kAlreadyExists;
      break;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      code = Errc::kExhausted;
      break;
    default:
      break;
  }
  return Error{code, fmt::format("{} {}: {}", what, path.string(), std::strerror(err))};
}

Result<void> File::read_exact(uint64_t offset, MutableByteSpan dst) const {
  HERALD_ASSIGN_OR_RETURN(size_t n, read_at(offset, dst));
  if (n != dst.size()) {
    return Error{Errc::kTruncated, fmt::format("{}: read {} of {} bytes at {}", path().string(), n,
                                               dst.size(), offset)};
  }
  return ok();
}

namespace {

class PosixFile final : public File {
 public:
  PosixFile(std::filesystem::path path, int fd) : File(std::move(path)), fd_(fd) {}
  ~PosixFile() override { ::close(fd_); }

  Result<void> write_at(uint64_t offset, ByteSpan data) override {
    const uint8_t* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(offset));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(errno, "pwrite", path());
      }
      if (n == 0) return os_error(EIO, "pwrite returned 0", path());
      p += n;
      left -= static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
    }
    return ok();
  }

  Result<size_t> read_at(uint64_t offset, MutableByteSpan dst) const override {
    size_t done = 0;
    while (done < dst.size()) {
      ssize_t n = ::pread(fd_, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(errno, "pread", path());
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Result<void> sync() override {
    if (::fdatasync(fd_) != 0) return os_error(errno, "fdatasync", path());
    return ok();
  }

  Result<void> truncate(uint64_t size) override {
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return os_error(errno, "ftruncate", path());
    }
    return ok();
  }

  Result<uint64_t> size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return os_error(errno, "fstat", path());
    return static_cast<uint64_t>(st.st_size);
  }

  int native_handle() const override { return fd_; }

 private:
  int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::shared_ptr<File>> open(const std::filesystem::path& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::kRead: flags |= O_RDONLY; break;
      case OpenMode::kReadWrite: flags |= O_RDWR; break;
      case OpenMode::kCreate: flags |= O_RDWR | O_CREAT; break;
      case OpenMode::kTruncate: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
    }
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return os_error(errno, "open", path);
    return std::shared_ptr<File>(std::make_shared<PosixFile>(path, fd));
  }

  Result<void> rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return os_error(errno, "rename to " + to.string(), from);
    return ok();
  }

  Result<void> remove(const std::filesystem::path& path) override {
    if (::unlink(path.c_str()) != 0) return os_error(errno, "unlink", path);
    return ok();
  }

  Result<void> sync_dir(const std::filesystem::path& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_error(errno, "open dir", dir);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return os_error(err, "fsync dir", dir);
    return ok();
  }

  Result<void> create_dirs(const std::filesystem::path& dir) override {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return os_error(ec.value(), "mkdir", dir);
    return ok();
  }

  Result<void> remove_dir(const std::filesystem::path& dir) override {
    if (::rmdir(dir.c_str()) != 0) return os_error(errno, "rmdir", dir);
    return ok();
  }

  Result<std::vector<std::string>> list_dir(const std::filesystem::path& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return os_error(errno, "opendir", dir);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return os_error(err, "readdir", dir);
    return names;
  }

  Result<bool> exists(const std::filesystem::path& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return os_error(errno, "stat", path);
  }
};

}  // namespace

FileSystem& FileSystem::posix() {
  static PosixFileSystem* fs = new PosixFileSystem();  // never destroyed: used from static dtors
  return *fs;
}

Result<void> FileSystem::atomic_write(const std::filesystem::path& path, ByteSpan content) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    HERALD_ASSIGN_OR_RETURN(auto f, open(tmp, OpenMode::kTruncate));
    HERALD_TRY(f->write_at(0, content));
    HERALD_TRY(f->sync());
  }
  HERALD_TRY(rename(tmp, path));
  return sync_dir(path.parent_path());
}

Result<Bytes> FileSystem::read_all(const std::filesystem::path& path) {
  HERALD_ASSIGN_OR_RETURN(auto f, open(path, OpenMode::kRead));
  HERALD_ASSIGN_OR_RETURN(uint64_t size, f->size());
  Bytes out(size);
  HERALD_ASSIGN_OR_RETURN(size_t n, f->read_at(0, out));
  out.resize(n);
  return out;
}

}  // namespace herald::storage
