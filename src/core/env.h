// Env: every file and OS access strata makes goes through this interface, so
// tests can run in memory (NewMemEnv) and inject faults (FaultInjectionEnv in
// tests/). Modelled on LevelDB's Env.
//
// Thread-safety: Env implementations are safe for concurrent use. File objects
// are not: one owner at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata {

// A read-only view of a whole file. For PosixEnv it is an mmap (weights are
// never copied); MemEnv hands out the stored bytes.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual const uint8_t* data() const = 0;
  virtual size_t size() const = 0;
  // Hint: [p, p + n) inside data() will not be read again soon (its contents
  // were copied elsewhere), so the whole pages in it may leave this process's
  // resident set; reading them later still works (they come back from the
  // file). A no-op where the bytes are not file-backed.
  virtual void ReleasePages(const void* p, size_t n) const {
    (void)p;
    (void)n;
  }
  // Hint: [p, p + n) will be read soon, all of it, so the OS may start
  // reading it from the file in large sequential requests now (a strided
  // first read of a cold file otherwise faults it in a few pages at a time).
  virtual void WillNeed(const void* p, size_t n) const {
    (void)p;
    (void)n;
  }
};

// Appends bytes; durable only after Sync(). Close() is implied by destruction
// but reports errors only when called explicitly.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  [[nodiscard]] virtual Status Append(std::string_view data) = 0;
  [[nodiscard]] virtual Status Sync() = 0;
  [[nodiscard]] virtual Status Close() = 0;
};

// Positional reads; safe to call Read concurrently from several threads.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads exactly n bytes at offset into dst; a short read is kIOError.
  [[nodiscard]] virtual Status Read(uint64_t offset, size_t n, void* dst) const = 0;
  // Hint that the cached pages of this file are no longer needed (cold-cache benchmarks).
  virtual void DropCache() const {}
};

// Positional reads and writes of a file that persists for the owner's life
// (the KV disk tier). Safe to call concurrently on disjoint ranges.
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;
  // Writes exactly data.size() bytes at offset; a short write is an error.
  [[nodiscard]] virtual Status Write(uint64_t offset, std::string_view data) = 0;
  // Reads exactly n bytes at offset into dst; a short read is kIOError.
  [[nodiscard]] virtual Status Read(uint64_t offset, size_t n, void* dst) const = 0;
  // Hint that cached pages are no longer needed (cold-cache benchmarks).
  virtual void DropCache() const {}
};

class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX environment. Never deleted.
  static Env* Default();

  [[nodiscard]] virtual Status MapFile(const std::string& path, std::unique_ptr<MappedFile>* out) = 0;
  [[nodiscard]] virtual Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* out) = 0;
  [[nodiscard]] virtual Status NewRandomAccessFile(const std::string& path,
                                                   std::unique_ptr<RandomAccessFile>* out) = 0;
  // Opens path for positional I/O, creating it if missing (never truncates).
  [[nodiscard]] virtual Status NewRandomRWFile(const std::string& path, std::unique_ptr<RandomRWFile>* out) = 0;
  [[nodiscard]] virtual Status ReadFile(const std::string& path, std::string* out) = 0;
  [[nodiscard]] virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  [[nodiscard]] virtual Status RemoveFile(const std::string& path) = 0;
  // mkdir -p; OK if it exists.
  [[nodiscard]] virtual Status CreateDirs(const std::string& path) = 0;
  // Names (not paths) of the entries in dir, excluding "." and "..".
  [[nodiscard]] virtual Status ListDir(const std::string& dir, std::vector<std::string>* names) = 0;
  [[nodiscard]] virtual Status FileSize(const std::string& path, uint64_t* size) = 0;
  virtual bool FileExists(const std::string& path) = 0;
  // fsync of a directory, making a rename durable. No-op where meaningless.
  [[nodiscard]] virtual Status SyncDir(const std::string& dir) = 0;
};

// Writes data to path atomically: path.tmp, fsync, rename, fsync(dir).
// On failure the previous content of path is untouched and the temp removed.
[[nodiscard]] Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data);

// Directory part of a path ("." if none).
std::string DirName(const std::string& path);

// An Env that keeps every file in memory. Thread-safe.
std::unique_ptr<Env> NewMemEnv();

}  // namespace strata
