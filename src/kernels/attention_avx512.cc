// AVX-512 attention: keys are taken 16 at a time, so their scores form one
// vector; the running maximum, the rescale of the accumulator and the
// exponentials are then done once per 16 keys instead of once per key.
// Mathematically the same online softmax as the scalar reference in
// attention.cc (which rescales at every new maximum); rounding differs.
//
// AttendRows (one head) sums each key's products horizontally. AttendRowsHeads
// (a group of query heads sharing the keys) instead transposes each key chunk
// once, so that scores accumulate with keys in the lanes, and widens each
// value row once for all heads.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/exp_avx512.h"
#include "kernels/isa_kernels.h"
#include "kernels/transpose_avx512.h"

// GCC 12's _mm512_undefined_ps (used inside unpack/shuffle/reduce intrinsics)
// self-initializes, which -Wuninitialized reports at every inlined call site.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Loops over the 16 keys of a chunk are fully unrolled so that their 16
// accumulators stay in registers.
#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kKeys = 16;  // keys per chunk: one score vector
constexpr int kMaxHeadDim = kMaxHeadDimAvx512;
constexpr int kMaxHeads = kMaxHeadsAvx512;

__mmask16 LaneMask(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// Elements i .. i+15 of a row as F32, lanes past m zero.
struct F32Row {
  static __m512 Load(const uint8_t* row, int32_t i, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + i);
  }
};
struct F16Row {
  static __m512 Load(const uint8_t* row, int32_t i, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + i));
  }
};
// REQUIRES: i % 16 == 0 and the row length is a multiple of 32 (m is full).
struct Q8_0Row {
  static __m512 Load(const uint8_t* row, int32_t i, __mmask16) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[i / kQK8_0];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + i % kQK8_0));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(_cvtsh_ss(b.d)));
  }
};

// Lane j of the result is the sum of the lanes of v[j].
inline __m512 TransposedSum16(const __m512 v[16]) {
  __m512 t[8], u[4];
  STRATA_UNROLL
  for (int i = 0; i < 8; ++i)
    t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  STRATA_UNROLL
  for (int i = 0; i < 4; ++i)
    u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
  // u[i], each 128-bit lane: partial sums of rows 4i .. 4i+3.
  const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44), _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
  const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44), _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
}

template <class Row>
void Attend(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, int32_t n, int32_t D, float scale,
            SoftmaxPartial* p, float* acc) {
  for (int32_t j0 = 0; j0 < n; j0 += kKeys) {
    const int32_t nj = std::min(kKeys, n - j0);
    // Keys past n repeat the last one: their scores are masked to -inf, so
    // their weights are exactly 0.
    const uint8_t* kr[kKeys];
    const uint8_t* vr[kKeys];
    STRATA_UNROLL
    for (int j = 0; j < kKeys; ++j) {
      const size_t r = static_cast<size_t>(j0 + std::min(j, nj - 1));
      kr[j] = k + r * row_bytes;
      vr[j] = v + r * row_bytes;
    }
    __m512 dots[kKeys];
    STRATA_UNROLL
    for (int j = 0; j < kKeys; ++j) dots[j] = _mm512_setzero_ps();
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) dots[j] = _mm512_fmadd_ps(qv, Row::Load(kr[j], i, m), dots[j]);
    }
    const __m512 s = _mm512_mask_mul_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), LaneMask(nj),
                                        TransposedSum16(dots), _mm512_set1_ps(scale));
    // New maximum: rescale what was accumulated so far (from -inf: acc and l are 0).
    const float m_new = std::max(p->m, _mm512_reduce_max_ps(s));
    if (m_new > p->m) {
      const float c = std::exp(p->m - m_new);
      p->l *= c;
      const __m512 vc = _mm512_set1_ps(c);
      for (int32_t i = 0; i < D; i += kLanes) {
        const __mmask16 m = LaneMask(D - i);
        _mm512_mask_storeu_ps(acc + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + i), vc));
      }
      p->m = m_new;
    }
    const __m512 w = ExpAvx512(_mm512_sub_ps(s, _mm512_set1_ps(m_new)));
    p->l += _mm512_reduce_add_ps(w);
    alignas(64) float wj[kKeys];
    _mm512_store_ps(wj, w);
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      __m512 a = _mm512_maskz_loadu_ps(m, acc + i);
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) a = _mm512_fmadd_ps(_mm512_set1_ps(wj[j]), Row::Load(vr[j], i, m), a);
      _mm512_mask_storeu_ps(acc + i, m, a);
    }
  }
}

// Online-softmax update of one head with the scores s of a key chunk (invalid
// keys -inf); stores the chunk's weights to w.
void UpdateHead(__m512 s, int32_t D, SoftmaxPartial* p, float* acc, float* w) {
  const float m_new = std::max(p->m, _mm512_reduce_max_ps(s));
  if (m_new > p->m) {
    const float c = std::exp(p->m - m_new);
    p->l *= c;
    const __m512 vc = _mm512_set1_ps(c);
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      _mm512_mask_storeu_ps(acc + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, acc + i), vc));
    }
    p->m = m_new;
  }
  const __m512 e = ExpAvx512(_mm512_sub_ps(s, _mm512_set1_ps(m_new)));
  p->l += _mm512_reduce_add_ps(e);
  _mm512_store_ps(w, e);
}

