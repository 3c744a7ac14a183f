// Row (de)quantizers of the non-linear 4-bit formats IQ4_NL (32-element
// blocks) and IQ4_XS (256-element super-blocks of 8 x 32 with 6-bit scales):
// what llama-quantize writes without an importance matrix (ggml's
// quantize_iq4_nl / quantize_iq4_xs), and ggml's dequantizers, operation for
// operation. Both search, per 32 elements, the scale that best fits the 16
// levels kIq4nlValues (weights x^2, 15 candidates).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "kernels/quant_rows.h"
#include "kernels/quant_search.h"

namespace strata::kernels::internal {
namespace {

constexpr int kBlock = 32;
constexpr int kTries = 7;  // candidate scales (values[0] + t) / max for |t| <= kTries

int Level(float v) { return BestIndexInt8(16, kIq4nlValues, v); }

// The least-squares scale of x[32] over the levels (weights x^2), searched
// over 2 * kTries + 1 starting scales; 0 for a block below ggml's
// GROUP_MAX_EPS. L: the levels of the first guess (what the single-block
// format stores if no requantization follows).
float BestScale(const float* x, uint8_t* L) {
  float amax = 0, max = 0;
  for (int j = 0; j < kBlock; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax < 1e-15f) return 0;
  const float v0 = static_cast<float>(kIq4nlValues[0]);
  float d = -max / v0;
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < kBlock; ++j) {
    const int l = Level(id * x[j]);
    L[j] = static_cast<uint8_t>(l);
    const float q = kIq4nlValues[l];
    const float w = x[j] * x[j];
    sumqx += w * q * x[j];
    sumq2 += w * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int t = -kTries; t <= kTries; ++t) {
    id = (static_cast<float>(t) + v0) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < kBlock; ++j) {
      const float q = kIq4nlValues[Level(id * x[j])];
      const float w = x[j] * x[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Element j < 16 of a 32-block in the low nibble of byte j, element j + 16 in the high one.
void PackLevels(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(L[j] | (L[16 + j] << 4));
}

}  // namespace

void QuantizeIQ4_NL(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockIQ4_NL*>(vy);
  for (int64_t b = 0; b < n / kBlock; ++b, x += kBlock) {
    uint8_t L[kBlock];
    const float d = BestScale(x, L);
    y[b].d = F32ToFp16(d);
    const float id = d != 0 ? 1 / d : 0;
    for (int j = 0; j < kBlock; ++j) L[j] = static_cast<uint8_t>(Level(id * x[j]));
    PackLevels(L, y[b].qs);
  }
}

void QuantizeIQ4_XS(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockIQ4_XS*>(vy);
  constexpr int kSub = kQK_K / kBlock;
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    uint8_t L[kQK_K];
    float scales[kSub];
    float max_scale = 0, amax_scale = 0;
    for (int s = 0; s < kSub; ++s) {
      scales[s] = BestScale(x + kBlock * s, L + kBlock * s);
      const float abs_d = std::fabs(scales[s]);
      if (abs_d > amax_scale) {
        amax_scale = abs_d;
        max_scale = scales[s];
      }
    }
    // The 8 scales as 6-bit multiples of d = -max_scale / 32, each
    // sub-block requantized with its rounded scale.
    const float d = -max_scale / 32;
    y[b].d = F32ToFp16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    y[b].scales_h = 0;
    std::memset(y[b].scales_l, 0, sizeof y[b].scales_l);
    for (int s = 0; s < kSub; ++s) {
      const int l = std::clamp(NearestInt(id * scales[s]), -32, 31);
      const float dl = d * static_cast<float>(l);
      const float idl = dl != 0 ? 1 / dl : 0.f;
      for (int j = 0; j < kBlock; ++j) L[kBlock * s + j] = static_cast<uint8_t>(Level(idl * x[kBlock * s + j]));
      const int biased = l + 32;
      y[b].scales_l[s / 2] |= static_cast<uint8_t>((biased & 0xF) << (4 * (s % 2)));
      y[b].scales_h |= static_cast<uint16_t>((biased >> 4) << (2 * s));
    }
    for (int s = 0; s < kSub; ++s) PackLevels(L + kBlock * s, y[b].qs + 16 * s);
  }
}

void DequantizeIQ4_NL(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_NL*>(vx);
  for (int64_t b = 0; b < n / kBlock; ++b, y += kBlock) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * static_cast<float>(kIq4nlValues[x[b].qs[j] & 0xF]);
      y[j + 16] = d * static_cast<float>(kIq4nlValues[x[b].qs[j] >> 4]);
    }
  }
}

void DecodeIQ4_XS(const void* block, SuperBlockCodes* c) {
  const auto& x = *static_cast<const BlockIQ4_XS*>(block);
  *c = SuperBlockCodes{kBlock, false, Fp16ToF32(x.d), 0.0f, {}, {}, {}};
  for (int s = 0; s < kQK_K / kBlock; ++s) {
    const int ls = ((x.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((x.scales_h >> (2 * s)) & 3) << 4);
    c->scale[s] = static_cast<int16_t>(ls - 32);
    const uint8_t* qs = x.qs + 16 * s;
    for (int j = 0; j < 16; ++j) {
      c->q[kBlock * s + j] = kIq4nlValues[qs[j] & 0xF];
      c->q[kBlock * s + j + 16] = kIq4nlValues[qs[j] >> 4];
    }
  }
}

void DequantizeIQ4_XS(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_XS*>(vx);
  SuperBlockCodes c;
  for (int64_t b = 0; b < n / kQK_K; ++b, y += kQK_K) {
    DecodeIQ4_XS(&x[b], &c);
    DequantizeCodes(c, y);
  }
}

}  // namespace strata::kernels::internal
