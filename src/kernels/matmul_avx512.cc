// AVX-512 (F/BW/VL/DQ + VNNI) matrix multiplication.
//
// Quantized weights (Q8_0, Q4_0) are read as 32-row panels in which 16 rows
// share the lanes of a vector (layout below); each activation group is
// broadcast against them, giving a register tile of 32 rows x T tokens that
// reuses every loaded weight vector T times. The same tile serves decode
// (T = 1, memory-bound: each weight byte is read once, sequentially, with a
// handful of instructions per 64 bytes; Q8_0 runs it on 256-bit halves,
// QuantRowTile) and prefill (T = 6, compute-bound).
// Matrices are normally packed into panels once at load (PackMatrix); a
// matrix in the file's row layout is packed panel by panel on the fly.
// Activations are quantized to Q8_0 and multiplied with VPDPBUSD (unsigned x
// signed bytes): the weight is made the unsigned operand (Q8_0: q + 128;
// Q4_0: the stored nibble, q + 8) and the offset is cancelled by starting each
// block's integer sum at comp = -offset * sum(activation block).
//
// Float weights: F32, F16 and BF16 are normally packed at load into 32-row
// panels too (k-major, one 64-byte line per input for 16-bit types, two for
// F32), which decode streams panel by panel; matrices left in rows decode as
// GEMV, each thread reading its contiguous share of the rows as one
// sequential stream, vectors along the input dimension. With more tokens,
// GEMM: panels of 32 rows x 256 inputs as F32 (packed F32 read in place,
// anything else widened or transposed into thread-private scratch), broadcast
// activations. BF16 GEMM on CPUs with AVX512_BF16 instead multiplies BF16
// pairs with VDPBF16PS against activations rounded to BF16 (kBf16DotMinTokens).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "kernels/isa_kernels.h"
#include "kernels/matmul_tasks.h"
#include "kernels/quant_panels_avx512.h"
#include "kernels/transpose_avx512.h"

// GCC 12's _mm512_undefined_ps (used inside unpack/shuffle/convert intrinsics)
// self-initializes, which -Wuninitialized reports at every inlined call site.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace strata::kernels::internal {
namespace {

constexpr int kQK = kQK8_0;  // elements per quantized block (Q8_0 and Q4_0)

// Below this many tokens repacking float weights costs more than it saves.
constexpr int64_t kGemmMinTokensFloat = 6;

// GEMV: tokens per pass over a row, and weight bytes per task (rows are
// handed out in runs of about this size, each read as one sequential stream so
// the hardware prefetcher stays trained; interleaving several short rows
// measured several times slower from DRAM).
constexpr int kGemvTokens = 4;
constexpr int64_t kGemvTaskBytes = 64 << 10;

// Token tiles.
constexpr int kQuantTileTokens = 6;
// Decode (one token) prefetches the panel this many bytes ahead.
constexpr int kPrefetchBytes = 4096;
constexpr int kGemmTokensFloat = 12;
constexpr int64_t kFloatChunk = 256;  // input elements per packed float panel (32 KB)

// ---------------------------------------------------------------------------
// Activations quantized to Q8_0, one record per token (64-byte aligned):
//   qs    int8  [kQK * nb]
//   d     f32   [nb]   fp16-rounded scale per block
//   comp  i32   [nb]   -offset * sum(qs of block)
//   s     f32   [nb]   kSums only: Q8_1's s, fp16(d * sum(qs)) (d not rounded)
// The quantization is QuantizeRow(Q8_0)'s (and Q8_1's) exactly (x * (1/d)
// rounded half away from zero, like roundf); offset is the weights' (below).
template <int kOffset, bool kSums = false>
class QuantizedActs {
 public:
  explicit QuantizedActs(int64_t n_in)
      : nb_(n_in / kQK), stride_(RoundUp64(static_cast<size_t>(nb_ * (kQK + (kSums ? 12 : 8))))) {}

  size_t bytes(int64_t n_tok) const { return stride_ * static_cast<size_t>(n_tok); }
  void set_base(void* base) { base_ = static_cast<uint8_t*>(base); }

  const int8_t* qs(int64_t t) const { return reinterpret_cast<const int8_t*>(rec(t)); }
  const float* d(int64_t t) const { return reinterpret_cast<const float*>(rec(t) + kQK * nb_); }
  const int32_t* comp(int64_t t) const { return reinterpret_cast<const int32_t*>(rec(t) + (kQK + 4) * nb_); }
  const float* s(int64_t t) const { return reinterpret_cast<const float*>(rec(t) + (kQK + 8) * nb_); }

  // Quantizes token t's activations x: F32 [n_in]. Distinct t may run concurrently.
  void Quantize(int64_t t, const float* x) const;

 private:
  uint8_t* rec(int64_t t) const { return base_ + stride_ * static_cast<size_t>(t); }

