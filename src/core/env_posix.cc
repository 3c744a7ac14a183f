// PosixEnv: Env over POSIX file descriptors and mmap.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <random>

#include "core/env.h"
#include "core/env_errors.h"

namespace strata {
namespace {

Status PosixError(const std::string& context, int err) {
  std::string msg = context + ": " + std::strerror(err);
  if (err == ENOENT) return Status::NotFound(msg);
  if (err == ENOSPC || err == EDQUOT || err == ENOMEM) return Status::ResourceExhausted(msg);
  return Status::IOError(msg);
}

// What a file that is not regular is, for messages.
const char* FileKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

Status RequireRegular(const std::string& path, const struct stat& st) {
  if (S_ISREG(st.st_mode)) return Status::Ok();
  if (S_ISDIR(st.st_mode)) return IsADirectory(path);
  return NotARegularFile(path, FileKind(st.st_mode));
}

// The error of a failed stat or open of path for reading.
Status OpenError(const std::string& path, int err) {
  if (err == ENOENT) return NoSuchFile(path);
  if (err == EACCES || err == EPERM) return PermissionDenied(path);
  if (err == EISDIR) return IsADirectory(path);
  return PosixError("open " + path, err);
}

// Opens path (flags: O_RDONLY or O_RDWR, optionally O_CREAT) if it is a
// regular file: its type is checked before the open, and again on the opened
// file, which is opened O_NONBLOCK so that a FIFO swapped in between cannot
// block. *st: the opened file's stat.
Status OpenRegular(const std::string& path, int flags, int* fd, struct stat* st) {
  struct stat before {};
  if (::stat(path.c_str(), &before) == 0) {
    STRATA_RETURN_IF_ERROR(RequireRegular(path, before));
  } else if (errno != ENOENT || (flags & O_CREAT) == 0) {
    return OpenError(path, errno);
  }
  const int f = ::open(path.c_str(), flags | O_NONBLOCK | O_CLOEXEC, 0644);
  if (f < 0) return OpenError(path, errno);
  Status s;
  if (::fstat(f, st) != 0) s = PosixError("stat " + path, errno);
  if (s.ok()) s = RequireRegular(path, *st);
  if (!s.ok()) {
    ::close(f);
    return s;
  }
  ::fcntl(f, F_SETFL, ::fcntl(f, F_GETFL) & ~O_NONBLOCK);  // regular files ignore it; reads block as usual
  *fd = f;
  return Status::Ok();
}

// True if fd is the file now at path (not removed or replaced since it was opened).
bool IsFileAt(int fd, const std::string& path) {
  struct stat a {}, b {};
  return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Reads fd to its end into *out; what: the file's name for messages.
Status ReadToEnd(int fd, const std::string& what, uint64_t max_bytes, std::string* out) {
  out->clear();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError("read " + what, errno);
    }
    if (n == 0) return Status::Ok();
    if (out->size() + static_cast<uint64_t>(n) > max_bytes) return TooLarge(what, out->size() + n, max_bytes);
    out->append(buf, static_cast<size_t>(n));
  }
}

// Reads exactly n bytes at offset; a short read is an error.
Status PreadFully(int fd, const std::string& path, uint64_t offset, size_t n, void* dst) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return PosixError("read " + path, errno);
    }
    if (r == 0) return Status::IOError("short read from " + path);
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(void* base, size_t size) : base_(base), size_(size) {}
  ~PosixMappedFile() override {
    if (base_ != nullptr && size_ > 0) munmap(base_, size_);
  }
  const uint8_t* data() const override { return static_cast<const uint8_t*>(base_); }
  size_t size() const override { return size_; }
  void ReleasePages(const void* p, size_t n) const override {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    // A read-only shared file mapping: dropped pages are re-read from the file.
    if (begin < end) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }
  void WillNeed(const void* p, size_t n) const override {
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    madvise(reinterpret_cast<void*>(begin), reinterpret_cast<uintptr_t>(p) + n - begin, MADV_WILLNEED);
  }

 private:
  void* base_;
  size_t size_;
};

