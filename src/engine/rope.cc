#include "engine/rope.h"

#include <algorithm>
#include <cmath>

#include "kernels/kernels.h"

namespace strata {

const Tensor& RopeFactorsFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq) {
  if (w.rope_freqs.data != nullptr) return w.rope_freqs;
  return n_ctx_seq > hp.n_ctx_orig ? w.rope_factors_long : w.rope_factors_short;
}

namespace {

// The pair index at which YaRN's ramp reaches `rotations` full turns over an
// original context of n_ctx_orig positions.
float YarnCorrDim(int n_rot, int n_ctx_orig, float rotations, float base) {
  return static_cast<float>(n_rot) *
         std::log(static_cast<float>(n_ctx_orig) / (rotations * 2.0f * static_cast<float>(M_PI))) /
         (2.0f * std::log(base));
}

// 1 for pairs below low (extrapolate), 0 above high (interpolate), linear between.
float YarnRamp(float low, float high, int pair) {
  const float y = (static_cast<float>(pair) - low) / std::max(0.001f, high - low);
  return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

RopeSpec RopeSpecFor(const HParams& hp, const ModelWeights& w, int32_t n_ctx_seq, bool swa) {
  RopeSpec s;
  s.n_rot = hp.n_rot;
  s.freq_base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
  s.freq_scale = swa ? hp.rope_freq_scale_swa : hp.rope_freq_scale;
  s.attn_factor = hp.rope_attn_factor;
  s.factors = static_cast<const float*>(RopeFactorsFor(hp, w, n_ctx_seq).data);
  if (hp.rope_yarn) {
    // llama.cpp's attention factor for YaRN, from the model's (not the
    // layer's) scale: its magnitude correction 0.1 ln(factor) + 1, cancelled by
    // the one RopeAnglesAt applies per layer.
    constexpr float kBetaFast = 32.0f, kBetaSlow = 1.0f;
    const float factor = 1.0f / hp.rope_freq_scale;
    const float mscale = factor <= 1.0f ? 1.0f : 0.1f * std::log(factor) + 1.0f;
    s.attn_factor = mscale * (1.0f / (1.0f + 0.1f * std::log(factor))) * hp.rope_attn_factor;
    s.ext_factor = 1.0f;
    s.corr_dims[0] = std::max(0.0f, std::floor(YarnCorrDim(s.n_rot, hp.n_ctx_orig, kBetaFast, s.freq_base)));
    s.corr_dims[1] = std::min(static_cast<float>(s.n_rot - 1),
                              std::ceil(YarnCorrDim(s.n_rot, hp.n_ctx_orig, kBetaSlow, s.freq_base)));
  }
  return s;
}

void RopeAnglesAt(const RopeSpec& spec, int pos, float* cos_out, float* sin_out) {
  const int half = spec.n_rot / 2;
  if (spec.ext_factor != 0.0f) {
    const float mscale = spec.attn_factor * (1.0f + 0.1f * std::log(1.0f / spec.freq_scale));
    for (int i = 0; i < half; ++i) {
      const float freq = 1.0f / std::pow(spec.freq_base, static_cast<float>(2 * i) / static_cast<float>(spec.n_rot));
      const float extrap = static_cast<float>(pos) * freq / (spec.factors != nullptr ? spec.factors[i] : 1.0f);
      const float interp = spec.freq_scale * extrap;
      const float mix = YarnRamp(spec.corr_dims[0], spec.corr_dims[1], i) * spec.ext_factor;
      const float theta = interp * (1.0f - mix) + extrap * mix;
      cos_out[i] = std::cos(theta) * mscale;
      sin_out[i] = std::sin(theta) * mscale;
    }
    return;
  }
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
