// GGUF v2/v3 reader: metadata of every value type (including nested arrays)
// and a tensor table whose data points into the mapped file (never copied).
//
// Every offset, count, size and dimension is validated before use; a file
// that fails validation yields kCorrupt (or kUnsupported for an unknown
// tensor type, naming it) and never a crash or a giant allocation.
// Files of zero tensors may end before the aligned data offset.
// Limits (far above any real model): arrays nest at most 8 deep, all arrays
// together hold at most 2^22 elements, keys and tensor names are valid UTF-8
// of at most 65535 bytes. Bool values must be 0 or 1.
//
// Thread-safety: a GgufFile is immutable after Open and safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "core/tensor.h"

namespace strata::gguf {

// Value types as stored in the file (append-only).
enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5,
  kFloat32 = 6, kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11,
  kFloat64 = 12,
};
const char* ValueTypeName(ValueType t);

struct Value {
  ValueType type = ValueType::kUint8;
  // Scalars: integers of every width are held in i (signed) or u (unsigned).
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string str;
  // Arrays: element type and elements.
  ValueType elem_type = ValueType::kUint8;
  std::vector<Value> arr;

  bool is_integer() const;
  // Integer value of any integer type; nullopt if not an integer or out of int64 range.
  std::optional<int64_t> as_int() const;
  // Numeric value of any integer or float type.
  std::optional<double> as_double() const;
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  uint32_t n_dims = 0;
  Tensor tensor;          // type, ne (unused dims = 1), data pointer into the file
  uint64_t offset = 0;    // relative to the start of the data section
  uint64_t nbytes = 0;
};

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
inline constexpr uint32_t kDefaultAlignment = 32;

class GgufFile {
 public:
  // Maps and parses the file at path.
  [[nodiscard]] static Status Open(Env* env, const std::string& path, std::unique_ptr<GgufFile>* out);
  // Parses bytes the caller keeps alive for the life of the result (fuzzing, tests).
  // REQUIRES: data points to size readable bytes (any alignment).
  [[nodiscard]] static Status Parse(const uint8_t* data, size_t size, std::unique_ptr<GgufFile>* out);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return size_; }

  const std::vector<KeyValue>& metadata() const { return kv_; }
  const Value* Find(std::string_view key) const;
  std::optional<std::string> GetString(std::string_view key) const;
  std::optional<int64_t> GetInt(std::string_view key) const;      // any integer type
  std::optional<double> GetFloat(std::string_view key) const;     // any numeric type
  std::optional<bool> GetBool(std::string_view key) const;
  // Array accessors: nullopt if the key is missing or of another type.
  std::optional<std::vector<std::string>> GetStringArray(std::string_view key) const;
  std::optional<std::vector<float>> GetFloatArray(std::string_view key) const;   // any numeric elements
  std::optional<std::vector<int64_t>> GetIntArray(std::string_view key) const;   // any integer elements

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;

  // MappedFile::ReleasePages / WillNeed for bytes of this file (no-ops for caller-owned bytes).
  void ReleasePages(const void* p, size_t n) const {
    if (mapping_) mapping_->ReleasePages(p, n);
  }
  void WillNeed(const void* p, size_t n) const {
    if (mapping_) mapping_->WillNeed(p, n);
  }

 private:
  GgufFile() = default;
  std::unique_ptr<MappedFile> mapping_;  // null when parsed from caller-owned bytes
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  uint64_t size_ = 0;
  std::vector<KeyValue> kv_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> kv_index_;      // key -> index in kv_
  std::map<std::string, size_t, std::less<>> tensor_index_;  // name -> index in tensors_
  friend class GgufParser;
};

}  // namespace strata::gguf
