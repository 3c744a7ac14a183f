// The kernels' traits table (like ggml-cpu's type_traits_cpu): for each
// element type strata computes with, how a row converts to and from F32 and
// how MatMul multiplies it. One entry per type; code elsewhere looks types up
// here instead of switching on them. Internal to src/kernels.
//
// Thread-safety: the table is immutable.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace strata::kernels::internal {

using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* src, void* dst, int64_t n);
using VecDotFn = float (*)(const void* w_row, const void* x_row, int64_t n);

struct TypeTraits {
  DType type;
  ToFloatFn to_float;      // DequantizeRow
  FromFloatFn from_float;  // QuantizeRow (the reference quantizer)
  // Quantized weights: MatMul quantizes each activation row to vec_dot_type
  // and multiplies with vec_dot (kernels/vec_dot.h). Float weights (F32, F16,
  // BF16) have no vec_dot: MatMul widens them to F32.
  DType vec_dot_type;
  VecDotFn vec_dot;
  // The most capable path with kernels for this weight type; MatMul on a
  // more capable path runs this one (the scalar reference for types without
  // SIMD kernels).
  Path kernel_path;
};

// nullptr for a type without row conversions (Info(t).supported types, and
// the activation formats Q8_1 and Q8_K, have them).
const TypeTraits* FindTraits(DType t);
// REQUIRES: FindTraits(t) != nullptr.
const TypeTraits& Traits(DType t);

}  // namespace strata::kernels::internal
