// AVX-512 (F/BW/VL/DQ + VNNI) matrix multiplication of K-quant weights
// against Q8_K activations, on 32-row panels (quant_panels_avx512.h).
//
// A record holds one super-block (256 inputs) of the panel's 32 rows with
// every field "dword-transposed": dword j of a field (its bytes 4j .. 4j+3)
// is two vectors, rows 0-15 then 16-31, lane i holding row i's dword, so one
// VPDPBUSD of a vector of codes with a broadcast group of 4 activation codes
// advances 16 rows by 4 inputs. The fp16 super-block scales are [32] arrays.
// The weight codes are the unsigned operand as stored (Q4_K 0..15, Q6_K 0..63).
//
// Every product is summed exactly in integers per super-block, as the scalar
// reference does (kernels/vec_dot.h): each sub-block's integer dot is
// multiplied by its integer scale (VPMULLD) and summed; the mins (Q4_K) and
// Q6_K's code offset 32 against the activations' sums of 16 or 32 codes
// (VPDPWSSD). Only the per-super-block float steps differ from the reference
// (FMA rounding), so results match it within float rounding.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/quant_blocks.h"
#include "kernels/isa_kernels.h"
#include "kernels/quant_panels_avx512.h"

// GCC 12's _mm512_undefined_* (inside gather and narrowing intrinsics)
// self-initializes, which -Wmaybe-uninitialized reports at every inlined call.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace strata::kernels::internal {
namespace {

constexpr int kSubBlocks32 = kQK_K / 32;
constexpr int kSubBlocks16 = kQK_K / 16;

// ---------------------------------------------------------------------------
// Q8_K activations, one record per token (64-byte aligned):
//   qs     int8  [256 * nsb]
//   d      f32   [nsb]
//   sums16 int16 [nsb][16]   sum of each 16 codes (Q8_K's bsums)
//   sums32 int16 [nsb][8]    sum of each 32 codes
// Codes and scales are QuantizeRow(Q8_K)'s exactly.
class KActs {
 public:
  explicit KActs(int64_t n_in)
      : nsb_(n_in / kQK_K), stride_(RoundUp64(static_cast<size_t>(nsb_) * (kQK_K + 4 + 2 * (16 + 8)))) {}

  size_t bytes(int64_t n_tok) const { return stride_ * static_cast<size_t>(n_tok); }
  void set_base(void* base) { base_ = static_cast<uint8_t*>(base); }

  const int8_t* qs(int64_t t) const { return reinterpret_cast<const int8_t*>(rec(t)); }
  const float* d(int64_t t) const { return reinterpret_cast<const float*>(rec(t) + kQK_K * nsb_); }
  const int16_t* sums16(int64_t t) const { return reinterpret_cast<const int16_t*>(rec(t) + (kQK_K + 4) * nsb_); }
  const int16_t* sums32(int64_t t) const { return reinterpret_cast<const int16_t*>(rec(t) + (kQK_K + 36) * nsb_); }

  // Quantizes token t's activations x: F32 [n_in]. Distinct t may run concurrently.
  void Quantize(int64_t t, const float* x) const;

 private:
  uint8_t* rec(int64_t t) const { return base_ + stride_ * static_cast<size_t>(t); }

