// AVX-512 (F/BW/VL/DQ + VNNI) matrix multiplication, in two shapes:
//
//  * GEMV (a few tokens, i.e. decode): memory-bound. Weights are read once, in
//    place. Threads take runs of consecutive rows (~64 KB), so each reads one
//    sequential stream; a row is multiplied by up to 4 tokens at a time with
//    vectors running along the input dimension.
//  * GEMM (prefill): compute-bound. A panel of 32 output rows is repacked into
//    thread-private scratch so that 16 rows share the lanes of a vector; each
//    activation element is broadcast against it, giving a register tile of
//    32 rows x T tokens that reuses every loaded weight vector T times.
//
// Quantized weights multiply Q8_0-quantized activations with VPDPBUSD
// (unsigned x signed bytes). The weight is made the unsigned operand (Q8_0:
// q + 128 by flipping the sign bit; Q4_0: the stored nibble, q + 8) and the
// offset is cancelled by starting each block's integer sum at
// comp = -offset * sum(activation block).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/isa_kernels.h"
#include "kernels/transpose_avx512.h"

// GCC 12's _mm512_undefined_ps (used inside unpack/shuffle/convert intrinsics)
// self-initializes, which -Wuninitialized reports at every inlined call site.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Register-tile loops have compile-time trip counts and must be fully
// unrolled so their arrays live in registers; GCC does that only at -O3
// without this (-O2 measured 3x slower).
#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kQK = kQK8_0;  // elements per quantized block (Q8_0 and Q4_0)

// Below this many tokens repacking weights costs more than it saves.
constexpr int64_t kGemmMinTokensQuant = 6;
constexpr int64_t kGemmMinTokensFloat = 6;

// GEMV: tokens per pass over a row, and weight bytes per task (rows are
// handed out in runs of about this size, each read as one sequential stream so
// the hardware prefetcher stays trained; interleaving several short rows
// measured several times slower from DRAM).
constexpr int kGemvTokens = 4;
constexpr int64_t kGemvTaskBytes = 64 << 10;

// GEMM panel: 32 rows (two vectors of 16 lanes); token tiles.
constexpr int kPanelRows = 2 * kLanes;
constexpr int kGemmTokensQuant = 6;
constexpr int kGemmTokensFloat = 12;
constexpr int64_t kFloatChunk = 256;  // input elements per packed float panel (32 KB)

__mmask16 LaneMask(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

size_t RoundUp64(size_t n) { return (n + 63) / 64 * 64; }

// Calls f(std::integral_constant<int, n>{}) for 1 <= n <= N: picks the
// register-tile instantiation for a run-time token count.
template <int N, class F>
void WithCount(int64_t n, const F& f) {
  if constexpr (N > 1) {
    if (n < N) return WithCount<N - 1>(n, f);
  }
  f(std::integral_constant<int, N>());
}

// ---------------------------------------------------------------------------
// Activations quantized to Q8_0, one record per token, laid out for the kernels
// (every vector array 64-byte aligned):
//   GEMV only, one 16-lane vector per block pair (lanes 0-7: first block):
//   dxv   f32   [16 * n_pairs]       d of each lane's block
//   compv i32   [16 * n_pairs]       the blocks' comp in lanes 0 and 8, zero elsewhere
//   qs    int8  [2 * kQK * n_pairs]  (zero padded to whole block pairs)
//   d     f32   [2 * n_pairs]        fp16-rounded scale per block
//   comp  i32   [2 * n_pairs]        -offset * sum(qs of block)
// The quantization is QuantizeRow(Q8_0)'s exactly (x * (1/d) rounded half away
// from zero, like roundf).
class QuantizedActs {
 public:
  QuantizedActs(int64_t n_in, bool vectors)
      : n_pairs_((n_in / kQK + 1) / 2),
        vectors_(vectors),
        qs_offset_(vectors ? 128 * n_pairs_ : 0),
        stride_(RoundUp64(static_cast<size_t>(qs_offset_ + 80 * n_pairs_))) {}

  size_t bytes(int64_t n_tok) const { return stride_ * static_cast<size_t>(n_tok); }
  void set_base(void* base) { base_ = static_cast<uint8_t*>(base); }

  int8_t* qs(int64_t t) const { return reinterpret_cast<int8_t*>(rec(t) + qs_offset_); }
  float* d(int64_t t) const { return reinterpret_cast<float*>(rec(t) + qs_offset_ + 64 * n_pairs_); }
  int32_t* comp(int64_t t) const { return reinterpret_cast<int32_t*>(rec(t) + qs_offset_ + 72 * n_pairs_); }
  float* dxv(int64_t t) const { return reinterpret_cast<float*>(rec(t)); }
  int32_t* compv(int64_t t) const { return reinterpret_cast<int32_t*>(rec(t) + 64 * n_pairs_); }

  // Quantizes token t's activations x: F32 [n_in]. Distinct t may run concurrently.
  void Quantize(int64_t t, const float* x, int64_t n_in, int offset) const;

 private:
  uint8_t* rec(int64_t t) const { return base_ + stride_ * static_cast<size_t>(t); }

  int64_t n_pairs_;
  bool vectors_;
  int64_t qs_offset_;
  size_t stride_;
  uint8_t* base_ = nullptr;
};

// roundf(v) for |v| <= 128 (checked exhaustively): truncation after adding
// the largest float below one half with v's sign.
__m512i RoundHalfAway(__m512 v) {
  const __m512 half = _mm512_set1_ps(0.49999997f);
  const __m512 sign = _mm512_and_ps(v, _mm512_set1_ps(-0.0f));
  return _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_or_ps(half, sign)));
}