  int64_t nb_;
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

template <int kOffset, bool kSums>
void QuantizedActs<kOffset, kSums>::Quantize(int64_t t, const float* x) const {
  auto* qs = reinterpret_cast<int8_t*>(rec(t));
  auto* d = reinterpret_cast<float*>(rec(t) + kQK * nb_);
  auto* comp = reinterpret_cast<int32_t*>(rec(t) + (kQK + 4) * nb_);
  auto* s = reinterpret_cast<float*>(rec(t) + (kQK + 8) * nb_);
  for (int64_t b = 0; b < nb_; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * kQK), v1 = _mm512_loadu_ps(x + b * kQK + kLanes);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float scale = amax / 127.0f;
    const float inv = scale != 0.0f ? 1.0f / scale : 0.0f;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i q0 = RoundHalfAway(_mm512_mul_ps(v0, vinv)), q1 = RoundHalfAway(_mm512_mul_ps(v1, vinv));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(qs + b * kQK + kLanes), _mm512_cvtepi32_epi8(q1));
    d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
    const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    comp[b] = -kOffset * sum;
    if constexpr (kSums) s[b] = _cvtsh_ss(_cvtss_sh(static_cast<float>(sum) * scale, _MM_FROUND_TO_NEAREST_INT));
  }
}

// ---------------------------------------------------------------------------
// Packed quantized matrices (TensorLayout::kPanels32). Rows are grouped in
// panels of 32 (two groups of 16 rows, one per vector); rows past the matrix
// repeat its last row and their outputs are never stored. A panel is nb
// records, one per block of 32 inputs, of exactly the bytes 32 rows' blocks
// take in the file (Q8_0 1088, Q4_0 576), so packing costs no memory:
//   fp16 d[2][16]                      each row's block scale
//   Q8_0: u8 q[8][2][16][4]           [k step][group][row][4 inputs], q + 128
//   Q4_0: u8 q[2][4][16][4]           [group][k step][row][4 bytes]: the low
//         nibbles are inputs 4k..4k+3 (k step k), the high ones 16+4k..16+4k+3
//         (k step k+4), each q + 8
// Lane i of a k step's vector holds row i of the group, so one VPDPBUSD with a
// broadcast group of 4 activations advances 16 rows by 4 inputs. The weight is
// the unsigned operand; each block's integer sum starts at the activations'
// comp = -offset * sum(activation block), which cancels the offset.

struct Q8_0Weights {
  using Block = BlockQ8_0;
  static constexpr int kOffset = 128;
  static constexpr bool kMin = false;
  using Acts = QuantizedActs<kOffset>;
  static constexpr bool kHalfVectorDecode = true;  // QuantRowTile
  static constexpr int kRecordBytes = 64 + kQK * kPanelRows;
  // Writes block b of rows[0..15] as group g of record rec: an 8x8 transpose
  // of 4-byte groups in each 256-bit half (rows i, i+8).
  static void PackBlock(const Block* const rows[16], int64_t b, uint8_t* rec, int g) {
    uint8_t* q = rec + 64 + g * 64;
    constexpr int kStride = 2 * 64;
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
      _mm512_store_si512(q + k * kStride, _mm512_xor_si512(_mm512_permutex2var_epi64(u[k], even, u[4 + k]), flip));
      _mm512_store_si512(q + (k + 4) * kStride,
                         _mm512_xor_si512(_mm512_permutex2var_epi64(u[k], odd, u[4 + k]), flip));
    }
  }
  // Calls f(ks, group 0 vector, group 1 vector) for the record's 8 k steps.
  template <class F>
  static void ForEachStep(const uint8_t* rec, const F& f) {
    STRATA_UNROLL
    for (int ks = 0; ks < kQK / 4; ++ks)
      f(ks, _mm512_load_si512(rec + 64 + ks * 128), _mm512_load_si512(rec + 64 + ks * 128 + 64));
  }
  // The same with each vector as two halves: f(ks, rows 0-7, 8-15, 16-23, 24-31).
  template <class F>
  static void ForEachHalfStep(const uint8_t* rec, const F& f) {
    STRATA_UNROLL
    for (int ks = 0; ks < kQK / 4; ++ks) {
      const auto* q = reinterpret_cast<const __m256i*>(rec + 64 + ks * 128);
      f(ks, _mm256_load_si256(q), _mm256_load_si256(q + 1), _mm256_load_si256(q + 2), _mm256_load_si256(q + 3));
    }
  }
};

// The 16 bytes of nibble pairs of block b of rows[0..15] as u8 q[4][16][4]
// ([k step][row][4 bytes]) at q: a 4x4 transpose of 4-byte groups in each
// 128-bit lane (rows i, i+4, i+8, i+12).
template <class Block>
void PackNibbles(const Block* const rows[16], int64_t b, uint8_t* q) {
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
  _mm512_store_si512(q + 0 * 64, _mm512_unpacklo_epi64(a0, a2));
  _mm512_store_si512(q + 1 * 64, _mm512_unpackhi_epi64(a0, a2));
  _mm512_store_si512(q + 2 * 64, _mm512_unpacklo_epi64(a1, a3));
  _mm512_store_si512(q + 3 * 64, _mm512_unpackhi_epi64(a1, a3));
}

struct Q4_0Weights {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 8;
  static constexpr bool kMin = false;
  using Acts = QuantizedActs<kOffset>;
  // Not QuantRowTile: 1.1B Q4_0 decode read 0.78 / 0.58 of the read bandwidth
  // (slow / fast phase) unpacking nibbles in half vectors and 0.92-0.95 / -
  // splitting unpacked full vectors, against 0.95-1.01 / 0.78-0.85 as is.
  static constexpr bool kHalfVectorDecode = false;
  static constexpr int kRecordBytes = 64 + kQK / 2 * kPanelRows;
  static void PackBlock(const Block* const rows[16], int64_t b, uint8_t* rec, int g) {
    PackNibbles(rows, b, rec + 64 + g * 256);
  }
  template <class F>
  static void ForEachStep(const uint8_t* rec, const F& f) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    STRATA_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m512i v0 = _mm512_load_si512(rec + 64 + k * 64), v1 = _mm512_load_si512(rec + 64 + 256 + k * 64);
      f(k, _mm512_and_si512(v0, mask), _mm512_and_si512(v1, mask));
      f(k + 4, _mm512_and_si512(_mm512_srli_epi16(v0, 4), mask), _mm512_and_si512(_mm512_srli_epi16(v1, 4), mask));
    }
  }
};

