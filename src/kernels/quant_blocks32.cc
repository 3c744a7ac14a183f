// Row (de)quantizers of the 32-element block formats: Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0 and the Q8_1 activations; ggml's reference quantizers (the
// blocks llama-quantize writes without an importance matrix) and
// dequantizers, operation for operation.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "kernels/quant_rows.h"

namespace strata::kernels::internal {
namespace {

constexpr int kHalf = kQK32 / 2;

// The element of largest magnitude (first one on ties), with its sign.
float SignedAbsMax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK32; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void MinMax(const float* x, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < kQK32; ++j) {
    if (x[j] < *min) *min = x[j];
    if (x[j] > *max) *max = x[j];
  }
}

// Bit 4 of each of the 32 codes q (elements j and j + 16 from byte j's pair).
uint32_t HighBits(const uint8_t* q) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK32; ++j) qh |= static_cast<uint32_t>((q[j] & 0x10u) >> 4) << j;
  return qh;
}

void PackNibbles(const uint8_t* q, uint8_t* qs) {
  for (int j = 0; j < kHalf; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + kHalf] & 0x0F) << 4));
}

// Code j (0..31) of a 5-bit block: its nibble plus bit j of qh as bit 4.
int Code5(const uint8_t* qs, uint32_t qh, int j) {
  const int nibble = j < kHalf ? qs[j] & 0x0F : qs[j - kHalf] >> 4;
  return nibble | static_cast<int>(((qh >> j) & 1u) << 4);
}

uint32_t LoadQh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, sizeof v);
  return v;
}

}  // namespace

void QuantizeQ4_0(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ4_0*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    // The signed element of largest magnitude maps to -8, using the full range.
    const float d = SignedAbsMax(x) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    uint8_t q[kQK32];
    for (int j = 0; j < kQK32; ++j) q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f))));
    PackNibbles(q, y[b].qs);
  }
}

void QuantizeQ4_1(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ4_1*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    float min, max;
    MinMax(x, &min, &max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    y[b].m = F32ToFp16(min);
    uint8_t q[kQK32];
    for (int j = 0; j < kQK32; ++j)
      q[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f))));
    PackNibbles(q, y[b].qs);
  }
}

void QuantizeQ5_0(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ5_0*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    const float d = SignedAbsMax(x) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    uint8_t q[kQK32];
    for (int j = 0; j < kQK32; ++j) q[j] = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f))));
    PackNibbles(q, y[b].qs);
    const uint32_t qh = HighBits(q);
    std::memcpy(y[b].qh, &qh, sizeof qh);
  }
}

void QuantizeQ5_1(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ5_1*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    float min, max;
    MinMax(x, &min, &max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    y[b].m = F32ToFp16(min);
    uint8_t q[kQK32];
    for (int j = 0; j < kQK32; ++j) q[j] = static_cast<uint8_t>(static_cast<int>((x[j] - min) * id + 0.5f));
    PackNibbles(q, y[b].qs);
    const uint32_t qh = HighBits(q);
    std::memcpy(y[b].qh, &qh, sizeof qh);
  }
}

void QuantizeQ8_0(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    float amax = 0.0f;
    for (int j = 0; j < kQK32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    for (int j = 0; j < kQK32; ++j) y[b].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void QuantizeQ8_1(const float* x, void* vy, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(vy);
  for (int64_t b = 0; b < n / kQK32; ++b, x += kQK32) {
    float amax = 0.0f;
    for (int j = 0; j < kQK32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    int sum = 0;
    for (int j = 0; j < kQK32; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = F32ToFp16(static_cast<float>(sum) * d);
  }
}

void DequantizeQ4_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>((x[b].qs[j] & 0xF) - 8) * d;
      y[j + kHalf] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantizeQ4_1(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d), m = Fp16ToF32(x[b].m);
    for (int j = 0; j < kHalf; ++j) {
      y[j] = static_cast<float>(x[b].qs[j] & 0xF) * d + m;
      y[j + kHalf] = static_cast<float>(x[b].qs[j] >> 4) * d + m;
    }
  }
}

void DequantizeQ5_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d);
    const uint32_t qh = LoadQh(x[b].qh);
    for (int j = 0; j < kQK32; ++j) y[j] = static_cast<float>(Code5(x[b].qs, qh, j) - 16) * d;
  }
}

void DequantizeQ5_1(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d), m = Fp16ToF32(x[b].m);
    const uint32_t qh = LoadQh(x[b].qh);
    for (int j = 0; j < kQK32; ++j) y[j] = static_cast<float>(Code5(x[b].qs, qh, j)) * d + m;
  }
}

void DequantizeQ8_0(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < kQK32; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

void DequantizeQ8_1(const void* vx, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  for (int64_t b = 0; b < n / kQK32; ++b, y += kQK32) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < kQK32; ++j) y[j] = static_cast<float>(x[b].qs[j]) * d;
  }
}

}  // namespace strata::kernels::internal
