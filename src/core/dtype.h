// Element types of tensors, with ggml's numeric values (they are stored in GGUF
// files, so the values are a file-format contract: append-only), and their
// traits table: name, block size, bytes per block and whether strata computes
// with the type. Every type ggml defines is listed, so any GGUF file's tensor
// table can be read and printed; the ones strata cannot compute with are
// refused by name when a model is loaded.
//
// The block layouts are byte-for-byte llama.cpp's (core/quant_blocks.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/quant_blocks.h"

namespace strata {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
  kNVFP4 = 40,
  kQ1_0 = 41,
  kQ2_0 = 42,
};

struct DTypeInfo {
  const char* name;    // ggml's name: "f32", "q8_0", "q4_K", ...
  int block_size;      // elements per block (1 for scalar types)
  int type_size;       // bytes per block
  bool supported;      // strata computes with it (weights of a model it loads)
  bool quantized;      // a block format (not a plain number type)
};

// Returns nullopt for values ggml never assigned (or retired).
std::optional<DTypeInfo> GetDTypeInfo(uint32_t raw);
// REQUIRES: t is an enumerator.
const DTypeInfo& Info(DType t);
inline const char* DTypeName(DType t) { return Info(t).name; }
// Parses "f32", "F16", "q8_0", "Q4_K", ... (case-insensitive).
std::optional<DType> ParseDType(std::string_view name);
// "f32, f16, bf16, q4_0, ...": the supported types, for error messages.
std::string SupportedDTypeNames();

// Bytes of a row of n elements; nullopt if n is not a multiple of the block
// size or the product overflows.
std::optional<uint64_t> RowBytes(DType t, uint64_t n);

}  // namespace strata