// Q4_1, Q5_0, Q5_1 and IQ4_NL: nibble pairs laid out as Q4_0's, after
//   fp16 m[2][16]                      Q4_1, Q5_1: each row's block minimum
//   u32  qh[2][16]                     Q5_0, Q5_1: the fifth bits, transposed:
//        bit k of byte i is the fifth bit of input 4k+i (k step k)
// N: Block; kOffset (the activations' comp cancels it); kMin (Q8_1
// activations, + m * s per block); kFifthBit; Code(nibbles, k step, qh):
// the unsigned codes of a k step from its nibbles (in bits 0-3).
template <class N>
struct NibbleWeights {
  using Block = typename N::Block;
  static constexpr int kOffset = N::kOffset;
  static constexpr bool kMin = N::kMin;
  using Acts = QuantizedActs<kOffset, kMin>;
  static constexpr bool kHalfVectorDecode = false;
  static constexpr int kM = 64;
  static constexpr int kQh = kM + (kMin ? 64 : 0);
  static constexpr int kQ = kQh + (N::kFifthBit ? 128 : 0);
  static constexpr int kRecordBytes = kQ + kQK / 2 * kPanelRows;
  static_assert(kRecordBytes == kPanelRows * static_cast<int>(sizeof(Block)));

  static void PackBlock(const Block* const rows[16], int64_t b, uint8_t* rec, int g) {
    PackNibbles(rows, b, rec + kQ + g * 256);
    if constexpr (kMin) {
      auto* m = reinterpret_cast<uint16_t*>(rec + kM) + g * kLanes;
      for (int i = 0; i < kLanes; ++i) m[i] = rows[i][b].m;
    }
    if constexpr (N::kFifthBit) {
      alignas(64) uint32_t bits[kLanes];
      for (int i = 0; i < kLanes; ++i) std::memcpy(&bits[i], rows[i][b].qh, sizeof bits[i]);
      const __m512i v = _mm512_load_si512(bits), one = _mm512_set1_epi32(1);
      __m512i t = _mm512_setzero_si512();
      for (int k = 0; k < 8; ++k)
        for (int j = 0; j < 4; ++j)
          t = _mm512_or_si512(t, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(v, 4 * k + j), one), 8 * j + k));
      _mm512_store_si512(rec + kQh + g * 64, t);
    }
  }
  template <class F>
  static void ForEachStep(const uint8_t* rec, const F& f) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    __m512i qh0 = _mm512_setzero_si512(), qh1 = _mm512_setzero_si512();
    if constexpr (N::kFifthBit) {
      qh0 = _mm512_load_si512(rec + kQh);
      qh1 = _mm512_load_si512(rec + kQh + 64);
    }
    STRATA_UNROLL
    for (int k = 0; k < 4; ++k) {
      const __m512i v0 = _mm512_load_si512(rec + kQ + k * 64), v1 = _mm512_load_si512(rec + kQ + 256 + k * 64);
      f(k, N::Code(_mm512_and_si512(v0, mask), k, qh0), N::Code(_mm512_and_si512(v1, mask), k, qh1));
      f(k + 4, N::Code(_mm512_and_si512(_mm512_srli_epi16(v0, 4), mask), k + 4, qh0),
        N::Code(_mm512_and_si512(_mm512_srli_epi16(v1, 4), mask), k + 4, qh1));
    }
  }
};

// Bit k of each byte of qh (NibbleWeights' transposed fifth bits) as bit 4
// added to the nibbles (shifts of 16-bit lanes by at most 4: bits crossing
// bytes land outside bit 4).
__m512i WithFifthBit(__m512i nibbles, int k, __m512i qh) {
  const __m512i hb = k <= 4 ? _mm512_slli_epi16(qh, 4 - k) : _mm512_srli_epi16(qh, k - 4);
  return _mm512_ternarylogic_epi32(nibbles, hb, _mm512_set1_epi8(0x10), 0xF8);  // nibbles | (hb & bit 4)
}

struct Q4_1Nibbles {
  using Block = BlockQ4_1;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true, kFifthBit = false;
  static __m512i Code(__m512i nibbles, int, __m512i) { return nibbles; }
};
struct Q5_0Nibbles {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 16;
  static constexpr bool kMin = false, kFifthBit = true;
  static __m512i Code(__m512i nibbles, int k, __m512i qh) { return WithFifthBit(nibbles, k, qh); }
};
struct Q5_1Nibbles {
  using Block = BlockQ5_1;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true, kFifthBit = true;
  static __m512i Code(__m512i nibbles, int k, __m512i qh) { return WithFifthBit(nibbles, k, qh); }
};
// The non-linear levels + 128 looked up by nibble (VPSHUFB, the table in each 128-bit lane).
struct IQ4_NLNibbles {
  using Block = BlockIQ4_NL;
  static constexpr int kOffset = 128;
  static constexpr bool kMin = false, kFifthBit = false;
  static constexpr std::array<uint8_t, 16> kLevels = [] {
    std::array<uint8_t, 16> levels{};
    for (int i = 0; i < 16; ++i) levels[i] = static_cast<uint8_t>(kIq4nlValues[i] + kOffset);
    return levels;
  }();
  static __m512i Code(__m512i nibbles, int, __m512i) {
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kLevels.data())));
    return _mm512_shuffle_epi8(table, nibbles);
  }
};


