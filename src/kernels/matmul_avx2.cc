// AVX2 + FMA + F16C matrix multiplication: the fallback for x86 CPUs without
// AVX-512. One kernel shape for every token count: one weight row against up to
// 4 tokens, vectors running along the input dimension. Threads take runs of
// consecutive rows, so each reads one sequential stream (the hardware
// prefetcher handles that; several interleaved short rows measured far slower).
// Weights other than Q8_0 and Q4_0 are read in place (no repacking).
//
// Quantized weights multiply Q8_0-quantized activations with VPMADDUBSW, which
// needs an unsigned operand and saturates at 16 bits: |w| is made the unsigned
// operand and w's sign moved onto x (|w|*|x| <= 127*127, so pairs never saturate).
//
// Q4_0 and Q8_0 instead have a packed layout (PackMatrix,
// TensorLayout::kPanels32; see "Q4_0 panels" and "Q8_0 panels" below) in
// which 8 rows share the lanes of a vector, so one broadcast group of 4
// activations advances 8 rows by 4 inputs: for Q4_0 about a third of the row
// kernel's instructions per weight byte, which on this path bound decode
// below the memory bandwidth.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/dtype.h"
#include "kernels/isa_kernels.h"
#include "kernels/matmul_tasks.h"
#include "kernels/quant_panels_avx2.h"
#include "kernels/simd_avx2.h"

// Register-tile loops have compile-time trip counts and must be fully
// unrolled so their arrays live in registers; GCC does that only at -O3
// without this (-O2 measured 3x slower).
#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 8;
constexpr int kQK = kQK8_0;
constexpr int kTokens = 4;
constexpr int64_t kTaskBytes = 64 << 10;

// ---------------------------------------------------------------------------
// Float weights widened to F32, 8 elements at a time.

struct F32Weights {
  static __m256 Load(const void* row, int64_t k) { return _mm256_loadu_ps(static_cast<const float*>(row) + k); }
  static float Scalar(const void* row, int64_t k) { return static_cast<const float*>(row)[k]; }
};

struct F16Weights {
  static __m256 Load(const void* row, int64_t k) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k)));
  }
  static float Scalar(const void* row, int64_t k) { return _cvtsh_ss(static_cast<const uint16_t*>(row)[k]); }
};

struct BF16Weights {
  static __m256 Load(const void* row, int64_t k) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(row) + k));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  static float Scalar(const void* row, int64_t k) {
    const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(row)[k]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

// One row against tokens t0 .. t0+T-1; two accumulators per token (FMA latency).
template <class W, int T>
void FloatRow(const void* row, int64_t n_in, const float* x, int64_t t0, float* y, int64_t n_out) {
  const float* xt[T];
  __m256 acc[T][2];
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    xt[t] = x + (t0 + t) * n_in;
    acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  }
  int64_t k = 0;
  for (; k + 2 * kLanes <= n_in; k += 2 * kLanes) {
    const __m256 w0 = W::Load(row, k), w1 = W::Load(row, k + kLanes);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt[t] + k), acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt[t] + k + kLanes), acc[t][1]);
    }
  }
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    float sum = HorizontalSum(_mm256_add_ps(acc[t][0], acc[t][1]));
    for (int64_t j = k; j < n_in; ++j) sum += W::Scalar(row, j) * xt[t][j];
    y[(t0 + t) * n_out] = sum;
  }
}

template <class W>
void MatMulFloat(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  const auto* base = static_cast<const uint8_t*>(w.data);
  const int64_t row_bytes = static_cast<int64_t>(w.row_bytes());
  ForRowRuns<kTokens>(w, n_tok, kTaskBytes, pool, [&](int64_t o, int64_t t0, int64_t n) {
    WithCount<kTokens>(n, [&](auto T) { FloatRow<W, T()>(base + o * row_bytes, n_in, x, t0, y + o, n_out); });
  });
}

// ---------------------------------------------------------------------------
// Activations quantized to Q8_0 per token: qs int8 [n_in], then d f32 [nb]
// (fp16-rounded), then for weights with a minimum s f32 [nb] (Q8_1's
// fp16(d * sum(qs)), d not rounded). Same rounding as QuantizeRow(Q8_0 / Q8_1).
struct QuantizedActs {
  int64_t nb;
  size_t stride;
  uint8_t* base;

  int8_t* qs(int64_t t) const { return reinterpret_cast<int8_t*>(base + stride * t); }
  float* d(int64_t t) const { return reinterpret_cast<float*>(base + stride * t + nb * kQK); }
  float* s(int64_t t) const { return reinterpret_cast<float*>(base + stride * t + nb * (kQK + 4)); }
};

