// Row (de)quantizers of the K-quant super-blocks (Q2_K .. Q6_K) and the Q8_K
// activations: ggml's reference quantizers (what llama-quantize writes
// without an importance matrix) and dequantizers, operation for operation.
//
// Element order inside a super-block (Decode* turns a block into integer
// codes in element order, which the dequantizers and the dot products in
// kernels/vec_dot.cc share): the 2-bit formats (Q2_K, Q3_K) hold elements
// 128h + 32s + l (h < 2, s < 4, l < 32) in bits 2s..2s+1 of qs[32h + l];
// Q4_K / Q5_K hold elements 64h + l and 64h + 32 + l in the low and high
// nibble of qs[32h + l]; Q6_K holds elements 128h + 32s + l in
// ql[64h + l + 32 (s & 1)] (low nibble for s < 2, high for s >= 2) and bits
// 2s..2s+1 of qh[32h + l].
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "kernels/quant_rows.h"
#include "kernels/quant_search.h"

namespace strata::kernels::internal {
namespace {

// Q4_K / Q5_K: sub-block j's 6-bit scale and min from the 12 scale bytes.
void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void SetScaleMinK4(int j, uint8_t ls, uint8_t lm, uint8_t* q) {
  if (j < 4) {
    q[j] = ls;
    q[j + 4] = lm;
  } else {
    q[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
    q[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
    q[j] |= static_cast<uint8_t>((lm >> 4) << 6);
  }
}

// Q3_K: sub-block j's 6-bit scale (0..63; the weight scale is this - 32).
int ScaleQ3_K(const uint8_t* scales, int j) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  return low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

// Packs L[256] (values < 4) two bits each as the 2-bit formats store them.
void Pack2Bits(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* p = L + 128 * h + l;
      qs[32 * h + l] = static_cast<uint8_t>(p[0] | (p[32] << 2) | (p[64] << 4) | (p[96] << 6));
    }
}

// Q4_K and Q5_K: the 8 sub-block (scale, min) pairs quantized to 6 bits
// against their maxima, d / dmin, then every element requantized with its
// sub-block's rounded scale. L: F32 codes [256] in 0..nmax.
void QuantizeScalesK4(const float* x, const float* scales, const float* mins, int nmax, uint16_t* d, uint16_t* dmin,
                      uint8_t* packed, uint8_t* L) {
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 32; ++j) {
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    // Truncated to 8 bits before the clamp, as ggml stores them.
    const uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_min * mins[j])));
    SetScaleMinK4(j, ls, lm, packed);
  }
  *d = F32ToFp16(max_scale / 63.f);
  *dmin = F32ToFp16(max_min / 63.f);
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    ScaleMinK4(j, packed, &sc, &m);
    const float dj = Fp16ToF32(*d) * static_cast<float>(sc);
    if (dj == 0) continue;
    const float dm = Fp16ToF32(*dmin) * static_cast<float>(m);
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(NearestInt((x[32 * j + i] + dm) / dj), 0, nmax));
  }
}

// Q4_K / Q5_K sub-block weights without an importance matrix: rms + |x|.
void SubBlockWeights(const float* x, float* weights) {
  float sum_x2 = 0;
  for (int l = 0; l < 32; ++l) sum_x2 += x[l] * x[l];
  const float av_x = std::sqrt(sum_x2 / 32);
  for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[l]);
}

}  // namespace

void QuantizeQ2_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ2_K*>(vy);
  constexpr float kQ4Scale = 15.f;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    uint8_t L[kQK_K], aux[16];
    float weights[16], mins[kQK_K / 16], scales[kQK_K / 16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = kQ4Scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) y[b].scales[j] = static_cast<uint8_t>(NearestInt(iscale * scales[j]));
      y[b].d = F32ToFp16(max_scale / kQ4Scale);
    } else {
      std::memset(y[b].scales, 0, sizeof y[b].scales);
      y[b].d = F32ToFp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = kQ4Scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) y[b].scales[j] |= static_cast<uint8_t>(NearestInt(iscale * mins[j]) << 4);
      y[b].dmin = F32ToFp16(max_min / kQ4Scale);
    } else {
      y[b].dmin = F32ToFp16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToF32(y[b].d) * static_cast<float>(y[b].scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = Fp16ToF32(y[b].dmin) * static_cast<float>(y[b].scales[j] >> 4);
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = static_cast<uint8_t>(std::clamp(NearestInt((x[16 * j + i] + dm) / d), 0, 3));
    }
    Pack2Bits(L, y[b].qs);
  }
}

