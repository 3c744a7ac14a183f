// QuantizeRow / DequantizeRow through the type traits table, and the float
// row conversions (F16 with F16C where the CPU has it, bit-identical to the
// scalar reference). The block formats' converters (quant_*.cc) follow
// llama.cpp's reference quantizers exactly, so files written by
// `strata quantize` hold the blocks llama-quantize writes.
#include <cassert>
#include <cstring>

#include "core/fp16.h"
#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"
#include "kernels/quant_rows.h"
#include "kernels/type_traits.h"

namespace strata::kernels {
namespace internal {

void QuantizeF32(const float* x, void* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }

void DequantizeF32(const void* x, float* y, int64_t n) { std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float)); }

void QuantizeF16(const float* x, void* y, int64_t n) {
  auto* h = static_cast<uint16_t*>(y);
  if (ClampToAvailable(Path::kAvx2) == Path::kAvx2) return F32ToF16RowAvx2(x, h, n);
  for (int64_t i = 0; i < n; ++i) h[i] = F32ToFp16(x[i]);
}

void DequantizeF16(const void* x, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(x);
  if (ClampToAvailable(Path::kAvx2) == Path::kAvx2) return F16ToF32RowAvx2(h, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] = Fp16ToF32(h[i]);
}

void QuantizeBF16(const float* x, void* y, int64_t n) {
  auto* h = static_cast<uint16_t*>(y);
  for (int64_t i = 0; i < n; ++i) h[i] = F32ToBf16(x[i]);
}

void DequantizeBF16(const void* x, float* y, int64_t n) {
  const auto* h = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] = Bf16ToF32(h[i]);
}

}  // namespace internal

void QuantizeRow(DType t, const float* src, void* dst, int64_t n) {
  assert(n % Info(t).block_size == 0);
  internal::Traits(t).from_float(src, dst, n);
}

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  assert(n % Info(t).block_size == 0);
  internal::Traits(t).to_float(src, dst, n);
}

}  // namespace strata::kernels