  int64_t nsb_;
  size_t stride_;
  uint8_t* base_ = nullptr;
};

void KActs::Quantize(int64_t t, const float* x) const {
  auto* qs = reinterpret_cast<int8_t*>(rec(t));
  auto* d = reinterpret_cast<float*>(rec(t) + kQK_K * nsb_);
  auto* sums16 = reinterpret_cast<int16_t*>(rec(t) + (kQK_K + 4) * nsb_);
  auto* sums32 = reinterpret_cast<int16_t*>(rec(t) + (kQK_K + 36) * nsb_);
  constexpr int kVectors = kQK_K / kLanes;
  for (int64_t b = 0; b < nsb_; ++b, x += kQK_K) {
    __m512 v[kVectors];
    __m512 vmax = _mm512_setzero_ps();
    STRATA_UNROLL
    for (int i = 0; i < kVectors; ++i) {
      v[i] = _mm512_loadu_ps(x + i * kLanes);
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v[i]));
    }
    const float amax = _mm512_reduce_max_ps(vmax);
    int8_t* q = qs + b * kQK_K;
    if (amax == 0.0f) {
      std::memset(q, 0, kQK_K);
      d[b] = 0.0f;
      std::memset(sums16 + b * kSubBlocks16, 0, kSubBlocks16 * sizeof(int16_t));
      std::memset(sums32 + b * kSubBlocks32, 0, kSubBlocks32 * sizeof(int16_t));
      continue;
    }
    // The scale comes from the first element of largest magnitude, with its sign.
    int first = 0;
    for (int i = 0; i < kVectors; ++i) {
      const __mmask16 m = _mm512_cmp_ps_mask(_mm512_abs_ps(v[i]), _mm512_set1_ps(amax), _CMP_EQ_OQ);
      if (m != 0) {
        first = i * kLanes + __builtin_ctz(m);
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const __m512 vs = _mm512_set1_ps(iscale);
    STRATA_UNROLL
    for (int i = 0; i < kVectors; ++i) {
      // Round to nearest even (the default MXCSR mode), as ggml's nearest_int.
      const __m512i qi = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v[i], vs)), _mm512_set1_epi32(127));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i * kLanes), _mm512_cvtepi32_epi8(qi));
      sums16[b * kSubBlocks16 + i] = static_cast<int16_t>(_mm512_reduce_add_epi32(qi));
    }
    for (int s = 0; s < kSubBlocks32; ++s)
      sums32[b * kSubBlocks32 + s] =
          static_cast<int16_t>(sums16[b * kSubBlocks16 + 2 * s] + sums16[b * kSubBlocks16 + 2 * s + 1]);
    d[b] = 1 / iscale;
  }
}

// ---------------------------------------------------------------------------
// Packing helpers: gathers from 16 rows' blocks (RowsOfGroup).

// Rows first .. first+15 of w (row layout) for gathers: row first + i (the
// last row for rows past the matrix) starts at base + offsets[i].
struct GroupRows {
  const uint8_t* base;
  __m512i offsets;
};
GroupRows RowsOfGroup(const Tensor& w, int64_t first) {
  alignas(64) int32_t offsets[kLanes];
  const int64_t row_bytes = static_cast<int64_t>(w.row_bytes()), last = w.rows() - 1, r0 = std::min(first, last);
  for (int i = 0; i < kLanes; ++i) offsets[i] = static_cast<int32_t>((std::min(first + i, last) - r0) * row_bytes);
  return {static_cast<const uint8_t*>(w.data) + r0 * row_bytes, _mm512_load_si512(offsets)};
}

// Dwords 0 .. n-1 at block + offsets[i] as the vectors dst + (j * 2 + g) * 64.
void GatherDwords(const uint8_t* block, __m512i offsets, int n, uint8_t* dst, int g) {
  for (int j = 0; j < n; ++j)
    _mm512_store_si512(dst + (j * 2 + g) * 64, _mm512_i32gather_epi32(offsets, block + 4 * j, 1));
}

// The 16 rows' fp16 at block + offsets[i] + 2 * half of a dword read at block.
__m256i GatherHalves(const uint8_t* block, __m512i offsets, int half) {
  const __m512i v = _mm512_i32gather_epi32(offsets, block, 1);
  return _mm512_cvtepi32_epi16(half == 0 ? v : _mm512_srli_epi32(v, 16));
}

// Calls f(block 0 of row 0 of the group, offsets, g) for both groups of the
// panel at rows o0 .. o0+31.
template <class F>
void ForEachGroup(const Tensor& w, int64_t o0, const F& f) {
  for (int g = 0; g < 2; ++g) {
    const GroupRows rows = RowsOfGroup(w, o0 + g * kLanes);
    f(rows.base, rows.offsets, g);
  }
}