void QuantizedActs::Quantize(int64_t t, const float* x, int64_t n_in, int offset) const {
  std::memset(rec(t), 0, stride_);
  int8_t* qs = this->qs(t);
  float* d = this->d(t);
  int32_t* comp = this->comp(t);
  float* dxv = this->dxv(t);
  int32_t* compv = this->compv(t);
  for (int64_t b = 0; b < n_in / kQK; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kQK), v1 = _mm512_loadu_ps(x + b * kQK + kLanes);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float scale = amax / 127.0f;
    const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i q0 = RoundHalfAway(_mm512_mul_ps(v0, vinv)), q1 = RoundHalfAway(_mm512_mul_ps(v1, vinv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK + kLanes), _mm512_cvtepi32_epi8(q1));
    d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
    comp[b] = -offset * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    if (vectors_) {
      const int64_t lane0 = (b / 2) * kLanes + (b % 2) * (kLanes / 2);
      for (int j = 0; j < kLanes / 2; ++j) dxv[lane0 + j] = d[b];
      compv[lane0] = comp[b];
    }
  }
}

// ---------------------------------------------------------------------------
// Quantized weight formats as the unsigned VPDPBUSD operand.

struct Q8_0Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  // Blocks b[0] and (if both) b[1] as 64 unsigned bytes q + 128.
  template <bool kBoth>
  static __m512i LoadPair(const Block* b) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs));
    const __m256i hi = kBoth ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)) : _mm256_setzero_si256();
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(char(0x80)));
  }
  // Block b of 16 rows as q[ks][row] (4 inputs 4ks..4ks+3 per lane), unsigned:
  // an 8x8 transpose of 4-byte groups in each 256-bit half (rows i, i+8).
  static void PackBlock(const Block* const rows[16], int64_t b, uint8_t* q, int stride) {
    __m512i r[8], t[8], u[8];
    STRATA_UNROLL
    for (int i = 0; i < 8; ++i) {
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i][b].qs));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows[i + 8][b].qs));
      r[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    STRATA_UNROLL
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    STRATA_UNROLL
    for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 of each half
      u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
      u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
      u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
      u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
    // u[k] lane L: rows 0-3 (lanes 0, 1) or 8-11 (lanes 2, 3) at ks = 4 * (L % 2) + k.
    const __m512i even = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i odd = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    STRATA_UNROLL
    for (int k = 0; k < 4; ++k) {
      _mm512_store_si512(q + k * stride, _mm512_xor_si512(_mm512_permutex2var_epi64(u[k], even, u[4 + k]), flip));
      _mm512_store_si512(q + (k + 4) * stride, _mm512_xor_si512(_mm512_permutex2var_epi64(u[k], odd, u[4 + k]), flip));
    }
  }
};

