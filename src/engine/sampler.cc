#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <unordered_set>

namespace strata {

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

void Sampler::set_banned(std::vector<int32_t> tokens) {
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  banned_ = std::move(tokens);
}

void Sampler::Remember(int32_t token) {
  if (params_.repeat_last_n <= 0) return;
  history_.push_back(token);
  while (history_.size() > static_cast<size_t>(params_.repeat_last_n)) history_.pop_front();
}

bool Sampler::Accept(int32_t token) {
  if (grammar_ != nullptr && !grammar_->Accept(token)) return false;
  Remember(token);
  ++counts_[token];
  return true;
}

void Sampler::AcceptPrompt(int32_t token) { Remember(token); }

SamplerState Sampler::state() const {
  SamplerState st;
  st.rng = rng_.state();
  st.history.assign(history_.begin(), history_.end());
  st.counts.assign(counts_.begin(), counts_.end());
  return st;
}

void Sampler::set_state(const SamplerState& st) {
  rng_.set_state(st.rng);
  history_.clear();
  for (int32_t t : st.history) Remember(t);
  counts_.clear();
  for (const auto& [token, n] : st.counts) counts_[token] = n;
}

void Sampler::Adjust(std::vector<Candidate>& c) const {
  // c is sorted by id: the full vocabulary (c[id].id == id) or the tokens a grammar allows.
  auto find = [&c](int32_t id) -> Candidate* {
    if (id >= 0 && static_cast<size_t>(id) < c.size() && c[static_cast<size_t>(id)].id == id) return &c[static_cast<size_t>(id)];
    const auto it = std::lower_bound(c.begin(), c.end(), id, [](const Candidate& x, int32_t v) { return x.id < v; });
    return it != c.end() && it->id == id ? &*it : nullptr;
  };
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  bool dropped = false;  // some candidate is at -infinity now
  for (const LogitBias& b : params_.logit_bias) {
    if (Candidate* x = find(b.token)) {
      x->logit += b.bias;
      dropped |= x->logit == kNegInf;
    }
  }
  // llama.cpp's rule: a positive logit is divided by the penalty, a negative one multiplied.
  if (params_.repeat_penalty != 1.0f && !history_.empty()) {
    const std::unordered_set<int32_t> seen(history_.begin(), history_.end());
    for (int32_t id : seen) {
      if (Candidate* x = find(id))
        x->logit = x->logit > 0 ? x->logit / params_.repeat_penalty : x->logit * params_.repeat_penalty;
    }
  }
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) {
    for (const auto& [id, n] : counts_) {
      if (Candidate* x = find(id))
        x->logit -= static_cast<float>(n) * params_.frequency_penalty + params_.presence_penalty;
    }
  }
  for (int32_t id : banned_) {
    if (Candidate* x = find(id)) {
      x->logit = kNegInf;
      dropped = true;
    }
  }
  if (dropped) c.erase(std::remove_if(c.begin(), c.end(), [](const Candidate& x) { return x.logit == kNegInf; }), c.end());
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

bool Sampler::ByLogit(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

bool Sampler::BestAllowed(const float* logits, int32_t n_vocab, size_t k) {
  cand_.resize(static_cast<size_t>(n_vocab));
  for (int32_t i = 0; i < n_vocab; ++i) cand_[i] = {i, logits[i], 0.0f};
  Adjust(cand_);
  picked_.clear();
  size_t ranked = 0, refused = 0;
  while (picked_.size() < k && ranked < cand_.size()) {
    // Rank the next slice (everything before it ranks above everything after).
    const size_t end = std::min(cand_.size(), std::max(2 * ranked, k + 32));
    std::partial_sort(cand_.begin() + static_cast<std::ptrdiff_t>(ranked),
                      cand_.begin() + static_cast<std::ptrdiff_t>(end), cand_.end(), ByLogit);
    for (; ranked < end && picked_.size() < k; ++ranked) {
      if (grammar_->Allows(cand_[ranked].id)) {
        picked_.push_back(cand_[ranked]);
      } else if (++refused > kMaxRefusals || grammar_->overflowed()) {
        return false;
      }
    }
  }
  cand_.swap(picked_);
  return true;
}

bool Sampler::Chain(const float* logits, int32_t n_vocab) {
  const bool greedy = params_.temperature <= 0.0f;
  // How many of the best candidates the chain keeps (0: all of them).
  const size_t top_k = greedy ? 1 : params_.top_k > 0 ? static_cast<size_t>(params_.top_k) : 0;
  bool ranked = false;  // cand_ holds the best top_k candidates the grammar allows, best first
  if (grammar_ != nullptr) {
    // Few candidates are kept and the state is new: probing the best tokens
    // one by one is cheaper than its whole mask, and picks the same tokens.
    // A state met again gets its mask (kept for the next time).
    if (top_k > 0 && !grammar_->HasAllowedTokens() && !grammar_->Revisited())
      ranked = BestAllowed(logits, n_vocab, top_k);
    if (!ranked) {
      // The allowed tokens only, in id order (so greedy ties still go to the lowest id).
      const std::span<const uint64_t> allowed = grammar_->AllowedTokens();
      cand_.clear();
      for (size_t w = 0; w < allowed.size(); ++w) {
        for (uint64_t bits = allowed[w]; bits != 0; bits &= bits - 1) {
          const int32_t id = static_cast<int32_t>(w * 64 + static_cast<size_t>(std::countr_zero(bits)));
          if (id < n_vocab) cand_.push_back({id, logits[id], 0.0f});
        }
      }
      Adjust(cand_);
    }
    if (grammar_->overflowed()) return false;
  } else {
    cand_.resize(static_cast<size_t>(n_vocab));
    for (int32_t i = 0; i < n_vocab; ++i) cand_[i] = {i, logits[i], 0.0f};
    Adjust(cand_);
  }
  if (cand_.empty()) return false;

  if (greedy) {
    if (!ranked) {
      const Candidate* best = &cand_[0];
      for (const Candidate& x : cand_)
        if (x.logit > best->logit) best = &x;
      cand_[0] = *best;
    }
    cand_.resize(1);
    cand_[0].p = 1.0f;
    return true;
  }

  if (!ranked) {
    const size_t k = top_k > 0 ? std::min(top_k, cand_.size()) : cand_.size();
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), ByLogit);
    cand_.resize(k);
  }

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
  return true;
}

int32_t Sampler::Sample(const float* logits, int32_t n_vocab) {
  if (!Chain(logits, n_vocab)) return -1;
  if (params_.temperature <= 0.0f) return cand_.front().id;
  const float r = rng_.NextFloat();
  float cum = 0;
  for (const Candidate& x : cand_) {
    cum += x.p;
    if (r < cum) return x.id;
  }
  return cand_.back().id;
}

int32_t Sampler::Draw(std::span<const std::pair<int32_t, float>> dist, float r) {
  float cum = 0;
  for (const auto& [id, p] : dist) {
    cum += p;
    if (r < cum) return id;
  }
  return dist.back().first;
}

std::vector<std::pair<int32_t, float>> Sampler::Distribution(const float* logits, int32_t n_vocab) {
  std::vector<std::pair<int32_t, float>> d;
  if (!Chain(logits, n_vocab)) return d;
  for (const Candidate& x : cand_) d.emplace_back(x.id, x.p);
  return d;
}

}  // namespace strata