class PosixWritableFile final : public WritableFile {
 public:
  // lock_fd: a descriptor holding the file's flock until destruction, or -1.
  PosixWritableFile(std::string path, int fd, int lock_fd = -1) : path_(std::move(path)), fd_(fd), lock_fd_(lock_fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  Status Append(std::string_view data) override {
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError("write " + path_, errno);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return PosixError("fsync " + path_, errno);
    return Status::Ok();
  }
  Status Close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return PosixError("close " + path_, errno);
    return Status::Ok();
  }

 private:
  std::string path_;
  int fd_;
  int lock_fd_;
};

// flock() on an open file description: released by close, or by the OS when the process dies.
class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { ::close(fd_); }

 private:
  int fd_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }
  Status Read(uint64_t offset, size_t n, void* dst) const override { return PreadFully(fd_, path_, offset, n, dst); }
  void DropCache() const override { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED); }

 private:
  std::string path_;
  int fd_;
};

class PosixRandomRWFile final : public RandomRWFile {
 public:
  PosixRandomRWFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixRandomRWFile() override { ::close(fd_); }
  Status Write(uint64_t offset, std::string_view data) override {
    const char* p = data.data();
    size_t n = data.size();
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return PosixError("write " + path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
      offset += static_cast<uint64_t>(w);
    }
    return Status::Ok();
  }
  Status Read(uint64_t offset, size_t n, void* dst) const override { return PreadFully(fd_, path_, offset, n, dst); }
  void DropCache() const override {
    ::fdatasync(fd_);  // dirty pages cannot be dropped
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
  }

 private:
  std::string path_;
  int fd_;
};