void QuantizeQ3_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ3_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j);
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(y[b].scales, 0, sizeof y[b].scales);
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        // Narrowed to int8 before the clamp, as ggml does.
        const int l = std::clamp<int>(static_cast<int8_t>(NearestInt(iscale * scales[j])), -32, 31) + 32;
        if (j < 8) {
          y[b].scales[j] = static_cast<uint8_t>(l & 0xF);
        } else {
          y[b].scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        }
        y[b].scales[j % 4 + 8] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      y[b].d = F32ToFp16(1 / iscale);
    } else {
      y[b].d = F32ToFp16(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToF32(y[b].d) * static_cast<float>(ScaleQ3_K(y[b].scales, j) - 32);
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + i] / d), -4, 3) + 4);
    }
    // Bit 2 of each code goes to hmask: element j to bit j / 32 of hmask[j % 32].
    std::memset(y[b].hmask, 0, sizeof y[b].hmask);
    uint8_t low[kQK_K];
    for (int j = 0; j < kQK_K; ++j) {
      if (L[j] > 3) y[b].hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
      low[j] = static_cast<uint8_t>(L[j] > 3 ? L[j] - 4 : L[j]);
    }
    Pack2Bits(low, y[b].qs);
  }
}

void QuantizeQ4_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    uint8_t L[kQK_K], aux[32];
    float weights[32], mins[kQK_K / 32], scales[kQK_K / 32];
    for (int j = 0; j < kQK_K / 32; ++j) {
      SubBlockWeights(x + 32 * j, weights);
      scales[j] = MakeQkx2Quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -1.f, 0.1f, 20, false);
    }
    std::memset(y[b].scales, 0, sizeof y[b].scales);
    QuantizeScalesK4(x, scales, mins, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
    for (int h = 0; h < kQK_K / 64; ++h)
      for (int l = 0; l < 32; ++l) y[b].qs[32 * h + l] = static_cast<uint8_t>(L[64 * h + l] | (L[64 * h + 32 + l] << 4));
  }
}

void QuantizeQ5_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    uint8_t L[kQK_K], aux[32];
    float weights[32], mins[kQK_K / 32], scales[kQK_K / 32];
    for (int j = 0; j < kQK_K / 32; ++j) {
      SubBlockWeights(x + 32 * j, weights);
      scales[j] = MakeQkx2Quants(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -0.5f, 0.1f, 15, false);
    }
    std::memset(y[b].scales, 0, sizeof y[b].scales);
    QuantizeScalesK4(x, scales, mins, 31, &y[b].d, &y[b].dmin, y[b].scales, L);
    std::memset(y[b].qh, 0, sizeof y[b].qh);
    for (int h = 0; h < kQK_K / 64; ++h) {
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * h + l], hi = L[64 * h + 32 + l];
        if (lo > 15) y[b].qh[l] |= static_cast<uint8_t>(1u << (2 * h));
        if (hi > 15) y[b].qh[l] |= static_cast<uint8_t>(2u << (2 * h));
        y[b].qs[32 * h + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      }
    }
  }
}

void QuantizeQ6_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    int8_t L[kQK_K];
    float scales[kQK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < kQK_K / 16; ++j) {
      scales[j] = MakeQxQuants(16, 32, x + 16 * j, L + 16 * j);
      const float abs_scale = std::fabs(scales[j]);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scales[j];
      }
    }
    if (max_abs_scale < 1e-15f) {  // ggml's GROUP_MAX_EPS: an all-zero block
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[b].d = F32ToFp16(1 / iscale);
    for (int j = 0; j < kQK_K / 16; ++j)
      y[b].scales[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = Fp16ToF32(y[b].d) * static_cast<float>(y[b].scales[j]);
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + i] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      for (int l = 0; l < 32; ++l) {
        const int8_t* q = L + 128 * h + l;
        y[b].ql[64 * h + l] = static_cast<uint8_t>((q[0] & 0xF) | ((q[64] & 0xF) << 4));
        y[b].ql[64 * h + 32 + l] = static_cast<uint8_t>((q[32] & 0xF) | ((q[96] & 0xF) << 4));
        y[b].qh[32 * h + l] = static_cast<uint8_t>((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
      }
    }
  }
}

void QuantizeQ8_K(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) y[b].qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y[b].qs[16 * j + i];
      y[b].bsums[j] = static_cast<int16_t>(sum);
    }
    y[b].d = 1 / iscale;
  }
}

void DecodeQ2_K(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockQ2_K*>(block);
  *c = SuperBlockCodes{16, true, Fp16ToF32(x.d), Fp16ToF32(x.dmin), {}, {}, {}};
  for (int j = 0; j < kQK_K / 16; ++j) {
    c->scale[j] = x.scales[j] & 0xF;
    c->min[j] = x.scales[j] >> 4;
  }
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) c->q[128 * h + 32 * s + l] = static_cast<int8_t>((x.qs[32 * h + l] >> (2 * s)) & 3);
}

