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
// but reports errors only when called explicitly. A temp file (Env::NewTempFile)
// stays locked until the object is destroyed, even after Close().
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

// An exclusive advisory lock on a file (Env::LockFile), held until destroyed.
// Other processes and other FileLocks of this process on the same file are
// refused while it is held; the OS releases it when the process dies.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// Files opened for reading (MapFile, NewRandomAccessFile, ReadFile) and the
// file behind NewRandomRWFile and LockFile must be regular files: the path's
// type is checked before it is opened, so a FIFO cannot block the caller and
// a device (/dev/zero) cannot stream forever. Errors say what is wrong, as
// "PATH: no such file" (kNotFound), "PATH: permission denied" (kIOError),
// "PATH: is a directory" or "PATH: is not a regular file (a FIFO)"
// (kInvalidArgument).
class Env {
 public:
  virtual ~Env() = default;

  // The process-wide POSIX environment. Never deleted.
  static Env* Default();

  [[nodiscard]] virtual Status MapFile(const std::string& path, std::unique_ptr<MappedFile>* out) = 0;
  [[nodiscard]] virtual Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* out) = 0;
  // Creates a new file beside path named path + ".tmp." + 16 hex digits
  // (*tmp_path), unique to this writer, for an atomic replacement of path
  // (AtomicFileWriter). It is locked as by LockFile until *out is destroyed,
  // so RemoveStaleTempFiles never takes a live writer's file.
  [[nodiscard]] virtual Status NewTempFile(const std::string& path, std::unique_ptr<WritableFile>* out,
                                           std::string* tmp_path) = 0;
  [[nodiscard]] virtual Status NewRandomAccessFile(const std::string& path,
                                                   std::unique_ptr<RandomAccessFile>* out) = 0;
  // Opens path for positional I/O, creating it if missing (never truncates).
  [[nodiscard]] virtual Status NewRandomRWFile(const std::string& path, std::unique_ptr<RandomRWFile>* out) = 0;
  // The whole file; kInvalidArgument (and *out unspecified) if it holds more
  // than max_bytes: every caller states how large a file it accepts.
  [[nodiscard]] virtual Status ReadFile(const std::string& path, uint64_t max_bytes, std::string* out) = 0;
  // Standard input until end of file (a pipe, terminal or file); kInvalidArgument past max_bytes.
  [[nodiscard]] virtual Status ReadStdin(uint64_t max_bytes, std::string* out) = 0;
  // OK if path is a regular file; else the error opening it for reading would give.
  [[nodiscard]] virtual Status CheckRegularFile(const std::string& path) = 0;
  // Takes an exclusive lock on path (created empty if missing) without
  // waiting: kBusy if another holder has it. The lock taken is always on the
  // file at path when the call returns (one removed or replaced meanwhile is
  // let go and the new one locked), so removing path while holding its lock
  // is allowed: no two holders can result.
  [[nodiscard]] virtual Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) = 0;
  [[nodiscard]] virtual Status RenameFile(const std::string& from, const std::string& to) = 0;
  // Makes `to` a second name of the regular file `from` (a hard link): O(1),
  // no bytes copied. kInvalidArgument if `to` exists; kUnsupported where the
  // file system has no hard links between them (the caller copies then).
  // Safe for files only ever replaced whole (AtomicFileWriter renames a new
  // file over one name; the other keeps the old content).
  [[nodiscard]] virtual Status LinkFile(const std::string& from, const std::string& to) = 0;
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

// Replaces the file at path atomically: the bytes go to a temp file of this
// writer (Env::NewTempFile) that Commit() fsyncs and renames over path, then
// fsyncs the directory. Destroyed without a successful Commit, it removes the
// temp file and path keeps its previous content. Refuses to replace anything
// but a regular file (a FIFO, device or directory at path stays as it is).
//
// Thread-safety: one owner at a time.
class AtomicFileWriter {
 public:
  AtomicFileWriter(Env* env, std::string path) : env_(env), path_(std::move(path)) {}
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Removes temp files of path that killed writers left (RemoveStaleTempFiles)
  // and creates this writer's temp file.
  [[nodiscard]] Status Open();
  // REQUIRES: Open() succeeded and Commit() was not called.
  [[nodiscard]] Status Append(std::string_view bytes) { return file_->Append(bytes); }
  // Sync, close, rename over path, sync the directory. REQUIRES: Open() succeeded.
  [[nodiscard]] Status Commit();

 private:
  Env* env_;
  std::string path_, tmp_;
  std::unique_ptr<WritableFile> file_;
};

// Writes data to path atomically (AtomicFileWriter). On failure the previous
// content of path is untouched and the temp removed.
[[nodiscard]] Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data);

// Removes the temp files (path + ".tmp." + 16 hex digits) that writers of path
// killed before they committed left behind: only those whose lock can be taken,
// i.e. whose writer is gone. Best effort: a file that cannot be removed stays.
void RemoveStaleTempFiles(Env* env, const std::string& path);

// Directory part of a path ("." if none).
std::string DirName(const std::string& path);

// An Env that keeps every file in memory. Thread-safe.
std::unique_ptr<Env> NewMemEnv();

}  // namespace strata
