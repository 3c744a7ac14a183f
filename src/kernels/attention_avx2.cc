// AVX2 query-tiled attention: the AVX-512 kernel's scheme (attention_avx512.cc)
// on 8 lanes. Each chunk of 8 keys is transposed once so that a query row's
// 8 scores accumulate in one vector with keys in the lanes; the running
// maximum, the rescale and the exponentials run once per chunk and row; each
// value row is widened once for all of the tile's query rows. Mathematically
// the scalar reference's online softmax (attention.cc); rounding differs.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dtype.h"
#include "core/quant_blocks.h"
#include "kernels/attention_isa.h"
#include "kernels/simd_avx2.h"

#define STRATA_UNROLL _Pragma("GCC unroll 8")

namespace strata::kernels::internal {
namespace {

constexpr int kKeys = 8;      // keys per chunk: one score vector
constexpr int kRowTile = 8;   // query rows scored together against one key chunk
constexpr int kMaxHeadDim = kMaxHeadDimAvx2;
constexpr int kMaxRows = kMaxRowsAvx2;

// Elements i .. i+7 of a row as F32. REQUIRES: i % 8 == 0, i + 8 <= the row length.
struct F32Row {
  static __m256 Load(const uint8_t* row, int32_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i); }
};
struct F16Row {
  static __m256 Load(const uint8_t* row, int32_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(row) + i)));
  }
};
// REQUIRES: the row length is a multiple of 32.
struct Q8_0Row {
  static __m256 Load(const uint8_t* row, int32_t i) {
    const BlockQ8_0& b = reinterpret_cast<const BlockQ8_0*>(row)[i / kQK8_0];
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + i % kQK8_0));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(_cvtsh_ss(b.d)));
  }
};

// r[j] <- column j of the 8x8 matrix whose rows are r[0..8).
inline void Transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// tanh(y) on 8 floats, as TanhAvx512: an odd Taylor polynomial for |y| < 1/4,
// else 1 - 2 / (e^(2y) + 1).
inline __m256 TanhAvx2(__m256 y) {
  const __m256 y2 = _mm256_mul_ps(y, y);
  __m256 p = _mm256_set1_ps(62.0f / 2835.0f);
  p = _mm256_fmadd_ps(p, y2, _mm256_set1_ps(-17.0f / 315.0f));
  p = _mm256_fmadd_ps(p, y2, _mm256_set1_ps(2.0f / 15.0f));
  p = _mm256_fmadd_ps(p, y2, _mm256_set1_ps(-1.0f / 3.0f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, y2), y, y);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = ExpAvx2(_mm256_add_ps(y, y));
  const __m256 large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, one)));
  const __m256 abs_y = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), y);
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(abs_y, _mm256_set1_ps(0.25f), _CMP_LT_OQ));
}

// All-ones lanes for the keys j0 + lane in [first, n).
inline __m256 ValidKeys(int32_t j0, int32_t first, int32_t n) {
  const __m256i idx = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(j0));
  const __m256i ge_first = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(first - 1));
  const __m256i lt_n = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
  return _mm256_castsi256_ps(_mm256_and_si256(ge_first, lt_n));
}

// Scores of 8 keys from their dot products (ScoreParams); invalid lanes -inf.
inline __m256 Scores(__m256 dots, const ScoreParams& score, __m256 valid) {
  __m256 s = _mm256_mul_ps(dots, _mm256_set1_ps(score.scale));
  if (score.softcap > 0.0f)
    s = _mm256_mul_ps(_mm256_set1_ps(score.softcap), TanhAvx2(_mm256_mul_ps(s, _mm256_set1_ps(1.0f / score.softcap))));
  return _mm256_blendv_ps(_mm256_set1_ps(-std::numeric_limits<float>::infinity()), s, valid);
}

