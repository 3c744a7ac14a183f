// Env helpers shared by every implementation, and the in-memory Env.
#include <algorithm>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <mutex>
#include <set>

#include "core/env.h"
#include "core/env_errors.h"

namespace strata {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

namespace {

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// True if name is base + ".tmp." + 16 lowercase hex digits (Env::NewTempFile).
bool IsTempNameOf(const std::string& name, const std::string& base) {
  constexpr std::string_view kTmp = ".tmp.";
  if (name.size() != base.size() + kTmp.size() + 16 || name.compare(0, base.size(), base) != 0 ||
      name.compare(base.size(), kTmp.size(), kTmp) != 0)
    return false;
  return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(base.size() + kTmp.size()), name.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

AtomicFileWriter::~AtomicFileWriter() {
  if (!file_) return;  // never opened, or committed
  (void)env_->RemoveFile(tmp_);  // abandoned: removed while still locked; path is untouched
  file_.reset();
}

Status AtomicFileWriter::Open() {
  if (Status s = env_->CheckRegularFile(path_); !s.ok() && s.code() != StatusCode::kNotFound)
    return Status(s.code(), s.message() + "; not replacing it");
  RemoveStaleTempFiles(env_, path_);
  return env_->NewTempFile(path_, &file_, &tmp_);
}

Status AtomicFileWriter::Commit() {
  STRATA_RETURN_IF_ERROR(file_->Sync());
  STRATA_RETURN_IF_ERROR(file_->Close());
  STRATA_RETURN_IF_ERROR(env_->RenameFile(tmp_, path_));
  file_.reset();  // releases the temp file's lock; its name is gone
  return env_->SyncDir(DirName(path_));
}

Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data) {
  AtomicFileWriter w(env, path);
  STRATA_RETURN_IF_ERROR(w.Open());
  STRATA_RETURN_IF_ERROR(w.Append(data));
  return w.Commit();
}

void RemoveStaleTempFiles(Env* env, const std::string& path) {
  const std::string dir = DirName(path), base = BaseName(path);
  std::vector<std::string> names;
  if (!env->ListDir(dir, &names).ok()) return;
  for (const std::string& name : names) {
    if (!IsTempNameOf(name, base)) continue;
    const std::string tmp = dir == "/" ? "/" + name : dir + "/" + name;
    std::unique_ptr<FileLock> lock;
    if (!env->LockFile(tmp, &lock).ok()) continue;  // a live writer holds it (or it is not ours to touch)
    (void)env->RemoveFile(tmp);                     // removed while locked: no writer can be handed it
  }
}

Status NoSuchFile(const std::string& path) { return Status::NotFound(path + ": no such file"); }
Status PermissionDenied(const std::string& path) { return Status::IOError(path + ": permission denied"); }
Status IsADirectory(const std::string& path) { return Status::InvalidArgument(path + ": is a directory"); }
Status NotARegularFile(const std::string& path, const std::string& kind) {
  return Status::InvalidArgument(path + ": is not a regular file (" + kind + ")");
}

Status TooLarge(const std::string& path, uint64_t size, uint64_t max_bytes) {
  return Status::InvalidArgument(
      fmt::format("{}: too large ({} bytes or more; at most {} are read from it)", path, size, max_bytes));
}

Status LockedError(const std::string& path) {
  return Status::Busy(path + ": locked by another process");
}

namespace {

// Files are shared_ptr<string> so a mapped or open file survives a rename/remove,
// as on POSIX.
using Blob = std::shared_ptr<std::string>;

// Reads n bytes at offset of blob under mu; a short read is an error.
Status ReadBlob(std::mutex& mu, const std::string& blob, uint64_t offset, size_t n, void* dst) {
  std::lock_guard<std::mutex> l(mu);
  if (offset > blob.size() || n > blob.size() - offset) return Status::IOError("short read");
  std::memcpy(dst, blob.data() + offset, n);
  return Status::Ok();
}

class MemMappedFile final : public MappedFile {
 public:
  explicit MemMappedFile(Blob b) : blob_(std::move(b)) {}
  const uint8_t* data() const override { return reinterpret_cast<const uint8_t*>(blob_->data()); }
  size_t size() const override { return blob_->size(); }

 private:
  Blob blob_;
};

class MemEnv;

class MemWritableFile final : public WritableFile {
 public:
  // lock: held for the file's life (a temp file), or null.
  MemWritableFile(std::mutex* mu, Blob b, std::unique_ptr<FileLock> lock = nullptr)
      : mu_(mu), blob_(std::move(b)), lock_(std::move(lock)) {}
  Status Append(std::string_view data) override {
    std::lock_guard<std::mutex> l(*mu_);
    blob_->append(data);
    return Status::Ok();
  }
  Status Sync() override { return Status::Ok(); }
  Status Close() override { return Status::Ok(); }

 private:
  std::mutex* mu_;
  Blob blob_;
  std::unique_ptr<FileLock> lock_;
};

// A lock is on a file, not a name (as flock): an entry for the file's blob in
// a set shared with the MemEnv, which must outlive it.
class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::mutex* mu, std::set<const std::string*>* locked, Blob b)
      : mu_(mu), locked_(locked), blob_(std::move(b)) {}
  ~MemFileLock() override {
    std::lock_guard<std::mutex> l(*mu_);
    locked_->erase(blob_.get());
  }

