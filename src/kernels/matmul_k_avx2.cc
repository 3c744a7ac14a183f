// AVX2 (+ FMA) matrix multiplication of K-quant weights against Q8_K
// activations: the fallback for x86 CPUs without AVX-512. Q4_K, the bulk of
// Q4_K_M files, is packed at load into panels of 8-row groups ("Q4_K
// panels" below, quant_panels_avx2.h); the other types are read in the
// file's rows, one row against up to 4 tokens, each thread a contiguous run
// of rows (ForRowRuns).
//
// Codes are the unsigned operand of VPMADDUBSW (Q2_K 0..3, Q3_K 0..7, Q4_K
// 0..15, Q5_K 0..31, Q6_K 0..63: pairs of products stay below 2 * 63 * 128,
// far from 16-bit saturation; IQ4_XS: see there) and VPMADDWD applies each
// sub-block's integer scale, so every super-block's sums are exact integers
// as in the scalar reference (kernels/vec_dot.h): the Q2_K / Q4_K / Q5_K mins
// and the Q3_K / Q6_K code offsets 4 / 32 are taken against the activations'
// sums of 16 or 32 codes (Q8_K bsums). Only the float steps differ from the
// reference (FMA, and vectors of 8 partial sums).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "core/quant_blocks.h"
#include "kernels/isa_kernels.h"
#include "kernels/matmul_tasks.h"
#include "kernels/quant_panels_avx2.h"
#include "kernels/quant_rows.h"
#include "kernels/simd_avx2.h"

#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kTokens = 4;
constexpr int64_t kTaskBytes = 64 << 10;

// 16 int16 lanes: lo in lanes 0-7, hi in 8-15.
__m256i Halves16(int lo, int hi) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)), _mm_set1_epi16(static_cast<int16_t>(lo)));
}

// Q5_K: Codes(w, sb) gives the 32 codes of sub-block sb.
struct Q5_KCodes {
  using Block = BlockQ5_K;
  static __m256i Codes(const Block& w, int sb) {
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * (sb / 2)));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh));
    const __m256i lo = _mm256_and_si256(sb % 2 == 0 ? q : _mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0F));
    // Bit sb of each qh byte moved to bit 4 (16-bit shifts by at most 4: bits
    // crossing bytes land outside bit 4).
    const __m256i hb = sb <= 4 ? _mm256_slli_epi16(qh, 4 - sb) : _mm256_srli_epi16(qh, sb - 4);
    return _mm256_or_si256(lo, _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
  }
};

template <class F>
struct MinKWeights {
  using Block = typename F::Block;
  // acc[t] += d dx isum - dmin dx msum over super-block b (8-lane partial sums).
  template <int T>
  static void Dot(const Block& w, const BlockQ8_K* const (&xt)[T], int64_t b, __m256 (&acc)[T]) {
    // The 6-bit scales and mins (ggml's get_scale_min_k4 on 4 at a time),
    // as bytes: scales of sub-blocks 0-7 in bytes 0-7, mins in 8-15.
    uint32_t a, bb, c;
    std::memcpy(&a, w.scales, 4);
    std::memcpy(&bb, w.scales + 4, 4);
    std::memcpy(&c, w.scales + 8, 4);
    const __m128i sm = _mm_set_epi32(static_cast<int>(((c >> 4) & 0x0F0F0F0Fu) | ((bb >> 2) & 0x30303030u)),
                                     static_cast<int>(bb & 0x3F3F3F3Fu),
                                     static_cast<int>((c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u)),
                                     static_cast<int>(a & 0x3F3F3F3Fu));
    // Each min twice (16-bit): against the two sums of 16 of its sub-block.
    const __m256i mins = _mm256_cvtepu8_epi16(
        _mm_shuffle_epi8(sm, _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15)));
    // The 8 scales as 16-bit lanes, in both halves (VPSHUFB broadcasts within a half).
    const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
    __m256i isum[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    STRATA_UNROLL
    for (int h = 0; h < kQK_K / 64; ++h) {
      const __m256i lo = F::Codes(w, 2 * h), hi = F::Codes(w, 2 * h + 1);
      const __m256i sc_lo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * 2 * h)));
      const __m256i sc_hi =
          _mm256_shuffle_epi8(scales, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (2 * h + 1))));
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        const int8_t* y = xt[t][b].qs + 64 * h;
        const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y)));
        const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y + 32)));
        isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(p_lo, sc_lo), _mm256_madd_epi16(p_hi, sc_hi)));
      }
    }
    const float d = _cvtsh_ss(w.d), dmin = _cvtsh_ss(w.dmin);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].bsums));
      const __m256i msum = _mm256_madd_epi16(bsums, mins);
      const float dx = xt[t][b].d;
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * dx), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), acc[t]);
    }
  }
};

