// Entry points of the instruction-set-specific kernel files (*_avx2.cc,
// *_avx512.cc). Internal to src/kernels: callers go through kernels.h, which
// checks CPUID before calling any of these.
//
// Each function has the contract of its kernels.h namesake; results match the
// scalar reference up to floating-point summation order.
// Thread-safety: as kernels.h.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "kernels/type_traits.h"

namespace strata::kernels::internal {

// The most capable path this CPU runs that is not above `requested` (ignores
// the STRATA_KERNEL_PATH cap, which only limits BestPath). Cached; cheap.
Path ClampToAvailable(Path requested);

// MatMul kernels per path and weight type, as the type traits table lists
// them (kernels/type_traits.cc).
extern const MatMulKernels kAvx2F32, kAvx2F16, kAvx2BF16, kAvx2Q8_0, kAvx2Q4_0, kAvx2Q4_1, kAvx2Q5_0, kAvx2Q5_1,
    kAvx2IQ4_NL, kAvx2Q2_K, kAvx2Q3_K, kAvx2Q4_K, kAvx2Q5_K, kAvx2Q6_K, kAvx2IQ4_XS;
extern const MatMulKernels kAvx512F32, kAvx512F16, kAvx512BF16, kAvx512Q8_0, kAvx512Q4_0, kAvx512Q4_1, kAvx512Q5_0,
    kAvx512Q5_1, kAvx512IQ4_NL, kAvx512Q2_K, kAvx512Q3_K, kAvx512Q4_K, kAvx512Q5_K, kAvx512Q6_K, kAvx512IQ4_XS;

void RmsNormAvx2(const float* x, const float* weight, float* out, int64_t n, float eps);
void RmsNormAvx512(const float* x, const float* weight, float* out, int64_t n, float eps);
void SoftmaxAvx2(float* x, int64_t n);
void SoftmaxAvx512(float* x, int64_t n);
void SwiGLUAvx2(const float* gate, const float* up, float* out, int64_t n);
void SwiGLUAvx512(const float* gate, const float* up, float* out, int64_t n);
void GeGLUAvx2(const float* gate, const float* up, float* out, int64_t n);
void GeGLUAvx512(const float* gate, const float* up, float* out, int64_t n);
// QuantizeRow / DequantizeRow for F16 with F16C: bit-identical to the scalar
// conversions (round to nearest even) except that a NaN's payload may differ.
void F32ToF16RowAvx2(const float* x, uint16_t* out, int64_t n);
void F16ToF32RowAvx2(const uint16_t* x, float* out, int64_t n);
float DotF32Avx2(const float* a, const float* b, int64_t n);
float DotF32Avx512(const float* a, const float* b, int64_t n);
void AxpyF32Avx2(float a, const float* x, float* y, int64_t n);
void AxpyF32Avx512(float a, const float* x, float* y, int64_t n);
void AxpyRowsF32Avx2(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n);
void AxpyRowsF32Avx512(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n);

// AttendRows without the scratch row (rows are widened in registers).
// REQUIRES D <= kMaxHeadDimAvx512.
void AttendRowsAvx512(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                      int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc);
inline constexpr int32_t kMaxHeadDimAvx512 = 256;

}  // namespace strata::kernels::internal
