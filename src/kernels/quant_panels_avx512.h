// 32-row panels of quantized weights (quant_panels.h) on the AVX-512 path,
// shared by the AVX-512 matmul files (matmul_avx512.cc: Q8_0, Q4_0;
// matmul_k_avx512.cc: the K-quants). Internal to src/kernels.
//
// A panel's 32 rows are two groups of 16, one row per 32-bit lane of a
// vector. A panel is one record per block of the weight type (32 or 256
// inputs), each of exactly the bytes the 32 rows' blocks take in the file;
// each weight type defines its record's layout. A register tile of 32 rows x
// T tokens multiplies one panel: every loaded weight vector is reused by T
// tokens, every broadcast activation group by both row groups.
//
// Everything here has internal linkage (see kernels/matmul_tasks.h for why).
// REQUIRES: included only from files compiled for AVX-512 (CMakeLists.txt).
// Thread-safety: as kernels.h.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/quant_panels.h"

// Register-tile loops have compile-time trip counts and must be fully
// unrolled so their arrays live in registers; GCC does that only at -O3
// without this (-O2 measured 3x slower).
#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 16;
static_assert(kPanelRows == 2 * kLanes);

__mmask16 LaneMask(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// The register tiles' output y[t0 .. t0+T-1][o0 .. o0+31]: acc0[t] holds rows
// o0 .. o0+15 of token t0+t, acc1[t] the next 16. Rows past n_out are neither
// loaded nor stored.
template <int T>
void LoadOutTile(const float* y, int64_t n_out, int64_t o0, int64_t t0, bool accumulate, __m512 (&acc0)[T],
                 __m512 (&acc1)[T]) {
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    const float* yt = y + (t0 + t) * n_out + o0;
    acc0[t] = accumulate ? _mm512_maskz_loadu_ps(m0, yt) : _mm512_setzero_ps();
    acc1[t] = accumulate ? _mm512_maskz_loadu_ps(m1, yt + kLanes) : _mm512_setzero_ps();
  }
}

template <int T>
void StoreOutTile(float* y, int64_t n_out, int64_t o0, int64_t t0, const __m512 (&acc0)[T], const __m512 (&acc1)[T]) {
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * n_out + o0;
    _mm512_mask_storeu_ps(yt, m0, acc0[t]);
    _mm512_mask_storeu_ps(yt + kLanes, m1, acc1[t]);
  }
}

}  // namespace
}  // namespace strata::kernels::internal