struct Q6_KWeights {
  using Block = BlockQ6_K;
  // acc[t] += d dx (isum - 32 sum_j scale_j bsum_j) over super-block b.
  template <int T>
  static void Dot(const Block& w, const BlockQ8_K* const (&xt)[T], int64_t b, __m256 (&acc)[T]) {
    const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales)));
    const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    __m256i isum[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    STRATA_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.ql + 64 * h + 32));
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qh + 32 * h));
      // Inputs 128h + 32u + l (quarter u): low 4 bits from l0 / l1, top 2 at bits 2u of hb
      // (moved to bits 4-5 by shifts of 16-bit lanes; bits crossing bytes are masked off).
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hb, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45)),
      };
      STRATA_UNROLL
      for (int u = 0; u < 4; ++u) {
        const int j = 8 * h + 2 * u;  // sub-blocks j (inputs 0-15 of the quarter) and j + 1
        const __m256i sc = Halves16(w.scales[j], w.scales[j + 1]);
        STRATA_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].qs + 128 * h + 32 * u));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q[u], y), sc));
        }
      }
    }
    const float d = _cvtsh_ss(w.d);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].bsums));
      const __m256i off = _mm256_madd_epi16(bsums, scales);
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off, 5));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(d * xt[t][b].d), acc[t]);
    }
  }
};

// Q2_K: codes 0..3 at bits 2u of qs[32h + l] (input 128h + 32u + l), scale
// and min of sub-block j in the low and high nibble of scales[j].
struct Q2_KWeights {
  using Block = BlockQ2_K;
  // acc[t] += d dx isum - dmin dx sum_j min_j bsum_j over super-block b.
  template <int T>
  static void Dot(const Block& w, const BlockQ8_K* const (&xt)[T], int64_t b, __m256 (&acc)[T]) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.scales));
    const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
    __m256i isum[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    STRATA_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * h));
      STRATA_UNROLL
      for (int u = 0; u < 4; ++u) {
        const int j = 8 * h + 2 * u;  // sub-blocks j (inputs 0-15 of the quarter) and j + 1
        const __m256i codes = _mm256_and_si256(_mm256_srli_epi16(q, 2 * u), _mm256_set1_epi8(0x03));
        const __m256i sc = Halves16(w.scales[j] & 0xF, w.scales[j + 1] & 0xF);
        STRATA_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].qs + 128 * h + 32 * u));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(codes, y), sc));
        }
      }
    }
    const float d = _cvtsh_ss(w.d), dmin = _cvtsh_ss(w.dmin);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].bsums));
      const float dx = xt[t][b].d;
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * dx), acc[t]);
      acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mins)), _mm256_set1_ps(dmin * dx), acc[t]);
    }
  }
};

