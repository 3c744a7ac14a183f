// Row (de)quantizers of every type strata computes with, internal to src/kernels
// (callers go through QuantizeRow / DequantizeRow and the type traits table,
// kernels/type_traits.h).
//
// Each Dequantize* is ggml's dequantize_row_* and each Quantize* the
// quantization llama-quantize writes without an importance matrix (ggml's
// quantize_row_*_ref, whose search heuristics are in quant_search.h),
// bit for bit: same float operations in the same order (tests/ggml_types_test.cc
// compares them with ggml itself).
//
// Signatures: x: F32 [n] -> y: n / block_size blocks, and back.
// REQUIRES: n % block_size == 0; x finite (non-finite inputs give unspecified
// but memory-safe blocks, as in ggml).
// Thread-safety: reentrant.
#pragma once

#include <cstdint>

#include "core/quant_blocks.h"

namespace strata::kernels::internal {

// Plain number types (quantize.cc).
void QuantizeF32(const float* x, void* y, int64_t n);
void QuantizeF16(const float* x, void* y, int64_t n);
void QuantizeBF16(const float* x, void* y, int64_t n);
void DequantizeF32(const void* x, float* y, int64_t n);
void DequantizeF16(const void* x, float* y, int64_t n);
void DequantizeBF16(const void* x, float* y, int64_t n);

// 32-element blocks (quant_blocks32.cc).
void QuantizeQ4_0(const float* x, void* y, int64_t n);
void QuantizeQ4_1(const float* x, void* y, int64_t n);
void QuantizeQ5_0(const float* x, void* y, int64_t n);
void QuantizeQ5_1(const float* x, void* y, int64_t n);
void QuantizeQ8_0(const float* x, void* y, int64_t n);
void QuantizeQ8_1(const float* x, void* y, int64_t n);
void DequantizeQ4_0(const void* x, float* y, int64_t n);
void DequantizeQ4_1(const void* x, float* y, int64_t n);
void DequantizeQ5_0(const void* x, float* y, int64_t n);
void DequantizeQ5_1(const void* x, float* y, int64_t n);
void DequantizeQ8_0(const void* x, float* y, int64_t n);
void DequantizeQ8_1(const void* x, float* y, int64_t n);

// K-quant super-blocks of 256 (quant_k.cc).
void QuantizeQ2_K(const float* x, void* y, int64_t n);
void QuantizeQ3_K(const float* x, void* y, int64_t n);
void QuantizeQ4_K(const float* x, void* y, int64_t n);
void QuantizeQ5_K(const float* x, void* y, int64_t n);
void QuantizeQ6_K(const float* x, void* y, int64_t n);
// Activations for the K-quant dot products; bsums are set for every block.
void QuantizeQ8_K(const float* x, void* y, int64_t n);
void DequantizeQ2_K(const void* x, float* y, int64_t n);
void DequantizeQ3_K(const void* x, float* y, int64_t n);
void DequantizeQ4_K(const void* x, float* y, int64_t n);
void DequantizeQ5_K(const void* x, float* y, int64_t n);
void DequantizeQ6_K(const void* x, float* y, int64_t n);
void DequantizeQ8_K(const void* x, float* y, int64_t n);

// One 256-element super-block of Q2_K .. Q6_K or IQ4_XS as integers: element
// 16 s + l (or 32 s + l) of sub-block s is
//   w = (d * scale[s]) * q - (dmin * min[s])   (the min term only if has_min)
// which is how the dequantizers compute it; the dot products use the same
// integers (kernels/vec_dot.cc).
struct SuperBlockCodes {
  int sub_size;          // elements per sub-block: 16 or 32
  bool has_min;          // Q2_K, Q4_K, Q5_K
  float d, dmin;         // super-block scales (dmin 0 without mins)
  int8_t q[kQK_K];       // codes in element order
  int16_t scale[16];     // integer scale per sub-block
  int16_t min[16];       // integer min per sub-block
};
void DecodeQ2_K(const void* block, SuperBlockCodes* out);
void DecodeQ3_K(const void* block, SuperBlockCodes* out);
void DecodeQ4_K(const void* block, SuperBlockCodes* out);
void DecodeQ5_K(const void* block, SuperBlockCodes* out);
void DecodeQ6_K(const void* block, SuperBlockCodes* out);
void DecodeIQ4_XS(const void* block, SuperBlockCodes* out);
// y: F32 [256] from decoded codes.
void DequantizeCodes(const SuperBlockCodes& c, float* y);

// Non-linear 4-bit levels (quant_iq4.cc). QuantizeIQ4_NL is what
// llama-quantize writes (ggml's quantize_iq4_nl: a search over 15 scales per
// block), not ggml's quantize_row_iq4_nl_ref, a cheaper variant without the
// search that no file writer uses.
void QuantizeIQ4_NL(const float* x, void* y, int64_t n);
void QuantizeIQ4_XS(const float* x, void* y, int64_t n);
void DequantizeIQ4_NL(const void* x, float* y, int64_t n);
void DequantizeIQ4_XS(const void* x, float* y, int64_t n);

}  // namespace strata::kernels::internal
