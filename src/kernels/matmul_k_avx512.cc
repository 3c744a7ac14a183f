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

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

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
constexpr int kPrefetchRecords = 1;

// ---------------------------------------------------------------------------
// The tiles. A type's format F gives:
//   Block; kBlockBytes; Pack(block, offsets, rec, g): one super-block of a row
//   group into record rec (GatherDwords / GatherHalves)
//   kD: fp16 d[32]; kMinTerm: the sums term is a minimum weighted by dmin
//   (fp16 dmin[32] at kDmin), else an offset: the integer sum less
//   2^kTermShift times the term
//   Scales(rec, g): Scale(j) the integer scale of sub-block j (int32 lanes),
//   TermPair(p) the term's factors of sub-blocks 2p, 2p+1 as 16-bit halves
//   Codes(rec, j, k, g): the unsigned codes of inputs sub * j + 4k .. +3 of
//   group g (sub = F::kSub, 16 or 32 inputs per sub-block), times
//   2^kOddShift for odd j when the layout keeps them there (even sub-blocks'
//   scales are then taken times 2^kOddShift; the float step undoes it exactly)
// The term is against the activations' sums of 16 (kSub 16) or 32 codes.

template <class F>
struct KWeights {
  using Acts = KActs;
  static constexpr int kBlock = kQK_K;
  static constexpr int kRecordBytes = kPanelRows * static_cast<int>(sizeof(typename F::Block));
  static constexpr int kTileRows = kPanelRows;
  static constexpr int kTileTokens = 8;
  static constexpr int kSub = F::kSub, kSubBlocks = kQK_K / kSub, kSteps = kSub / 4;
  static constexpr float kSumsFactor = 1.0f / static_cast<float>(1 << F::kOddShift);

  static void PackPanel(const Tensor& w, int64_t o0, uint8_t* panel) {
    const int64_t nsb = w.cols() / kQK_K;
    ForEachGroup(w, o0, [&](const uint8_t* row0, __m512i offsets, int g) {
      for (int64_t b = 0; b < nsb; ++b)
        F::Pack(row0 + b * static_cast<int64_t>(sizeof(typename F::Block)), offsets, panel + b * kRecordBytes, g);
    });
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
        const typename F::Scales scales[G] = {typename F::Scales(rec, 0), typename F::Scales(rec, 1)};
        __m512i (&isum)[G][T] = sums[i];  // in memory: the registers hold the dot chains
        STRATA_UNROLL
        for (int j = 0; j < kSubBlocks; ++j) {
          if constexpr (T == 1) {
            constexpr int kLines = kRecordBytes / 64, kPerSub = (kLines + kSubBlocks - 1) / kSubBlocks;
            for (int l = j * kPerSub; l < std::min(kLines, (j + 1) * kPerSub); ++l)
              _mm_prefetch(reinterpret_cast<const char*>(rec + kPrefetchRecords * kRecordBytes + 64 * l), _MM_HINT_T0);
          }
          __m512i dot[G][T];
          STRATA_UNROLL
          for (int g = 0; g < G; ++g)
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) dot[g][t] = _mm512_setzero_si512();
          STRATA_UNROLL
          for (int k = 0; k < kSteps; ++k) {
            __m512i wq[G];
            STRATA_UNROLL
            for (int g = 0; g < G; ++g) wq[g] = F::Codes(rec, j, k, g);
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) {
              const __m512i xb = Broadcast4(xq[t] + b * kQK_K + kSub * j + 4 * k);
              STRATA_UNROLL
              for (int g = 0; g < G; ++g) dot[g][t] = _mm512_dpbusd_epi32(dot[g][t], wq[g], xb);
            }
          }
          STRATA_UNROLL
          for (int g = 0; g < G; ++g) {
            __m512i sv = scales[g].Scale(j);
            if (j % 2 == 0) sv = _mm512_slli_epi32(sv, F::kOddShift);
            STRATA_UNROLL
            for (int t = 0; t < T; ++t) {
              const __m512i prod = _mm512_mullo_epi32(dot[g][t], sv);
              isum[g][t] = j == 0 ? prod : _mm512_add_epi32(isum[g][t], prod);
            }
          }
        }
      }
      // The chunk's sums terms and float steps, added to y.
      for (int g = 0; g < G; ++g) {
        const int64_t r0 = o0 + kLanes * g;
        const __mmask16 m = LaneMask(n_out - r0);
        for (int t = 0; t < T; ++t) {
          float* yt = y + (t0 + t) * n_out + r0;
          const float* xd = xa.d(t0 + t);
          const int16_t* xs = kSub == 16 ? xa.sums16(t0 + t) : xa.sums32(t0 + t);
          __m512 acc = b0 == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, yt);
          for (int64_t i = 0; i < n_chunk; ++i) {
            const int64_t b = b0 + i;
            const uint8_t* rec = panel + b * kRecordBytes;
            const typename F::Scales scales(rec, g);
            __m512i term = _mm512_setzero_si512();
            STRATA_UNROLL
            for (int p = 0; p < kSubBlocks / 2; ++p)
              term = _mm512_dpwssd_epi32(term, scales.TermPair(p), Broadcast4(xs + b * kSubBlocks + 2 * p));
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + F::kD + 32 * g)));
            const __m512 dx = _mm512_set1_ps(xd[b]), dx_sums = _mm512_set1_ps(xd[b] * kSumsFactor);
            if constexpr (F::kMinTerm) {
              const __m512 dm =
                  _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + F::kDmin + 32 * g)));
              acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[i][g][t]), _mm512_mul_ps(dw, dx_sums), acc);
              acc = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(term), _mm512_mul_ps(dm, dx), acc);
            } else {
              const __m512i total =
                  _mm512_sub_epi32(sums[i][g][t], _mm512_slli_epi32(term, F::kTermShift + F::kOddShift));
              acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(dw, dx_sums), acc);
            }
          }
          _mm512_mask_storeu_ps(yt, m, acc);
        }
      }
    }
  }
};

