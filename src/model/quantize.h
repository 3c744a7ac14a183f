// Model quantization: rewrites a GGUF model in a llama.cpp file type (Q4_K_M,
// Q6_K, Q8_0, ...) the way llama-quantize does without an importance matrix:
// the same type for every tensor (model/quant_mix.h), the same blocks
// (kernels' reference quantizers, bit-identical to ggml's), the same tensor
// order, metadata and layout, so an F32 or F16 input gives the file
// llama-quantize writes, byte for byte.
//
// Tensors llama-quantize leaves alone (norms, 1-D tensors, routers) and
// tensors already in their chosen type are copied byte for byte. A tensor
// quantized in another format is dequantized and requantized (reported in
// QuantizeResult::requantized: rounding errors compound, so callers should
// warn). Metadata is copied in order, without split keys; then
// general.quantization_version = 2 and general.file_type are appended.
//
// Thread-safety: QuantizeModel and PlanQuantization are reentrant.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"
#include "format/gguf.h"
#include "model/quant_mix.h"

namespace strata {

// llama.cpp's LLAMA_FTYPE for a model whose weights are mostly of type t
// (F32 -> 0 (ALL_F32), F16 -> 1, Q4_0 -> 2, Q8_0 -> 7, BF16 -> 32, ...; the
// K types -> their _M mixes); nullopt for types no file type is named after.
std::optional<uint32_t> LlamaFileType(DType t);

struct QuantizeOptions {
  FileType ftype = FileType::kQ8_0;
  int n_threads = 1;  // >= 1
  bool pure = false;  // every matrix in DefaultType(ftype), up to fallbacks (llama-quantize --pure)
};

// One tensor of the output, in file order.
struct QuantizedTensor {
  std::string name;
  DType from = DType::kF32, to = DType::kF32;
  uint64_t bytes_in = 0, bytes_out = 0;
  bool fallback = false;  // `to` replaces a type its rows do not fit
};

struct QuantizeResult {
  std::vector<QuantizedTensor> tensors;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data of the input and the output
  uint64_t n_elements = 0;               // weights of all tensors
  std::vector<std::string> requantized;  // tensors converted from another quantized type
};

// The output's tensors without writing anything. Errors: as QuantizeModel's
// for the plan (unsupported source type of a tensor to convert, bad metadata).
[[nodiscard]] Status PlanQuantization(const gguf::GgufFile& in, const QuantizeOptions& options, QuantizeResult* plan);

// progress(done_bytes, total_bytes) of the output's tensor data, after each tensor.
using QuantizeProgress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

// Reads the GGUF at in_path and writes the quantized model to out_path
// atomically (out_path is untouched on failure; it may equal in_path).
// result (optional) receives the plan. Errors: kInvalidArgument for
// n_threads < 1; the reader's and writer's errors; kUnsupported naming a
// tensor of a type strata cannot dequantize that would need converting;
// kCorrupt for missing {arch}.block_count.
[[nodiscard]] Status QuantizeModel(Env* env, const std::string& in_path, const std::string& out_path,
                                   const QuantizeOptions& options, QuantizeResult* result = nullptr,
                                   const QuantizeProgress& progress = nullptr);

}  // namespace strata