// Online-softmax update of one query row with the scores s of a key chunk
// (invalid keys -inf, at least one valid); stores the chunk's weights to w.
void UpdateRow(__m256 s, int32_t D, SoftmaxPartial* p, float* acc, float* w) {
  const float m_new = std::max(p->m, HorizontalMax(s));
  if (m_new > p->m) {
    const float c = std::exp(p->m - m_new);
    p->l *= c;
    const __m256 vc = _mm256_set1_ps(c);
    for (int32_t i = 0; i < D; i += kKeys) _mm256_storeu_ps(acc + i, _mm256_mul_ps(_mm256_loadu_ps(acc + i), vc));
    p->m = m_new;
  }
  const __m256 e = ExpAvx2(_mm256_sub_ps(s, _mm256_set1_ps(m_new)));
  p->l += HorizontalSum(e);
  _mm256_store_ps(w, e);
}

// Scores of the H query rows q[0..H) for a transposed key chunk kt[d][8 keys],
// two FMA chains per row.
template <int H>
void ChunkScores(const float* const* q, int32_t D, const float (*kt)[kKeys], __m256 s[H]) {
  __m256 a[2][H];
  STRATA_UNROLL
  for (int h = 0; h < H; ++h) a[0][h] = a[1][h] = _mm256_setzero_ps();
  for (int32_t d = 0; d < D; d += 2) {  // D is a multiple of 8
    const __m256 k0 = _mm256_load_ps(kt[d]), k1 = _mm256_load_ps(kt[d + 1]);
    STRATA_UNROLL
    for (int h = 0; h < H; ++h) {
      a[0][h] = _mm256_fmadd_ps(_mm256_broadcast_ss(&q[h][d]), k0, a[0][h]);
      a[1][h] = _mm256_fmadd_ps(_mm256_broadcast_ss(&q[h][d + 1]), k1, a[1][h]);
    }
  }
  STRATA_UNROLL
  for (int h = 0; h < H; ++h) s[h] = _mm256_add_ps(a[0][h], a[1][h]);
}

void TileScores(int rows, const float* const* q, int32_t D, const float (*kt)[kKeys], __m256 s[kRowTile]) {
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

// The query rows of a tile are (token t, head h) -> row r = t * n_heads + h;
// rows whose token sees none of a chunk's keys skip it.
template <class Row>
void AttendTile(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, int32_t D,
                const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride, float (*kt)[kKeys],
                float (*w)[kKeys]) {
  const int32_t rows = n_tok * n_heads;
  const float* qr[kMaxRows];
  for (int32_t r = 0; r < rows; ++r) qr[r] = q + (r / n_heads) * q_stride + (r % n_heads) * D;
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
    for (int32_t i = 0; i < D; i += kKeys) {
      __m256 r[kKeys];
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) r[j] = Row::Load(kr[j], i);
      Transpose8(r);
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) _mm256_store_ps(kt[i + j], r[j]);
    }
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
      __m256 s[kRowTile];
      TileScores(an, qa, D, kt, s);
      for (int32_t a = 0; a < an; ++a) {
        const int32_t r = active[a0 + a], t = r / n_heads;
        UpdateRow(Scores(s[a], score, ValidKeys(j0, first_key[t], n_keys[t])), D, &p[r], acc + r * acc_stride,
                  w[a0 + a]);
      }
    }
    for (int32_t i = 0; i < D; i += kKeys) {
      __m256 vj[kKeys];
      STRATA_UNROLL
      for (int j = 0; j < kKeys; ++j) vj[j] = Row::Load(vr[j], i);
      for (int32_t a = 0; a < n_active; ++a) {
        float* ar = acc + active[a] * acc_stride + i;
        __m256 x = _mm256_loadu_ps(ar);
        STRATA_UNROLL
        for (int j = 0; j < kKeys; ++j) x = _mm256_fmadd_ps(_mm256_broadcast_ss(&w[a][j]), vj[j], x);
        _mm256_storeu_ps(ar, x);
      }
    }
  }
}

}  // namespace

void AttendTileAvx2(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                    const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type,
                    int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride) {
  // Stack space for one chunk: K transposed [D][8], weights [rows][8].
  alignas(32) float kt[kMaxHeadDim][kKeys];
  alignas(32) float w[kMaxRows][kKeys];
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

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