// Q3_K: codes 0..7, low 2 bits as Q2_K's, the third from bit 4h+u of
// hmask[l] (set: no -4); 6-bit scales less 32. The offset 4 comes off against
// the bsums.
struct Q3_KWeights {
  using Block = BlockQ3_K;
  template <int T>
  static void Dot(const Block& w, const BlockQ8_K* const (&xt)[T], int64_t b, __m256 (&acc)[T]) {
    alignas(32) int16_t sc[16];
    for (int j = 0; j < 16; ++j) {
      const int low = j < 8 ? w.scales[j] & 0xF : w.scales[j - 8] >> 4;
      sc[j] = static_cast<int16_t>((low | (((w.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
    }
    const __m256i scales = _mm256_load_si256(reinterpret_cast<const __m256i*>(sc));
    const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.hmask));
    __m256i isum[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    STRATA_UNROLL
    for (int h = 0; h < 2; ++h) {
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs + 32 * h));
      STRATA_UNROLL
      for (int u = 0; u < 4; ++u) {
        const int j = 8 * h + 2 * u;
        // Bit 4h+u of each hmask byte moved to bit 2 (16-bit shifts: bits
        // crossing bytes land outside bit 2).
        const int bit = 4 * h + u;
        const __m256i hb = bit <= 2 ? _mm256_slli_epi16(hm, 2 - bit) : _mm256_srli_epi16(hm, bit - 2);
        const __m256i codes = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * u), _mm256_set1_epi8(0x03)),
                                              _mm256_and_si256(hb, _mm256_set1_epi8(0x04)));
        const __m256i s = Halves16(sc[j], sc[j + 1]);
        STRATA_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].qs + 128 * h + 32 * u));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(codes, y), s));
        }
      }
    }
    const float d = _cvtsh_ss(w.d);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].bsums));
      const __m256i total = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(_mm256_madd_epi16(bsums, scales), 2));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(d * xt[t][b].d), acc[t]);
    }
  }
};

// IQ4_XS: the non-linear levels (signed) looked up by nibble; as in
// matmul_avx2.cc, |level| is VPMADDUBSW's unsigned operand and its sign moves
// onto the activations (pairs of products <= 2 * 127 * 127).
struct IQ4_XSWeights {
  using Block = BlockIQ4_XS;
  template <int T>
  static void Dot(const Block& w, const BlockQ8_K* const (&xt)[T], int64_t b, __m256 (&acc)[T]) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    __m256i isum[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
    STRATA_UNROLL
    for (int j = 0; j < kQK_K / 32; ++j) {
      const int ls = (((w.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((w.scales_h >> (2 * j)) & 3) << 4)) - 32;
      const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.qs + 16 * j));
      const __m256i nib = _mm256_and_si256(
          _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1), _mm256_set1_epi8(0x0F));
      const __m256i levels = _mm256_shuffle_epi8(table, nib);
      const __m256i mag = _mm256_sign_epi8(levels, levels);
      const __m256i s = _mm256_set1_epi16(static_cast<int16_t>(ls));
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xt[t][b].qs + 32 * j));
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(mag, _mm256_sign_epi8(y, levels)), s));
      }
    }
    const float d = _cvtsh_ss(w.d);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * xt[t][b].d), acc[t]);
  }
};

// y[t0 .. t0+T-1] of one row (xq: each token's nsb activation blocks):
// W::Dot<T> accumulates a super-block's products into acc[t] (8 lanes), the
// lanes are added at the end.
template <class W, int T>
void RowTile(const typename W::Block* row, const BlockQ8_K* xq, int64_t nsb, int64_t t0, float* y, int64_t n_out) {
  const BlockQ8_K* xt[T];
  __m256 acc[T];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xt[t] = xq + (t0 + t) * nsb;
    acc[t] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < nsb; ++b) W::template Dot<T>(row[b], xt, b, acc);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) y[(t0 + t) * n_out] = HorizontalSum(acc[t]);
}

template <class W>
void MatMulK(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), nsb = n_in / kQK_K, n_out = w.rows();
  auto* xq = static_cast<BlockQ8_K*>(pool.Scratch(static_cast<size_t>(n_tok * nsb) * sizeof(BlockQ8_K)));
  pool.ParallelFor(n_tok, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) QuantizeQ8_K(x + t * n_in, xq + t * nsb, n_in);
  });
  const auto* base = static_cast<const typename W::Block*>(w.data);
  ForRowRuns<kTokens>(w, n_tok, kTaskBytes, pool, [&](int64_t o, int64_t t0, int64_t n) {
    WithCount<kTokens>(n, [&](auto T) { RowTile<W, T()>(base + o * nsb, xq, nsb, t0, y + o, n_out); });
  });
}

template <class W>
void EachOut(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool) {
  for (const MatMulOut& o : outs) MatMulK<W>(*o.w, x, n_tok, o.y, pool);
}

