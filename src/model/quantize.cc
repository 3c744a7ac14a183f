#include "model/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "format/gguf_writer.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace strata {
namespace {

// Keys llama-quantize does not copy (it writes one file) or sets itself (appended last).
bool IsDroppedKey(const std::string& key) {
  return key == "split.no" || key == "split.count" || key == "split.tensors.count" ||
         key == "general.quantization_version" || key == "general.file_type";
}

// Dimensions as llama.cpp writes them: trailing 1s dropped (ggml_n_dims).
std::vector<int64_t> Dims(const Tensor& t) {
  int n = 4;
  while (n > 1 && t.ne[n - 1] == 1) --n;
  return std::vector<int64_t>(t.ne.begin(), t.ne.begin() + n);
}

// The input's tensors in llama.cpp's order.
std::vector<const gguf::TensorInfo*> LlamaOrder(const gguf::GgufFile& in) {
  std::vector<const gguf::TensorInfo*> order;
  for (const gguf::TensorInfo& t : in.tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [](const gguf::TensorInfo* a, const gguf::TensorInfo* b) { return LlamaTensorLess(a->name, b->name); });
  return order;
}

// Producer converting src row by row into target, in parallel. src and pool
// must outlive the producer's use.
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

}  // namespace

std::optional<uint32_t> LlamaFileType(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kBF16: return 32;
    default: break;
  }
  for (FileType f : {FileType::kQ4_0, FileType::kQ4_1, FileType::kQ8_0, FileType::kQ5_0, FileType::kQ5_1,
                     FileType::kQ2_K, FileType::kQ3_K_M, FileType::kQ4_K_M, FileType::kQ5_K_M, FileType::kQ6_K,
                     FileType::kIQ4_NL, FileType::kIQ4_XS})
    if (DefaultType(f) == t) return static_cast<uint32_t>(f);
  return std::nullopt;
}

Status PlanQuantization(const gguf::GgufFile& in, const QuantizeOptions& options, QuantizeResult* plan) {
  *plan = QuantizeResult{};
  MixFacts facts;
  STRATA_RETURN_IF_ERROR(ReadMixFacts(in, &facts));
  std::vector<std::string> names;
  for (const gguf::TensorInfo& t : in.tensors()) names.push_back(t.name);
  TensorTypeChooser chooser(options.ftype, facts, names, options.pure);
  for (const gguf::TensorInfo* t : LlamaOrder(in)) {
    TensorTypeChooser::Choice choice;
    STRATA_RETURN_IF_ERROR(chooser.Choose(*t, &choice));
    QuantizedTensor q{t->name, t->tensor.type, choice.type, t->nbytes, t->nbytes, choice.fallback};
    if (q.to != q.from) {
      if (!Info(q.from).supported)
        return Status::Unsupported(fmt::format("tensor {} is {}, which strata cannot dequantize (supported: {})",
                                               t->name, DTypeName(q.from), SupportedDTypeNames()));
      q.bytes_out = *RowBytes(q.to, static_cast<uint64_t>(t->tensor.cols())) * static_cast<uint64_t>(t->tensor.rows());
      if (Info(q.from).quantized) plan->requantized.push_back(t->name);
    }
    plan->bytes_in += q.bytes_in;
    plan->bytes_out += q.bytes_out;
    plan->n_elements += static_cast<uint64_t>(t->tensor.elements());
    plan->tensors.push_back(std::move(q));
  }
  return Status::Ok();
}

Status QuantizeModel(Env* env, const std::string& in_path, const std::string& out_path,
                     const QuantizeOptions& options, QuantizeResult* result, const QuantizeProgress& progress) {
  if (options.n_threads < 1) return Status::InvalidArgument("n_threads must be >= 1");
  std::unique_ptr<gguf::GgufFile> in;
  STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(env, in_path, &in));
  QuantizeResult plan;
  STRATA_RETURN_IF_ERROR(PlanQuantization(*in, options, &plan));

  gguf::GgufWriter writer(static_cast<uint32_t>(in->alignment()));
  for (const gguf::KeyValue& kv : in->metadata())
    if (!IsDroppedKey(kv.key)) writer.SetValue(kv.key, kv.value);
  writer.SetU32("general.quantization_version", 2);
  writer.SetU32("general.file_type", static_cast<uint32_t>(options.ftype));

  ThreadPool pool(options.n_threads);
  for (const QuantizedTensor& q : plan.tensors) {
    const gguf::TensorInfo& t = *in->FindTensor(q.name);
    if (q.to == q.from) {
      STRATA_RETURN_IF_ERROR(writer.AddTensor(q.name, q.from, Dims(t.tensor), t.tensor.data));
    } else {
      STRATA_RETURN_IF_ERROR(writer.AddTensor(q.name, q.to, Dims(t.tensor), ConvertRows(t.tensor, q.to, &pool)));
    }
  }
  STRATA_RETURN_IF_ERROR(writer.Write(env, out_path, progress));
  if (result != nullptr) *result = std::move(plan);
  return Status::Ok();
}

}  // namespace strata
