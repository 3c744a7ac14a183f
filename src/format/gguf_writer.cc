#include "format/gguf_writer.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace strata::gguf {
namespace {

constexpr const char* kAlignmentKey = "general.alignment";

template <class T>
void Put(std::string* out, T x) {
  char b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));  // hosts are little-endian, as the format
  out->append(b, sizeof(T));
}

void PutString(std::string* out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s);
}

// Appends the encoding of v's payload (its type tag is written by the caller).
Status PutValue(std::string* out, const Value& v) {
  switch (v.type) {
    case ValueType::kUint8: Put(out, static_cast<uint8_t>(v.u)); return Status::Ok();
    case ValueType::kInt8: Put(out, static_cast<int8_t>(v.i)); return Status::Ok();
    case ValueType::kUint16: Put(out, static_cast<uint16_t>(v.u)); return Status::Ok();
    case ValueType::kInt16: Put(out, static_cast<int16_t>(v.i)); return Status::Ok();
    case ValueType::kUint32: Put(out, static_cast<uint32_t>(v.u)); return Status::Ok();
    case ValueType::kInt32: Put(out, static_cast<int32_t>(v.i)); return Status::Ok();
    case ValueType::kUint64: Put(out, v.u); return Status::Ok();
    case ValueType::kInt64: Put(out, v.i); return Status::Ok();
    case ValueType::kFloat32: Put(out, static_cast<float>(v.f)); return Status::Ok();
    case ValueType::kFloat64: Put(out, v.f); return Status::Ok();
    case ValueType::kBool: Put<uint8_t>(out, v.b ? 1 : 0); return Status::Ok();
    case ValueType::kString: PutString(out, v.str); return Status::Ok();
    case ValueType::kArray: {
      Put(out, static_cast<uint32_t>(v.elem_type));
      Put<uint64_t>(out, v.arr.size());
      for (const Value& e : v.arr) {
        if (e.type != v.elem_type) {
          return Status::InvalidArgument(std::string("array of ") + ValueTypeName(v.elem_type) + " holds a " +
                                         ValueTypeName(e.type));
        }
        STRATA_RETURN_IF_ERROR(PutValue(out, e));
      }
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

Value Scalar(ValueType t) {
  Value v;
  v.type = t;
  return v;
}

template <class T>
Value NumericArray(ValueType elem, const std::vector<T>& xs, void (*set)(Value*, T)) {
  Value v = Scalar(ValueType::kArray);
  v.elem_type = elem;
  v.arr.reserve(xs.size());
  for (T x : xs) {
    Value e = Scalar(elem);
    set(&e, x);
    v.arr.push_back(std::move(e));
  }
  return v;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {}

void GgufWriter::SetValue(std::string key, Value v) {
  auto it = std::find_if(kv_.begin(), kv_.end(), [&](const KeyValue& kv) { return kv.key == key; });
  if (it != kv_.end()) {
    it->value = std::move(v);
    return;
  }
  kv_.push_back({std::move(key), std::move(v)});
}

void GgufWriter::SetString(std::string key, std::string v) {
  Value x = Scalar(ValueType::kString);
  x.str = std::move(v);
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetU32(std::string key, uint32_t v) {
  Value x = Scalar(ValueType::kUint32);
  x.u = v;
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetI32(std::string key, int32_t v) {
  Value x = Scalar(ValueType::kInt32);
  x.i = v;
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetU64(std::string key, uint64_t v) {
  Value x = Scalar(ValueType::kUint64);
  x.u = v;
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetF32(std::string key, float v) {
  Value x = Scalar(ValueType::kFloat32);
  x.f = v;
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetBool(std::string key, bool v) {
  Value x = Scalar(ValueType::kBool);
  x.b = v;
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetStringArray(std::string key, const std::vector<std::string>& v) {
  Value x = Scalar(ValueType::kArray);
  x.elem_type = ValueType::kString;
  x.arr.reserve(v.size());
  for (const std::string& s : v) {
    Value e = Scalar(ValueType::kString);
    e.str = s;
    x.arr.push_back(std::move(e));
  }
  SetValue(std::move(key), std::move(x));
}

void GgufWriter::SetF32Array(std::string key, const std::vector<float>& v) {
  SetValue(std::move(key), NumericArray<float>(ValueType::kFloat32, v, [](Value* e, float f) { e->f = f; }));
}

void GgufWriter::SetI32Array(std::string key, const std::vector<int32_t>& v) {
  SetValue(std::move(key), NumericArray<int32_t>(ValueType::kInt32, v, [](Value* e, int32_t i) { e->i = i; }));
}

Status GgufWriter::AddTensor(std::string name, DType type, std::vector<int64_t> ne, Producer producer) {
  if (std::any_of(tensors_.begin(), tensors_.end(), [&](const PendingTensor& t) { return t.name == name; })) {
    return Status::InvalidArgument("duplicate tensor name '" + name + "'");
  }
  if (ne.empty() || ne.size() > 4) {
    return Status::InvalidArgument("tensor '" + name + "' has " + std::to_string(ne.size()) + " dims, not 1..4");
  }
  uint64_t rows = 1;
  for (int64_t n : ne) {
    if (n <= 0) return Status::InvalidArgument("tensor '" + name + "' has a dimension <= 0");
  }
  for (size_t d = 1; d < ne.size(); ++d) {
    if (__builtin_mul_overflow(rows, static_cast<uint64_t>(ne[d]), &rows)) {
      return Status::InvalidArgument("tensor '" + name + "' is too large");
    }
  }
  std::optional<uint64_t> row = RowBytes(type, static_cast<uint64_t>(ne[0]));
  if (!row.has_value()) {
    return Status::InvalidArgument("tensor '" + name + "' ne[0] = " + std::to_string(ne[0]) +
                                   " is not a multiple of the " + DTypeName(type) + " block size");
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(*row, rows, &nbytes)) {
    return Status::InvalidArgument("tensor '" + name + "' is too large");
  }
  tensors_.push_back({std::move(name), type, std::move(ne), nbytes, std::move(producer)});
  return Status::Ok();
}

Status GgufWriter::AddTensor(std::string name, DType type, std::vector<int64_t> ne, const void* data) {
  return AddTensor(std::move(name), type, std::move(ne), [data](uint8_t* dst, uint64_t nbytes) {
    std::memcpy(dst, data, nbytes);
    return Status::Ok();
  });
}

Status GgufWriter::Header(std::string* out) const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
    return Status::InvalidArgument("alignment " + std::to_string(alignment_) + " is not a power of two");
  }
  std::vector<const KeyValue*> kvs;
  for (const KeyValue& kv : kv_) {
    if (kv.key != kAlignmentKey) {
      kvs.push_back(&kv);
    } else if (kv.value.type != ValueType::kUint32 || kv.value.u != alignment_) {
      return Status::InvalidArgument(std::string(kAlignmentKey) + " conflicts with the writer's alignment " +
                                     std::to_string(alignment_));
    }
  }
  KeyValue align{kAlignmentKey, Scalar(ValueType::kUint32)};
  align.value.u = alignment_;
  if (alignment_ != kDefaultAlignment) kvs.push_back(&align);

  Put(out, kMagic);
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, kvs.size());
  for (const KeyValue* kv : kvs) {
    PutString(out, kv->key);
    Put(out, static_cast<uint32_t>(kv->value.type));
    Status s = PutValue(out, kv->value);
    if (!s.ok()) return s.WithContext("metadata key '" + kv->key + "'");
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) Put<uint64_t>(out, static_cast<uint64_t>(n));
    Put(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offset = AlignUp(offset + t.nbytes, alignment_);
  }
  out->resize(AlignUp(out->size(), alignment_), '\0');
  return Status::Ok();
}

Status GgufWriter::WriteTo(AtomicFileWriter* file, const std::function<void(uint64_t, uint64_t)>& progress) const {
  std::string buf;
  STRATA_RETURN_IF_ERROR(Header(&buf));
  STRATA_RETURN_IF_ERROR(file->Append(buf));
  uint64_t total = 0;
  for (const PendingTensor& t : tensors_) total += t.nbytes;
  uint64_t done = 0;
  for (const PendingTensor& t : tensors_) {
    // Every tensor is padded to the alignment, the last one too (as llama.cpp
    // and gguf-py write files).
    const uint64_t padded = AlignUp(t.nbytes, alignment_);
    buf.assign(static_cast<size_t>(padded), '\0');
    Status s = t.producer(reinterpret_cast<uint8_t*>(buf.data()), t.nbytes);
    if (!s.ok()) return s.WithContext("tensor '" + t.name + "'");
    STRATA_RETURN_IF_ERROR(file->Append(buf));
    done += t.nbytes;
    if (progress) progress(done, total);
  }
  return Status::Ok();
}

Status GgufWriter::Write(Env* env, const std::string& path,
                         const std::function<void(uint64_t, uint64_t)>& progress) const {
  AtomicFileWriter file(env, path);  // on failure, removes its temp file; the destination is untouched
  STRATA_RETURN_IF_ERROR(file.Open());
  STRATA_RETURN_IF_ERROR(WriteTo(&file, progress));
  return file.Commit();
}

}  // namespace strata::gguf
