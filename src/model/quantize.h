// Model quantization: rewrites a GGUF model with its weight matrices in
// another element type (what llama.cpp's `llama-quantize` does for the types
// strata computes with).
//
// Which tensors change: every 2-D tensor named "*.weight" whose ne[0] is a
// multiple of the target's block size (token_embd.weight and output.weight
// included, as llama.cpp does for these types). Everything else (1-D norms,
// matrices whose rows do not split into blocks) is copied byte for byte.
// A converted tensor must be F32, F16 or BF16 (read via DequantizeRow), or
// already of the target type (copied). A tensor quantized in another format
// is refused with kUnsupported: requantizing compounds rounding error, so
// strata converts only from float weights.
//
// Metadata is copied in order; general.file_type is set to llama.cpp's
// LLAMA_FTYPE for the target, and general.quantization_version to 2 for
// quantized targets (the ggml block layout version).
//
// Thread-safety: QuantizeModel is reentrant; it owns its thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"

namespace strata {

// llama.cpp's LLAMA_FTYPE for a model whose weights are mostly of type t:
// F32 -> 0 (ALL_F32), F16 -> 1, Q4_0 -> 2, Q8_0 -> 7, BF16 -> 32;
// nullopt for other types.
std::optional<uint32_t> LlamaFileType(DType t);

// progress(done_bytes, total_bytes) of the output's tensor data, after each tensor.
using QuantizeProgress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

// Reads the GGUF at in_path and writes the converted model to out_path
// atomically (out_path is untouched on failure; it may equal in_path).
// REQUIRES: type in {q8_0, q4_0, f16} (else kInvalidArgument naming them);
// n_threads >= 1.
[[nodiscard]] Status QuantizeModel(Env* env, const std::string& in_path, const std::string& out_path,
                                   DType type, int n_threads, const QuantizeProgress& progress = nullptr);

}  // namespace strata
