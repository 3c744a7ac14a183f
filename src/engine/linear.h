// Linear: the one seam every weight multiplication of the forward pass goes
// through — y = x · Wᵀ + b for a model/weights.h Linear. Adapters (LoRA) and
// tensor-parallel sharding plug in here, without touching the layer builders.
//
// Thread-safety: as kernels::MatMul (one call at a time per pool).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "model/weights.h"

namespace strata {

// One product: y = x · linear.wᵀ (+ linear.b), y: F32 [linear.w.rows(), n_tok].
struct LinearOut {
  const Linear* linear;
  float* y;
};

// Applies several Linears to the same x: F32 [n_in, n_tok] in one parallel
// pass (kernels::MatMulShared: x is quantized once); a single one runs as
// kernels::MatMul. Results equal MatMul's, plus the bias where there is one.
// REQUIRES: outs non-empty; every linear takes n_in inputs; no y aliases x;
// biases are F32.
void ApplyLinear(std::span<const LinearOut> outs, const float* x, int64_t n_tok, ThreadPool& pool);

}  // namespace strata
