#include "format/gguf.h"

#include <cstring>
#include <limits>
#include <utility>

#include "core/utf8.h"

namespace strata::gguf {
namespace {

// Limits that keep hostile files from exhausting the stack or memory. Each is
// far above anything a real model uses (llama.cpp does not nest arrays at all;
// the largest vocabularies hold < 1M array elements in total). Each parsed
// element costs sizeof(Value) (~100 bytes), so metadata stays under ~450 MB.
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 22;
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint32_t kMaxDims = 4;

// Smallest encoding of a value of type t (what a count is bounded against).
uint64_t MinEncodedSize(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: return 8;       // u64 length
    case ValueType::kArray: return 4 + 8;    // u32 element type + u64 count
  }
  return 1;
}

bool IsKnownValueType(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::kFloat64); }

bool IsSignedInteger(ValueType t) {
  return t == ValueType::kInt8 || t == ValueType::kInt16 || t == ValueType::kInt32 || t == ValueType::kInt64;
}

bool IsUnsignedInteger(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 || t == ValueType::kUint64;
}

// Little-endian cursor over [data, data + size); every read is bounds-checked
// and a failure names what was being read and where.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  Status Bytes(size_t n, const uint8_t** out, std::string_view what) {
    if (n > remaining()) {
      return Status::Corrupt("file truncated at offset " + std::to_string(pos_) + " reading " + std::string(what) +
                             " (" + std::to_string(n) + " bytes needed, " + std::to_string(remaining()) +
                             " left)");
    }
    *out = data_ + pos_;
    pos_ += n;
    return Status::Ok();
  }

  template <class T>
  Status Scalar(T* out, std::string_view what) {
    const uint8_t* p = nullptr;
    STRATA_RETURN_IF_ERROR(Bytes(sizeof(T), &p, what));
    std::memcpy(out, p, sizeof(T));  // hosts are little-endian (x86-64, arm64)
    return Status::Ok();
  }

  // u64 length + bytes; the length is bounded by the bytes left and max_len.
  Status String(std::string* out, uint64_t max_len, std::string_view what) {
    uint64_t len = 0;
    STRATA_RETURN_IF_ERROR(Scalar(&len, what));
    if (len > max_len) {
      return Status::Corrupt(std::string(what) + " at offset " + std::to_string(pos_ - 8) + " has absurd length " +
                             std::to_string(len));
    }
    const uint8_t* p = nullptr;
    STRATA_RETURN_IF_ERROR(Bytes(static_cast<size_t>(len), &p, what));
    out->assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

const char* ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "u8";
    case ValueType::kInt8: return "i8";
    case ValueType::kUint16: return "u16";
    case ValueType::kInt16: return "i16";
    case ValueType::kUint32: return "u32";
    case ValueType::kInt32: return "i32";
    case ValueType::kFloat32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "str";
    case ValueType::kArray: return "arr";
    case ValueType::kUint64: return "u64";
    case ValueType::kInt64: return "i64";
    case ValueType::kFloat64: return "f64";
  }
  return "unknown";
}

bool Value::is_integer() const { return IsSignedInteger(type) || IsUnsignedInteger(type); }

std::optional<int64_t> Value::as_int() const {
  if (IsSignedInteger(type)) return i;
  if (IsUnsignedInteger(type) && u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<int64_t>(u);
  }
  return std::nullopt;
}

std::optional<double> Value::as_double() const {
  if (IsSignedInteger(type)) return static_cast<double>(i);
  if (IsUnsignedInteger(type)) return static_cast<double>(u);
  if (type == ValueType::kFloat32 || type == ValueType::kFloat64) return f;
  return std::nullopt;
}

// Parses a whole file into a GgufFile; one instance per parse.
class GgufParser {
 public:
  GgufParser(const uint8_t* data, size_t size, GgufFile* file) : cur_(data, size), data_(data), file_(file) {}

  Status Run() {
    file_->size_ = cur_.remaining();
    uint64_t n_tensors = 0, n_kv = 0;
    STRATA_RETURN_IF_ERROR(Header(&n_tensors, &n_kv));
    STRATA_RETURN_IF_ERROR(Metadata(n_kv));
    STRATA_RETURN_IF_ERROR(Alignment());
    STRATA_RETURN_IF_ERROR(TensorInfos(n_tensors));
    return TensorData();
  }