// Packs rows o0 .. o0+31 of w into one panel (nb records).
template <class W>
void PackQuantPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
  using Block = typename W::Block;
  const int64_t nb = w.cols() / kQK, n_out = w.rows();
  STRATA_UNROLL
  for (int g = 0; g < 2; ++g) {
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
      uint8_t* rec = panel + b * W::kRecordBytes;
      const __m512i d = _mm512_i32gather_epi32(idx, &rows[0][b].d, 1);
      _mm256_store_si256(reinterpret_cast<__m256i*>(rec + g * 32), _mm512_cvtepi32_epi16(d));
      W::PackBlock(rows, b, rec, g);
    }
  }
}

// y[t0 .. t0+T-1][o0 .. o0+31] from one panel: a register tile of 32 rows x T
// tokens that reuses every loaded weight vector T times.
template <class W, int T>
void QuantTile(const uint8_t* panel, int64_t nb, const typename W::Acts& xa, int64_t t0, float* y, int64_t n_out,
               int64_t o0) {
  const int8_t* xq[T];
  const float* xd[T];
  const int32_t* xc[T];
  __m512 acc0[T], acc1[T];
  LoadOutTile<T>(y, n_out, o0, t0, /*accumulate=*/false, acc0, acc1);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xq[t] = xa.qs(t0 + t);
    xd[t] = xa.d(t0 + t);
    xc[t] = xa.comp(t0 + t);
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = panel + b * W::kRecordBytes;
    if constexpr (T == 1) {
      STRATA_UNROLL
      for (int l = 0; l < W::kRecordBytes / 64; ++l)
        _mm_prefetch(reinterpret_cast<const char*>(rec + kPrefetchBytes + 64 * l), _MM_HINT_T0);
    }
    __m512i i0[T], i1[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) i0[t] = i1[t] = _mm512_set1_epi32(xc[t][b]);
    W::ForEachStep(rec, [&](int ks, __m512i w0, __m512i w1) {
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        int32_t x4;
        std::memcpy(&x4, xq[t] + b * kQK + 4 * ks, 4);
        const __m512i xb = _mm512_set1_epi32(x4);
        i0[t] = _mm512_dpbusd_epi32(i0[t], w0, xb);
        i1[t] = _mm512_dpbusd_epi32(i1[t], w1, xb);
      }
    });
    const __m512 dw0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec)));
    const __m512 dw1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 32)));
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512 dx = _mm512_set1_ps(xd[t][b]);
      acc0[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0[t]), _mm512_mul_ps(dw0, dx), acc0[t]);
      acc1[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1[t]), _mm512_mul_ps(dw1, dx), acc1[t]);
    }
    if constexpr (W::kMin) {  // + m_w * s_x (Q8_1)
      const __m512 mw0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + W::kM)));
      const __m512 mw1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + W::kM + 32)));
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        const __m512 sx = _mm512_set1_ps(xa.s(t0 + t)[b]);
        acc0[t] = _mm512_fmadd_ps(mw0, sx, acc0[t]);
        acc1[t] = _mm512_fmadd_ps(mw1, sx, acc1[t]);
      }
    }
  }
  StoreOutTile<T>(y, n_out, o0, t0, acc0, acc1);
}

// QuantTile<W, 1> (decode) with 256-bit VPDPBUSD on half vectors, the same
// integer sums and float steps, so the same results. On this Zen 4 (512-bit
// operations run as two halves) decode read a 128 MiB packed Q8_0 matrix at
// 0.96 / 0.87 of the machine's read bandwidth in its slow / fast phase with
// 512-bit operations and 1.02 / 1.10 with these (in-process alternation); all
// of 1.1B Q8_0's decode matmuls 0.98 / 0.85 -> 1.03 / 1.01.
template <class W>
void QuantRowTile(const uint8_t* panel, int64_t nb, const typename W::Acts& xa, int64_t t, float* y, int64_t n_out,
                  int64_t o0) {
  const int8_t* xq = xa.qs(t);
  const float* xd = xa.d(t);
  const int32_t* xc = xa.comp(t);
  __m512 acc0[1], acc1[1];
  LoadOutTile<1>(y, n_out, o0, t, /*accumulate=*/false, acc0, acc1);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* rec = panel + b * W::kRecordBytes;
    __m256i i[4];  // rows 0-7, 8-15, 16-23, 24-31
    STRATA_UNROLL
    for (int h = 0; h < 4; ++h) i[h] = _mm256_set1_epi32(xc[b]);
    W::ForEachHalfStep(rec, [&](int ks, __m256i w0, __m256i w1, __m256i w2, __m256i w3) {
      int32_t x4;
      std::memcpy(&x4, xq + b * kQK + 4 * ks, 4);
      const __m256i xb = _mm256_set1_epi32(x4);
      i[0] = _mm256_dpbusd_epi32(i[0], w0, xb);
      i[1] = _mm256_dpbusd_epi32(i[1], w1, xb);
      i[2] = _mm256_dpbusd_epi32(i[2], w2, xb);
      i[3] = _mm256_dpbusd_epi32(i[3], w3, xb);
    });
    const __m512i i0 = _mm512_inserti64x4(_mm512_castsi256_si512(i[0]), i[1], 1);
    const __m512i i1 = _mm512_inserti64x4(_mm512_castsi256_si512(i[2]), i[3], 1);
    const __m512 dw0 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec)));
    const __m512 dw1 = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + 32)));
    const __m512 dx = _mm512_set1_ps(xd[b]);
    acc0[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(dw0, dx), acc0[0]);
    acc1[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(dw1, dx), acc1[0]);
  }
  StoreOutTile<1>(y, n_out, o0, t, acc0, acc1);
}

