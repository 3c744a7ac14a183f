// Speculative decoding's verification: which of k drafted tokens the model
// keeps, and the token after them — so that the tokens come out distributed
// exactly as if the model had sampled them one at a time.
//
// The model ran the last generated token and the k drafted ones as one
// multi-token pass: logits row i (i = 0..k) is its distribution for the
// token after the first i drafted ones. Position by position, with p the
// sampler's filtered distribution (Sampler::Distribution, after the penalty,
// grammar, top-k/top-p/min-p and temperature) and q the distribution the
// draft token x was drawn from:
//   - x is accepted with probability min(1, p(x) / q(x)) (Leviathan et al.
//     2023, Chen et al. 2023); a deterministic draft (prompt lookup) has q
//     one-hot, so x is accepted with probability p(x);
//   - the first rejected position samples from norm(max(0, p - q)) instead;
//   - if all k are accepted, row k samples one more token from p.
// Greedy sampling has p one-hot at the argmax, so exactly the drafted tokens
// equal to the argmax are accepted and the correction is the argmax: the
// output is the non-speculative output, token for token.
//
// The sampler's history and grammar advance through each accepted token
// before the next position's p is computed, as they would one token at a
// time, so the repetition penalty and a grammar constrain the drafts too (a
// token the grammar disallows has p = 0 and is rejected). The uniforms and
// the correction's draw come from the sampler's RNG.
//
// Thread-safety: one verifier per thread (scratch buffers).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "engine/sampler.h"

namespace strata {

struct Draft {
  std::vector<int32_t> tokens;  // d1..dk
  // q[i]: the distribution tokens[i] was drawn from (a Sampler::Distribution
  // of the draft model: (id, probability)). Empty: drawn deterministically
  // (q one-hot at it).
  std::vector<std::vector<std::pair<int32_t, float>>> q;
};

struct Verdict {
  // Drafted tokens kept, d1..dn; the verifier Accept()ed them into the sampler.
  int32_t n_accepted = 0;
  // The token after them (the correction, or one more after all k), NOT yet
  // Accept()ed: the caller treats it as a freshly sampled token. An
  // end-of-generation token among the drafts, once accepted, ends the
  // verdict: it is `next`. -1: the sampler's grammar allows no token there
  // (Sampler::Sample's -1).
  int32_t next = -1;
};

class SpecVerifier {
 public:
  // logits: F32 [draft.tokens.size() + 1, n_vocab]. is_eog: end-of-generation tokens.
  Verdict Verify(Sampler& sampler, const float* logits, int32_t n_vocab, const Draft& draft,
                 const std::function<bool(int32_t)>& is_eog);

 private:
  std::vector<std::pair<int32_t, float>> p_;         // the model's distribution at the current position
  std::vector<std::pair<int32_t, float>> residual_;  // norm(max(0, p - q)) at a rejection
  std::vector<float> q_dense_;       // [n_vocab] q of the current position, zero elsewhere
};

}  // namespace strata
