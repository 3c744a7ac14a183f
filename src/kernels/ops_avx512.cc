// AVX-512 row operations. Tails use masked loads/stores, so every element goes
// through the same vector code.
#include <immintrin.h>

#include <cmath>
#include <limits>

// GCC 12's _mm512_undefined_ps (used inside reduce/max intrinsics)
// self-initializes, which -Wuninitialized reports at every inlined call site.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/exp_avx512.h"
#include "kernels/isa_kernels.h"

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 16;

__mmask16 TailMask(int64_t remaining) {
  return remaining >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << remaining) - 1);
}

}  // namespace

void RmsNormAvx512(const float* x, const float* weight, float* out, int64_t n, float eps) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + kLanes);
    acc0 = _mm512_fmadd_ps(a, a, acc0);
    acc1 = _mm512_fmadd_ps(b, b, acc1);
  }
  for (; i < n; i += kLanes) {
    const __m512 a = _mm512_maskz_loadu_ps(TailMask(n - i), x + i);
    acc0 = _mm512_fmadd_ps(a, a, acc0);
  }
  const float ss = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
  for (i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    const __m512 v = _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m, x + i));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, weight + i), v));
  }
}

void SoftmaxAvx512(float* x, int64_t n) {
  if (n <= 0) return;
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n; i += kLanes)
    vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(vmax, TailMask(n - i), x + i));
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(m, ExpAvx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), max)));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_add_ps(sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void SwiGLUAvx512(const float* gate, const float* up, float* out, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, ExpAvx512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

void GeGLUAvx512(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608f, kCubic = 0.044715f;
  const __m512 one = _mm512_set1_ps(1.0f), m2c = _mm512_set1_ps(-2.0f * kSqrt2OverPi), c = _mm512_set1_ps(kCubic);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    // -2u = -2 √(2/π) g (1 + 0.044715 g²)
    const __m512 m2u = _mm512_mul_ps(_mm512_mul_ps(m2c, g), _mm512_fmadd_ps(_mm512_mul_ps(c, g), g, one));
    const __m512 gelu = _mm512_div_ps(g, _mm512_add_ps(one, ExpAvx512(m2u)));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(gelu, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

float DotF32Avx512(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + kLanes), _mm512_loadu_ps(b + i + kLanes), acc1);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

void AxpyF32Avx512(float a, const float* x, float* y, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// Four column vectors at a time, each its own accumulator; a last partial
// block of one vector sums its rows in four accumulators (a rank-wide y,
// e.g. 16 columns over 4096 rows, would otherwise wait on one FMA chain).
void AxpyRowsF32Avx512(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    __m512 acc[4];
    for (int v = 0; v < 4; ++v) acc[v] = _mm512_loadu_ps(y + i + v * kLanes);
    for (int64_t r = 0; r < n_rows; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      const float* row = rows + r * stride + i;
      for (int v = 0; v < 4; ++v) acc[v] = _mm512_fmadd_ps(ar, _mm512_loadu_ps(row + v * kLanes), acc[v]);
    }
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(y + i + v * kLanes, acc[v]);
  }
  for (; i < n; i += kLanes) {
    const __mmask16 m = TailMask(n - i);
    __m512 acc[4] = {_mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4)
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm512_fmadd_ps(_mm512_set1_ps(a[r + u]), _mm512_maskz_loadu_ps(m, rows + (r + u) * stride + i), acc[u]);
    for (; r < n_rows; ++r) acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(a[r]), _mm512_maskz_loadu_ps(m, rows + r * stride + i), acc[0]);
    _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}

}  // namespace strata::kernels::internal