// 32-element-block weights W as panel kernels (quant_panels_avx512.h).
template <class W>
struct Block32Panels {
  using Acts = typename W::Acts;
  static constexpr int kBlock = kQK;
  static constexpr int kRecordBytes = W::kRecordBytes;
  static constexpr int kTileRows = kPanelRows;
  static constexpr int kTileTokens = kQuantTileTokens;
  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) { PackQuantPanel<W>(w, o0, panel); }
  template <int T>
  static void Tile(const uint8_t* panel, int64_t nb, const Acts& xa, int64_t t0, float* y, int64_t n_out, int64_t o0) {
    if constexpr (T == 1 && W::kHalfVectorDecode) {
      QuantRowTile<W>(panel, nb, xa, t0, y, n_out, o0);
    } else {
      QuantTile<W, T>(panel, nb, xa, t0, y, n_out, o0);
    }
  }
};

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
  static __m512 Widen(__m256i h) { return _mm512_cvtph_ps(h); }
  // Exact for values that came from F16.
  static __m256i Narrow(__m512 f) { return _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
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
  // Exact for values that came from BF16.
  static __m256i Narrow(__m512 f) { return _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(f), 16)); }
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
  ForRowRuns<kGemvTokens>(w, n_tok, kGemvTaskBytes, pool, [&](int64_t o, int64_t t0, int64_t n) {
    const void* row = base + o * row_bytes;
    WithCount<kGemvTokens>(n, [&](auto T) { GemvFloatRow<W, T()>(row, n_in, x, t0, y + o, n_out); });
  });
}

// Row o0+i of w for i < 32, the last row for rows past the matrix (packed
// panels repeat it; its outputs are never stored).
void PanelRows(const Tensor& w, int64_t o0, const uint8_t* (&rows)[kPanelRows]) {
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t row_bytes = static_cast<int64_t>(w.row_bytes()), n_out = w.rows();
  STRATA_UNROLL
  for (int i = 0; i < kPanelRows; ++i) rows[i] = base + std::min(o0 + i, n_out - 1) * row_bytes;
}

// r[i] holds 16 consecutive inputs of row i of a 16-row group: stores input j
// of the 16 rows as the vector dst[j * kPanelRows] (a panel's k-major layout).
void StoreTransposed(__m512 (&r)[16], float* dst) {
  Transpose16(r);
  STRATA_UNROLL
  for (int j = 0; j < 16; ++j) _mm512_store_ps(dst + j * kPanelRows, r[j]);
}

// Packs rows o0 .. o0+31, inputs k0 .. k0+kc-1 as panel[k][32] (inputs past
// n_in are zero, kc is padded to a multiple of 16; rows past the matrix repeat
// its last row and their outputs are never stored). Prefetches the next chunk
// into L2: 32 short row segments defeat the hardware prefetcher.
template <class W>
void PackFloatPanel(const Tensor& w, int64_t o0, int64_t k0, int64_t kc, float* panel) {
  const int64_t n_in = w.cols();
  const uint8_t* rows[kPanelRows];
  PanelRows(w, o0, rows);
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
      StoreTransposed(r, panel + kb * kPanelRows + g * kLanes);
    }
  }
}

// y[t0 .. t0+T-1][o0 .. o0+31] (added to when accumulate) from inputs k0 ..
// k0+kc-1 of a 32-row panel; load_line(k, w0, w1) widens the panel's input k
// to F32 (rows 0-15, 16-31).
template <int T, class LoadLine>
void FloatPanelTile(const LoadLine& load_line, int64_t kc, const float* x, int64_t n_in, int64_t t0, int64_t k0,
                    float* y, int64_t n_out, int64_t o0, bool accumulate) {
  const float* xt[T];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) xt[t] = x + (t0 + t) * n_in + k0;
  __m512 acc0[T], acc1[T];
  LoadOutTile<T>(y, n_out, o0, t0, accumulate, acc0, acc1);
  for (int64_t k = 0; k < kc; ++k) {
    __m512 w0, w1;
    load_line(k, w0, w1);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(xt[t][k]);
      acc0[t] = _mm512_fmadd_ps(w0, xb, acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, xb, acc1[t]);
    }
  }
  StoreOutTile<T>(y, n_out, o0, t0, acc0, acc1);
}

// ---------------------------------------------------------------------------
// Float matrices (F32, F16, BF16) packed at load (PackMatrix): panel p is rows
// 32p .. 32p+31 k-major, [n_in][32] in the weight's type (input k of the 32
// rows is one 64-byte line for F16/BF16, two for F32; rows past the matrix
// repeat its last row). Decode then reads each thread's share of panels as one
// sequential stream, as it reads the quantized panels: row by row, 1.1B F16
// decode matmuls read at ~0.77 of the machine's read bandwidth and F32 at
// 0.89 / 0.73 (slow / fast phase); panels at 1.02 / 0.97 (F16), 1.00 / 1.04
// (F32).

