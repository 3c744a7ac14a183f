// FaultInjectionEnv: an Env over another Env that injects the failures a real
// disk produces — full disk, write errors, short reads, flipped bits, and a
// process killed in the middle of writing. Test-only.
#pragma once

#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include "core/env.h"

namespace strata::testing {

struct Faults {
  std::atomic<int64_t> write_budget{INT64_MAX};  // bytes writable before "disk full"
  std::atomic<bool> write_error{false};          // every write fails with EIO
  std::atomic<bool> short_read{false};           // every read comes up short
  std::atomic<bool> flip_bit{false};             // every read returns one flipped bit
  std::atomic<int64_t> crash_after{INT64_MAX};   // bytes after which the "process dies": writes, renames fail
};

class FaultInjectionEnv final : public Env {
 public:
  FaultInjectionEnv(Env* base, Faults* faults) : base_(base), f_(faults) {}

  Status MapFile(const std::string& path, std::unique_ptr<MappedFile>* out) override { return base_->MapFile(path, out); }
  Status NewWritableFile(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    std::unique_ptr<WritableFile> inner;
    STRATA_RETURN_IF_ERROR(base_->NewWritableFile(path, &inner));
    *out = std::make_unique<Writable>(std::move(inner), f_);
    return Status::Ok();
  }
  Status NewRandomAccessFile(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    std::unique_ptr<RandomAccessFile> inner;
    STRATA_RETURN_IF_ERROR(base_->NewRandomAccessFile(path, &inner));
    *out = std::make_unique<Readable>(std::move(inner), f_);
    return Status::Ok();
  }
  Status NewRandomRWFile(const std::string& path, std::unique_ptr<RandomRWFile>* out) override {
    std::unique_ptr<RandomRWFile> inner;
    STRATA_RETURN_IF_ERROR(base_->NewRandomRWFile(path, &inner));
    *out = std::make_unique<ReadWrite>(std::move(inner), f_);
    return Status::Ok();
  }
  Status NewTempFile(const std::string& path, std::unique_ptr<WritableFile>* out, std::string* tmp_path) override {
    std::unique_ptr<WritableFile> inner;
    STRATA_RETURN_IF_ERROR(base_->NewTempFile(path, &inner, tmp_path));
    *out = std::make_unique<Writable>(std::move(inner), f_);
    return Status::Ok();
  }
  Status ReadFile(const std::string& path, uint64_t max_bytes, std::string* out) override {
    return base_->ReadFile(path, max_bytes, out);
  }
  Status ReadStdin(uint64_t max_bytes, std::string* out) override { return base_->ReadStdin(max_bytes, out); }
  Status CheckRegularFile(const std::string& path) override { return base_->CheckRegularFile(path); }
  Status LockFile(const std::string& path, std::unique_ptr<FileLock>* lock) override {
    return base_->LockFile(path, lock);
  }
  Status RenameFile(const std::string& from, const std::string& to) override {
    if (f_->crash_after.load() <= 0) return Status::IOError("process killed before rename");
    return base_->RenameFile(from, to);
  }
  Status LinkFile(const std::string& from, const std::string& to) override {
    if (f_->crash_after.load() <= 0) return Status::IOError("process killed before link");
    return base_->LinkFile(from, to);
  }
  Status RemoveFile(const std::string& path) override {
    if (f_->crash_after.load() <= 0) return Status::IOError("process killed");
    return base_->RemoveFile(path);
  }
  Status CreateDirs(const std::string& path) override { return base_->CreateDirs(path); }
  Status ListDir(const std::string& dir, std::vector<std::string>* names) override { return base_->ListDir(dir, names); }
  Status FileSize(const std::string& path, uint64_t* size) override { return base_->FileSize(path, size); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }
  Status SyncDir(const std::string& dir) override { return base_->SyncDir(dir); }

 private:
  // Applies write faults to n bytes about to be written; OK means write them all.
  static Status CheckWrite(Faults* f, size_t n) {
    if (f->write_error) return Status::IOError("injected write error");
    if (f->crash_after.fetch_sub(static_cast<int64_t>(n)) < static_cast<int64_t>(n))
      return Status::IOError("process killed mid-write");
    if (f->write_budget.fetch_sub(static_cast<int64_t>(n)) < static_cast<int64_t>(n))
      return Status::ResourceExhausted("injected: no space left on device");
    return Status::Ok();
  }
  static Status CheckRead(Faults* f, size_t n, void* dst) {
    if (f->short_read) return Status::IOError("injected short read");
    if (f->flip_bit && n > 0) static_cast<uint8_t*>(dst)[n / 2] ^= 0x10;
    return Status::Ok();
  }

  class Writable final : public WritableFile {
   public:
    Writable(std::unique_ptr<WritableFile> in, Faults* f) : in_(std::move(in)), f_(f) {}
    Status Append(std::string_view d) override {
      STRATA_RETURN_IF_ERROR(CheckWrite(f_, d.size()));
      return in_->Append(d);
    }
    Status Sync() override { return f_->write_error ? Status::IOError("injected fsync error") : in_->Sync(); }
    Status Close() override { return in_->Close(); }

   private:
    std::unique_ptr<WritableFile> in_;
    Faults* f_;
  };
  class Readable final : public RandomAccessFile {
   public:
    Readable(std::unique_ptr<RandomAccessFile> in, Faults* f) : in_(std::move(in)), f_(f) {}
    Status Read(uint64_t off, size_t n, void* dst) const override {
      STRATA_RETURN_IF_ERROR(in_->Read(off, n, dst));
      return CheckRead(f_, n, dst);
    }

   private:
    std::unique_ptr<RandomAccessFile> in_;
    Faults* f_;
  };
  class ReadWrite final : public RandomRWFile {
   public:
    ReadWrite(std::unique_ptr<RandomRWFile> in, Faults* f) : in_(std::move(in)), f_(f) {}
    Status Write(uint64_t off, std::string_view d) override {
      STRATA_RETURN_IF_ERROR(CheckWrite(f_, d.size()));
      return in_->Write(off, d);
    }
    Status Read(uint64_t off, size_t n, void* dst) const override {
      STRATA_RETURN_IF_ERROR(in_->Read(off, n, dst));
      return CheckRead(f_, n, dst);
    }

   private:
    std::unique_ptr<RandomRWFile> in_;
    Faults* f_;
  };

  Env* base_;
  Faults* f_;
};

}  // namespace strata::testing
