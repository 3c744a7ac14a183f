// Element types of tensors, with ggml's numeric values (they are stored in GGUF
// files, so the values are a file-format contract: append-only).
//
// Block layouts are byte-for-byte llama.cpp's (ggml-common.h):
//   Q8_0: 32 weights per block, { fp16 d; int8 qs[32]; }            34 bytes, w = d*q
//   Q4_0: 32 weights per block, { fp16 d; uint8 qs[16]; }           18 bytes,
//         weight j (j<16) = d*((qs[j] & 0xF) - 8), weight j+16 = d*((qs[j] >> 4) - 8)
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

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
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;

struct BlockQ8_0 {
  uint16_t d;           // fp16 scale
  int8_t qs[kQK8_0];    // quants
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block layout must match ggml");

struct BlockQ4_0 {
  uint16_t d;              // fp16 scale
  uint8_t qs[kQK4_0 / 2];  // nibbles: low = elements 0..15, high = 16..31
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block layout must match ggml");

struct DTypeInfo {
  const char* name;    // ggml's name: "f32", "q8_0", ...
  int block_size;      // elements per block (1 for scalar types)
  int type_size;       // bytes per block
  bool supported;      // strata can compute with it
};

// Returns nullopt for values ggml never assigned.
std::optional<DTypeInfo> GetDTypeInfo(uint32_t raw);
// REQUIRES: GetDTypeInfo(t) has a value (any enumerator does).
const DTypeInfo& Info(DType t);
inline const char* DTypeName(DType t) { return Info(t).name; }
// Parses "f32", "F16", "q8_0", ... (case-insensitive).
std::optional<DType> ParseDType(std::string_view name);

// Bytes of a row of n elements; nullopt if n is not a multiple of the block
// size or the product overflows.
std::optional<uint64_t> RowBytes(DType t, uint64_t n);

}  // namespace strata
