// Block layouts of the quantized types strata computes with, byte for byte
// llama.cpp's (ggml-common.h): a GGUF tensor's rows are arrays of these.
// All multi-byte fields are little-endian; fp16 fields are IEEE half bits.
//
// 32-element blocks (element j of a block; "nibble" pairs: byte j holds
// element j in its low 4 bits and element j + 16 in its high 4 bits):
//   Q4_0:   w = d * (q - 8),        q: 4-bit nibble pairs
//   Q4_1:   w = d * q + m,          q: 4-bit nibble pairs
//   Q5_0:   w = d * (q - 16),       q: nibble pairs + bit j of qh as bit 4
//   Q5_1:   w = d * q + m,          q: nibble pairs + bit j of qh as bit 4
//   Q8_0:   w = d * q,              q: int8
//   IQ4_NL: w = d * kIq4nlValues[q], q: 4-bit nibble pairs
// Activation blocks (never stored in model files): Q8_1 (Q8_0 plus
// s = d * sum(q)) and Q8_K (256 elements, float d, sums of 16).
//
// 256-element super-blocks ("K-quants"): sub-blocks of 16 or 32 elements with
// their own quantized scale. The element order inside qs is not linear; see
// the dequantizers (kernels/quant_k.cc) for the exact bit positions.
//   Q2_K: 16 x 16, w = d * (sc & 15) * q - dmin * (sc >> 4), q 2-bit
//   Q3_K: 16 x 16, w = d * (s6 - 32) * (q - 4), q 2 bits + hmask bit (set: no -4)
//   Q4_K:  8 x 32, w = d * s6 * q - dmin * m6, q 4-bit (scales: 12 bytes of 6-bit pairs)
//   Q5_K:  8 x 32, as Q4_K with a fifth bit from qh
//   Q6_K: 16 x 16, w = d * sc * (q - 32), q 6-bit (4 low bits in ql, 2 in qh), sc int8
//   IQ4_XS: 8 x 32, w = d * (s6 - 32) * kIq4nlValues[q]
#pragma once

#include <cstdint>

namespace strata {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK32 = 32;    // elements per block of every 32-element type
inline constexpr int kQK_K = 256;   // elements per K-quant super-block
inline constexpr int kKScaleBytes = 12;

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

struct BlockQ4_1 {
  uint16_t d;             // fp16 scale
  uint16_t m;             // fp16 minimum (added)
  uint8_t qs[kQK32 / 2];  // nibble pairs
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block layout must match ggml");

struct BlockQ5_0 {
  uint16_t d;             // fp16 scale
  uint8_t qh[4];          // bit j: bit 4 of element j (little-endian uint32)
  uint8_t qs[kQK32 / 2];  // nibble pairs
};
static_assert(sizeof(BlockQ5_0) == 22, "Q5_0 block layout must match ggml");

struct BlockQ5_1 {
  uint16_t d;             // fp16 scale
  uint16_t m;             // fp16 minimum (added)
  uint8_t qh[4];          // bit j: bit 4 of element j
  uint8_t qs[kQK32 / 2];  // nibble pairs
};
static_assert(sizeof(BlockQ5_1) == 24, "Q5_1 block layout must match ggml");

struct BlockQ8_1 {
  uint16_t d;         // fp16 scale
  uint16_t s;         // fp16 of d * sum(qs)
  int8_t qs[kQK32];   // quants
};
static_assert(sizeof(BlockQ8_1) == 36, "Q8_1 block layout must match ggml");

struct BlockIQ4_NL {
  uint16_t d;             // fp16 scale
  uint8_t qs[kQK32 / 2];  // nibble pairs: indices into kIq4nlValues
};
static_assert(sizeof(BlockIQ4_NL) == 18, "IQ4_NL block layout must match ggml");

struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // per 16: low 4 bits scale, high 4 bits min
  uint8_t qs[kQK_K / 4];       // 2-bit quants
  uint16_t d;                  // fp16 super-block scale of the scales
  uint16_t dmin;               // fp16 super-block scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84, "Q2_K block layout must match ggml");

struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];       // high bit of each quant
  uint8_t qs[kQK_K / 4];          // low 2 bits
  uint8_t scales[kKScaleBytes];   // 16 6-bit scales
  uint16_t d;                     // fp16 super-block scale
};
static_assert(sizeof(BlockQ3_K) == 110, "Q3_K block layout must match ggml");

struct BlockQ4_K {
  uint16_t d;                     // fp16 super-block scale of the scales
  uint16_t dmin;                  // fp16 super-block scale of the mins
  uint8_t scales[kKScaleBytes];   // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[kQK_K / 2];          // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block layout must match ggml");

struct BlockQ5_K {
  uint16_t d;                     // fp16 super-block scale of the scales
  uint16_t dmin;                  // fp16 super-block scale of the mins
  uint8_t scales[kKScaleBytes];   // 8 6-bit scales and 8 6-bit mins
  uint8_t qh[kQK_K / 8];          // fifth bits
  uint8_t qs[kQK_K / 2];          // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block layout must match ggml");

struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];       // low 4 bits
  uint8_t qh[kQK_K / 4];       // high 2 bits
  int8_t scales[kQK_K / 16];   // 8-bit scales
  uint16_t d;                  // fp16 super-block scale
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block layout must match ggml");

struct BlockQ8_K {
  float d;                     // scale
  int8_t qs[kQK_K];            // quants
  int16_t bsums[kQK_K / 16];   // sum of each 16 quants
};
static_assert(sizeof(BlockQ8_K) == 292, "Q8_K block layout must match ggml");

struct BlockIQ4_XS {
  uint16_t d;                  // fp16 super-block scale
  uint16_t scales_h;           // high 2 bits of the 8 6-bit scales
  uint8_t scales_l[kQK_K / 64];  // low 4 bits of the 8 scales
  uint8_t qs[kQK_K / 2];       // nibble pairs per 32: indices into kIq4nlValues
};
static_assert(sizeof(BlockIQ4_XS) == 136, "IQ4_XS block layout must match ggml");

// The 16 non-linear levels of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace strata