// Sign-extended byte r of each dword as int32 lanes.
__m512i SignedByte(__m512i v, int r) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * r), 24); }

// ---------------------------------------------------------------------------
// Q4_K and Q5_K: 8 sub-blocks of 32, 6-bit scales and mins. Record (Q4_K
// 4608 bytes, Q5_K 5632):
//   fp16 d[32], fp16 dmin[32]
//   u32  scales[3][2][16]    the 12 bytes of 6-bit scales and mins
//   Q5_K: u32 qh[8][2][16]   dword k: bytes 4k .. 4k+3 of qh (bit j: the
//                            fifth bit of sub-block j's inputs 4k .. 4k+3)
//   u32  qs[32][2][16]       dword 8h+k holds inputs 64h+4k .. +3 (sub-block
//        2h) in its low nibbles and 64h+32+4k .. +3 (sub-block 2h+1) in its
//        high ones
template <class Block, bool kFifthBit>
struct MinK32Format {
  static constexpr int kSub = 32;
  static constexpr bool kMinTerm = true;
  static constexpr int kTermShift = 0;
  static constexpr int kD = 0, kDmin = 64, kScales = 128, kQh = kScales + 3 * 128;
  static constexpr int kQs = kQh + (kFifthBit ? 8 * 128 : 0);

  static void Pack(const uint8_t* block, __m512i offsets, uint8_t* rec, int g) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g), GatherHalves(block, offsets, 0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kDmin + 32 * g), GatherHalves(block, offsets, 1));
    GatherDwords(block + offsetof(Block, scales), offsets, 3, rec + kScales, g);
    if constexpr (kFifthBit) GatherDwords(block + offsetof(Block, qh), offsets, 8, rec + kQh, g);
    GatherDwords(block + offsetof(Block, qs), offsets, 32, rec + kQs, g);
  }

  // The scales and mins as bytes: sc[0] scales 0-3, sc[1] 4-7 (byte r of a
  // lane's dword: sub-block r or 4+r), mn likewise (ggml's get_scale_min_k4
  // on 16 rows at once).
  struct Scales {
    __m512i sc[2], mn[2];
    Scales(const uint8_t* rec, int g) {
      const __m512i a = _mm512_load_si512(rec + kScales + (0 * 2 + g) * 64);
      const __m512i b = _mm512_load_si512(rec + kScales + (1 * 2 + g) * 64);
      const __m512i c = _mm512_load_si512(rec + kScales + (2 * 2 + g) * 64);
      const __m512i low6 = _mm512_set1_epi8(0x3F), low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
      constexpr int kOrAnd = 0xF8;  // A | (B & C)
      sc[0] = _mm512_and_si512(a, low6);
      mn[0] = _mm512_and_si512(b, low6);
      sc[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(c, low4), _mm512_srli_epi32(a, 2), bits45, kOrAnd);
      mn[1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi32(c, 4), low4), _mm512_srli_epi32(b, 2),
                                        bits45, kOrAnd);
    }
    __m512i Scale(int j) const { return _mm512_shuffle_epi8(sc[j / 4], ByteOfDword(j % 4)); }
    __m512i TermPair(int p) const { return _mm512_shuffle_epi8(mn[p / 2], BytePairOfDword(2 * (p % 2))); }
  };
};