// ---------------------------------------------------------------------------
// Q4_K panels (quant_panels.h; TensorLayout::kPanels32 on this path). A panel
// is 4 groups of 8 rows, one after the other; a group is one record per
// super-block, each of exactly the bytes its 8 rows' blocks take in the file
// (1152), lane r of every vector belonging to row r:
//   fp16 d[8], fp16 dmin[8]
//   u32  scales[3][8]   dword i: bytes 4i .. 4i+3 of the 6-bit scales and mins
//   u32  qs[32][8]      dword 8h+k: bytes 32h+4k .. +3 of qs, whose low
//        nibbles are inputs 64h+4k .. +3 (sub-block 2h) and high nibbles
//        64h+32+4k .. +3 (sub-block 2h+1)
// As in Q4_0's panels, VPMADDUBSW of 8 rows' codes against a broadcast group
// of 4 activations advances 8 rows by 4 inputs; a sub-block's 8 steps sum in
// 16 bits (8 * 2 * 15 * 128 < 2^15) and one VPMADDWD against the sub-block's
// scale (in both 16-bit halves of each row's lane) widens and scales them.
// The mins come off against the activations' sums of 32 (VPMADDWD of two
// sub-blocks' mins with their two sums). All sums are exact integers.

// VPSHUFB indices picking bytes b0..b3 (-1: zero) of each dword for that dword.
__m256i DwordShuffle(int b0, int b1, int b2, int b3) {
  const auto index = [](int b, int shift) { return static_cast<uint32_t>(b < 0 ? 0x80 : b) << shift; };
  const uint32_t pattern = index(b0, 0) | index(b1, 8) | index(b2, 16) | index(b3, 24);
  // Plus 4 i in each byte of dword i of a 128-bit half (0x80 + 12 keeps bit 7: still zero).
  const __m256i base = _mm256_setr_epi32(0, 0x04040404, 0x08080808, 0x0C0C0C0C, 0, 0x04040404, 0x08080808, 0x0C0C0C0C);
  return _mm256_add_epi8(_mm256_set1_epi32(static_cast<int>(pattern)), base);
}

struct Q4_KPanels {
  static constexpr int kBlock = kQK_K;
  static constexpr int kRecordBytes = kPanelRows * sizeof(BlockQ4_K);
  static constexpr int kTileRows = kGroupRows;
  static constexpr int kTileTokens = kTokens;
  static constexpr int kGroupRecord = kGroupRows * sizeof(BlockQ4_K);
  static constexpr int kD = 0, kDmin = 16, kScales = 32, kQs = kScales + 3 * 32;

  // Q8_K blocks [n_tok][nsb].
  class Acts {
   public:
    explicit Acts(int64_t n_in) : nsb_(n_in / kQK_K) {}
    size_t bytes(int64_t n_tok) const { return static_cast<size_t>(n_tok * nsb_) * sizeof(BlockQ8_K); }
    void set_base(void* base) { base_ = static_cast<BlockQ8_K*>(base); }
    void Quantize(int64_t t, const float* x) const { QuantizeQ8_K(x, token(t), nsb_ * kQK_K); }
    BlockQ8_K* token(int64_t t) const { return base_ + t * nsb_; }

