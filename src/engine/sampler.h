// Sampler: picks the next token from logits. Owns its RNG, so a given seed
// and logits sequence always yields the same tokens (deterministic, testable).
//
// Chain (llama.cpp's default order): repetition penalty -> top-k -> top-p ->
// min-p -> temperature -> draw. temperature <= 0 is greedy (argmax after the
// penalty; the lowest id wins ties, as in llama2.c).
//
// With a grammar (structured output), the chain runs over the tokens the
// grammar allows next, and nothing else: the distribution is the model's
// restricted to them, then filtered as above. With top-k (or greedy) in a
// grammar state met for the first time, the best tokens are asked about one
// by one instead of computing the state's whole mask (the same tokens come
// out, cheaper).
//
// Thread-safety: not thread-safe; one sampler per sequence.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "grammar/grammar_matcher.h"

namespace strata {

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;            // <= 0: disabled
  float top_p = 0.95f;           // >= 1: disabled
  float min_p = 0.05f;           // <= 0: disabled
  float repeat_penalty = 1.0f;   // 1: disabled
  int32_t repeat_last_n = 64;    // how many recent tokens the penalty looks at
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);

  const SamplerParams& params() const { return params_; }

  // Constrains what Sample returns to the tokens grammar allows; tokens
  // Accept()ed from now on (the generated ones) advance it. Null: none.
  void set_grammar(std::unique_ptr<grammar::GrammarMatcher> grammar) { grammar_ = std::move(grammar); }
  grammar::GrammarMatcher* grammar() const { return grammar_.get(); }

  // Returns the chosen token id. logits: F32 [n_vocab], not modified.
  // -1 if the grammar allows no token (none of the vocabulary continues it,
  // or it overflowed: grammar()->overflowed()).
  int32_t Sample(const float* logits, int32_t n_vocab);
  // Records a token of the sequence (prompt or generated) for the repetition
  // penalty, and moves the grammar past it. False if the grammar refuses it
  // (nothing changes then).
  bool Accept(int32_t token);

  // Plain-data state for session persistence.
  const Rng& rng() const { return rng_; }
  Rng& rng() { return rng_; }
  std::vector<int32_t> history() const { return {history_.begin(), history_.end()}; }
  void set_history(const std::vector<int32_t>& h);

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  // Refusals BestAllowed takes before leaving the work to the grammar's mask.
  static constexpr size_t kMaxRefusals = 256;

  void ApplyPenalty(std::vector<Candidate>& c) const;
  static void SoftmaxSorted(std::vector<Candidate>& c, float temperature);
  // Logit descending, then id ascending.
  static bool ByLogit(const Candidate& a, const Candidate& b);
  // cand_ = the best k tokens (after the penalty) the grammar allows, best
  // first (fewer if fewer are allowed), found by ranking the vocabulary a
  // slice at a time and asking the grammar about each token. False (cand_
  // then undefined) after kMaxRefusals refused tokens or an overflow.
  bool BestAllowed(const float* logits, int32_t n_vocab, size_t k);

  SamplerParams params_;
  std::unique_ptr<grammar::GrammarMatcher> grammar_;
  Rng rng_;
  std::deque<int32_t> history_;  // last repeat_last_n accepted tokens
  std::vector<Candidate> cand_;    // scratch [n_vocab]
  std::vector<Candidate> picked_;  // scratch of BestAllowed
};

}  // namespace strata