// roundf(v) for |v| <= 128 (checked exhaustively): truncation after adding
// the largest float below one half with v's sign.
__m256i RoundHalfAway(__m256 v) {
  const __m256 sign = _mm256_and_ps(v, _mm256_set1_ps(-0.0f));
  return _mm256_cvttps_epi32(_mm256_add_ps(v, _mm256_or_ps(_mm256_set1_ps(0.49999997f), sign)));
}

// s: nullptr, or where the blocks' Q8_1 sums go; comp: nullptr, or where
// -8 * (the sum of each block's quants) goes (Q4_0 panels).
void QuantizeActs(const float* x, int64_t nb, int8_t* qs, float* d, float* s, int32_t* comp = nullptr) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    STRATA_UNROLL
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(x + i * kLanes);
      amax = _mm256_max_ps(amax, _mm256_and_ps(v[i], abs_mask));
    }
    const float scale = HorizontalMax(amax) / 127.0f;
    const __m256 inv = _mm256_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
    __m256i q[4];
    STRATA_UNROLL
    for (int i = 0; i < 4; ++i) q[i] = RoundHalfAway(_mm256_mul_ps(v[i], inv));
    // packs interleave 128-bit lanes; the permutation restores element order.
    const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    const __m256i q8 = _mm256_permutevar8x32_epi32(q16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + b * kQK), q8);
    d[b] = _cvtsh_ss(_cvtss_sh(scale, _MM_FROUND_TO_NEAREST_INT));
    if (s != nullptr || comp != nullptr) {
      const __m256i sum4 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      const float sum = HorizontalSum(_mm256_cvtepi32_ps(sum4));  // |sum| <= 4064: exact
      if (s != nullptr) s[b] = _cvtsh_ss(_cvtss_sh(sum * scale, _MM_FROUND_TO_NEAREST_INT));
      if (comp != nullptr) comp[b] = -8 * static_cast<int32_t>(sum);
    }
  }
}

// The 32 nibbles of a block's nibble pairs in element order.
__m256i Nibbles(const uint8_t* qs) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 0x10 in byte j where bit j of the 32 bits at qh is set.
__m256i FifthBits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof bits);
  // Byte j takes byte j / 8 of the bits and tests bit j % 8.
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)),
                                            _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                                             2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

struct Q4_1Weights {
  using Block = BlockQ4_1;
  static constexpr bool kMin = true;  // w = d q + m
  static __m256i Load(const Block& b) { return Nibbles(b.qs); }
};

struct Q5_0Weights {
  using Block = BlockQ5_0;
  static constexpr bool kMin = false;
  static __m256i Load(const Block& b) {
    return _mm256_sub_epi8(_mm256_or_si256(Nibbles(b.qs), FifthBits(b.qh)), _mm256_set1_epi8(16));
  }
};

struct Q5_1Weights {
  using Block = BlockQ5_1;
  static constexpr bool kMin = true;
  static __m256i Load(const Block& b) { return _mm256_or_si256(Nibbles(b.qs), FifthBits(b.qh)); }
};

// The non-linear levels looked up by nibble (VPSHUFB, the table in each 128-bit lane).
struct IQ4_NLWeights {
  using Block = BlockIQ4_NL;
  static constexpr bool kMin = false;
  static __m256i Load(const Block& b) {
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
    return _mm256_shuffle_epi8(table, Nibbles(b.qs));
  }
};

// One row against tokens t0 .. t0+T-1.
template <class W, int T>
void QuantRow(const typename W::Block* row, const QuantizedActs& xa, int64_t t0, float* y, int64_t n_out) {
  __m256 acc[T];
  float min_sum[T];  // kMin: sum of m_w * s_x over the blocks
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    acc[t] = _mm256_setzero_ps();
    min_sum[t] = 0.0f;
  }
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < xa.nb; ++b) {
    const __m256i wq = W::Load(row[b]);
    const __m256i wabs = _mm256_sign_epi8(wq, wq);
    const float dw = _cvtsh_ss(row[b].d);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) {
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa.qs(t0 + t) + b * kQK));
      const __m256i prod = _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(xq, wq));
      const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(prod, ones));
      acc[t] = _mm256_fmadd_ps(dot, _mm256_set1_ps(dw * xa.d(t0 + t)[b]), acc[t]);
      if constexpr (W::kMin) min_sum[t] += _cvtsh_ss(row[b].m) * xa.s(t0 + t)[b];
    }
  }
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) y[(t0 + t) * n_out] = HorizontalSum(acc[t]) + min_sum[t];
}