 private:
  std::mutex* mu_;
  std::set<const std::string*>* locked_;
  Blob blob_;
};

class MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(std::mutex* mu, Blob b) : mu_(mu), blob_(std::move(b)) {}
  Status Read(uint64_t offset, size_t n, void* dst) const override { return ReadBlob(*mu_, *blob_, offset, n, dst); }

 private:
  std::mutex* mu_;
  Blob blob_;
};

class MemRandomRWFile final : public RandomRWFile {
 public:
  MemRandomRWFile(std::mutex* mu, Blob b) : mu_(mu), blob_(std::move(b)) {}
  Status Write(uint64_t offset, std::string_view data) override {
    std::lock_guard<std::mutex> l(*mu_);
    if (blob_->size() < offset + data.size()) blob_->resize(offset + data.size());
    std::memcpy(blob_->data() + offset, data.data(), data.size());
    return Status::Ok();
  }
  Status Read(uint64_t offset, size_t n, void* dst) const override { return ReadBlob(*mu_, *blob_, offset, n, dst); }

 private:
  std::mutex* mu_;
  Blob blob_;
};

class MemEnv final : public Env {
 public:
  Status NewRandomRWFile(const std::string& path, std::unique_ptr<RandomRWFile>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    Blob& b = files_[path];
    if (!b) b = std::make_shared<std::string>();
    *out = std::make_unique<MemRandomRWFile>(&mu_, b);
    return Status::Ok();
  }
  Status MapFile(const std::string& path, std::unique_ptr<MappedFile>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return NoSuchFile(path);
    *out = std::make_unique<MemMappedFile>(std::make_shared<std::string>(*it->second));
    return Status::Ok();
  }
  Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto blob = std::make_shared<std::string>();
    files_[path] = blob;
    *out = std::make_unique<MemWritableFile>(&mu_, blob);
    return Status::Ok();
  }
  Status NewTempFile(const std::string& path, std::unique_ptr<WritableFile>* out, std::string* tmp_path) override {
    std::lock_guard<std::mutex> l(mu_);
    std::string tmp;
    do {
      tmp = fmt::format("{}.tmp.{:016x}", path, next_temp_++);
    } while (files_.count(tmp) != 0);
    auto blob = std::make_shared<std::string>();
    files_[tmp] = blob;
    locked_.insert(blob.get());
    *out = std::make_unique<MemWritableFile>(&mu_, blob, std::make_unique<MemFileLock>(&mu_, &locked_, blob));
    *tmp_path = tmp;
    return Status::Ok();
  }
  Status NewRandomAccessFile(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return NoSuchFile(path);
    *out = std::make_unique<MemRandomAccessFile>(&mu_, it->second);
    return Status::Ok();
  }
  Status ReadFile(const std::string& path, uint64_t max_bytes, std::string* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return NoSuchFile(path);
    if (it->second->size() > max_bytes) return TooLarge(path, it->second->size(), max_bytes);
    *out = *it->second;
    return Status::Ok();
  }
  Status ReadStdin(uint64_t, std::string*) override {
    return Status::Unsupported("the in-memory Env has no standard input");
  }
  Status CheckRegularFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    return files_.count(path) != 0 ? Status::Ok() : NoSuchFile(path);
  }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    std::lock_guard<std::mutex> l(mu_);
    Blob& b = files_[path];
    if (!b) b = std::make_shared<std::string>();
    if (!locked_.insert(b.get()).second) return LockedError(path);
    *lock = std::make_unique<MemFileLock>(&mu_, &locked_, b);
    return Status::Ok();
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(from);
    if (it == files_.end()) return Status::NotFound("rename " + from);
    Blob b = it->second;
    files_.erase(it);
    files_[to] = b;
    return Status::Ok();
  }
  Status LinkFile(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(from);
    if (it == files_.end()) return NoSuchFile(from);
    if (files_.count(to) != 0) return Status::InvalidArgument(to + " already exists");
    files_[to] = it->second;  // one content, two names
    return Status::Ok();
  }
  Status RemoveFile(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    if (files_.erase(path) == 0) return Status::NotFound("remove " + path);
    return Status::Ok();
  }
  Status CreateDirs(const std::string&) override { return Status::Ok(); }
  Status ListDir(const std::string& dir, std::vector<std::string>* names) override {
    std::lock_guard<std::mutex> l(mu_);
    names->clear();
    const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
    for (const auto& [path, blob] : files_) {
      if (path.compare(0, prefix.size(), prefix) != 0) continue;
      std::string rest = path.substr(prefix.size());
      if (rest.find('/') == std::string::npos) names->push_back(rest);
    }
    return Status::Ok();
  }
  Status FileSize(const std::string& path, uint64_t* size) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound("stat " + path);
    *size = it->second->size();
    return Status::Ok();
  }
  bool FileExists(const std::string& path) override {
    std::lock_guard<std::mutex> l(mu_);
    return files_.count(path) != 0;
  }
  Status SyncDir(const std::string&) override { return Status::Ok(); }

 private:
  std::mutex mu_;
  std::map<std::string, Blob> files_;
  std::set<const std::string*> locked_;  // files (blobs) of held FileLocks, temp files included
  uint64_t next_temp_ = 0;
};

}  // namespace

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<MemEnv>(); }

}  // namespace strata