template <class W>
size_t FloatPanelBytes(int64_t n_in) {
  return static_cast<size_t>(n_in) * kPanelRows * W::kBytes;
}

template <class W>
size_t PackedFloatBytes(const Tensor& w) {
  return static_cast<size_t>((w.rows() + kPanelRows - 1) / kPanelRows) * FloatPanelBytes<W>(w.cols());
}

template <class W>
const uint8_t* FloatPanel(const Tensor& w, int64_t p) {
  return static_cast<const uint8_t*>(w.data) + FloatPanelBytes<W>(w.cols()) * static_cast<size_t>(p);
}

// Input k of a packed panel as F32 vectors (rows 0-15, 16-31), and back.
template <class W>
void LoadPanelLine(const uint8_t* panel, int64_t k, __m512& w0, __m512& w1) {
  const uint8_t* line = panel + static_cast<size_t>(k) * kPanelRows * W::kBytes;
  if constexpr (W::kBytes == 4) {
    w0 = _mm512_load_ps(reinterpret_cast<const float*>(line));
    w1 = _mm512_load_ps(reinterpret_cast<const float*>(line) + kLanes);
  } else {
    w0 = W::Widen(_mm256_load_si256(reinterpret_cast<const __m256i*>(line)));
    w1 = W::Widen(_mm256_load_si256(reinterpret_cast<const __m256i*>(line) + 1));
  }
}

template <class W>
void StorePanelLine(__m512 w0, __m512 w1, uint8_t* panel, int64_t k) {
  uint8_t* line = panel + static_cast<size_t>(k) * kPanelRows * W::kBytes;
  if constexpr (W::kBytes == 4) {
    _mm512_store_ps(reinterpret_cast<float*>(line), w0);
    _mm512_store_ps(reinterpret_cast<float*>(line) + kLanes, w1);
  } else {
    _mm256_store_si256(reinterpret_cast<__m256i*>(line), W::Narrow(w0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(line) + 1, W::Narrow(w1));
  }
}

// FloatPanelTile over an F32 panel[k][32] (PackFloatPanel, or a packed F32 matrix's chunk).
template <int T>
void GemmFloatTile(const float* panel, int64_t kc, const float* x, int64_t n_in, int64_t t0, int64_t k0, float* y,
                   int64_t n_out, int64_t o0, bool accumulate) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(panel);
  const auto load_line = [bytes](int64_t k, __m512& w0, __m512& w1) { LoadPanelLine<F32Weights>(bytes, k, w0, w1); };
  FloatPanelTile<T>(load_line, kc, x, n_in, t0, k0, y, n_out, o0, accumulate);
}

template <class W>
void PackFloatMatrix(const Tensor& w, uint8_t* dst) {
  const int64_t n_in = w.cols(), n_panels = (w.rows() + kPanelRows - 1) / kPanelRows;
  alignas(64) float chunk[kFloatChunk * kPanelRows];  // 32 KB
  for (int64_t p = 0; p < n_panels; ++p) {
    uint8_t* panel = dst + FloatPanelBytes<W>(n_in) * static_cast<size_t>(p);
    for (int64_t k0 = 0; k0 < n_in; k0 += kFloatChunk) {
      const int64_t kc = std::min(kFloatChunk, n_in - k0);
      PackFloatPanel<W>(w, p * kPanelRows, k0, kc, chunk);
      for (int64_t k = 0; k < kc; ++k)
        StorePanelLine<W>(_mm512_load_ps(chunk + k * kPanelRows), _mm512_load_ps(chunk + k * kPanelRows + kLanes),
                          panel, k0 + k);
    }
  }
}

// Inputs k0 .. k0+kc-1 of a packed F16/BF16 panel as GemmFloat's F32 panel[k][32].
template <class W>
void UnpackHalfPanel(const uint8_t* panel, int64_t k0, int64_t kc, float* out) {
  for (int64_t k = 0; k < kc; ++k) {
    __m512 w0, w1;
    LoadPanelLine<W>(panel, k0 + k, w0, w1);
    _mm512_store_ps(out + k * kPanelRows, w0);
    _mm512_store_ps(out + k * kPanelRows + kLanes, w1);
  }
}

// y[t0 .. t0+T-1][o0 .. o0+31] from a whole packed panel: the products of
// GemmFloatTile over the (unpacked) panel, in the same order.
template <class W, int T>
void PackedPanelTile(const uint8_t* panel, int64_t n_in, const float* x, int64_t t0, float* y, int64_t n_out,
                     int64_t o0) {
  const auto load_line = [panel](int64_t k, __m512& w0, __m512& w1) { LoadPanelLine<W>(panel, k, w0, w1); };
  FloatPanelTile<T>(load_line, n_in, x, n_in, t0, /*k0=*/0, y, n_out, o0, /*accumulate=*/false);
}

// Decode on packed panels: each thread streams its share of the panels.
template <class W>
void GemvFloatPanels(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  pool.ParallelStreams((n_out + kPanelRows - 1) / kPanelRows, [&](int64_t p, int) {
    const uint8_t* panel = FloatPanel<W>(w, p);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kGemvTokens)
      WithCount<kGemvTokens>(n_tok - t0,
                             [&](auto T) { PackedPanelTile<W, T()>(panel, n_in, x, t0, y, n_out, p * kPanelRows); });
  });
}

