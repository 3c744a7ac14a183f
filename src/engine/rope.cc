#include "engine/rope.h"

#include <cmath>

#include "kernels/kernels.h"

namespace strata {

void RopeAnglesAt(const HParams& hp, const Tensor& factors, int pos, float* cos_out, float* sin_out) {
  if (factors.data == nullptr)
    return kernels::RopeAngles(hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, cos_out, sin_out);
  const float* ff = static_cast<const float*>(factors.data);
  for (int i = 0; i < hp.n_rot / 2; ++i) {
    const float freq = 1.0f / std::pow(hp.rope_freq_base, static_cast<float>(2 * i) / static_cast<float>(hp.n_rot));
    const float theta = static_cast<float>(pos) * hp.rope_freq_scale * freq / ff[i];
    cos_out[i] = std::cos(theta);
    sin_out[i] = std::sin(theta);
  }
}

}  // namespace strata