 private:
  Status Header(uint64_t* n_tensors, uint64_t* n_kv) {
    uint32_t magic = 0, version = 0;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&magic, "magic"));
    if (magic != kMagic) return Status::Corrupt("not a GGUF file (bad magic)");
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&version, "version"));
    if ((version & 0xFFFFu) == 0 && version != 0) {
      return Status::Unsupported("big-endian GGUF files are not supported");
    }
    if (version != 2 && version != 3) {
      return Status::Unsupported("GGUF version " + std::to_string(version) + " is not supported (only 2 and 3)");
    }
    file_->version_ = version;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(n_tensors, "tensor count"));
    STRATA_RETURN_IF_ERROR(cur_.Scalar(n_kv, "metadata count"));
    // Bound both counts by the smallest possible encoding of each entry.
    constexpr uint64_t kMinKv = 8 + 4 + 1;
    constexpr uint64_t kMinTensorInfo = 8 + 4 + 8 + 4 + 8;
    if (*n_kv > cur_.remaining() / kMinKv) {
      return Status::Corrupt("absurd metadata count " + std::to_string(*n_kv) + " for a file of " +
                             std::to_string(file_->size_) + " bytes");
    }
    if (*n_tensors > cur_.remaining() / kMinTensorInfo) {
      return Status::Corrupt("absurd tensor count " + std::to_string(*n_tensors) + " for a file of " +
                             std::to_string(file_->size_) + " bytes");
    }
    return Status::Ok();
  }

  Status Metadata(uint64_t n_kv) {
    file_->kv_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
      KeyValue kv;
      STRATA_RETURN_IF_ERROR(cur_.String(&kv.key, kMaxKeyBytes, "metadata key"));
      // Keys and tensor names must be UTF-8; values may hold raw bytes (vocabularies).
      if (!utf8::IsValid(kv.key)) {
        return Status::Corrupt("metadata key #" + std::to_string(k) + " is not valid UTF-8");
      }
      uint32_t raw_type = 0;
      STRATA_RETURN_IF_ERROR(cur_.Scalar(&raw_type, "metadata value type"));
      Status s = ParseValue(raw_type, 0, &kv.value);
      if (!s.ok()) return s.WithContext("metadata key '" + kv.key + "'");
      if (!file_->kv_index_.emplace(kv.key, file_->kv_.size()).second) {
        return Status::Corrupt("duplicate metadata key '" + kv.key + "'");
      }
      file_->kv_.push_back(std::move(kv));
    }
    return Status::Ok();
  }

  Status ParseValue(uint32_t raw_type, int depth, Value* v) {
    if (!IsKnownValueType(raw_type)) return Status::Corrupt("unknown value type " + std::to_string(raw_type));
    v->type = static_cast<ValueType>(raw_type);
    switch (v->type) {
      case ValueType::kUint8: return Unsigned<uint8_t>(v);
      case ValueType::kUint16: return Unsigned<uint16_t>(v);
      case ValueType::kUint32: return Unsigned<uint32_t>(v);
      case ValueType::kUint64: return Unsigned<uint64_t>(v);
      case ValueType::kInt8: return Signed<int8_t>(v);
      case ValueType::kInt16: return Signed<int16_t>(v);
      case ValueType::kInt32: return Signed<int32_t>(v);
      case ValueType::kInt64: return Signed<int64_t>(v);
      case ValueType::kFloat32: {
        float x = 0;
        STRATA_RETURN_IF_ERROR(cur_.Scalar(&x, "f32 value"));
        v->f = x;
        return Status::Ok();
      }
      case ValueType::kFloat64: return cur_.Scalar(&v->f, "f64 value");
      case ValueType::kBool: {
        uint8_t x = 0;
        STRATA_RETURN_IF_ERROR(cur_.Scalar(&x, "bool value"));
        if (x > 1) return Status::Corrupt("bool value " + std::to_string(x) + " is neither 0 nor 1");
        v->b = x == 1;
        return Status::Ok();
      }
      case ValueType::kString: return cur_.String(&v->str, cur_.remaining(), "string value");
      case ValueType::kArray: return ParseArray(depth, v);
    }
    return Status::Internal("unreachable value type");
  }

  template <class T>
  Status Unsigned(Value* v) {
    T x = 0;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&x, "integer value"));
    v->u = x;
    return Status::Ok();
  }

  template <class T>
  Status Signed(Value* v) {
    T x = 0;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&x, "integer value"));
    v->i = x;
    return Status::Ok();
  }

  Status ParseArray(int depth, Value* v) {
    if (depth >= kMaxArrayDepth) {
      return Status::Corrupt("arrays nested deeper than " + std::to_string(kMaxArrayDepth));
    }
    uint32_t raw_elem = 0;
    uint64_t count = 0;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&raw_elem, "array element type"));
    if (!IsKnownValueType(raw_elem)) {
      return Status::Corrupt("unknown array element type " + std::to_string(raw_elem));
    }
    v->elem_type = static_cast<ValueType>(raw_elem);
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&count, "array length"));
    if (count > cur_.remaining() / MinEncodedSize(v->elem_type)) {
      return Status::Corrupt("absurd array length " + std::to_string(count) + " with " +
                             std::to_string(cur_.remaining()) + " bytes left");
    }
    if (count > kMaxMetadataElements - n_elements_) {
      return Status::Unsupported("metadata holds more than " + std::to_string(kMaxMetadataElements) +
                                 " array elements");
    }
    n_elements_ += count;
    v->arr.resize(static_cast<size_t>(count));
    for (uint64_t j = 0; j < count; ++j) {
      Status s = ParseValue(raw_elem, depth + 1, &v->arr[static_cast<size_t>(j)]);
      if (!s.ok()) return s.WithContext("array element " + std::to_string(j));
    }
    return Status::Ok();
  }

  Status Alignment() {
    const Value* a = file_->Find("general.alignment");
    if (a == nullptr) return Status::Ok();
    if (a->type != ValueType::kUint32) {
      return Status::Corrupt(std::string("general.alignment has type ") + ValueTypeName(a->type) + ", not u32");
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return Status::Corrupt("general.alignment " + std::to_string(a->u) + " is not a power of two");
    }
    file_->alignment_ = a->u;
    return Status::Ok();
  }

  Status TensorInfos(uint64_t n_tensors) {
    file_->tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t k = 0; k < n_tensors; ++k) {
      TensorInfo t;
      STRATA_RETURN_IF_ERROR(cur_.String(&t.name, kMaxKeyBytes, "tensor name"));
      if (!utf8::IsValid(t.name)) return Status::Corrupt("tensor name #" + std::to_string(k) + " is not valid UTF-8");
      STRATA_RETURN_IF_ERROR(TensorInfoBody("tensor '" + t.name + "'", &t));
      if (!file_->tensor_index_.emplace(t.name, file_->tensors_.size()).second) {
        return Status::Corrupt("duplicate tensor name '" + t.name + "'");
      }
      file_->tensors_.push_back(std::move(t));
    }
    return Status::Ok();
  }

  // Reads n_dims, ne, type and offset of one tensor and derives its size.
  // `who` ("tensor 'name'") starts every error message.
  Status TensorInfoBody(const std::string& who, TensorInfo* t) {
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&t->n_dims, who + " n_dims"));
    if (t->n_dims < 1 || t->n_dims > kMaxDims) {
      return Status::Corrupt(who + " has n_dims " + std::to_string(t->n_dims) + ", not in 1..4");
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < t->n_dims; ++d) {
      uint64_t ne = 0;
      STRATA_RETURN_IF_ERROR(cur_.Scalar(&ne, who + " dimensions"));
      if (ne == 0) return Status::Corrupt(who + " has ne[" + std::to_string(d) + "] = 0");
      if (MulOverflows(elements, ne, &elements) ||
          elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::Corrupt(who + " element count overflows");
      }
      t->tensor.ne[d] = static_cast<int64_t>(ne);
    }
    uint32_t raw_type = 0;
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&raw_type, who + " type"));
    if (!GetDTypeInfo(raw_type).has_value()) {
      return Status::Unsupported(who + " has unknown type " + std::to_string(raw_type));
    }
    t->tensor.type = static_cast<DType>(raw_type);
    std::optional<uint64_t> row = RowBytes(t->tensor.type, static_cast<uint64_t>(t->tensor.ne[0]));
    if (!row.has_value()) {
      return Status::Corrupt(who + " has ne[0] = " + std::to_string(t->tensor.ne[0]) +
                             ", not a multiple of the " + DTypeName(t->tensor.type) + " block size " +
                             std::to_string(Info(t->tensor.type).block_size));
    }
    if (MulOverflows(*row, elements / static_cast<uint64_t>(t->tensor.ne[0]), &t->nbytes)) {
      return Status::Corrupt(who + " byte size overflows");
    }
    STRATA_RETURN_IF_ERROR(cur_.Scalar(&t->offset, who + " offset"));
    if (t->offset % file_->alignment_ != 0) {
      return Status::Corrupt(who + " offset " + std::to_string(t->offset) + " is not a multiple of the alignment " +
                             std::to_string(file_->alignment_));
    }
    return Status::Ok();
  }

  // Places the data section and checks every tensor lies inside the file.
  Status TensorData() {
    const uint64_t end_of_infos = cur_.pos();
    const uint64_t a = file_->alignment_;
    file_->data_offset_ = (end_of_infos + a - 1) / a * a;  // end_of_infos <= size, a <= 2^31: no overflow
    if (file_->tensors_.empty()) return Status::Ok();  // may end before data_offset
    if (file_->data_offset_ > file_->size_) {
      return Status::Corrupt("file truncated: data section at offset " + std::to_string(file_->data_offset_) +
                             " is past the end of the " + std::to_string(file_->size_) + "-byte file");
    }
    const uint64_t data_size = file_->size_ - file_->data_offset_;
    for (TensorInfo& t : file_->tensors_) {
      if (t.offset > data_size || t.nbytes > data_size - t.offset) {
        return Status::Corrupt("tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                               std::to_string(t.nbytes) + ") is past the end of the " + std::to_string(data_size) +
                               "-byte data section");
      }
      t.tensor.data = data_ + file_->data_offset_ + t.offset;
    }
    return Status::Ok();
  }

  Cursor cur_;
  const uint8_t* data_;
  GgufFile* file_;
  uint64_t n_elements_ = 0;  // array elements parsed so far, all keys
};