// Prefill: 32-row panels of float weights, kFloatChunk inputs at a time, as
// F32 reused by every token tile: packed F32 panels are read in place, packed
// F16/BF16 panels widened once per chunk, row-layout matrices transposed
// (PackFloatPanel).
template <class W>
void GemmFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const size_t panel_floats = static_cast<size_t>(kFloatChunk) * kPanelRows;
  auto* panels = static_cast<float*>(pool.Scratch(panel_floats * sizeof(float) * pool.n_threads()));
  const bool packed = w.layout == TensorLayout::kPanels32;
  pool.ParallelTasks((n_out + kPanelRows - 1) / kPanelRows, [&](int64_t task, int ith) {
    float* own = panels + panel_floats * static_cast<size_t>(ith);
    const int64_t o0 = task * kPanelRows;
    for (int64_t k0 = 0; k0 < n_in; k0 += kFloatChunk) {
      const int64_t kc = std::min(kFloatChunk, n_in - k0);
      const float* panel = own;
      if (!packed) {
        PackFloatPanel<W>(w, o0, k0, kc, own);
      } else if constexpr (W::kBytes == 4) {
        panel = reinterpret_cast<const float*>(FloatPanel<W>(w, task)) + k0 * kPanelRows;
      } else {
        UnpackHalfPanel<W>(FloatPanel<W>(w, task), k0, kc, own);
      }
      for (int64_t t0 = 0; t0 < n_tok; t0 += kGemmTokensFloat) {
        WithCount<kGemmTokensFloat>(n_tok - t0, [&](auto T) {
          GemmFloatTile<T()>(panel, kc, x, n_in, t0, k0, y, n_out, o0, /*accumulate=*/k0 > 0);
        });
      }
    }
  });
}

// ---------------------------------------------------------------------------
// BF16 prefill with VDPBF16PS (CPUs with AVX512_BF16): x is rounded to BF16
// once per call, as llama.cpp does for BF16 weights; each product of two BF16
// is exact in F32 and accumulates in F32. A panel holds, per pair p of inputs,
// the 32 rows' (w[2p], w[2p+1]) as one 32-bit element each: lane i of a
// vector is row i, so one VDPBF16PS with a broadcast x pair advances 16 rows
// by 2 inputs. Same tile shape and threading as GemmFloat.

constexpr int64_t kBf16Chunk = 512;  // inputs per packed panel (32 KB)

// Packs rows o0 .. o0+31, inputs k0 .. k0+kc-1 as panel[pair][32] (inputs past
// n_in are zero; kc is padded to a multiple of 32; rows past the matrix repeat
// its last row and their outputs are never stored).
void PackBf16Panel(const Tensor& w, int64_t o0, int64_t k0, int64_t kc, uint32_t* panel) {
  const int64_t n_in = w.cols();
  const uint8_t* rows[kPanelRows];
  PanelRows(w, o0, rows);
  STRATA_UNROLL
  for (int g = 0; g < 2; ++g) {
    for (int64_t kb = 0; kb < kc; kb += 2 * kLanes) {
      const int64_t left = n_in - (k0 + kb);
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((1u << std::max<int64_t>(left, 0)) - 1);
      __m512 r[16];  // r[i]: row g*16+i, pairs kb/2 .. kb/2+15
      STRATA_UNROLL
      for (int i = 0; i < 16; ++i)
        r[i] = _mm512_castsi512_ps(
            _mm512_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(rows[g * kLanes + i]) + k0 + kb));
      StoreTransposed(r, reinterpret_cast<float*>(panel + kb / 2 * kPanelRows + g * kLanes));
    }
  }
}

// PackBf16Panel's layout from a packed BF16 panel (FloatPanel): pair p of
// row i is (line 2p, line 2p+1) of lane i; inputs past n_in are zero.
void PairBf16Panel(const uint16_t* panel, int64_t n_in, int64_t k0, int64_t kc, uint32_t* out) {
  const auto line = [&](int64_t k, int h) {
    return k < n_in ? _mm512_cvtepu16_epi32(
                          _mm256_load_si256(reinterpret_cast<const __m256i*>(panel + k * kPanelRows + h * kLanes)))
                    : _mm512_setzero_si512();
  };
  for (int64_t q = 0; q < kc / 2; ++q)
    for (int h = 0; h < 2; ++h)
      _mm512_store_si512(out + q * kPanelRows + h * kLanes,
                         _mm512_or_si512(line(k0 + 2 * q, h), _mm512_slli_epi32(line(k0 + 2 * q + 1, h), 16)));
}

// x [n_in, n_tok] rounded to BF16 (nearest even), each token padded with
// zeros to stride elements (a multiple of 32).
void RoundToBf16(const float* x, int64_t n_in, int64_t n_tok, int64_t stride, uint16_t* out) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xt = x + t * n_in;
    for (int64_t k = 0; k < stride; k += 2 * kLanes) {
      const __m512 lo = _mm512_maskz_loadu_ps(LaneMask(n_in - k), xt + k);
      const __m512 hi = _mm512_maskz_loadu_ps(LaneMask(n_in - k - kLanes), xt + k + kLanes);
      _mm512_storeu_si512(out + t * stride + k, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
  }
}