struct Q4_0Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  // Blocks b[0] and (if both) b[1] as 64 nibbles q + 8, in element order.
  template <bool kBoth>
  static __m512i LoadPair(const Block* b) {
    const __m256i lo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs)));
    const __m256i hi = kBoth ? _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)))
                             : _mm256_setzero_si256();
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);  // 128-bit lanes 1 and 3: high nibbles
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
  }
  // Block b of 16 rows as q[ks][row] nibbles: a 4x4 transpose of 4-byte
  // groups in each 128-bit lane (rows i, i+4, i+8, i+12), then the low
  // nibbles are inputs 0-15 (ks 0-3) and the high nibbles inputs 16-31.
  static void PackBlock(const Block* const rows[16], int64_t b, uint8_t* q, int stride) {
    __m512i z[4];
    STRATA_UNROLL
    for (int i = 0; i < 4; ++i) {
      __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i][b].qs)));
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 4][b].qs)), 1);
      v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 8][b].qs)), 2);
      z[i] = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[i + 12][b].qs)), 3);
    }
    const __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    const __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    const __m512i o[4] = {_mm512_unpacklo_epi64(a0, a2), _mm512_unpackhi_epi64(a0, a2), _mm512_unpacklo_epi64(a1, a3),
                          _mm512_unpackhi_epi64(a1, a3)};
    const __m512i mask = _mm512_set1_epi8(0x0F);
    STRATA_UNROLL
    for (int k = 0; k < 4; ++k) {
      _mm512_store_si512(q + k * stride, _mm512_and_si512(o[k], mask));
      _mm512_store_si512(q + (k + 4) * stride, _mm512_and_si512(_mm512_srli_epi16(o[k], 4), mask));
    }
  }
};

// fp16 scales d0, d1 as a vector: lanes 0-7 d0, lanes 8-15 d1.
__m512 PairScale(uint16_t d0, uint16_t d1) {
  const __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(d0 | (static_cast<uint32_t>(d1) << 16))));
  return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                               _mm512_castps128_ps512(f));
}

// ---------------------------------------------------------------------------
// GEMV driver: hands out runs of rows; row_fn(o, t0, n) computes
// y[t0 .. t0+n-1][o] for n <= kGemvTokens.
template <class RowFn>
void ForGemvRows(const Tensor& w, int64_t n_tok, ThreadPool& pool, const RowFn& row_fn) {
  const int64_t n_out = w.rows();
  const int64_t rows_per_task = std::max<int64_t>(1, kGemvTaskBytes / static_cast<int64_t>(w.row_bytes()));
  pool.ParallelTasks((n_out + rows_per_task - 1) / rows_per_task, [&](int64_t task, int) {
    const int64_t end = std::min(n_out, (task + 1) * rows_per_task);
    for (int64_t o = task * rows_per_task; o < end; ++o)
      for (int64_t t0 = 0; t0 < n_tok; t0 += kGemvTokens) row_fn(o, t0, std::min<int64_t>(kGemvTokens, n_tok - t0));
  });
}

// Quantized GEMV: one weight row against tokens t0 .. t0+T-1. Block pairs
// alternate between two accumulators per token to hide the FMA latency.
template <class W, int T>
struct GemvQuantRow {
  using Block = typename W::Block;
  __m512 acc[T][2];

  template <bool kBoth>
  void Step(const Block* row, const QuantizedActs& xa, int64_t t0, int64_t p, int a) {
    const Block* b = row + 2 * p;
    const __m512i wv = W::template LoadPair<kBoth>(b);
    const __m512 dw = PairScale(b[0].d, kBoth ? b[1].d : 0);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512i xq = _mm512_load_si512(xa.qs(t0 + t) + 2 * kQK * p);
      const __m512 dx = _mm512_load_ps(xa.dxv(t0 + t) + kLanes * p);
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_load_si512(xa.compv(t0 + t) + kLanes * p), wv, xq);
      acc[t][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, dx), acc[t][a]);
    }
  }

  void Run(const Block* row, int64_t nb, const QuantizedActs& xa, int64_t t0, float* y, int64_t n_out) {
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
    const int64_t n_pairs = nb / 2;
    int64_t p = 0;
    for (; p + 2 <= n_pairs; p += 2) {
      Step<true>(row, xa, t0, p, 0);
      Step<true>(row, xa, t0, p + 1, 1);
    }
    if (p < n_pairs) Step<true>(row, xa, t0, p, 0);
    if (nb % 2) Step<false>(row, xa, t0, n_pairs, 1);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) y[(t0 + t) * n_out] = _mm512_reduce_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]));
  }
};

template <class W>
void GemvQuant(const Tensor& w, const QuantizedActs& xa, int64_t n_tok, float* y, ThreadPool& pool) {
  using Block = typename W::Block;
  const int64_t nb = w.cols() / kQK, n_out = w.rows();
  const auto* base = static_cast<const Block*>(w.data);
  ForGemvRows(w, n_tok, pool, [&](int64_t o, int64_t t0, int64_t n) {
    const Block* row = base + o * nb;
    WithCount<kGemvTokens>(n, [&](auto T) { GemvQuantRow<W, T()>().Run(row, nb, xa, t0, y + o, n_out); });
  });
}