// Byte shuffles (VPSHUFB controls; 0x80 zeroes): byte j of each dword as the
// dword's value, and bytes j, j+1 as its two 16-bit halves.
__m512i ByteOfDword(int j) {
  return _mm512_set4_epi32(static_cast<int>(0x80808000u | (12 + j)), static_cast<int>(0x80808000u | (8 + j)),
                           static_cast<int>(0x80808000u | (4 + j)), static_cast<int>(0x80808000u | j));
}
__m512i BytePairOfDword(int j) {
  const auto pair = [j](int base) { return static_cast<int>(0x80008000u | ((base + j + 1) << 16) | (base + j)); };
  return _mm512_set4_epi32(pair(12), pair(8), pair(4), pair(0));
}

// Broadcast of 4 bytes at p (4 activation codes, or two int16 sums).
__m512i Broadcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// A tile is kGroups row groups (the whole panel) x T tokens. The vector
// registers hold the 2T dot chains of one sub-block (VPDPBUSD's latency needs
// about 8 in flight); each sub-block's scaled dot is added to sums on the
// stack (loads and stores cost no vector ALU slot, the limit here). The
// integer sums of kSumChunk super-blocks come first, then their mins or code
// offsets and float steps in a loop of their own that adds to y. 1.1B
// shapes, one thread: 8 tokens with sums in memory 350-375 GFLOP/s (Q4_K),
// 220-245 (Q6_K); 4 tokens with sums in registers 315-345 and ~200.
constexpr int kGroups = 2;
constexpr int kSumChunk = 8;

// ---------------------------------------------------------------------------
// Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins. Record (32
// blocks: Q4_K 4608 bytes, Q5_K 5632):
//   fp16 d[32], fp16 dmin[32]
//   u32  scales[3][2][16]    the 12 bytes of 6-bit scales and mins
//   Q5_K: u32 qh[8][2][16]   dword k: bytes 4k .. 4k+3 of qh (bit s: the
//                            fifth bit of sub-block s's input 4k .. 4k+3)
//   u32  qs[32][2][16]       dword j: bytes 4j .. 4j+3 of qs; dword 8h+k holds
//        inputs 64h+4k .. +3 (sub-block 2h) in its low nibbles and 64h+32+4k ..
//        +3 (sub-block 2h+1) in its high ones
// F, the type's codes: Block; kQh (0: none), kQs; Codes(rec, sb, k, g): the
// codes of inputs 32 sb + 4k .. +3 of group g, times 2^kEvenShift for odd sb.

// Q4_K's high nibbles are multiplied as they sit (16 q: one AND, no shift),
// so the even sub-blocks' scales are taken times 16 and the integer sum is 16x
// the reference's; the float step scales by 1/16 (exact: a power of two).
struct Q4_KCodes {
  using Block = BlockQ4_K;
  static constexpr int kQh = 0, kQs = 128 + 3 * 128;
  static constexpr int kEvenShift = 4;
  static __m512i Codes(const uint8_t* rec, int sb, int k, int g) {
    const __m512i v = _mm512_load_si512(rec + kQs + ((8 * (sb / 2) + k) * 2 + g) * 64);
    return _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(sb % 2 == 0 ? 0x0F : 0xF0)));
  }
};