// Q4_K's high nibbles are multiplied as they sit (16 q: one AND, no shift).
struct Q4_KFormat : MinK32Format<BlockQ4_K, false> {
  using Block = BlockQ4_K;
  static constexpr int kOddShift = 4;
  static __m512i Codes(const uint8_t* rec, int j, int k, int g) {
    const __m512i v = _mm512_load_si512(rec + kQs + ((8 * (j / 2) + k) * 2 + g) * 64);
    return _mm512_and_si512(v, _mm512_set1_epi8(static_cast<char>(j % 2 == 0 ? 0x0F : 0xF0)));
  }
};

struct Q5_KFormat : MinK32Format<BlockQ5_K, true> {
  using Block = BlockQ5_K;
  static constexpr int kOddShift = 0;
  static __m512i Codes(const uint8_t* rec, int j, int k, int g) {
    const __m512i v = _mm512_load_si512(rec + kQs + ((8 * (j / 2) + k) * 2 + g) * 64);
    const __m512i qh = _mm512_load_si512(rec + kQh + (k * 2 + g) * 64);
    const __m512i lo = _mm512_and_si512(j % 2 == 0 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
    // Bit j of each qh byte moved to bit 4 (shifts of 16-bit lanes by at most
    // 4: the bits crossing bytes land outside bit 4).
    const __m512i hb = j <= 4 ? _mm512_slli_epi16(qh, 4 - j) : _mm512_srli_epi16(qh, j - 4);
    return _mm512_ternarylogic_epi32(lo, hb, _mm512_set1_epi8(0x10), 0xF8);  // lo | (hb & bit 4)
  }
};

// ---------------------------------------------------------------------------
// IQ4_XS: 8 sub-blocks of 32, 6-bit scales less 32, codes are the non-linear
// levels + 128 (looked up by nibble with VPSHUFB); the offset 128 comes off
// against the sums of 32. Record (4352 bytes):
//   fp16 d[32], u16 scales_h[32]
//   u32  scales_l[1][2][16]
//   u32  qs[32][2][16]       dword 4j+k holds inputs 32j+4k .. +3 in its low
//        nibbles and 32j+16+4k .. +3 in its high ones
struct IQ4_XSFormat {
  using Block = BlockIQ4_XS;
  static constexpr int kSub = 32;
  static constexpr bool kMinTerm = false;
  static constexpr int kTermShift = 7, kOddShift = 0;
  static constexpr int kD = 0, kScalesH = 64, kScalesL = 128, kQs = kScalesL + 128;

  static void Pack(const uint8_t* block, __m512i offsets, uint8_t* rec, int g) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g), GatherHalves(block, offsets, 0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kScalesH + 32 * g), GatherHalves(block, offsets, 1));
    GatherDwords(block + offsetof(Block, scales_l), offsets, 1, rec + kScalesL, g);
    GatherDwords(block + offsetof(Block, qs), offsets, 32, rec + kQs, g);
  }

  // Sub-block j's scale: 4 bits at bit 4j of scales_l, 2 at bit 2j of scales_h, less 32.
  struct Scales {
    __m512i sc[8];
    Scales(const uint8_t* rec, int g) {
      const __m512i l = _mm512_load_si512(rec + kScalesL + g * 64);
      const __m512i h = _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(rec + kScalesH + 32 * g)));
      STRATA_UNROLL
      for (int j = 0; j < 8; ++j) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(l, 4 * j), _mm512_set1_epi32(0x0F));
        const __m512i hi = _mm512_and_si512(_mm512_slli_epi32(_mm512_srli_epi32(h, 2 * j), 4), _mm512_set1_epi32(0x30));
        sc[j] = _mm512_sub_epi32(_mm512_or_si512(lo, hi), _mm512_set1_epi32(32));
      }
    }
    __m512i Scale(int j) const { return sc[j]; }
    __m512i TermPair(int p) const {
      return _mm512_mask_blend_epi16(0xAAAAAAAA, sc[2 * p], _mm512_slli_epi32(sc[2 * p + 1], 16));
    }
  };

  static __m512i Codes(const uint8_t* rec, int j, int k, int g) {
    static constexpr std::array<uint8_t, 16> kLevels = [] {
      std::array<uint8_t, 16> levels{};
      for (int i = 0; i < 16; ++i) levels[i] = static_cast<uint8_t>(kIq4nlValues[i] + 128);
      return levels;
    }();
    const __m512i v = _mm512_load_si512(rec + kQs + ((4 * j + k % 4) * 2 + g) * 64);
    const __m512i nib = _mm512_and_si512(k < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kLevels.data())));
    return _mm512_shuffle_epi8(table, nib);
  }
};

