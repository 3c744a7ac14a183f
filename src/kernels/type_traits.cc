#include "kernels/type_traits.h"

#include <cassert>

#include "kernels/isa_kernels.h"
#include "kernels/quant_rows.h"
#include "kernels/vec_dot.h"

namespace strata::kernels::internal {
namespace {

// {type, to_float, from_float, vec_dot_type, vec_dot, avx2, avx512}
constexpr TypeTraits kTable[] = {
    {DType::kF32, DequantizeF32, QuantizeF32, DType::kF32, nullptr, &kAvx2F32, &kAvx512F32},
    {DType::kF16, DequantizeF16, QuantizeF16, DType::kF32, nullptr, &kAvx2F16, &kAvx512F16},
    {DType::kBF16, DequantizeBF16, QuantizeBF16, DType::kF32, nullptr, &kAvx2BF16, &kAvx512BF16},
    {DType::kQ8_0, DequantizeQ8_0, QuantizeQ8_0, DType::kQ8_0, VecDotQ8_0, &kAvx2Q8_0, &kAvx512Q8_0},
    {DType::kQ4_0, DequantizeQ4_0, QuantizeQ4_0, DType::kQ8_0, VecDotQ4_0, &kAvx2Q4_0, &kAvx512Q4_0},
    {DType::kQ4_1, DequantizeQ4_1, QuantizeQ4_1, DType::kQ8_1, VecDotQ4_1, &kAvx2Q4_1, &kAvx512Q4_1},
    {DType::kQ5_0, DequantizeQ5_0, QuantizeQ5_0, DType::kQ8_0, VecDotQ5_0, &kAvx2Q5_0, &kAvx512Q5_0},
    {DType::kQ5_1, DequantizeQ5_1, QuantizeQ5_1, DType::kQ8_1, VecDotQ5_1, &kAvx2Q5_1, &kAvx512Q5_1},
    {DType::kIQ4_NL, DequantizeIQ4_NL, QuantizeIQ4_NL, DType::kQ8_0, VecDotIQ4_NL, &kAvx2IQ4_NL, &kAvx512IQ4_NL},
    {DType::kQ2_K, DequantizeQ2_K, QuantizeQ2_K, DType::kQ8_K, VecDotQ2_K, &kAvx2Q2_K, &kAvx512Q2_K},
    {DType::kQ3_K, DequantizeQ3_K, QuantizeQ3_K, DType::kQ8_K, VecDotQ3_K, &kAvx2Q3_K, &kAvx512Q3_K},
    {DType::kQ4_K, DequantizeQ4_K, QuantizeQ4_K, DType::kQ8_K, VecDotQ4_K, &kAvx2Q4_K, &kAvx512Q4_K},
    {DType::kQ5_K, DequantizeQ5_K, QuantizeQ5_K, DType::kQ8_K, VecDotQ5_K, &kAvx2Q5_K, &kAvx512Q5_K},
    {DType::kQ6_K, DequantizeQ6_K, QuantizeQ6_K, DType::kQ8_K, VecDotQ6_K, &kAvx2Q6_K, &kAvx512Q6_K},
    {DType::kIQ4_XS, DequantizeIQ4_XS, QuantizeIQ4_XS, DType::kQ8_K, VecDotIQ4_XS, &kAvx2IQ4_XS, &kAvx512IQ4_XS},
    // Activation formats: row conversions only.
    {DType::kQ8_1, DequantizeQ8_1, QuantizeQ8_1, DType::kQ8_1, nullptr, nullptr, nullptr},
    {DType::kQ8_K, DequantizeQ8_K, QuantizeQ8_K, DType::kQ8_K, nullptr, nullptr, nullptr},
};

}  // namespace

const TypeTraits* FindTraits(DType t) {
  for (const TypeTraits& e : kTable)
    if (e.type == t) return &e;
  return nullptr;
}

const TypeTraits& Traits(DType t) {
  const TypeTraits* e = FindTraits(t);
  assert(e != nullptr && "no kernel traits for this type");
  return *e;
}

}  // namespace strata::kernels::internal