Status GgufFile::Parse(const uint8_t* data, size_t size, std::unique_ptr<GgufFile>* out) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  GgufParser parser(data, size, file.get());
  STRATA_RETURN_IF_ERROR(parser.Run());
  *out = std::move(file);
  return Status::Ok();
}

Status GgufFile::Open(Env* env, const std::string& path, std::unique_ptr<GgufFile>* out) {
  std::unique_ptr<MappedFile> mapping;
  STRATA_RETURN_IF_ERROR(env->MapFile(path, &mapping));
  std::unique_ptr<GgufFile> file;
  Status s = Parse(mapping->data(), mapping->size(), &file);
  if (!s.ok()) return s.WithContext(path);
  file->mapping_ = std::move(mapping);
  *out = std::move(file);
  return Status::Ok();
}

const Value* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

std::optional<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != ValueType::kString) return std::nullopt;
  return v->str;
}

std::optional<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  return v == nullptr ? std::nullopt : v->as_int();
}

std::optional<double> GgufFile::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  return v == nullptr ? std::nullopt : v->as_double();
}

std::optional<bool> GgufFile::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != ValueType::kBool) return std::nullopt;
  return v->b;
}

std::optional<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != ValueType::kArray || v->elem_type != ValueType::kString) return std::nullopt;
  std::vector<std::string> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) out.push_back(e.str);
  return out;
}

std::optional<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != ValueType::kArray) return std::nullopt;
  std::vector<float> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) {
    std::optional<double> x = e.as_double();
    if (!x.has_value()) return std::nullopt;
    out.push_back(static_cast<float>(*x));
  }
  return out;
}

std::optional<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr || v->type != ValueType::kArray) return std::nullopt;
  std::vector<int64_t> out;
  out.reserve(v->arr.size());
  for (const Value& e : v->arr) {
    std::optional<int64_t> x = e.as_int();
    if (!x.has_value()) return std::nullopt;
    out.push_back(*x);
  }
  return out;
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace strata::gguf
