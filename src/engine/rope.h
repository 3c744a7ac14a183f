// Rotary position embedding angles of a model: the cos/sin of every rotated
// pair at a position, with the model's frequency base, linear scaling and
// per-pair frequency factors (Llama 3's rope_freqs.weight). The rotation
// itself is kernels::RopeHeads.
//
// Thread-safety: pure function.
#pragma once

#include "core/tensor.h"
#include "model/hparams.h"

namespace strata {

// cos_out, sin_out: F32 [hp.n_rot / 2] for position pos:
//   θ_i = pos · freq_scale · base^(-2i / n_rot) / factors[i]
// factors: F32 [n_rot / 2], or data == nullptr (all 1: exactly
// kernels::RopeAngles, as llama2.c computes the angles).
void RopeAnglesAt(const HParams& hp, const Tensor& factors, int pos, float* cos_out, float* sin_out);

}  // namespace strata
