#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <unordered_set>

namespace strata {

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

bool Sampler::Accept(int32_t token) {
  if (grammar_ != nullptr && !grammar_->Accept(token)) return false;
  if (params_.repeat_last_n <= 0) return true;
  history_.push_back(token);
  while (history_.size() > static_cast<size_t>(params_.repeat_last_n)) history_.pop_front();
  return true;
}

void Sampler::set_history(const std::vector<int32_t>& h) {
  history_.clear();
  for (int32_t t : h) {
    history_.push_back(t);
    if (history_.size() > static_cast<size_t>(std::max(params_.repeat_last_n, 0))) history_.pop_front();
  }
}

// llama.cpp's rule: a positive logit is divided by the penalty, a negative one multiplied.
void Sampler::ApplyPenalty(std::vector<Candidate>& c) const {
  if (params_.repeat_penalty == 1.0f || history_.empty()) return;
  std::unordered_set<int32_t> seen(history_.begin(), history_.end());
  for (Candidate& x : c) {
    if (seen.count(x.id) == 0) continue;
    x.logit = x.logit > 0 ? x.logit / params_.repeat_penalty : x.logit * params_.repeat_penalty;
  }
}

// REQUIRES: c sorted by logit descending, non-empty.
void Sampler::SoftmaxSorted(std::vector<Candidate>& c, float temperature) {
  const float max = c.front().logit;
  double sum = 0;
  for (Candidate& x : c) {
    x.p = std::exp((x.logit - max) / temperature);
    sum += x.p;
  }
  for (Candidate& x : c) x.p = static_cast<float>(x.p / sum);
}

int32_t Sampler::Sample(const float* logits, int32_t n_vocab) {
  if (grammar_ != nullptr) {
    // The allowed tokens only, in id order (so greedy ties still go to the lowest id).
    const std::span<const uint64_t> allowed = grammar_->AllowedTokens();
    if (grammar_->overflowed()) return -1;
    cand_.clear();
    for (size_t w = 0; w < allowed.size(); ++w) {
      for (uint64_t bits = allowed[w]; bits != 0; bits &= bits - 1) {
        const int32_t id = static_cast<int32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
        if (id < n_vocab) cand_.push_back({id, logits[id], 0.0f});
      }
    }
    if (cand_.empty()) return -1;
  } else {
    cand_.resize(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) cand_[i] = {i, logits[i], 0.0f};
  }
  ApplyPenalty(cand_);

  if (params_.temperature <= 0.0f) {
    const Candidate* best = &cand_[0];
    for (const Candidate& x : cand_)
      if (x.logit > best->logit) best = &x;
    return best->id;
  }

  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  size_t k = cand_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < k) k = static_cast<size_t>(params_.top_k);
  std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), by_logit);
  cand_.resize(k);

  if (params_.top_p < 1.0f) {
    SoftmaxSorted(cand_, 1.0f);
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += cand_[i].p;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    cand_.resize(keep);
  }
  if (params_.min_p > 0.0f) {
    // Keep tokens whose probability is at least min_p times the top one's.
    const float threshold = cand_.front().logit + std::log(params_.min_p);
    size_t keep = 1;
    while (keep < cand_.size() && cand_[keep].logit >= threshold) ++keep;
    cand_.resize(keep);
  }

  SoftmaxSorted(cand_, params_.temperature);
  const float r = rng_.NextFloat();
  float cum = 0;
  for (const Candidate& x : cand_) {
    cum += x.p;
    if (r < cum) return x.id;
  }
  return cand_.back().id;
}

}  // namespace strata