// ---------------------------------------------------------------------------
// Quantized GEMM. Packed panel, per block of 32 inputs:
//   f32 dw[32]                 scale of each row's block
//   u8  q[8][2][16][4]         [k step][row group][row in group][4 inputs]
constexpr int kQuantPanelBlockBytes = kPanelRows * 4 + (kQK / 4) * kPanelRows * 4;

template <class W>
void PackQuantPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
  using Block = typename W::Block;
  const int64_t nb = w.cols() / kQK, n_out = w.rows();
  STRATA_UNROLL
  for (int g = 0; g < 2; ++g) {
    // Rows past the matrix repeat its last row; their outputs are never stored.
    const Block* rows[16];
    int32_t offsets[16];
    STRATA_UNROLL
    for (int i = 0; i < 16; ++i) {
      const int64_t o = std::min(o0 + g * kLanes + i, n_out - 1);
      rows[i] = static_cast<const Block*>(w.data) + o * nb;
      offsets[i] = static_cast<int32_t>(reinterpret_cast<const uint8_t*>(rows[i]) - reinterpret_cast<const uint8_t*>(rows[0]));
    }
    const __m512i idx = _mm512_loadu_si512(offsets);
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* pb = panel + b * kQuantPanelBlockBytes;
      const __m512i d = _mm512_i32gather_epi32(idx, &rows[0][b].d, 1);
      _mm512_store_ps(pb + g * 64, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(d)));
      W::PackBlock(rows, b, pb + 128 + g * 64, 128);
    }
  }
}

template <int T>
void GemmQuantTile(const uint8_t* panel, int64_t nb, const QuantizedActs& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
  const int8_t* xq[T];
  const float* xd[T];
  const int32_t* xc[T];
  __m512 acc0[T], acc1[T];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xq[t] = xa.qs(t0 + t);
    xd[t] = xa.d(t0 + t);
    xc[t] = xa.comp(t0 + t);
    acc0[t] = _mm512_setzero_ps();
    acc1[t] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* pb = panel + b * kQuantPanelBlockBytes;
    __m512i i0[T], i1[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) i0[t] = i1[t] = _mm512_set1_epi32(xc[t][b]);
    STRATA_UNROLL
    for (int ks = 0; ks < kQK / 4; ++ks) {
      const __m512i w0 = _mm512_load_si512(pb + 128 + ks * 128);
      const __m512i w1 = _mm512_load_si512(pb + 128 + ks * 128 + 64);
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        int32_t x4;
        std::memcpy(&x4, xq[t] + b * kQK + 4 * ks, 4);
        const __m512i xb = _mm512_set1_epi32(x4);
        i0[t] = _mm512_dpbusd_epi32(i0[t], w0, xb);
        i1[t] = _mm512_dpbusd_epi32(i1[t], w1, xb);
      }
    }
    const __m512 dw0 = _mm512_load_ps(pb), dw1 = _mm512_load_ps(pb + 64);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512 dx = _mm512_set1_ps(xd[t][b]);
      acc0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(dw0, dx), acc0[t]);
      acc1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(dw1, dx), acc1[t]);
    }
  }
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * n_out + o0;
    _mm512_mask_storeu_ps(yt, m0, acc0[t]);
    _mm512_mask_storeu_ps(yt + kLanes, m1, acc1[t]);
  }
}

template <class W>
void GemmQuant(const Tensor& w, const QuantizedActs& xa, int64_t n_tok, float* y, ThreadPool& pool,
               uint8_t* panels) {
  const int64_t nb = w.cols() / kQK, n_out = w.rows();
  const size_t panel_bytes = static_cast<size_t>(nb) * kQuantPanelBlockBytes;
  pool.ParallelTasks((n_out + kPanelRows - 1) / kPanelRows, [&](int64_t task, int ith) {
    uint8_t* panel = panels + panel_bytes * static_cast<size_t>(ith);
    const int64_t o0 = task * kPanelRows;
    PackQuantPanel<W>(w, o0, panel);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kGemmTokensQuant) {
      WithCount<kGemmTokensQuant>(n_tok - t0, [&](auto T) { GemmQuantTile<T()>(panel, nb, xa, t0, y, n_out, o0); });
    }
  });
}