template <class W>
void MatMulQuant(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), nb = n_in / kQK;
  QuantizedActs xa{nb, RoundUp64(static_cast<size_t>(nb) * (kQK + 2 * sizeof(float))), nullptr};
  xa.base = static_cast<uint8_t*>(pool.Scratch(xa.stride * static_cast<size_t>(n_tok)));
  pool.ParallelFor(n_tok, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t)
      QuantizeActs(x + t * n_in, nb, xa.qs(t), xa.d(t), W::kMin ? xa.s(t) : nullptr);
  });
  const auto* base = static_cast<const typename W::Block*>(w.data);
  ForRowRuns<kTokens>(w, n_tok, kTaskBytes, pool, [&](int64_t o, int64_t t0, int64_t n) {
    WithCount<kTokens>(n, [&](auto T) { QuantRow<W, T()>(base + o * nb, xa, t0, y + o, w.rows()); });
  });
}

// ---------------------------------------------------------------------------
// Q4_0 panels (quant_panels.h; TensorLayout::kPanels32 on this path). A panel
// is 4 groups of 8 rows, one after the other, and a group holds exactly the
// bytes its 8 rows take in the file:
//   fp16 d[nb][8]           each row's block scale
//   u8   q[nb][4][8][4]     [block][k step][row][4 bytes]: the low nibbles are
//                           inputs 4k..4k+3 (k step k), the high ones
//                           16+4k..16+4k+3 (k step k+4), each q + 8
// Lane r of a k step's vector holds row r, so VPMADDUBSW of the nibbles
// (unsigned) with a broadcast group of 4 activations (signed) advances 8 rows
// by 4 inputs. A block's 8 k steps sum in 16 bits without saturating
// (8 * 2 * 15 * 128 < 2^15), VPMADDWD widens them once, and the sum starts at
// the activations' comp = -8 * sum(activation block), which cancels the +8.

constexpr int kSteps = kQK / 4;  // 4-input steps per block

// The panels' activations: QuantizedActs' qs and d, then (kComp, Q4_0) int32 comp[nb].
template <bool kComp>
class PanelActs {
 public:
  explicit PanelActs(int64_t n_in)
      : xa_{n_in / kQK,
            RoundUp64(static_cast<size_t>(n_in / kQK) * (kQK + sizeof(float) + (kComp ? sizeof(int32_t) : 0))), nullptr} {}
  size_t bytes(int64_t n_tok) const { return xa_.stride * static_cast<size_t>(n_tok); }
  void set_base(void* base) { xa_.base = static_cast<uint8_t*>(base); }
  void Quantize(int64_t t, const float* x) const {
    QuantizeActs(x, xa_.nb, xa_.qs(t), xa_.d(t), nullptr, kComp ? comp(t) : nullptr);
  }

  const int8_t* qs(int64_t t) const { return xa_.qs(t); }
  const float* d(int64_t t) const { return xa_.d(t); }
  int32_t* comp(int64_t t) const { return reinterpret_cast<int32_t*>(xa_.base + xa_.stride * t + xa_.nb * (kQK + 4)); }

 private:
  QuantizedActs xa_;
};

// The panel interface (quant_panels.h) of a type of 32-input blocks (fp16 d,
// then qs) but its Tile; kComp: the activations carry comp.
template <class Block, bool kComp>
struct Block32Panels {
  static constexpr int kBlock = kQK;
  static constexpr int kRecordBytes = kPanelRows * sizeof(Block);
  static constexpr int kTileRows = kGroupRows;
  static constexpr int kTileTokens = kTokens;
  using Acts = PanelActs<kComp>;

  // A group: fp16 d[nb][8] at its start, then at CodesOffset the qs dwords
  // as [block][dword][row][4].
  static size_t CodesOffset(int64_t nb) { return static_cast<size_t>(nb) * kGroupRows * sizeof(uint16_t); }

  // Rows o0 .. o0+31 of w as 4 groups.
  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel);
};

template <class Block, bool kComp>
void Block32Panels<Block, kComp>::PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
  constexpr int kDwords = sizeof(Block::qs) / 4;
  const int64_t nb = w.cols() / kQK, n_out = w.rows();
  for (int g = 0; g < kPanelRows / kGroupRows; ++g) {
    uint8_t* group = panel + sizeof(Block) * static_cast<size_t>(kGroupRows * nb * g);
    auto* d = reinterpret_cast<uint16_t*>(group);
    uint8_t* q = group + CodesOffset(nb);
    for (int r = 0; r < kGroupRows; ++r) {
      const int64_t o = std::min(n_out - 1, o0 + g * kGroupRows + r);
      const auto* row = reinterpret_cast<const Block*>(w.row(o));
      for (int64_t b = 0; b < nb; ++b) {
        d[b * kGroupRows + r] = row[b].d;
        for (int k = 0; k < kDwords; ++k) std::memcpy(q + ((b * kDwords + k) * kGroupRows + r) * 4, row[b].qs + 4 * k, 4);
      }
    }
  }
}

