// AVX2 row operations: 8 lanes at a time, scalar tails computed in float the
// same way as the vector body.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/fp16.h"
#include "kernels/isa_kernels.h"
#include "kernels/simd_avx2.h"

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 8;

// Scalar e^x through the vector routine, so tails round like the body.
float ExpScalar(float x) { return _mm256_cvtss_f32(ExpAvx2(_mm256_set1_ps(x))); }

}  // namespace

void RmsNormAvx2(const float* x, const float* weight, float* out, int64_t n, float eps) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + kLanes);
    acc0 = _mm256_fmadd_ps(a, a, acc0);
    acc1 = _mm256_fmadd_ps(b, b, acc1);
  }
  float ss = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) ss += x[i] * x[i];
  const float s = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  const __m256 scale = _mm256_set1_ps(s);
  for (i = 0; i + kLanes <= n; i += kLanes)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(weight + i), _mm256_mul_ps(scale, _mm256_loadu_ps(x + i))));
  for (; i < n; ++i) out[i] = weight[i] * (s * x[i]);
}

void SoftmaxAvx2(float* x, int64_t n) {
  if (n <= 0) return;
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
  float max = HorizontalMax(vmax);
  for (; i < n; ++i) max = std::max(max, x[i]);
  const __m256 vm = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  for (i = 0; i + kLanes <= n; i += kLanes) {
    const __m256 e = ExpAvx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    _mm256_storeu_ps(x + i, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = HorizontalSum(vsum);
  for (; i < n; ++i) {
    x[i] = ExpScalar(x[i] - max);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (i = 0; i + kLanes <= n; i += kLanes) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
  for (; i < n; ++i) x[i] *= inv;
}

void SwiGLUAvx2(const float* gate, const float* up, float* out, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, ExpAvx2(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + ExpScalar(-gate[i])) * up[i];
}

void GeGLUAvx2(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608f, kCubic = 0.044715f;
  const __m256 one = _mm256_set1_ps(1.0f), m2c = _mm256_set1_ps(-2.0f * kSqrt2OverPi), c = _mm256_set1_ps(kCubic);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 m2u = _mm256_mul_ps(_mm256_mul_ps(m2c, g), _mm256_fmadd_ps(_mm256_mul_ps(c, g), g, one));
    const __m256 gelu = _mm256_div_ps(g, _mm256_add_ps(one, ExpAvx2(m2u)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(gelu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + ExpScalar(-2.0f * kSqrt2OverPi * g * (1.0f + kCubic * g * g))) * up[i];
  }
}

void F32ToF16RowAvx2(const float* x, uint16_t* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) out[i] = F32ToFp16(x[i]);
}

void F16ToF32RowAvx2(const uint16_t* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) out[i] = Fp16ToF32(x[i]);
}

float DotF32Avx2(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + kLanes), _mm256_loadu_ps(b + i + kLanes), acc1);
  }
  float sum = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void AxpyF32Avx2(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// Four column vectors at a time, each its own accumulator; the remaining
// whole vectors one at a time over four row accumulators, then scalar.
void AxpyRowsF32Avx2(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes) {
    __m256 acc[4];
    for (int v = 0; v < 4; ++v) acc[v] = _mm256_loadu_ps(y + i + v * kLanes);
    for (int64_t r = 0; r < n_rows; ++r) {
      const __m256 ar = _mm256_set1_ps(a[r]);
      const float* row = rows + r * stride + i;
      for (int v = 0; v < 4; ++v) acc[v] = _mm256_fmadd_ps(ar, _mm256_loadu_ps(row + v * kLanes), acc[v]);
    }
    for (int v = 0; v < 4; ++v) _mm256_storeu_ps(y + i + v * kLanes, acc[v]);
  }
  for (; i + kLanes <= n; i += kLanes) {
    __m256 acc[4] = {_mm256_loadu_ps(y + i), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4)
      for (int u = 0; u < 4; ++u)
        acc[u] = _mm256_fmadd_ps(_mm256_set1_ps(a[r + u]), _mm256_loadu_ps(rows + (r + u) * stride + i), acc[u]);
    for (; r < n_rows; ++r) acc[0] = _mm256_fmadd_ps(_mm256_set1_ps(a[r]), _mm256_loadu_ps(rows + r * stride + i), acc[0]);
    _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  }
  for (; i < n; ++i)
    for (int64_t r = 0; r < n_rows; ++r) y[i] += a[r] * rows[r * stride + i];
}

}  // namespace strata::kernels::internal
