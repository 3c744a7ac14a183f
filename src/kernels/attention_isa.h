// Entry points of the instruction-set-specific attention files
// (attention_avx512.cc). Internal to src/kernels: callers go through
// attention.h, which checks CPUID before calling any of these.
//
// Thread-safety: reentrant; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/attention.h"

namespace strata::kernels::internal {

// Query rows (n_tok * n_heads) one AttendTileAvx512 call takes at most: the
// per-row state of a key chunk lives on the stack.
inline constexpr int32_t kMaxRowsAvx512 = kTileRows;

// AttendTile without the scratch row (rows are widened in registers).
// REQUIRES: the CPU runs Path::kAvx512, D <= kMaxHeadDimAvx512 (isa_kernels.h),
// 1 <= n_tok * n_heads <= kMaxRowsAvx512, type in {F32, F16, Q8_0}.
void AttendTileAvx512(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                      const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type,
                      int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride);

// The same on 8 lanes (attention_avx2.cc).
inline constexpr int32_t kMaxRowsAvx2 = kTileRows;
inline constexpr int32_t kMaxHeadDimAvx2 = 256;
// REQUIRES: the CPU runs Path::kAvx2, D <= kMaxHeadDimAvx2 and D % 8 == 0,
// 1 <= n_tok * n_heads <= kMaxRowsAvx2, type in {F32, F16, Q8_0}.
void AttendTileAvx2(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                    const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type,
                    int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride);

}  // namespace strata::kernels::internal