template <class W>
void MatMulQuant(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), nb = n_in / kQK;
  const bool gemm = n_tok >= kGemmMinTokensQuant;
  QuantizedActs xa(n_in, /*vectors=*/!gemm);
  const size_t act_bytes = RoundUp64(xa.bytes(n_tok));
  const size_t panel_bytes = gemm ? static_cast<size_t>(nb) * kQuantPanelBlockBytes : 0;
  auto* scratch = static_cast<uint8_t*>(pool.Scratch(act_bytes + panel_bytes * pool.n_threads()));
  xa.set_base(scratch);
  pool.ParallelFor(n_tok, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) xa.Quantize(t, x + t * n_in, n_in, W::kOffset);
  });
  if (gemm) {
    GemmQuant<W>(w, xa, n_tok, y, pool, scratch + act_bytes);
  } else {
    GemvQuant<W>(w, xa, n_tok, y, pool);
  }
}

// ---------------------------------------------------------------------------
// Float weights (F32, F16, BF16) widened to F32 16 elements at a time.

struct F32Weights {
  static constexpr int kBytes = 4;
  static __m512 Load(const void* row, int64_t k) { return _mm512_loadu_ps(static_cast<const float*>(row) + k); }
  static __m512 LoadMasked(const void* row, int64_t k, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(row) + k);
  }
};

struct F16Weights {
  static constexpr int kBytes = 2;
  static __m512 Load(const void* row, int64_t k) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k)));
  }
  static __m512 LoadMasked(const void* row, int64_t k, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k));
  }
};

struct BF16Weights {
  static constexpr int kBytes = 2;
  static __m512 Widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m512 Load(const void* row, int64_t k) {
    return Widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k)));
  }
  static __m512 LoadMasked(const void* row, int64_t k, __mmask16 m) {
    return Widen(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(row) + k));
  }
};

// Float GEMV: one weight row against tokens t0 .. t0+T-1, kUnroll vectors of
// the row per step, each with its own accumulators (FMA latency).
constexpr int kGemvFloatUnroll = 4;

template <class W, int T>
void GemvFloatRow(const void* row, int64_t n_in, const float* x, int64_t t0, float* y, int64_t n_out) {
  constexpr int U = kGemvFloatUnroll;
  const float* xt[T];
  __m512 acc[T][U];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xt[t] = x + (t0 + t) * n_in;
    STRATA_UNROLL
    for (int u = 0; u < U; ++u) acc[t][u] = _mm512_setzero_ps();
  }
  // A masked head of < 16 elements aligns the weight loads to their width
  // (GGUF aligns tensors to 32 bytes only; loads splitting cache lines cost
  // ~25% of decode bandwidth).
  constexpr int64_t kLoadBytes = kLanes * W::kBytes;
  const int64_t misalign = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) % kLoadBytes);
  int64_t k = std::min(n_in, (kLoadBytes - misalign) % kLoadBytes / W::kBytes);
  if (k > 0) {
    const __mmask16 m = LaneMask(k);
    const __m512 wv = W::LoadMasked(row, 0, m);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t][1] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xt[t]), acc[t][1]);
  }
  for (; k + U * kLanes <= n_in; k += U * kLanes) {
    __m512 wv[U];
    STRATA_UNROLL
    for (int u = 0; u < U; ++u) wv[u] = W::Load(row, k + u * kLanes);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t)
      STRATA_UNROLL
      for (int u = 0; u < U; ++u) acc[t][u] = _mm512_fmadd_ps(wv[u], _mm512_loadu_ps(xt[t] + k + u * kLanes), acc[t][u]);
  }
  for (; k < n_in; k += kLanes) {
    const __mmask16 m = LaneMask(n_in - k);
    const __m512 wv = W::LoadMasked(row, k, m);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xt[t] + k), acc[t][0]);
  }
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    STRATA_UNROLL
    for (int u = 1; u < U; ++u) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][u]);
    y[(t0 + t) * n_out] = _mm512_reduce_add_ps(acc[t][0]);
  }
}

template <class W>
void GemvFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t row_bytes = static_cast<int64_t>(w.row_bytes());
  ForGemvRows(w, n_tok, pool, [&](int64_t o, int64_t t0, int64_t n) {
    const void* row = base + o * row_bytes;
    WithCount<kGemvTokens>(n, [&](auto T) { GemvFloatRow<W, T()>(row, n_in, x, t0, y + o, n_out); });
  });
}

