// Scalar dot products of one quantized weight row with one quantized
// activation row: the reference that defines MatMul for quantized weights
// (kernels/matmul.cc) and that every SIMD path is tested against. Internal to
// src/kernels (reached through the type traits table).
//
// As in llama.cpp (ggml-cpu), activations are quantized per row to the
// weight type's partner format (TypeTraits::vec_dot_type) and each block's
// products are summed exactly in integers; per block (32 elements) or
// super-block (256), in row order:
//   Q8_0, Q4_0, Q5_0, IQ4_NL  x Q8_0:  sum += (d_w * d_x) * isum
//   Q4_1, Q5_1                x Q8_1:  sum += (d_w * d_x) * isum + m_w * s_x
//   Q2_K, Q4_K, Q5_K          x Q8_K:  sum += (d_w * d_x) * isum - (dmin_w * d_x) * msum
//   Q3_K, Q6_K, IQ4_XS        x Q8_K:  sum += (d_w * d_x) * isum
// where isum = sum over sub-blocks of (integer scale * integer dot of the
// codes) and msum = sum over sub-blocks of (integer min * sum of the
// activation codes), each product in float as written, sum starting at 0.
//
// Signature: w: one row of n elements in the weight type, x: the same n
// elements in vec_dot_type. REQUIRES n % block size == 0.
// Thread-safety: reentrant.
#pragma once

#include <cstdint>

namespace strata::kernels::internal {

float VecDotQ8_0(const void* w, const void* x, int64_t n);
float VecDotQ4_0(const void* w, const void* x, int64_t n);
float VecDotQ5_0(const void* w, const void* x, int64_t n);
float VecDotIQ4_NL(const void* w, const void* x, int64_t n);
float VecDotQ4_1(const void* w, const void* x, int64_t n);
float VecDotQ5_1(const void* w, const void* x, int64_t n);
float VecDotQ2_K(const void* w, const void* x, int64_t n);
float VecDotQ3_K(const void* w, const void* x, int64_t n);
float VecDotQ4_K(const void* w, const void* x, int64_t n);
float VecDotQ5_K(const void* w, const void* x, int64_t n);
float VecDotQ6_K(const void* w, const void* x, int64_t n);
float VecDotIQ4_XS(const void* w, const void* x, int64_t n);

}  // namespace strata::kernels::internal