struct Q5_KCodes {
  using Block = BlockQ5_K;
  static constexpr int kQh = 128 + 3 * 128, kQs = kQh + 8 * 128;
  static constexpr int kEvenShift = 0;
  static __m512i Codes(const uint8_t* rec, int sb, int k, int g) {
    const __m512i v = _mm512_load_si512(rec + kQs + ((8 * (sb / 2) + k) * 2 + g) * 64);
    const __m512i qh = _mm512_load_si512(rec + kQh + (k * 2 + g) * 64);
    const __m512i lo = _mm512_and_si512(sb % 2 == 0 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
    // Bit sb of each qh byte moved to bit 4 (shifts of 16-bit lanes by at
    // most 4: the bits crossing bytes land outside bit 4).
    const __m512i hb = sb <= 4 ? _mm512_slli_epi16(qh, 4 - sb) : _mm512_srli_epi16(qh, sb - 4);
    return _mm512_ternarylogic_epi32(lo, hb, _mm512_set1_epi8(0x10), 0xF8);  // lo | (hb & bit 4)
  }
};

template <class F>
struct MinKWeights {
  using Acts = KActs;
  using Block = typename F::Block;
  static constexpr int kBlock = kQK_K;
  static constexpr int kRecordBytes = kPanelRows * static_cast<int>(sizeof(Block));
  static constexpr int kTileTokens = 8;
  static constexpr int kD = 0, kDmin = 64, kScales = 128;

  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
    const int64_t nsb = w.cols() / kQK_K;
    ForEachGroup(w, o0, [&](const uint8_t* row0, __m512i offsets, int g) {
      for (int64_t b = 0; b < nsb; ++b) {
        const uint8_t* block = row0 + b * static_cast<int64_t>(sizeof(Block));
        uint8_t* rec = panel + b * kRecordBytes;
        _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g), GatherHalves(block, offsets, 0));
        _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kDmin + 32 * g), GatherHalves(block, offsets, 1));
        GatherDwords(block + offsetof(Block, scales), offsets, 3, rec + kScales, g);
        if constexpr (F::kQh != 0) GatherDwords(block + offsetof(Block, qh), offsets, 8, rec + F::kQh, g);
        GatherDwords(block + offsetof(Block, qs), offsets, 32, rec + F::kQs, g);
      }
    });
  }

  // Group g's scales and mins as bytes: sc[0] scales 0-3, sc[1] 4-7 (byte j
  // of a lane's dword: sub-block j or 4+j), mn likewise (ggml's
  // get_scale_min_k4 on 16 rows at once).
  static void ScalesMins(const uint8_t* rec, int g, __m512i (&sc)[2], __m512i (&mn)[2]) {
    const __m512i a = _mm512_load_si512(rec + kScales + (0 * 2 + g) * 64);
    const __m512i b = _mm512_load_si512(rec + kScales + (1 * 2 + g) * 64);
    const __m512i c = _mm512_load_si512(rec + kScales + (2 * 2 + g) * 64);
    const __m512i low6 = _mm512_set1_epi8(0x3F), low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    constexpr int kOrAnd = 0xF8;  // A | (B & C)
    sc[0] = _mm512_and_si512(a, low6);
    mn[0] = _mm512_and_si512(b, low6);
    sc[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(c, low4), _mm512_srli_epi32(a, 2), bits45, kOrAnd);
    mn[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 4), low4), _mm512_srli_epi32(b, 2), bits45,
                                      kOrAnd);
  }

  static constexpr float kSumsFactor = 1.0f / (1 << F::kEvenShift);

  template <int T>
  static void Tile(const uint8_t* panel, int64_t nsb, const KActs& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
    constexpr int G = kGroups;
    const int8_t* xq[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) xq[t] = xa.qs(t0 + t);
    for (int64_t b0 = 0; b0 < nsb; b0 += kSumChunk) {
      const int64_t n_chunk = std::min<int64_t>(kSumChunk, nsb - b0);
      __m512i sums[kSumChunk][G][T];
      for (int64_t i = 0; i < n_chunk; ++i) {
        const int64_t b = b0 + i;
        const uint8_t* rec = panel + b * kRecordBytes;
        __m512i sc[G][2], mn[G][2];
        STRATA_UNROLL
        for (int g = 0; g < G; ++g) ScalesMins(rec, g, sc[g], mn[g]);
        __m512i (&isum)[G][T] = sums[i];  // in memory: the registers hold the dot chains
        STRATA_UNROLL
        for (int sb = 0; sb < kSubBlocks32; ++sb) {  // inputs 32 sb .. 32 sb + 31
          __m512i dot[G][T];
          STRATA_UNROLL
          for (int g = 0; g < G; ++g)
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) dot[g][t] = _mm512_setzero_si512();
          STRATA_UNROLL
          for (int k = 0; k < 8; ++k) {
            __m512i wq[G];
            STRATA_UNROLL
            for (int g = 0; g < G; ++g) wq[g] = F::Codes(rec, sb, k, g);
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) {
              const __m512i xb = Broadcast4(xq[t] + b * kQK_K + 32 * sb + 4 * k);
              STRATA_UNROLL
              for (int g = 0; g < G; ++g) dot[g][t] = _mm512_dpbusd_epi32(dot[g][t], wq[g], xb);
            }
          }
          STRATA_UNROLL
          for (int g = 0; g < G; ++g) {
            __m512i sv = _mm512_shuffle_epi8(sc[g][sb / 4], ByteOfDword(sb % 4));
            if (sb % 2 == 0) sv = _mm512_slli_epi32(sv, F::kEvenShift);
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) {
              const __m512i prod = _mm512_mullo_epi32(dot[g][t], sv);
              isum[g][t] = sb == 0 ? prod : _mm512_add_epi32(isum[g][t], prod);
            }
          }
        }
      }
      // The chunk's mins and float steps, added to y.
      for (int g = 0; g < G; ++g) {
        const int64_t r0 = o0 + kLanes * g;
        const __mmask16 m = LaneMask(n_out - r0);
        for (int t = 0; t < T; ++t) {
          float* yt = y + (t0 + t) * n_out + r0;
          const float* xd = xa.d(t0 + t);
          const int16_t* xs = xa.sums32(t0 + t);
          __m512 acc = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, yt);
          for (int64_t i = 0; i < n_chunk; ++i) {
            const int64_t b = b0 + i;
            const uint8_t* rec = panel + b * kRecordBytes;
            __m512i sc[2], mn[2];
            ScalesMins(rec, g, sc, mn);
            // Mins as 16-bit pairs (sub-blocks 2p, 2p+1) against the activations' pairs of sums of 32.
            __m512i msum = _mm512_setzero_si512();
            STRATA_UNROLL
            for (int p = 0; p < 4; ++p)
              msum = _mm512_dpwssd_epi32(msum, _mm512_shuffle_epi8(mn[p / 2], BytePairOfDword(2 * (p % 2))),
                                         Broadcast4(xs + b * kSubBlocks32 + 2 * p));
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + kD + 32 * g)));
            const __m512 dm =
                _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + kDmin + 32 * g)));
            const __m512 dx = _mm512_set1_ps(xd[b]), dx_sums = _mm512_set1_ps(xd[b] * kSumsFactor);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[i][g][t]), _mm512_mul_ps(dw, dx_sums), acc);
            acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_mul_ps(dm, dx), acc);
          }
          _mm512_mask_storeu_ps(yt, m, acc);
        }
      }
    }
  }

};


