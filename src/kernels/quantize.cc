// Row conversions (F16 with F16C where the CPU has it, bit-identical to the
// scalar reference). Q8_0 and Q4_0 follow llama.cpp's
// quantize_row_q8_0_ref / quantize_row_q4_0_ref exactly, so files written by
// `strata quantize` are bit-identical to llama-quantize's for these types.
#include <cassert>
#include <cmath>
#include <cstring>
#include <algorithm>

#include "core/fp16.h"
#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"

namespace strata::kernels {
namespace {

void QuantizeQ8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[b].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void DequantizeQ8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK8_0; ++b, y += kQK8_0) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) y[j] = d * static_cast<float>(x[b].qs[j]);
  }
}

void QuantizeQ4_0(const float* x, BlockQ4_0* y, int64_t n) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t b = 0; b < n / kQK4_0; ++b, x += kQK4_0) {
    // The signed element of largest magnitude maps to -8, using the full range.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = F32ToFp16(d);
    for (int j = 0; j < kHalf; ++j) {
      const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f))));
      const uint8_t hi =
          static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kHalf] * id + 8.5f))));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void DequantizeQ4_0(const BlockQ4_0* x, float* y, int64_t n) {
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t b = 0; b < n / kQK4_0; ++b, y += kQK4_0) {
    const float d = Fp16ToF32(x[b].d);
    for (int j = 0; j < kHalf; ++j) {
      y[j] = d * static_cast<float>((x[b].qs[j] & 0xF) - 8);
      y[j + kHalf] = d * static_cast<float>((x[b].qs[j] >> 4) - 8);
    }
  }
}

}  // namespace

void QuantizeRow(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      if (internal::ClampToAvailable(Path::kAvx2) == Path::kAvx2) return internal::F32ToF16RowAvx2(src, h, n);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToFp16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBf16(src[i]);
      return;
    }
    case DType::kQ8_0:
      QuantizeQ8_0(src, static_cast<BlockQ8_0*>(dst), n);
      return;
    case DType::kQ4_0:
      QuantizeQ4_0(src, static_cast<BlockQ4_0*>(dst), n);
      return;
    default:
      assert(false && "QuantizeRow: unsupported type");
  }
}

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      if (internal::ClampToAvailable(Path::kAvx2) == Path::kAvx2) return internal::F16ToF32RowAvx2(h, dst, n);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToF32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(h[i]);
      return;
    }
    case DType::kQ8_0:
      DequantizeQ8_0(static_cast<const BlockQ8_0*>(src), dst, n);
      return;
    case DType::kQ4_0:
      DequantizeQ4_0(static_cast<const BlockQ4_0*>(src), dst, n);
      return;
    default:
      assert(false && "DequantizeRow: unsupported type");
  }
}

}  // namespace strata::kernels
