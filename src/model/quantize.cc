#include "model/quantize.h"

#include <cstring>
#include <memory>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"

namespace strata {
namespace {

bool IsTargetType(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kF16; }

bool IsFloatType(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True if the tensor is a weight matrix that the target type can hold row by row.
bool ShouldConvert(const gguf::TensorInfo& t, DType target) {
  return t.n_dims == 2 && EndsWith(t.name, ".weight") && t.tensor.ne[0] % Info(target).block_size == 0;
}

std::vector<int64_t> Dims(const gguf::TensorInfo& t) {
  return std::vector<int64_t>(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims);
}

// Producer converting src (a float matrix) row by row into target, in parallel.
// src and pool must outlive the producer's use.
gguf::GgufWriter::Producer ConvertRows(const Tensor& src, DType target, ThreadPool* pool) {
  return [src, target, pool](uint8_t* dst, uint64_t nbytes) -> Status {
    const int64_t cols = src.cols();
    const uint64_t out_row_bytes = *RowBytes(target, static_cast<uint64_t>(cols));
    if (nbytes != out_row_bytes * static_cast<uint64_t>(src.rows()))
      return Status::Internal("output size does not match the tensor's rows");
    pool->ParallelFor(src.rows(), 1, [&](int64_t begin, int64_t end) {
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = begin; r < end; ++r) {
        kernels::DequantizeRow(src.type, src.row(r), row.data(), cols);
        kernels::QuantizeRow(target, row.data(), dst + static_cast<uint64_t>(r) * out_row_bytes, cols);
      }
    });
    return Status::Ok();
  };
}

Status AddTensor(const gguf::TensorInfo& t, DType target, ThreadPool* pool, gguf::GgufWriter* writer) {
  const DType src_type = t.tensor.type;
  if (!ShouldConvert(t, target) || src_type == target)
    return writer->AddTensor(t.name, src_type, Dims(t), t.tensor.data);
  if (!IsFloatType(src_type)) {
    return Status::Unsupported("tensor '" + t.name + "' is already quantized as " + DTypeName(src_type) +
                               "; requantizing is refused, quantize from an f32/f16/bf16 model");
  }
  return writer->AddTensor(t.name, target, Dims(t), ConvertRows(t.tensor, target, pool));
}

}  // namespace

std::optional<uint32_t> LlamaFileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ8_0: return 7;
    case DType::kBF16: return 32;
    default: return std::nullopt;
  }
}

Status QuantizeModel(Env* env, const std::string& in_path, const std::string& out_path, DType type,
                     int n_threads, const QuantizeProgress& progress) {
  if (!IsTargetType(type))
    return Status::InvalidArgument(std::string("unsupported quantization type '") + DTypeName(type) +
                                   "' (allowed: q8_0, q4_0, f16)");
  if (n_threads < 1) return Status::InvalidArgument("n_threads must be >= 1");

  std::unique_ptr<gguf::GgufFile> in;
  STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(env, in_path, &in));

  gguf::GgufWriter writer(static_cast<uint32_t>(in->alignment()));
  for (const gguf::KeyValue& kv : in->metadata()) {
    if (kv.key != "general.alignment") writer.SetValue(kv.key, kv.value);  // the writer records its own
  }
  writer.SetU32("general.file_type", *LlamaFileType(type));
  if (type != DType::kF16) writer.SetU32("general.quantization_version", 2);

  ThreadPool pool(n_threads);
  for (const gguf::TensorInfo& t : in->tensors())
    STRATA_RETURN_IF_ERROR(AddTensor(t, type, &pool, &writer));
  return writer.Write(env, out_path, progress);
}

}  // namespace strata