// ---------------------------------------------------------------------------
// Sub-blocks of 16 (Q2_K, Q3_K, Q6_K): input 128h + 32u + l (half h, quarter
// u, l < 32) is in sub-block 8h + 2u + l / 16; its codes come from dword 8h +
// k (l = 4k .. 4k+3) of a field of 32 bytes per half (qs of Q2_K / Q3_K, qh
// of Q6_K), at bits 2u, 2u+1 of each byte.

// Q6_K. Record (6720 bytes):
//   fp16 d[32]
//   u32  scales[4][2][16]    dword i: the int8 scales of sub-blocks 4i, 4i+2,
//        4i+1, 4i+3 (so the 16-bit halves sign-extend to the pairs (4i,
//        4i+1) and (4i+2, 4i+3))
//   u32  ql[32][2][16]       dword j: bytes 4j .. 4j+3 of ql
//   u32  qh[16][2][16]       dword j: bytes 4j .. 4j+3 of qh
// Inputs 128h + 32u + 4k .. +3 have their low 4 bits in ql dword 16h +
// 8(u % 2) + k (low nibbles for u < 2, else high) and their top 2 bits at
// bits 2u, 2u+1 of qh dword 8h + k; codes 0..63, the offset 32 comes off.
struct Q6_KFormat {
  using Block = BlockQ6_K;
  static constexpr int kSub = 16;
  static constexpr bool kMinTerm = false;
  static constexpr int kTermShift = 5, kOddShift = 0;
  static constexpr int kD = 0, kScales = 64, kQl = kScales + 4 * 128, kQh = kQl + 32 * 128;

  static void Pack(const uint8_t* block, __m512i offsets, uint8_t* rec, int g) {
    // d is the block's last 2 bytes: read as the high half of the dword before.
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g),
                       GatherHalves(block + offsetof(Block, d) - 2, offsets, 1));
    GatherDwords(block + offsetof(Block, scales), offsets, 4, rec + kScales, g);
    const __m512i order = _mm512_set4_epi32(0x0F0D0E0C, 0x0B090A08, 0x07050604, 0x03010200);  // bytes 0, 2, 1, 3
    for (int i = 0; i < 4; ++i) {
      uint8_t* v = rec + kScales + (i * 2 + g) * 64;
      _mm512_store_si512(v, _mm512_shuffle_epi8(_mm512_load_si512(v), order));
    }
    GatherDwords(block + offsetof(Block, ql), offsets, 32, rec + kQl, g);
    GatherDwords(block + offsetof(Block, qh), offsets, 16, rec + kQh, g);
  }

  struct Scales {
    const uint8_t* v;  // group g's scale dwords
    Scales(const uint8_t* rec, int g) : v(rec + kScales + g * 64) {}
    __m512i Scale(int j) const {
      constexpr int kByte[4] = {0, 2, 1, 3};  // where sub-block 4i + r sits in dword i
      return SignedByte(_mm512_load_si512(v + (j / 4) * 128), kByte[j % 4]);
    }
    __m512i TermPair(int p) const {
      const __m512i s = _mm512_load_si512(v + (p / 2) * 128);
      return p % 2 == 0 ? _mm512_srai_epi16(_mm512_slli_epi16(s, 8), 8) : _mm512_srai_epi16(s, 8);
    }
  };

  static __m512i Codes(const uint8_t* rec, int j, int k4, int g) {
    const int h = j / 8, u = (j % 8) / 2, k = 4 * (j % 2) + k4;
    const __m512i l = _mm512_load_si512(rec + kQl + ((16 * h + 8 * (u % 2) + k) * 2 + g) * 64);
    const __m512i hb = _mm512_load_si512(rec + kQh + ((8 * h + k) * 2 + g) * 64);
    const __m512i lo = _mm512_and_si512(u < 2 ? l : _mm512_srli_epi16(l, 4), _mm512_set1_epi8(0x0F));
    // The quarter's 2 bits moved to bits 4-5 of each byte (shifts of 16-bit
    // lanes by at most 4; bits crossing bytes land outside bits 4-5).
    const __m512i hs = u <= 2 ? _mm512_slli_epi16(hb, 4 - 2 * u) : _mm512_srli_epi16(hb, 2);
    return _mm512_ternarylogic_epi32(lo, hs, _mm512_set1_epi8(0x30), 0xF8);  // lo | (hs & bits 4-5)
  }
};

