// 32-row panels of quantized weights (quant_panels.h) on the AVX2 path,
// shared by the AVX2 matmul files (matmul_avx2.cc: Q8_0, Q4_0; matmul_k_avx2.cc:
// Q4_K). A panel's 32 rows are 4 groups of 8, one after the other, one row
// per 32-bit lane of a vector; a register tile (kTileRows = 8) multiplies
// one group's rows with T tokens. Internal to src/kernels.
//
// Everything here has internal linkage (see kernels/matmul_tasks.h for why).
// REQUIRES: included only from files compiled for AVX2 (CMakeLists.txt).
// Thread-safety: as kernels.h.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/quant_panels.h"

namespace strata::kernels::internal {
namespace {

constexpr int kGroupRows = 8;
static_assert(kPanelRows % kGroupRows == 0);

// 4 activation bytes as one int32 (for a broadcast).
int32_t LoadI32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// y[t0 .. t0+T-1][o0 .. o0+7] from the 8 lanes of acc[t]; rows >= n_out are not stored.
template <int T>
void StoreGroup(const __m256 (&acc)[T], float* y, int64_t n_out, int64_t o0, int64_t t0) {
  const int64_t n_rows = std::min<int64_t>(kGroupRows, n_out - o0);
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * n_out + o0;
    if (n_rows == kGroupRows) {
      _mm256_storeu_ps(yt, acc[t]);
    } else {
      alignas(32) float out[kGroupRows];
      _mm256_store_ps(out, acc[t]);
      std::copy(out, out + n_rows, yt);
    }
  }
}

}  // namespace
}  // namespace strata::kernels::internal
