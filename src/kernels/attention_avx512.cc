// AVX-512 attention: keys are taken 16 at a time, so their scores form one
// vector; the running maximum, the rescale of the accumulator and the
// exponentials are then done once per 16 keys instead of once per key.
// Mathematically the same online softmax as the scalar reference in
// attention.cc (which rescales at every new maximum); rounding differs.
//
// AttendRows (one head) sums each key's products horizontally. AttendTile
// (query tokens x the group of heads sharing the keys) instead transposes each
// key chunk once, so that scores accumulate with keys in the lanes, and widens
// each value row once for all of the tile's query rows.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/exp_avx512.h"
#include "kernels/attention_isa.h"
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
constexpr int kMaxRows = kMaxRowsAvx512;

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

// tanh(y) on 16 floats: an odd Taylor polynomial for |y| < 1/4 (truncation
// error < 1e-8 relative), else 1 - 2 / (e^(2y) + 1) (whose cancellation near 0
// the polynomial avoids).
inline __m512 TanhAvx512(__m512 y) {
  const __m512 y2 = _mm512_mul_ps(y, y);
  __m512 p = _mm512_set1_ps(62.0f / 2835.0f);
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(-17.0f / 315.0f));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(2.0f / 15.0f));
  p = _mm512_fmadd_ps(p, y2, _mm512_set1_ps(-1.0f / 3.0f));
  const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, y2), y, y);
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 e = ExpAvx512(_mm512_add_ps(y, y));
  const __m512 large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
  const __mmask16 is_small = _mm512_cmp_ps_mask(_mm512_abs_ps(y), _mm512_set1_ps(0.25f), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(is_small, large, small);
}

// Scores of 16 keys from their dot products (ScoreParams); lanes outside
// `valid` are -inf, so that their softmax weights are exactly 0.
inline __m512 Scores(__m512 dots, const ScoreParams& score, __mmask16 valid) {
  __m512 s = _mm512_mul_ps(dots, _mm512_set1_ps(score.scale));
  if (score.softcap > 0.0f)
    s = _mm512_mul_ps(_mm512_set1_ps(score.softcap), TanhAvx512(_mm512_mul_ps(s, _mm512_set1_ps(1.0f / score.softcap))));
  return _mm512_mask_mov_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), valid, s);
}

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
void Attend(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, int32_t n, int32_t D,
            const ScoreParams& score, SoftmaxPartial* p, float* acc) {
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
    const __m512 s = Scores(TransposedSum16(dots), score, LaneMask(nj));
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

// Online-softmax update of one query row with the scores s of a key chunk
// (invalid keys -inf, at least one valid); stores the chunk's weights to w.
void UpdateRow(__m512 s, int32_t D, SoftmaxPartial* p, float* acc, float* w) {
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

// Scores of the H query rows q[0..H) for a transposed key chunk kt[d][16 keys].
// Up to 4 rows run two FMA chains each (FMA latency); more rows are enough
// independent chains on their own and share each loaded key vector.
template <int H>
void ChunkScores(const float* const* q, int32_t D, const float (*kt)[kKeys], __m512 s[H]) {
  constexpr int kChains = H <= 4 ? 2 : 1;
  __m512 a[kChains][H];
  STRATA_UNROLL
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < kChains; ++c) a[c][h] = _mm512_setzero_ps();
  int32_t d = 0;
  for (; d + kChains <= D; d += kChains) {
    STRATA_UNROLL
    for (int c = 0; c < kChains; ++c) {
      const __m512 kd = _mm512_load_ps(kt[d + c]);
      STRATA_UNROLL
      for (int h = 0; h < H; ++h) a[c][h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h][d + c]), kd, a[c][h]);
    }
  }
  if (d < D) {
    const __m512 kd = _mm512_load_ps(kt[d]);
    STRATA_UNROLL
    for (int h = 0; h < H; ++h) a[0][h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h][d]), kd, a[0][h]);
  }
  STRATA_UNROLL
  for (int h = 0; h < H; ++h) s[h] = kChains == 2 ? _mm512_add_ps(a[0][h], a[kChains - 1][h]) : a[0][h];
}

constexpr int kRowTile = 8;  // query rows scored together against one key chunk

void TileScores(int rows, const float* const* q, int32_t D, const float (*kt)[kKeys], __m512 s[kRowTile]) {
  switch (rows) {
    case 1: return ChunkScores<1>(q, D, kt, s);
    case 2: return ChunkScores<2>(q, D, kt, s);
    case 3: return ChunkScores<3>(q, D, kt, s);
    case 4: return ChunkScores<4>(q, D, kt, s);
    case 5: return ChunkScores<5>(q, D, kt, s);
    case 6: return ChunkScores<6>(q, D, kt, s);
    case 7: return ChunkScores<7>(q, D, kt, s);
    default: return ChunkScores<8>(q, D, kt, s);
  }
}