// Q2_K. Record (2688 bytes):
//   fp16 d[32], fp16 dmin[32]
//   u32  scales[4][2][16]    dword i: bytes 4i .. 4i+3 of scales (sub-block
//        j: scale in the low nibble of byte j, min in the high one)
//   u32  qs[16][2][16]       dword j: bytes 4j .. 4j+3 of qs; codes 0..3
struct Q2_KFormat {
  using Block = BlockQ2_K;
  static constexpr int kSub = 16;
  static constexpr bool kMinTerm = true;
  static constexpr int kTermShift = 0, kOddShift = 0;
  static constexpr int kD = 0, kDmin = 64, kScales = 128, kQs = kScales + 4 * 128;

  static void Pack(const uint8_t* block, __m512i offsets, uint8_t* rec, int g) {
    // d, dmin are the block's last 4 bytes.
    const uint8_t* dd = block + offsetof(Block, d);
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g), GatherHalves(dd, offsets, 0));
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kDmin + 32 * g), GatherHalves(dd, offsets, 1));
    GatherDwords(block + offsetof(Block, scales), offsets, 4, rec + kScales, g);
    GatherDwords(block + offsetof(Block, qs), offsets, 16, rec + kQs, g);
  }

  struct Scales {
    const uint8_t* v;
    Scales(const uint8_t* rec, int g) : v(rec + kScales + g * 64) {}
    __m512i Scale(int j) const {
      return _mm512_and_si512(_mm512_shuffle_epi8(_mm512_load_si512(v + (j / 4) * 128), ByteOfDword(j % 4)),
                              _mm512_set1_epi32(0x0F));
    }
    __m512i TermPair(int p) const {
      const __m512i mins = _mm512_and_si512(_mm512_srli_epi32(_mm512_load_si512(v + (p / 2) * 128), 4),
                                            _mm512_set1_epi8(0x0F));
      return _mm512_shuffle_epi8(mins, BytePairOfDword(2 * (p % 2)));
    }
  };

  static __m512i Codes(const uint8_t* rec, int j, int k4, int g) {
    const int h = j / 8, u = (j % 8) / 2, k = 4 * (j % 2) + k4;
    const __m512i q = _mm512_load_si512(rec + kQs + ((8 * h + k) * 2 + g) * 64);
    return _mm512_and_si512(_mm512_srli_epi16(q, 2 * u), _mm512_set1_epi8(0x03));
  }
};

// Q3_K. Record (3520 bytes):
//   fp16 d[32]
//   u32  scales[3][2][16]    the 12 bytes of 16 6-bit scales (less 32)
//   u32  hmask[8][2][16]     dword k: bytes 4k .. 4k+3 of hmask (bit 4h+u:
//                            the third bit of inputs 128h + 32u + 4k .. +3)
//   u32  qs[16][2][16]       dword j: bytes 4j .. 4j+3 of qs (low 2 bits)
// Codes 0..7 (the third bit set: no -4), the offset 4 comes off.
struct Q3_KFormat {
  using Block = BlockQ3_K;
  static constexpr int kSub = 16;
  static constexpr bool kMinTerm = false;
  static constexpr int kTermShift = 2, kOddShift = 0;
  static constexpr int kD = 0, kScales = 64, kHmask = kScales + 3 * 128, kQs = kHmask + 8 * 128;

