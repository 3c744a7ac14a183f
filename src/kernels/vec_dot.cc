#include "kernels/vec_dot.h"

#include <cstring>

#include "core/fp16.h"
#include "core/quant_blocks.h"
#include "kernels/quant_rows.h"

namespace strata::kernels::internal {
namespace {

constexpr int kHalf = kQK32 / 2;

// Codes of a 32-element block in element order.
void CodesQ8_0(const BlockQ8_0& b, int* q) {
  for (int j = 0; j < kQK32; ++j) q[j] = b.qs[j];
}
void CodesQ4_0(const BlockQ4_0& b, int* q) {
  for (int j = 0; j < kHalf; ++j) {
    q[j] = (b.qs[j] & 0xF) - 8;
    q[j + kHalf] = (b.qs[j] >> 4) - 8;
  }
}
void CodesQ4_1(const BlockQ4_1& b, int* q) {
  for (int j = 0; j < kHalf; ++j) {
    q[j] = b.qs[j] & 0xF;
    q[j + kHalf] = b.qs[j] >> 4;
  }
}
// The 5-bit codes: nibbles plus bit j of qh as bit 4, minus offset.
void Codes5(const uint8_t* qs, const uint8_t* qh_bytes, int offset, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, sizeof qh);
  for (int j = 0; j < kHalf; ++j) {
    q[j] = ((qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4)) - offset;
    q[j + kHalf] = ((qs[j] >> 4) | static_cast<int>(((qh >> (j + kHalf)) & 1u) << 4)) - offset;
  }
}
void CodesQ5_0(const BlockQ5_0& b, int* q) { Codes5(b.qs, b.qh, 16, q); }
void CodesQ5_1(const BlockQ5_1& b, int* q) { Codes5(b.qs, b.qh, 0, q); }
void CodesIQ4_NL(const BlockIQ4_NL& b, int* q) {
  for (int j = 0; j < kHalf; ++j) {
    q[j] = kIq4nlValues[b.qs[j] & 0xF];
    q[j + kHalf] = kIq4nlValues[b.qs[j] >> 4];
  }
}

template <class Block, class Act>
int IntDot(const Block& w, const Act& x, void (*codes)(const Block&, int*)) {
  int q[kQK32];
  codes(w, q);
  int sum = 0;
  for (int j = 0; j < kQK32; ++j) sum += q[j] * x.qs[j];
  return sum;
}

// Weights with a scale only, against Q8_0 activations.
template <class Block>
float DotScaled(const void* vw, const void* vx, int64_t n, void (*codes)(const Block&, int*)) {
  const auto* w = static_cast<const Block*>(vw);
  const auto* x = static_cast<const BlockQ8_0*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK32; ++b)
    sum += static_cast<float>(IntDot(w[b], x[b], codes)) * (Fp16ToF32(w[b].d) * Fp16ToF32(x[b].d));
  return sum;
}

// Weights with a scale and a minimum, against Q8_1 activations (s = d * sum q).
template <class Block>
float DotScaledMin(const void* vw, const void* vx, int64_t n, void (*codes)(const Block&, int*)) {
  const auto* w = static_cast<const Block*>(vw);
  const auto* x = static_cast<const BlockQ8_1*>(vx);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK32; ++b) {
    const float isum = static_cast<float>(IntDot(w[b], x[b], codes));
    sum += (Fp16ToF32(w[b].d) * Fp16ToF32(x[b].d)) * isum + Fp16ToF32(w[b].m) * Fp16ToF32(x[b].s);
  }
  return sum;
}

// Super-blocks against Q8_K activations.
template <class Block>
float DotSuperBlocks(const void* vw, const void* vx, int64_t n, void (*decode)(const void*, SuperBlockCodes*)) {
  const auto* w = static_cast<const Block*>(vw);
  const auto* x = static_cast<const BlockQ8_K*>(vx);
  SuperBlockCodes c;
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    decode(&w[b], &c);
    const int n_sub = kQK_K / c.sub_size;
    int isum = 0, msum = 0;
    for (int s = 0; s < n_sub; ++s) {
      const int8_t* q = c.q + s * c.sub_size;
      const int8_t* y = x[b].qs + s * c.sub_size;
      int dot = 0;
      for (int l = 0; l < c.sub_size; ++l) dot += q[l] * y[l];
      isum += c.scale[s] * dot;
      if (c.has_min) {
        int ysum = 0;
        for (int k = 0; k < c.sub_size / 16; ++k) ysum += x[b].bsums[s * c.sub_size / 16 + k];
        msum += c.min[s] * ysum;
      }
    }
    sum += (c.d * x[b].d) * static_cast<float>(isum);
    if (c.has_min) sum -= (c.dmin * x[b].d) * static_cast<float>(msum);
  }
  return sum;
}

}  // namespace

float VecDotQ8_0(const void* w, const void* x, int64_t n) { return DotScaled<BlockQ8_0>(w, x, n, CodesQ8_0); }
float VecDotQ4_0(const void* w, const void* x, int64_t n) { return DotScaled<BlockQ4_0>(w, x, n, CodesQ4_0); }
float VecDotQ5_0(const void* w, const void* x, int64_t n) { return DotScaled<BlockQ5_0>(w, x, n, CodesQ5_0); }
float VecDotIQ4_NL(const void* w, const void* x, int64_t n) { return DotScaled<BlockIQ4_NL>(w, x, n, CodesIQ4_NL); }
float VecDotQ4_1(const void* w, const void* x, int64_t n) { return DotScaledMin<BlockQ4_1>(w, x, n, CodesQ4_1); }
float VecDotQ5_1(const void* w, const void* x, int64_t n) { return DotScaledMin<BlockQ5_1>(w, x, n, CodesQ5_1); }
float VecDotQ2_K(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockQ2_K>(w, x, n, DecodeQ2_K); }
float VecDotQ3_K(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockQ3_K>(w, x, n, DecodeQ3_K); }
float VecDotQ4_K(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockQ4_K>(w, x, n, DecodeQ4_K); }
float VecDotQ5_K(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockQ5_K>(w, x, n, DecodeQ5_K); }
float VecDotQ6_K(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockQ6_K>(w, x, n, DecodeQ6_K); }
float VecDotIQ4_XS(const void* w, const void* x, int64_t n) { return DotSuperBlocks<BlockIQ4_XS>(w, x, n, DecodeIQ4_XS); }

}  // namespace strata::kernels::internal
