#include "engine/spec_verifier.h"

#include <algorithm>

namespace strata {
namespace {

float ProbOf(std::span<const std::pair<int32_t, float>> dist, int32_t id) {
  for (const auto& [t, p] : dist)
    if (t == id) return p;
  return 0.0f;
}

}  // namespace

Verdict SpecVerifier::Verify(Sampler& sampler, const float* logits, int32_t n_vocab, const Draft& draft,
                             const std::function<bool(int32_t)>& is_eog) {
  const int32_t k = static_cast<int32_t>(draft.tokens.size());
  const bool deterministic = draft.q.empty();
  Verdict v;
  for (int32_t i = 0;; ++i) {
    p_ = sampler.Distribution(logits + static_cast<size_t>(i) * n_vocab, n_vocab);
    if (p_.empty()) {
      v.n_accepted = i;
      v.next = -1;
      return v;
    }
    if (i == k) {  // every draft kept: one more token from the model's own distribution
      v.n_accepted = k;
      v.next = Sampler::Draw(p_, sampler.NextUniform());
      return v;
    }
    const int32_t x = draft.tokens[i];
    const float px = ProbOf(p_, x);
    const float qx = deterministic ? 1.0f : ProbOf(draft.q[i], x);
    // p(x) >= q(x) accepts for sure (no uniform drawn); qx > 0 whenever x was drawn from q.
    const bool accept = px > 0.0f && (px >= qx || sampler.NextUniform() * qx < px);
    if (accept && is_eog(x)) {
      v.n_accepted = i;
      v.next = x;
      return v;
    }
    if (accept && sampler.Accept(x)) continue;
    // Rejected: the correction comes from norm(max(0, p - q)).
    residual_.clear();
    if (deterministic) {
      for (const auto& t : p_)
        if (t.first != x) residual_.push_back(t);
    } else {
      q_dense_.assign(static_cast<size_t>(n_vocab), 0.0f);
      for (const auto& [id, p] : draft.q[i])
        if (id >= 0 && id < n_vocab) q_dense_[id] = p;
      for (const auto& [id, p] : p_)
        if (p > q_dense_[id]) residual_.push_back({id, p - q_dense_[id]});
    }
    double sum = 0;
    for (const auto& t : residual_) sum += t.second;
    v.n_accepted = i;
    if (sum <= 0) {
      // p <= q everywhere (p = q up to rounding, where a rejection has
      // probability ~0): the model's own distribution is the limit.
      v.next = Sampler::Draw(p_, sampler.NextUniform());
    } else {
      for (auto& t : residual_) t.second = static_cast<float>(t.second / sum);
      v.next = Sampler::Draw(residual_, sampler.NextUniform());
    }
    return v;
  }
}

}  // namespace strata