// Scores of heads h0 .. h0+H-1 for a transposed key chunk kt[d][16 keys].
template <int H>
void ChunkScores(const float* q, int32_t D, int32_t h0, const float (*kt)[kKeys], __m512 s[H]) {
  __m512 even[H], odd[H];  // two chains per head: FMA latency
  STRATA_UNROLL
  for (int h = 0; h < H; ++h) even[h] = odd[h] = _mm512_setzero_ps();
  int32_t d = 0;
  for (; d + 2 <= D; d += 2) {
    const __m512 k0 = _mm512_load_ps(kt[d]), k1 = _mm512_load_ps(kt[d + 1]);
    STRATA_UNROLL
    for (int h = 0; h < H; ++h) {
      const float* qh = q + (h0 + h) * D;
      even[h] = _mm512_fmadd_ps(_mm512_set1_ps(qh[d]), k0, even[h]);
      odd[h] = _mm512_fmadd_ps(_mm512_set1_ps(qh[d + 1]), k1, odd[h]);
    }
  }
  if (d < D) {
    const __m512 k0 = _mm512_load_ps(kt[d]);
    STRATA_UNROLL
    for (int h = 0; h < H; ++h) even[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[(h0 + h) * D + d]), k0, even[h]);
  }
  STRATA_UNROLL
  for (int h = 0; h < H; ++h) s[h] = _mm512_add_ps(even[h], odd[h]);
}

template <class Row>
void AttendHeads(const float* q, int32_t n_heads, const uint8_t* k, const uint8_t* v, size_t row_bytes, int32_t n,
                 int32_t D, float scale, SoftmaxPartial* p, float* acc, size_t acc_stride, float (*kt)[kKeys],
                 float (*w)[kKeys]) {
  constexpr int kHeadTile = 4;
  for (int32_t j0 = 0; j0 < n; j0 += kKeys) {
    const int32_t nj = std::min(kKeys, n - j0);
    const uint8_t* kr[kKeys];
    const uint8_t* vr[kKeys];
    STRATA_UNROLL
    for (int j = 0; j < kKeys; ++j) {
      const size_t r = static_cast<size_t>(j0 + std::min(j, nj - 1));  // past n: repeat, weight 0
      kr[j] = k + r * row_bytes;
      vr[j] = v + r * row_bytes;
    }
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      __m512 r[kKeys];
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) r[j] = Row::Load(kr[j], i, m);
      Transpose16(r);
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) _mm512_store_ps(kt[i + j], r[j]);
    }
    const __mmask16 valid = LaneMask(nj);
    const __m512 minus_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int32_t h0 = 0; h0 < n_heads; h0 += kHeadTile) {
      __m512 s[kHeadTile];
      const int32_t hn = std::min(kHeadTile, n_heads - h0);
      switch (hn) {
        case 1: ChunkScores<1>(q, D, h0, kt, s); break;
        case 2: ChunkScores<2>(q, D, h0, kt, s); break;
        case 3: ChunkScores<3>(q, D, h0, kt, s); break;
        default: ChunkScores<4>(q, D, h0, kt, s); break;
      }
      for (int32_t h = 0; h < hn; ++h) {
        const __m512 sh = _mm512_mask_mul_ps(minus_inf, valid, s[h], _mm512_set1_ps(scale));
        UpdateHead(sh, D, &p[h0 + h], acc + (h0 + h) * acc_stride, w[h0 + h]);
      }
    }
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      __m512 vj[kKeys];
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) vj[j] = Row::Load(vr[j], i, m);
      for (int32_t h = 0; h < n_heads; ++h) {
        float* ah = acc + h * acc_stride + i;
        __m512 a = _mm512_maskz_loadu_ps(m, ah);
        STRATA_UNROLL
        for (int j = 0; j < kKeys; ++j) a = _mm512_fmadd_ps(_mm512_set1_ps(w[h][j]), vj[j], a);
        _mm512_mask_storeu_ps(ah, m, a);
      }
    }
  }
}

}  // namespace

void AttendRowsHeadsAvx512(const float* q, int32_t n_heads, const uint8_t* k, const uint8_t* v, size_t row_bytes,
                           DType type, int32_t n, int32_t D, float scale, SoftmaxPartial* p, float* acc,
                           size_t acc_stride) {
  // Stack space for one chunk: K transposed [D][16], weights [heads][16].
  alignas(64) float kt[kMaxHeadDim][kKeys];
  alignas(64) float w[kMaxHeads][kKeys];
  switch (type) {
    case DType::kF32: return AttendHeads<F32Row>(q, n_heads, k, v, row_bytes, n, D, scale, p, acc, acc_stride, kt, w);
    case DType::kF16: return AttendHeads<F16Row>(q, n_heads, k, v, row_bytes, n, D, scale, p, acc, acc_stride, kt, w);
    case DType::kQ8_0:
      return AttendHeads<Q8_0Row>(q, n_heads, k, v, row_bytes, n, D, scale, p, acc, acc_stride, kt, w);
    default: return;
  }
}

void AttendRowsAvx512(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                      int32_t D, float scale, SoftmaxPartial* p, float* acc) {
  switch (type) {
    case DType::kF32: return Attend<F32Row>(q, k, v, row_bytes, n, D, scale, p, acc);
    case DType::kF16: return Attend<F16Row>(q, k, v, row_bytes, n, D, scale, p, acc);
    case DType::kQ8_0: return Attend<Q8_0Row>(q, k, v, row_bytes, n, D, scale, p, acc);
    default: return;
  }
}

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