template <int T>
void GemmBf16Tile(const uint32_t* panel, int64_t n_pairs, const uint32_t* xp, int64_t xp_stride, int64_t t0,
                  float* y, int64_t n_out, int64_t o0, bool accumulate) {
  const uint32_t* xt[T];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) xt[t] = xp + (t0 + t) * xp_stride;
  __m512 acc0[T], acc1[T];
  LoadOutTile<T>(y, n_out, o0, t0, accumulate, acc0, acc1);
  for (int64_t p = 0; p < n_pairs; ++p) {
    const __m512bh w0 = (__m512bh)_mm512_load_si512(panel + p * kPanelRows);
    const __m512bh w1 = (__m512bh)_mm512_load_si512(panel + p * kPanelRows + kLanes);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = (__m512bh)_mm512_set1_epi32(static_cast<int>(xt[t][p]));
      acc0[t] = _mm512_dpbf16_ps(acc0[t], w0, xb);
      acc1[t] = _mm512_dpbf16_ps(acc1[t], w1, xb);
    }
  }
  StoreOutTile<T>(y, n_out, o0, t0, acc0, acc1);
}

void GemmBf16(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const int64_t stride = (n_in + 31) / 32 * 32;  // BF16 elements per token of xb
  const size_t xb_bytes = RoundUp64(static_cast<size_t>(stride * n_tok) * sizeof(uint16_t));
  const size_t panel_words = static_cast<size_t>(kBf16Chunk / 2) * kPanelRows;
  auto* scratch = static_cast<uint8_t*>(pool.Scratch(xb_bytes + panel_words * sizeof(uint32_t) * pool.n_threads()));
  auto* xb = reinterpret_cast<uint16_t*>(scratch);
  pool.ParallelFor(n_tok, 4, [&](int64_t begin, int64_t end) {
    RoundToBf16(x + begin * n_in, n_in, end - begin, stride, xb + begin * stride);
  });
  const auto* xp = reinterpret_cast<const uint32_t*>(xb);
  pool.ParallelTasks((n_out + kPanelRows - 1) / kPanelRows, [&](int64_t task, int ith) {
    auto* panel = reinterpret_cast<uint32_t*>(scratch + xb_bytes) + panel_words * static_cast<size_t>(ith);
    const int64_t o0 = task * kPanelRows;
    for (int64_t k0 = 0; k0 < n_in; k0 += kBf16Chunk) {
      const int64_t kc = std::min(kBf16Chunk, stride - k0);
      if (w.layout == TensorLayout::kPanels32) {
        PairBf16Panel(reinterpret_cast<const uint16_t*>(FloatPanel<BF16Weights>(w, task)), n_in, k0, kc, panel);
      } else {
        PackBf16Panel(w, o0, k0, kc, panel);
      }
      for (int64_t t0 = 0; t0 < n_tok; t0 += kGemmTokensFloat) {
        WithCount<kGemmTokensFloat>(n_tok - t0, [&](auto T) {
          GemmBf16Tile<T()>(panel, kc / 2, xp + k0 / 2, stride / 2, t0, y, n_out, o0, /*accumulate=*/k0 > 0);
        });
      }
    }
  });
}

template <class W>
void MatMulFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  // Packed panels: prefill reads them in GemmFloat / GemmBf16.
  if (w.layout == TensorLayout::kPanels32 && n_tok < kGemmMinTokensFloat) {
    return GemvFloatPanels<W>(w, x, n_tok, y, pool);
  }
  if (std::is_same_v<W, BF16Weights> && n_tok >= kBf16DotMinTokens && DetectCpu().avx512bf16) {
    GemmBf16(w, x, n_tok, y, pool);
  } else if (n_tok >= kGemmMinTokensFloat) {
    GemmFloat<W>(w, x, n_tok, y, pool);
  } else {
    GemvFloat<W>(w, x, n_tok, y, pool);
  }
}

template <class W>
void MatMulFloatOuts(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool) {
  for (const MatMulOut& o : outs) MatMulFloat<W>(*o.w, x, n_tok, o.y, pool);
}

}  // namespace

const MatMulKernels kAvx512F32 = {MatMulFloatOuts<F32Weights>, PackedFloatBytes<F32Weights>,
                                  PackFloatMatrix<F32Weights>};
const MatMulKernels kAvx512F16 = {MatMulFloatOuts<F16Weights>, PackedFloatBytes<F16Weights>,
                                  PackFloatMatrix<F16Weights>};
const MatMulKernels kAvx512BF16 = {MatMulFloatOuts<BF16Weights>, PackedFloatBytes<BF16Weights>,
                                   PackFloatMatrix<BF16Weights>};
const MatMulKernels kAvx512Q8_0 = kPanelKernels<Block32Panels<Q8_0Weights>>;
const MatMulKernels kAvx512Q4_0 = kPanelKernels<Block32Panels<Q4_0Weights>>;
const MatMulKernels kAvx512Q4_1 = kPanelKernels<Block32Panels<NibbleWeights<Q4_1Nibbles>>>;
const MatMulKernels kAvx512Q5_0 = kPanelKernels<Block32Panels<NibbleWeights<Q5_0Nibbles>>>;
const MatMulKernels kAvx512Q5_1 = kPanelKernels<Block32Panels<NibbleWeights<Q5_1Nibbles>>>;
const MatMulKernels kAvx512IQ4_NL = kPanelKernels<Block32Panels<NibbleWeights<IQ4_NLNibbles>>>;

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