void DecodeQ3_K(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockQ3_K*>(block);
  *c = SuperBlockCodes{16, false, Fp16ToF32(x.d), 0.0f, {}, {}, {}};
  for (int j = 0; j < kQK_K / 16; ++j) c->scale[j] = static_cast<int16_t>(ScaleQ3_K(x.scales, j) - 32);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const int high = (x.hmask[l] >> (4 * h + s)) & 1;  // set: no -4
        c->q[128 * h + 32 * s + l] = static_cast<int8_t>(((x.qs[32 * h + l] >> (2 * s)) & 3) - (high ? 0 : 4));
      }
}

void DecodeQ4_K(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockQ4_K*>(block);
  *c = SuperBlockCodes{32, true, Fp16ToF32(x.d), Fp16ToF32(x.dmin), {}, {}, {}};
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    ScaleMinK4(j, x.scales, &sc, &m);
    c->scale[j] = sc;
    c->min[j] = m;
  }
  for (int h = 0; h < kQK_K / 64; ++h)
    for (int l = 0; l < 32; ++l) {
      c->q[64 * h + l] = static_cast<int8_t>(x.qs[32 * h + l] & 0xF);
      c->q[64 * h + 32 + l] = static_cast<int8_t>(x.qs[32 * h + l] >> 4);
    }
}

void DecodeQ5_K(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockQ5_K*>(block);
  *c = SuperBlockCodes{32, true, Fp16ToF32(x.d), Fp16ToF32(x.dmin), {}, {}, {}};
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    ScaleMinK4(j, x.scales, &sc, &m);
    c->scale[j] = sc;
    c->min[j] = m;
  }
  for (int h = 0; h < kQK_K / 64; ++h)
    for (int l = 0; l < 32; ++l) {
      const int lo_bit = (x.qh[l] >> (2 * h)) & 1, hi_bit = (x.qh[l] >> (2 * h + 1)) & 1;
      c->q[64 * h + l] = static_cast<int8_t>((x.qs[32 * h + l] & 0xF) | (lo_bit << 4));
      c->q[64 * h + 32 + l] = static_cast<int8_t>((x.qs[32 * h + l] >> 4) | (hi_bit << 4));
    }
}

void DecodeQ6_K(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockQ6_K*>(block);
  *c = SuperBlockCodes{16, false, Fp16ToF32(x.d), 0.0f, {}, {}, {}};
  for (int j = 0; j < kQK_K / 16; ++j) c->scale[j] = x.scales[j];
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 32; ++l) {
        const uint8_t low = x.ql[64 * h + 32 * (s & 1) + l];
        const int nibble = s < 2 ? low & 0xF : low >> 4;
        const int high = (x.qh[32 * h + l] >> (2 * s)) & 3;
        c->q[128 * h + 32 * s + l] = static_cast<int8_t>((nibble | (high << 4)) - 32);
      }
}

void DequantizeCodes(const SuperBlockCodes& c, float* y) {
  const int n_sub = kQK_K / c.sub_size;
  for (int s = 0; s < n_sub; ++s) {
    const float dl = c.d * static_cast<float>(c.scale[s]);
    const float ml = c.dmin * static_cast<float>(c.min[s]);
    const int8_t* q = c.q + s * c.sub_size;
    float* out = y + s * c.sub_size;
    if (c.has_min) {
      for (int l = 0; l < c.sub_size; ++l) out[l] = dl * static_cast<float>(q[l]) - ml;
    } else {
      for (int l = 0; l < c.sub_size; ++l) out[l] = dl * static_cast<float>(q[l]);
    }
  }
}

namespace {

template <class Block>
void DequantizeSuperBlocks(void (*decode)(const void*, SuperBlockCodes*), const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const Block*>(vx);
  SuperBlockCodes c;
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    decode(&x[b], &c);
    DequantizeCodes(c, y);
  }
}

}  // namespace

void DequantizeQ2_K(const void* x, float* y, int64_t n) { DequantizeSuperBlocks<BlockQ2_K>(DecodeQ2_K, x, y, n); }
void DequantizeQ3_K(const void* x, float* y, int64_t n) { DequantizeSuperBlocks<BlockQ3_K>(DecodeQ3_K, x, y, n); }
void DequantizeQ4_K(const void* x, float* y, int64_t n) { DequantizeSuperBlocks<BlockQ4_K>(DecodeQ4_K, x, y, n); }
void DequantizeQ5_K(const void* x, float* y, int64_t n) { DequantizeSuperBlocks<BlockQ5_K>(DecodeQ5_K, x, y, n); }
void DequantizeQ6_K(const void* x, float* y, int64_t n) { DequantizeSuperBlocks<BlockQ6_K>(DecodeQ6_K, x, y, n); }

void DequantizeQ8_K(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  for (int64_t b = 0; b < n / kQK_K; ++b)
    for (int j = 0; j < kQK_K; ++j) *y++ = x[b].d * static_cast<float>(x[b].qs[j]);
}

}  // namespace strata::kernels::internal