   private:
    int64_t nsb_;
    BlockQ8_K* base_ = nullptr;
  };

  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
    const int64_t nsb = w.cols() / kQK_K, n_out = w.rows();
    for (int g = 0; g < kPanelRows / kGroupRows; ++g) {
      uint8_t* group = panel + static_cast<size_t>(kGroupRecord) * static_cast<size_t>(nsb * g);
      for (int r = 0; r < kGroupRows; ++r) {
        const int64_t o = std::min(n_out - 1, o0 + g * kGroupRows + r);
        const auto* row = reinterpret_cast<const BlockQ4_K*>(w.row(o));
        for (int64_t b = 0; b < nsb; ++b) {
          uint8_t* rec = group + kGroupRecord * b;
          std::memcpy(rec + kD + 2 * r, &row[b].d, 2);
          std::memcpy(rec + kDmin + 2 * r, &row[b].dmin, 2);
          for (int i = 0; i < 3; ++i) std::memcpy(rec + kScales + 32 * i + 4 * r, row[b].scales + 4 * i, 4);
          for (int m = 0; m < kQK_K / 8; ++m) std::memcpy(rec + kQs + 32 * m + 4 * r, row[b].qs + 4 * m, 4);
        }
      }
    }
  }

  // y[t0 .. t0+T-1][o0 .. o0+7] (rows < n_out stored) from the 8 rows of one group.
  template <int T>
  static void Tile(const uint8_t* group, int64_t nsb, const Acts& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
    __m256 acc[T];
    const __m256i low6 = _mm256_set1_epi8(0x3F), low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nsb; ++b) {
      const uint8_t* rec = group + kGroupRecord * b;
      // The scales and mins as bytes of each row's dword: sc[0] sub-blocks
      // 0-3, sc[1] 4-7, mn likewise (ggml's get_scale_min_k4, 8 rows at once).
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + kScales));
      const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + kScales + 32));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + kScales + 64));
      const __m256i sc[2] = {_mm256_and_si256(a, low6),
                             _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_and_si256(_mm256_srli_epi32(a, 2), bits45))};
      const __m256i mn[2] = {
          _mm256_and_si256(m, low6),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(c, 4), low4), _mm256_and_si256(_mm256_srli_epi32(m, 2), bits45))};
      __m256i isum[T];
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      STRATA_UNROLL
      for (int j = 0; j < 8; ++j) {
        // Sub-block j's scale in both 16-bit halves of each row's lane.
        const __m256i scale = _mm256_shuffle_epi8(sc[j / 4], DwordShuffle(j % 4, -1, j % 4, -1));
        __m256i w[8];
        STRATA_UNROLL
        for (int k = 0; k < 8; ++k) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + kQs + 32 * (8 * (j / 2) + k)));
          w[k] = _mm256_and_si256(j % 2 == 0 ? v : _mm256_srli_epi16(v, 4), low4);
        }
        STRATA_UNROLL
        for (int t = 0; t < T; ++t) {
          const int8_t* xq = xa.token(t0 + t)[b].qs + 32 * j;
          __m256i sum16 = _mm256_maddubs_epi16(w[0], _mm256_set1_epi32(LoadI32(xq)));
          STRATA_UNROLL
          for (int k = 1; k < 8; ++k)
            sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(w[k], _mm256_set1_epi32(LoadI32(xq + 4 * k))));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(sum16, scale));
        }
      }
      // Mins of sub-blocks 2p and 2p+1 as a 16-bit pair in each row's lane.
      __m256i mins[4];
      STRATA_UNROLL
      for (int p = 0; p < 4; ++p)
        mins[p] = _mm256_shuffle_epi8(mn[p / 2], DwordShuffle(2 * (p % 2), -1, 2 * (p % 2) + 1, -1));
      const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + kD)));
      const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + kDmin)));
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        const BlockQ8_K& x = xa.token(t0 + t)[b];
        // Sums of 32: dwords 0, 1, 4, 5 hold the pairs (s0, s1), (s2, s3), (s4, s5), (s6, s7).
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums));
        const __m256i s32 = _mm256_hadd_epi16(bs, bs);
        __m256i msum = _mm256_setzero_si256();
        STRATA_UNROLL
        for (int p = 0; p < 4; ++p) {
          const __m256i pair = _mm256_permutevar8x32_epi32(s32, _mm256_set1_epi32(p < 2 ? p : p + 2));
          msum = _mm256_add_epi32(msum, _mm256_madd_epi16(mins[p], pair));
        }
        const __m256 dx = _mm256_set1_ps(x.d);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(d, dx), acc[t]);
        acc[t] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmin, dx), acc[t]);
      }
    }
    StoreGroup<T>(acc, y, n_out, o0, t0);
  }
};

}  // namespace

const MatMulKernels kAvx2Q4_K = kPanelKernels<Q4_KPanels>;
const MatMulKernels kAvx2Q5_K = {EachOut<MinKWeights<Q5_KCodes>>, nullptr, nullptr};
const MatMulKernels kAvx2Q6_K = {EachOut<Q6_KWeights>, nullptr, nullptr};
const MatMulKernels kAvx2Q2_K = {EachOut<Q2_KWeights>, nullptr, nullptr};
const MatMulKernels kAvx2Q3_K = {EachOut<Q3_KWeights>, nullptr, nullptr};
const MatMulKernels kAvx2IQ4_XS = {EachOut<IQ4_XSWeights>, nullptr, nullptr};

}  // namespace strata::kernels::internal

#undef STRATA_UNROLL