class PosixEnv final : public Env {
 public:
  Status MapFile(const std::string& path, std::unique_ptr<MappedFile>* out) override {
    int fd = -1;
    struct stat st {};
    STRATA_RETURN_IF_ERROR(OpenRegular(path, O_RDONLY, &fd, &st));
    size_t size = static_cast<size_t>(st.st_size);
    void* base = nullptr;
    if (size > 0) {
      base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (base == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        return PosixError("mmap " + path, err);
      }
    }
    ::close(fd);
    *out = std::make_unique<PosixMappedFile>(base, size);
    return Status::Ok();
  }

  Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return PosixError("create " + path, errno);
    *out = std::make_unique<PosixWritableFile>(path, fd);
    return Status::Ok();
  }

  Status NewTempFile(const std::string& path, std::unique_ptr<WritableFile>* out, std::string* tmp_path) override {
    std::random_device random;
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string tmp =
          fmt::format("{}.tmp.{:08x}{:08x}", path, static_cast<uint32_t>(random()), static_cast<uint32_t>(random()));
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) {
        if (errno == EEXIST) continue;
        return PosixError("create " + tmp, errno);
      }
      // Between the create and the flock, RemoveStaleTempFiles may have taken
      // the new file for a dead writer's: then it removes it, and we try
      // another name.
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(fd);
        if (err == EWOULDBLOCK) continue;
        (void)::unlink(tmp.c_str());
        return PosixError("lock " + tmp, err);
      }
      if (!IsFileAt(fd, tmp)) {
        ::close(fd);
        continue;
      }
      // A duplicate shares the open file description and so the lock, which
      // then outlives Close() of the written descriptor.
      const int lock_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (lock_fd < 0) {
        const int err = errno;
        ::close(fd);
        (void)::unlink(tmp.c_str());
        return PosixError("dup " + tmp, err);
      }
      *out = std::make_unique<PosixWritableFile>(tmp, fd, lock_fd);
      *tmp_path = tmp;
      return Status::Ok();
    }
    return Status::IOError("cannot create a temp file beside " + path);
  }

  Status NewRandomAccessFile(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    int fd = -1;
    struct stat st {};
    STRATA_RETURN_IF_ERROR(OpenRegular(path, O_RDONLY, &fd, &st));
    *out = std::make_unique<PosixRandomAccessFile>(path, fd);
    return Status::Ok();
  }

  Status NewRandomRWFile(const std::string& path, std::unique_ptr<RandomRWFile>* out) override {
    int fd = -1;
    struct stat st {};
    STRATA_RETURN_IF_ERROR(OpenRegular(path, O_RDWR | O_CREAT, &fd, &st));
    *out = std::make_unique<PosixRandomRWFile>(path, fd);
    return Status::Ok();
  }

  Status ReadFile(const std::string& path, uint64_t max_bytes, std::string* out) override {
    int fd = -1;
    struct stat st {};
    STRATA_RETURN_IF_ERROR(OpenRegular(path, O_RDONLY, &fd, &st));
    const auto size = static_cast<uint64_t>(st.st_size);
    Status s = size > max_bytes ? TooLarge(path, size, max_bytes) : Status::Ok();
    if (s.ok()) {
      out->reserve(static_cast<size_t>(size));
      s = ReadToEnd(fd, path, max_bytes, out);  // bounded again: the file may grow meanwhile
    }
    ::close(fd);
    return s;
  }

  Status ReadStdin(uint64_t max_bytes, std::string* out) override {
    return ReadToEnd(STDIN_FILENO, "standard input", max_bytes, out);
  }

  Status CheckRegularFile(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return OpenError(path, errno);
    return RequireRegular(path, st);
  }

  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    for (int attempt = 0; attempt < 100; ++attempt) {
      int fd = -1;
      struct stat st {};
      STRATA_RETURN_IF_ERROR(OpenRegular(path, O_RDONLY | O_CREAT, &fd, &st));
      if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(fd);
        return err == EWOULDBLOCK ? LockedError(path) : PosixError("lock " + path, err);
      }
      // The previous holder may have removed or replaced path before letting
      // go: a lock on that file guards nothing; lock the one there now.
      if (IsFileAt(fd, path)) {
        *lock = std::make_unique<PosixFileLock>(fd);
        return Status::Ok();
      }
      ::close(fd);
    }
    return Status::IOError(path + ": replaced over and over while being locked");
  }

  Status RenameFile(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return PosixError("rename " + from + " -> " + to, errno);
    return Status::Ok();
  }

  Status LinkFile(const std::string& from, const std::string& to) override {
    STRATA_RETURN_IF_ERROR(CheckRegularFile(from));
    if (::link(from.c_str(), to.c_str()) == 0) return Status::Ok();
    const int err = errno;
    if (err == EEXIST) return Status::InvalidArgument(to + " already exists");
    if (err == EXDEV || err == EPERM || err == EMLINK || err == ENOTSUP || err == EOPNOTSUPP)
      return Status::Unsupported("link " + from + " -> " + to + ": " + std::strerror(err));
    return PosixError("link " + from + " -> " + to, err);
  }

  Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return PosixError("remove " + path, errno);
    return Status::Ok();
  }

  Status CreateDirs(const std::string& path) override {
    if (path.empty()) return Status::Ok();
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      partial = path.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return PosixError("mkdir " + partial, errno);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Status::IOError(path + " exists and is not a directory");
    return Status::Ok();
  }

  Status ListDir(const std::string& dir, std::vector<std::string>* names) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return PosixError("opendir " + dir, errno);
    names->clear();
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names->push_back(n);
    }
    ::closedir(d);
    return Status::Ok();
  }

  Status FileSize(const std::string& path, uint64_t* size) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return PosixError("stat " + path, errno);
    *size = static_cast<uint64_t>(st.st_size);
    return Status::Ok();
  }

  bool FileExists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return PosixError("open dir " + dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return PosixError("fsync dir " + dir, err);
    return Status::Ok();
  }
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv();  // intentionally leaked: outlives all users
  return env;
}

}  // namespace strata
