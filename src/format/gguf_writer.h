// GGUF v3 writer. Metadata and tensors are declared first; Write() streams
// the file to disk atomically (temp file, fsync, rename), asking each tensor's
// producer for its bytes only when they are written, so multi-GB files never
// sit in memory whole.
//
// Thread-safety: not thread-safe; one owner.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"
#include "format/gguf.h"

namespace strata::gguf {

class GgufWriter {
 public:
  // Fills dst (exactly nbytes) with the tensor's data.
  using Producer = std::function<Status(uint8_t* dst, uint64_t nbytes)>;

  // REQUIRES (checked by Write): alignment is a non-zero power of two.
  explicit GgufWriter(uint32_t alignment = kDefaultAlignment);

  void SetValue(std::string key, Value v);  // replaces a key already set
  void SetString(std::string key, std::string v);
  void SetU32(std::string key, uint32_t v);
  void SetI32(std::string key, int32_t v);
  void SetU64(std::string key, uint64_t v);
  void SetF32(std::string key, float v);
  void SetBool(std::string key, bool v);
  void SetStringArray(std::string key, const std::vector<std::string>& v);
  void SetF32Array(std::string key, const std::vector<float>& v);
  void SetI32Array(std::string key, const std::vector<int32_t>& v);

  // ne: innermost dimension first (ggml order), 1..4 dims.
  // REQUIRES: ne[0] is a multiple of type's block size; unique name
  // (checked: kInvalidArgument otherwise, as for dims <= 0 or byte-size overflow).
  [[nodiscard]] Status AddTensor(std::string name, DType type, std::vector<int64_t> ne, Producer producer);
  // Convenience: copies nothing; data must stay alive until Write returns.
  [[nodiscard]] Status AddTensor(std::string name, DType type, std::vector<int64_t> ne, const void* data);

  // progress(done_bytes, total_bytes) is called after each tensor, if set.
  // general.alignment is written (as u32) iff the alignment is not the default;
  // a general.alignment set through SetValue must equal it. Errors: kInvalidArgument
  // for a bad alignment or an array whose elements differ from its elem_type,
  // a producer's error, or the Env's I/O errors (the temp file is then removed).
  [[nodiscard]] Status Write(Env* env, const std::string& path,
                             const std::function<void(uint64_t, uint64_t)>& progress = nullptr) const;

 private:
  // Encodes header, metadata and tensor infos padded to the alignment into out.
  [[nodiscard]] Status Header(std::string* out) const;
  // Streams the whole file into file.
  [[nodiscard]] Status WriteTo(AtomicFileWriter* file, const std::function<void(uint64_t, uint64_t)>& progress) const;

  struct PendingTensor {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    uint64_t nbytes;
    Producer producer;
  };
  uint32_t alignment_;
  std::vector<KeyValue> kv_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace strata::gguf
