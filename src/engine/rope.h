// Rotary position embedding angles of a model: the cos/sin of every rotated
// pair at a position, with the layer's frequency base, linear scaling,
// per-pair frequency factors (Llama 3's rope_freqs.weight, Phi-3's LongRoPE
// factors) and attention factor. The rotation itself is kernels::RopeHeads.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace strata {

// How one layer rotates (ggml's rope with YaRN, which llama.cpp runs):
//   θe_i = pos · base^(-2i / n_rot) / factors[i]   (extrapolated)
//   θi_i = freq_scale · θe_i                       (interpolated)
//   θ_i  = θi_i · (1 - r_i) + θe_i · r_i,  r_i = ext_factor · ramp(i), ramp
//          falling from 1 to 0 over corr_dims (no YaRN: ext_factor 0, θ_i = θi_i)
// and cos θ_i, sin θ_i multiplied by attn_factor, and with YaRN also by
// 1 + 0.1 ln(1 / freq_scale).
struct RopeSpec {
  int32_t n_rot = 0;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  float attn_factor = 1.0f;
  const float* factors = nullptr;  // F32 [n_rot / 2], or null (all 1)
  float ext_factor = 0.0f;
  float corr_dims[2] = {0.0f, 0.0f};  // YaRN: pairs below corr_dims[0] extrapolate, above [1] interpolate
};

// The per-pair factors a model's layers use in a context of n_ctx_seq
// positions per sequence (llama.cpp's rule): rope_freqs if the file has it;
// else LongRoPE's long factors when n_ctx_seq > hp.n_ctx_orig, its short ones
// otherwise; data == nullptr when the file has none of them.
const Tensor& RopeFactorsFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq);

// The RoPE of the model's layers in a context of n_ctx_seq positions per
// sequence: of its sliding-window layers when swa (their own frequency base
// and scale: gemma2, gemma3), else of the others.
RopeSpec RopeSpecFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq, bool swa);

// cos_out, sin_out: F32 [spec.n_rot / 2] for position pos. With no factors,
// attn_factor 1 and no YaRN exactly kernels::RopeAngles (as llama2.c computes them).
void RopeAnglesAt(const RopeSpec& spec, int pos, float* cos_out, float* sin_out);

}  // namespace strata
