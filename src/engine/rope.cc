#include "engine/rope.h"

#include <cmath>

#include "kernels/kernels.h"

namespace strata {

const Tensor& RopeFactorsFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq) {
  if (w.rope_freqs.data != nullptr) return w.rope_freqs;
  return n_ctx_seq > hp.n_ctx_orig ? w.rope_factors_long : w.rope_factors_short;
}

RopeSpec RopeSpecFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq, bool swa) {
  RopeSpec s;
  s.n_rot = hp.n_rot;
  s.freq_base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
  s.freq_scale = swa ? hp.rope_freq_scale_swa : hp.rope_freq_scale;
  s.attn_factor = hp.rope_attn_factor;
  s.factors = static_cast<const float*>(RopeFactorsFor(hp, w, n_ctx_seq).data);
  return s;
}

void RopeAnglesAt(const RopeSpec& spec, int pos, float* cos_out, float* sin_out) {
  const int half = spec.n_rot / 2;
  if (spec.factors == nullptr) {
    kernels::RopeAngles(spec.n_rot, pos, spec.freq_base, spec.freq_scale, cos_out, sin_out);
  } else {
    for (int i = 0; i < half; ++i) {
      const float freq = 1.0f / std::pow(spec.freq_base, static_cast<float>(2 * i) / static_cast<float>(spec.n_rot));
      const float theta = static_cast<float>(pos) * spec.freq_scale * freq / spec.factors[i];
      cos_out[i] = std::cos(theta);
      sin_out[i] = std::sin(theta);
    }
  }
  if (spec.attn_factor != 1.0f) {
    for (int i = 0; i < half; ++i) {
      cos_out[i] *= spec.attn_factor;
      sin_out[i] *= spec.attn_factor;
    }
  }
}

}  // namespace strata