// ---------------------------------------------------------------------------
// Q6_K. Record (6720 bytes = 32 blocks):
//   fp16 d[32]
//   u32  scales[4][2][16]    dword i: the int8 scales of sub-blocks (of 16)
//        4i, 4i+2, 4i+1, 4i+3 (so the 16-bit halves sign-extend to the
//        pairs (4i, 4i+1) and (4i+2, 4i+3))
//   u32  ql[32][2][16]       dword j: bytes 4j .. 4j+3 of ql
//   u32  qh[16][2][16]       dword j: bytes 4j .. 4j+3 of qh
// Inputs 128h + 32u + 4k .. +3 (half h, quarter u, k step k) have their low
// 4 bits in ql dword 16h + 8(u % 2) + k (low nibbles for u < 2, else high)
// and their top 2 bits at bits 2u, 2u+1 of qh dword 8h + k.
struct Q6_KWeights {
  using Acts = KActs;
  static constexpr int kBlock = kQK_K;
  static constexpr int kRecordBytes = kPanelRows * static_cast<int>(sizeof(BlockQ6_K));
  static constexpr int kTileTokens = 8;
  static constexpr int kD = 0, kScales = 64, kQl = kScales + 4 * 128, kQh = kQl + 32 * 128;

  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
    const int64_t nsb = w.cols() / kQK_K;
    // Scale bytes 0, 1, 2, 3 of each dword to 0, 2, 1, 3.
    const __m512i order = _mm512_set4_epi32(0x0F0D0E0C, 0x0B090A08, 0x07050604, 0x03010200);
    ForEachGroup(w, o0, [&](const uint8_t* row0, __m512i offsets, int g) {
      for (int64_t b = 0; b < nsb; ++b) {
        const uint8_t* block = row0 + b * static_cast<int64_t>(sizeof(BlockQ6_K));
        uint8_t* rec = panel + b * kRecordBytes;
        // d is the block's last 2 bytes: read as the high half of the dword before.
        _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g),
                           GatherHalves(block + offsetof(BlockQ6_K, d) - 2, offsets, 1));
        GatherDwords(block + offsetof(BlockQ6_K, scales), offsets, 4, rec + kScales, g);
        for (int i = 0; i < 4; ++i) {
          uint8_t* v = rec + kScales + (i * 2 + g) * 64;
          _mm512_store_si512(v, _mm512_shuffle_epi8(_mm512_load_si512(v), order));
        }
        GatherDwords(block + offsetof(BlockQ6_K, ql), offsets, 32, rec + kQl, g);
        GatherDwords(block + offsetof(BlockQ6_K, qh), offsets, 16, rec + kQh, g);
      }
    });
  }

  // Codes 0..63 of the inputs of quarter u, k step k of half h (one row group's vector at ql, qh).
  template <int U>
  static __m512i Codes(const uint8_t* ql, const uint8_t* qh) {
    const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    const __m512i l = _mm512_load_si512(ql), h = _mm512_load_si512(qh);
    const __m512i lo = _mm512_and_si512(U < 2 ? l : _mm512_srli_epi16(l, 4), low4);
    // The quarter's 2 bits moved to bits 4-5 of each byte (shifts of 16-bit
    // lanes; bits crossing bytes land outside bits 4-5).
    const __m512i hs = U == 0 ? _mm512_slli_epi16(h, 4) : U == 1 ? _mm512_slli_epi16(h, 2) : U == 2 ? h
                                                                                              : _mm512_srli_epi16(h, 2);
    return _mm512_ternarylogic_epi32(lo, hs, bits45, 0xF8);  // lo | (hs & bits45)
  }

  // Scale of sub-block j (of 16) of group g as int32 lanes.
  static __m512i Scale(const uint8_t* rec, int j, int g) {
    const __m512i v = _mm512_load_si512(rec + kScales + ((j / 4) * 2 + g) * 64);
    constexpr int kByte[4] = {0, 2, 1, 3};  // where sub-block 4i + r sits in dword i
    const int byte = kByte[j % 4];
    return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * byte), 24);
  }

  template <int T>
  static void Tile(const uint8_t* panel, int64_t nsb, const KActs& xa, int64_t t0, float* y, int64_t n_out,
                   int64_t o0) {
    constexpr int G = kGroups;
    const int8_t* xq[T];
    STRATA_UNROLL
    for (int t = 0; t < T; ++t) xq[t] = xa.qs(t0 + t);
    for (int64_t b0 = 0; b0 < nsb; b0 += kSumChunk) {
      const int64_t n_chunk = std::min<int64_t>(kSumChunk, nsb - b0);
      __m512i sums[kSumChunk][G][T];
      for (int64_t i = 0; i < n_chunk; ++i) {
        const int64_t b = b0 + i;
        const uint8_t* rec = panel + b * kRecordBytes;
        __m512i (&isum)[G][T] = sums[i];  // in memory: the registers hold the dot chains
        const auto quarter = [&](auto u_tag, int h) {
          constexpr int U = decltype(u_tag)::value;
          STRATA_UNROLL
          for (int half = 0; half < 2; ++half) {  // sub-block j = 8h + 2U + half: inputs 16 j .. 16 j + 15
            const int j = 8 * h + 2 * U + half;
            __m512i dot[G][T];
            STRATA_UNROLL
            for (int g = 0; g < G; ++g)
              STRATA_UNROLL
              for (int t = 0; t < T; ++t) dot[g][t] = _mm512_setzero_si512();
            STRATA_UNROLL
            for (int kk = 0; kk < 4; ++kk) {
              const int k = 4 * half + kk;
              __m512i wq[G];
              STRATA_UNROLL
              for (int g = 0; g < G; ++g)
                wq[g] = Codes<U>(rec + kQl + ((16 * h + 8 * (U % 2) + k) * 2 + g) * 64,
                                 rec + kQh + ((8 * h + k) * 2 + g) * 64);
              STRATA_UNROLL
              for (int t = 0; t < T; ++t) {
                const __m512i xb = Broadcast4(xq[t] + b * kQK_K + 16 * j + 4 * kk);
                STRATA_UNROLL
                for (int g = 0; g < G; ++g) dot[g][t] = _mm512_dpbusd_epi32(dot[g][t], wq[g], xb);
              }
            }
            STRATA_UNROLL
            for (int g = 0; g < G; ++g) {
              const __m512i sv = Scale(rec, j, g);
              STRATA_UNROLL
              for (int t = 0; t < T; ++t) {
                const __m512i prod = _mm512_mullo_epi32(dot[g][t], sv);
                isum[g][t] = j == 0 ? prod : _mm512_add_epi32(isum[g][t], prod);
              }
            }
          }
        };
        STRATA_UNROLL
        for (int h = 0; h < 2; ++h) {
          quarter(std::integral_constant<int, 0>(), h);
          quarter(std::integral_constant<int, 1>(), h);
          quarter(std::integral_constant<int, 2>(), h);
          quarter(std::integral_constant<int, 3>(), h);
        }
      }
      // The chunk's code offsets and float steps, added to y:
      // isum - 32 * sum_j scale_j * (sum of the 16 activation codes of sub-block j).
      for (int g = 0; g < G; ++g) {
        const int64_t r0 = o0 + kLanes * (g);
        const __mmask16 m = LaneMask(n_out - r0);
        for (int t = 0; t < T; ++t) {
          float* yt = y + (t0 + t) * n_out + r0;
          const float* xd = xa.d(t0 + t);
          const int16_t* xs = xa.sums16(t0 + t);
          __m512 acc = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, yt);
          for (int64_t i = 0; i < n_chunk; ++i) {
            const int64_t b = b0 + i;
            const uint8_t* rec = panel + b * kRecordBytes;
            __m512i off = _mm512_setzero_si512();
            STRATA_UNROLL
            for (int q = 0; q < 4; ++q) {
              // Scale pairs (4q, 4q+1) and (4q+2, 4q+3) as 16-bit halves.
              const __m512i v = _mm512_load_si512(rec + kScales + (q * 2 + g) * 64);
              off = _mm512_dpwssd_epi32(off, _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8),
                                        Broadcast4(xs + b * kSubBlocks16 + 4 * q));
              off = _mm512_dpwssd_epi32(off, _mm512_srai_epi16(v, 8), Broadcast4(xs + b * kSubBlocks16 + 4 * q + 2));
            }
            const __m512i isum = _mm512_sub_epi32(sums[i][g][t], _mm512_slli_epi32(off, 5));
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + kD + 32 * g)));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(xd[b])), acc);
          }
          _mm512_mask_storeu_ps(yt, m, acc);
        }
      }
    }
  }
};

using Q4_KWeights = MinKWeights<Q4_KCodes>;
using Q5_KWeights = MinKWeights<Q5_KCodes>;

}  // namespace

const MatMulKernels kAvx512Q4_K = kPanelKernels<Q4_KWeights>;
const MatMulKernels kAvx512Q5_K = kPanelKernels<Q5_KWeights>;
const MatMulKernels kAvx512Q6_K = kPanelKernels<Q6_KWeights>;

}  // namespace strata::kernels::internal

#undef STRATA_UNROLL
