// The kernels' traits table (like ggml-cpu's type_traits_cpu): for each
// element type strata computes with, how a row converts to and from F32 and
// how MatMul multiplies it. One entry per type; code elsewhere looks types up
// here instead of switching on them. Internal to src/kernels.
//
// Thread-safety: the table is immutable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace strata::kernels::internal {

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
using VecDotFn = float (*)(const void* w_row, const void* x_row, int64_t n);

// One instruction-set path's MatMul kernels for one weight type (defined in
// the path's *_avx2.cc / *_avx512.cc files, declared in isa_kernels.h).
// REQUIRES for every function: the CPU runs the path; every matrix has the
// entry's weight type and is in the row layout or the path's packed one.
struct MatMulKernels {
  // MatMulShared (kernels.h) for outputs of this weight type; a single output
  // is MatMul. REQUIRES: outs non-empty.
  void (*matmul)(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool);
  // The path's packed layout (TensorLayout::kPanels32): PackedMatrixBytes and
  // PackMatrix's copy. Both nullptr when the path reads the rows as they are.
  size_t (*packed_bytes)(const Tensor& w);
  void (*pack)(const Tensor& w, uint8_t* dst);
};

struct TypeTraits {
  DType type;
  ToFloatFn to_float;      // DequantizeRow
  FromFloatFn from_float;  // QuantizeRow (the reference quantizer)
  // Quantized weights: MatMul quantizes each activation row to vec_dot_type
  // and multiplies with vec_dot (kernels/vec_dot.h). Float weights (F32, F16,
  // BF16) have no vec_dot: MatMul widens them to F32.
  DType vec_dot_type;
  VecDotFn vec_dot;
  // SIMD kernels per path, nullptr where the path has none: MatMul then runs
  // the most capable less capable path that has them, down to the scalar
  // reference (vec_dot, or widening to F32). kAmx runs the AVX-512 kernels.
  const MatMulKernels* avx2;
  const MatMulKernels* avx512;
};

// nullptr for a type without row conversions (Info(t).supported types, and
// the activation formats Q8_1 and Q8_K, have them).
const TypeTraits* FindTraits(DType t);
// REQUIRES: FindTraits(t) != nullptr.
const TypeTraits& Traits(DType t);

}  // namespace strata::kernels::internal