// The query rows of a tile are (token t, head h) -> row r = t * n_heads + h.
// Each 16-key chunk is transposed once and each value row widened once for
// all rows; rows whose token sees none of the chunk's keys are skipped.
template <class Row>
void AttendTile(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, int32_t D,
                const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride, float (*kt)[kKeys],
                float (*w)[kKeys]) {
  const int32_t rows = n_tok * n_heads;
  const float* qr[kMaxRows];
  for (int32_t r = 0; r < rows; ++r) qr[r] = q + (r / n_heads) * q_stride + (r % n_heads) * D;
  // Keys [first, n) are seen by some token; chunks start at multiples of 16 from 0.
  int32_t first = std::numeric_limits<int32_t>::max(), n = 0;
  for (int32_t t = 0; t < n_tok; ++t) {
    if (n_keys[t] <= first_key[t]) continue;
    first = std::min(first, first_key[t]);
    n = std::max(n, n_keys[t]);
  }
  if (n == 0) return;
  for (int32_t j0 = first / kKeys * kKeys; j0 < n; j0 += kKeys) {
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
    // Rows that see at least one key of this chunk; w[a] holds active row a's weights.
    int32_t active[kMaxRows];
    int32_t n_active = 0;
    for (int32_t r = 0; r < rows; ++r) {
      const int32_t t = r / n_heads;
      if (n_keys[t] > j0 && first_key[t] < j0 + kKeys && first_key[t] < n_keys[t]) active[n_active++] = r;
    }
    for (int32_t a0 = 0; a0 < n_active; a0 += kRowTile) {
      const int32_t an = std::min<int32_t>(kRowTile, n_active - a0);
      const float* qa[kRowTile];
      for (int32_t a = 0; a < an; ++a) qa[a] = qr[active[a0 + a]];
      __m512 s[kRowTile];
      TileScores(an, qa, D, kt, s);
      for (int32_t a = 0; a < an; ++a) {
        const int32_t r = active[a0 + a], t = r / n_heads;
        const __mmask16 valid = LaneMask(n_keys[t] - j0) & static_cast<__mmask16>(~LaneMask(first_key[t] - j0));
        UpdateRow(Scores(s[a], score, valid), D, &p[r], acc + r * acc_stride, w[a0 + a]);
      }
    }
    for (int32_t i = 0; i < D; i += kLanes) {
      const __mmask16 m = LaneMask(D - i);
      __m512 vj[kKeys];
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) vj[j] = Row::Load(vr[j], i, m);
      for (int32_t a = 0; a < n_active; ++a) {
        float* ar = acc + active[a] * acc_stride + i;
        __m512 x = _mm512_maskz_loadu_ps(m, ar);
        STRATA_UNROLL
        for (int j = 0; j < kKeys; ++j) x = _mm512_fmadd_ps(_mm512_set1_ps(w[a][j]), vj[j], x);
        _mm512_mask_storeu_ps(ar, m, x);
      }
    }
  }
}

}  // namespace

void AttendTileAvx512(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                      const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type,
                      int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride) {
  // Stack space for one chunk: K transposed [D][16], weights [rows][16].
  alignas(64) float kt[kMaxHeadDim][kKeys];
  alignas(64) float w[kMaxRows][kKeys];
  switch (type) {
    case DType::kF32:
      return AttendTile<F32Row>(q, q_stride, n_tok, n_heads, first_key, n_keys, k, v, row_bytes, D, score, p, acc,
                                acc_stride, kt, w);
    case DType::kF16:
      return AttendTile<F16Row>(q, q_stride, n_tok, n_heads, first_key, n_keys, k, v, row_bytes, D, score, p, acc,
                                acc_stride, kt, w);
    case DType::kQ8_0:
      return AttendTile<Q8_0Row>(q, q_stride, n_tok, n_heads, first_key, n_keys, k, v, row_bytes, D, score, p, acc,
                                 acc_stride, kt, w);
    default: return;
  }
}

void AttendRowsAvx512(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                      int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc) {
  switch (type) {
    case DType::kF32: return Attend<F32Row>(q, k, v, row_bytes, n, D, score, p, acc);
    case DType::kF16: return Attend<F16Row>(q, k, v, row_bytes, n, D, score, p, acc);
    case DType::kQ8_0: return Attend<Q8_0Row>(q, k, v, row_bytes, n, D, score, p, acc);
    default: return;
  }
}

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