// Packs rows o0 .. o0+31, inputs k0 .. k0+kc-1 as panel[k][32] (inputs past
// n_in are zero, kc is padded to a multiple of 16; rows past the matrix repeat
// its last row and their outputs are never stored). Prefetches the next chunk
// into L2: 32 short row segments defeat the hardware prefetcher.
template <class W>
void PackFloatPanel(const Tensor& w, int64_t o0, int64_t k0, int64_t kc, float* panel) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t row_bytes = static_cast<int64_t>(w.row_bytes());
  const void* rows[kPanelRows];
  STRATA_UNROLL
  for (int i = 0; i < kPanelRows; ++i) rows[i] = base + std::min(o0 + i, n_out - 1) * row_bytes;
  STRATA_UNROLL
  for (int g = 0; g < 2; ++g) {
    for (int64_t kb = 0; kb < kc; kb += kLanes) {
      const __mmask16 m = LaneMask(n_in - (k0 + kb));
      const bool prefetch = k0 + kc + kb < n_in;
      __m512 r[16];
      STRATA_UNROLL
      for (int i = 0; i < 16; ++i) {
        const void* row = rows[g * kLanes + i];
        if (prefetch) _mm_prefetch(static_cast<const char*>(row) + (k0 + kc + kb) * W::kBytes, _MM_HINT_T1);
        r[i] = W::LoadMasked(row, k0 + kb, m);
      }
      Transpose16(r);
      STRATA_UNROLL
      for (int i = 0; i < 16; ++i) _mm512_store_ps(panel + (kb + i) * kPanelRows + g * kLanes, r[i]);
    }
  }
}

template <int T>
void GemmFloatTile(const float* panel, int64_t kc, const float* x, int64_t n_in, int64_t t0, int64_t k0, float* y,
                   int64_t n_out, int64_t o0, bool accumulate) {
  const float* xt[T];
  __m512 acc0[T], acc1[T];
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xt[t] = x + (t0 + t) * n_in + k0;
    float* yt = y + (t0 + t) * n_out + o0;
    acc0[t] = accumulate ? _mm512_maskz_loadu_ps(m0, yt) : _mm512_setzero_ps();
    acc1[t] = accumulate ? _mm512_maskz_loadu_ps(m1, yt + kLanes) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 w0 = _mm512_load_ps(panel + k * kPanelRows), w1 = _mm512_load_ps(panel + k * kPanelRows + kLanes);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(xt[t][k]);
      acc0[t] = _mm512_fmadd_ps(w0, xb, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, xb, acc1[t]);
    }
  }
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * n_out + o0;
    _mm512_mask_storeu_ps(yt, m0, acc0[t]);
    _mm512_mask_storeu_ps(yt + kLanes, m1, acc1[t]);
  }
}

template <class W>
void GemmFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const size_t panel_floats = static_cast<size_t>(kFloatChunk) * kPanelRows;
  auto* panels = static_cast<float*>(pool.Scratch(panel_floats * sizeof(float) * pool.n_threads()));
  pool.ParallelTasks((n_out + kPanelRows - 1) / kPanelRows, [&](int64_t task, int ith) {
    float* panel = panels + panel_floats * static_cast<size_t>(ith);
    const int64_t o0 = task * kPanelRows;
    for (int64_t k0 = 0; k0 < n_in; k0 += kFloatChunk) {
      const int64_t kc = std::min(kFloatChunk, n_in - k0);
      PackFloatPanel<W>(w, o0, k0, kc, panel);
      for (int64_t t0 = 0; t0 < n_tok; t0 += kGemmTokensFloat) {
        WithCount<kGemmTokensFloat>(n_tok - t0, [&](auto T) {
          GemmFloatTile<T()>(panel, kc, x, n_in, t0, k0, y, n_out, o0, /*accumulate=*/k0 > 0);
        });
      }
    }
  });
}

template <class W>
void MatMulFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  if (n_tok >= kGemmMinTokensFloat) {
    GemmFloat<W>(w, x, n_tok, y, pool);
  } else {
    GemvFloat<W>(w, x, n_tok, y, pool);
  }
}

}  // namespace

void MatMulAvx512(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  switch (w.type) {
    case DType::kF32: return MatMulFloat<F32Weights>(w, x, n_tok, y, pool);
    case DType::kF16: return MatMulFloat<F16Weights>(w, x, n_tok, y, pool);
    case DType::kBF16: return MatMulFloat<BF16Weights>(w, x, n_tok, y, pool);
    case DType::kQ8_0: return MatMulQuant<Q8_0Weights>(w, x, n_tok, y, pool);
    case DType::kQ4_0: return MatMulQuant<Q4_0Weights>(w, x, n_tok, y, pool);
    default: return;
  }
}

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