struct Q4_0Panels : Block32Panels<BlockQ4_0, true> {
  // y[t0 .. t0+T-1][o0 .. o0+7] (rows < n_out stored) from the 8 rows of one group.
  template <int T>
  static void Tile(const uint8_t* group, int64_t nb, const Acts& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
    __m256 acc[T];
    const auto* d = reinterpret_cast<const __m128i*>(group);
    const uint8_t* q = group + CodesOffset(nb);
    const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(d + b));
      __m256i w[kSteps];
      STRATA_UNROLL
      for (int k = 0; k < kSteps / 2; ++k) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + (b * (kSteps / 2) + k) * 32));
        w[k] = _mm256_and_si256(v, mask);
        w[k + kSteps / 2] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
      }
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) {
        const int8_t* xq = xa.qs(t0 + t) + b * kQK;
        __m256i sum16 = _mm256_maddubs_epi16(w[0], _mm256_set1_epi32(LoadI32(xq)));
        STRATA_UNROLL
        for (int k = 1; k < kSteps; ++k)
          sum16 = _mm256_add_epi16(sum16, _mm256_maddubs_epi16(w[k], _mm256_set1_epi32(LoadI32(xq + 4 * k))));
        const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(sum16, ones), _mm256_set1_epi32(xa.comp(t0 + t)[b]));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, _mm256_set1_ps(xa.d(t0 + t)[b])), acc[t]);
      }
    }
    StoreGroup<T>(acc, y, n_out, o0, t0);
  }
};

// ---------------------------------------------------------------------------
// Q8_0 panels: as Q4_0's, a group holding exactly its 8 rows' bytes:
//   fp16 d[nb][8]
//   i8   q[nb][8][8][4]    [block][k step][row][4 bytes]: inputs 4k .. 4k+3
// |w| is VPMADDUBSW's unsigned operand and w's sign moves onto the broadcast
// activations lane by lane; pairs of products reach 2 * 127 * 127, so every
// step widens with VPMADDWD (no 16-bit sums across steps).
struct Q8_0Panels : Block32Panels<BlockQ8_0, false> {
  // y[t0 .. t0+T-1][o0 .. o0+7] (rows < n_out stored) from the 8 rows of one group.
  template <int T>
  static void Tile(const uint8_t* group, int64_t nb, const Acts& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
    __m256 acc[T];
    const auto* d = reinterpret_cast<const __m128i*>(group);
    const uint8_t* q = group + CodesOffset(nb);
    const __m256i ones = _mm256_set1_epi16(1);
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(d + b));
      const auto* wq = reinterpret_cast<const __m256i*>(q + b * kSteps * 32);
      __m256i sum[T];
      STRATA_UNROLL
      for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_si256();
      STRATA_UNROLL
      for (int k = 0; k < kSteps; ++k) {
        const __m256i w = _mm256_loadu_si256(wq + k);
        const __m256i wabs = _mm256_sign_epi8(w, w);
        STRATA_UNROLL
        for (int t = 0; t < T; ++t) {
          const __m256i x = _mm256_set1_epi32(LoadI32(xa.qs(t0 + t) + b * kQK + 4 * k));
          sum[t] = _mm256_add_epi32(sum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(wabs, _mm256_sign_epi8(x, w)), ones));
        }
      }
      STRATA_UNROLL
      for (int t = 0; t < T; ++t)
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum[t]), _mm256_mul_ps(dw, _mm256_set1_ps(xa.d(t0 + t)[b])), acc[t]);
    }
    StoreGroup<T>(acc, y, n_out, o0, t0);
  }
};

// MatMulKernels::matmul: one matrix after the other (no packed layout to fuse).
template <void (*kMatMul)(const Tensor&, const float*, int64_t, float*, ThreadPool&)>
void EachOut(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool) {
  for (const MatMulOut& o : outs) kMatMul(*o.w, x, n_tok, o.y, pool);
}

}  // namespace

const MatMulKernels kAvx2F32 = {EachOut<MatMulFloat<F32Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2F16 = {EachOut<MatMulFloat<F16Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2BF16 = {EachOut<MatMulFloat<BF16Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2Q8_0 = kPanelKernels<Q8_0Panels>;
const MatMulKernels kAvx2Q4_0 = kPanelKernels<Q4_0Panels>;
const MatMulKernels kAvx2Q4_1 = {EachOut<MatMulQuant<Q4_1Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2Q5_0 = {EachOut<MatMulQuant<Q5_0Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2Q5_1 = {EachOut<MatMulQuant<Q5_1Weights>>, nullptr, nullptr};
const MatMulKernels kAvx2IQ4_NL = {EachOut<MatMulQuant<IQ4_NLWeights>>, nullptr, nullptr};

#undef STRATA_UNROLL

}  // namespace strata::kernels::internal
