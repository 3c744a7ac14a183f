// Env helpers shared by every implementation, and the in-memory Env.
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>

#include "core/env.h"

namespace strata {

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteFileAtomic(Env* env, const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  std::unique_ptr<WritableFile> file;
  Status s = env->NewWritableFile(tmp, &file);
  if (s.ok()) s = file->Append(data);
  if (s.ok()) s = file->Sync();
  if (s.ok()) s = file->Close();
  if (s.ok()) s = env->RenameFile(tmp, path);
  if (s.ok()) return env->SyncDir(DirName(path));
  file.reset();
  (void)env->RemoveFile(tmp);  // best effort; the original file is untouched either way
  return s;
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
  MemWritableFile(std::mutex* mu, Blob b) : mu_(mu), blob_(std::move(b)) {}
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
    if (it == files_.end()) return Status::NotFound("open " + path);
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
  Status NewRandomAccessFile(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound("open " + path);
    *out = std::make_unique<MemRandomAccessFile>(&mu_, it->second);
    return Status::Ok();
  }
  Status ReadFile(const std::string& path, std::string* out) override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(path);
    if (it == files_.end()) return Status::NotFound("open " + path);
    *out = *it->second;
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
};

}  // namespace

std::unique_ptr<Env> NewMemEnv() { return std::make_unique<MemEnv>(); }

}  // namespace strata