  static void Pack(const uint8_t* block, __m512i offsets, uint8_t* rec, int g) {
    // d is the block's last 2 bytes: read as the high half of the dword before.
    _mm256_store_si256(reinterpret_cast<__m256i*>(rec + kD + 32 * g),
                       GatherHalves(block + offsetof(Block, d) - 2, offsets, 1));
    GatherDwords(block + offsetof(Block, scales), offsets, 3, rec + kScales, g);
    GatherDwords(block + offsetof(Block, hmask), offsets, 8, rec + kHmask, g);
    GatherDwords(block + offsetof(Block, qs), offsets, 16, rec + kQs, g);
  }

  // The 16 scales as signed bytes: s[q] byte r is sub-block 4q + r (ggml's
  // scale unpacking of Q3_K on 16 rows at once).
  struct Scales {
    __m512i s[4];
    Scales(const uint8_t* rec, int g) {
      const __m512i a = _mm512_load_si512(rec + kScales + (0 * 2 + g) * 64);
      const __m512i b = _mm512_load_si512(rec + kScales + (1 * 2 + g) * 64);
      const __m512i c = _mm512_load_si512(rec + kScales + (2 * 2 + g) * 64);
      const __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30), off = _mm512_set1_epi8(32);
      const __m512i low[4] = {_mm512_and_si512(a, low4), _mm512_and_si512(b, low4),
                              _mm512_and_si512(_mm512_srli_epi32(a, 4), low4),
                              _mm512_and_si512(_mm512_srli_epi32(b, 4), low4)};
      STRATA_UNROLL
      for (int q = 0; q < 4; ++q) {
        // Bits 2q, 2q+1 of c's bytes moved to bits 4-5.
        const __m512i hi = q <= 2 ? _mm512_slli_epi32(c, 4 - 2 * q) : _mm512_srli_epi32(c, 2);
        s[q] = _mm512_sub_epi8(_mm512_ternarylogic_epi32(low[q], hi, bits45, 0xF8), off);
      }
    }
    __m512i Scale(int j) const { return SignedByte(s[j / 4], j % 4); }
    // Sub-blocks 2p, 2p+1: bytes 2(p % 2), +1 of s[p / 2] moved to the top of
    // each 16-bit half and shifted back with their sign.
    __m512i TermPair(int p) const {
      const int r = 2 * (p % 2);
      const auto ctl = [r](int base) { return static_cast<int>(((base + r + 1) << 24) | 0x00800000u | ((base + r) << 8) | 0x80u); };
      return _mm512_srai_epi16(_mm512_shuffle_epi8(s[p / 2], _mm512_set4_epi32(ctl(12), ctl(8), ctl(4), ctl(0))), 8);
    }
  };

  static __m512i Codes(const uint8_t* rec, int j, int k4, int g) {
    const int h = j / 8, u = (j % 8) / 2, k = 4 * (j % 2) + k4;
    const __m512i q = _mm512_load_si512(rec + kQs + ((8 * h + k) * 2 + g) * 64);
    const __m512i hm = _mm512_load_si512(rec + kHmask + (k * 2 + g) * 64);
    const __m512i low2 = _mm512_and_si512(_mm512_srli_epi16(q, 2 * u), _mm512_set1_epi8(0x03));
    // Bit 4h+u of each hmask byte moved to bit 2 (16-bit shifts: left by at
    // most 2, right by at most 5; bits crossing bytes land outside bit 2).
    const int bit = 4 * h + u;
    const __m512i hb = bit <= 2 ? _mm512_slli_epi16(hm, 2 - bit) : _mm512_srli_epi16(hm, bit - 2);
    return _mm512_ternarylogic_epi32(low2, hb, _mm512_set1_epi8(0x04), 0xF8);  // low2 | (hb & bit 2)
  }
};

}  // namespace

const MatMulKernels kAvx512Q2_K = kPanelKernels<KWeights<Q2_KFormat>>;
const MatMulKernels kAvx512Q3_K = kPanelKernels<KWeights<Q3_KFormat>>;
const MatMulKernels kAvx512Q4_K = kPanelKernels<KWeights<Q4_KFormat>>;
const MatMulKernels kAvx512Q5_K = kPanelKernels<KWeights<Q5_KFormat>>;
const MatMulKernels kAvx512Q6_K = kPanelKernels<KWeights<Q6_KFormat>>;
const MatMulKernels kAvx512IQ4_XS = kPanelKernels<KWeights<IQ4_XSFormat>>;

}  // namespace strata::kernels::internal

#undef STRATA_UNROLL
