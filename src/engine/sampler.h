// Sampler: picks the next token from logits. Owns its RNG, so a given seed
// and logits sequence always yields the same tokens (deterministic, testable).
//
// Chain (llama.cpp's order): logit bias -> repetition penalty -> frequency
// and presence penalties -> banned tokens out -> top-k -> top-p -> min-p ->
// temperature -> draw. temperature <= 0 is greedy (argmax after the biases
// and penalties; the lowest id wins ties, as in llama2.c).
//
// Penalties: the repetition penalty (llama.cpp's rule: a positive logit is
// divided by it, a negative one multiplied) looks at the last repeat_last_n
// tokens, prompt included (AcceptPrompt and Accept). The frequency and
// presence penalties follow OpenAI and vLLM: they count the tokens generated
// (Accept) since the sampler began — the whole completion, not a window and
// not the prompt — and subtract count * frequency_penalty + (count > 0) *
// presence_penalty from each such token's logit (llama.cpp applies them to
// its last penalty_last_n tokens, prompt included).
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
#include <map>
#include <utility>
#include <memory>
#include <span>
#include <vector>

#include "core/rng.h"
#include "grammar/grammar_matcher.h"

namespace strata {

// A logit offset for one token; -infinity bans it.
struct LogitBias {
  int32_t token = 0;
  float bias = 0;
};

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;            // <= 0: disabled
  float top_p = 0.95f;           // >= 1: disabled
  float min_p = 0.05f;           // <= 0: disabled
  float repeat_penalty = 1.0f;   // 1: disabled
  int32_t repeat_last_n = 64;    // how many recent tokens the penalty looks at
  float frequency_penalty = 0.0f;  // per time a token was generated; 0: disabled
  float presence_penalty = 0.0f;   // once for a token generated at all; 0: disabled
  std::vector<LogitBias> logit_bias = {};  // added to the logits first; ids in [0, n_vocab)
  uint64_t seed = 0;
};

// A sampler's state between tokens, plain data (session files hold it).
struct SamplerState {
  std::array<uint64_t, 4> rng{};
  std::vector<int32_t> history;                     // the last repeat_last_n tokens, oldest first
  std::vector<std::pair<int32_t, int32_t>> counts;  // (token, times generated), by token id
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);

  const SamplerParams& params() const { return params_; }

  // Constrains what Sample returns to the tokens grammar allows; tokens
  // Accept()ed from now on (the generated ones) advance it. Null: none.
  void set_grammar(std::unique_ptr<grammar::GrammarMatcher> grammar) { grammar_ = std::move(grammar); }
  grammar::GrammarMatcher* grammar() const { return grammar_.get(); }

  // Tokens Sample never returns while set (the engine's min_tokens and
  // ignore_eos: end-of-generation tokens). Ids outside the vocabulary are ignored.
  void set_banned(std::vector<int32_t> tokens);

  // Returns the chosen token id. logits: F32 [n_vocab], not modified.
  // -1 if no token is left: the grammar allows none (none of the vocabulary
  // continues it, or it overflowed: grammar()->overflowed()), or the logit
  // biases and banned tokens exclude every token the grammar allows.
  int32_t Sample(const float* logits, int32_t n_vocab);
  // The distribution Sample draws from: (id, probability) of each token the
  // chain keeps, most likely first (greedy: the best token, probability 1);
  // empty when Sample would return -1. Draws nothing (the RNG is untouched).
  std::vector<std::pair<int32_t, float>> Distribution(const float* logits, int32_t n_vocab);
  // The token of dist (a Distribution) that uniform r in [0, 1) selects:
  // cumulative, in order, the last one if rounding leaves r beyond the sum —
  // as Sample draws. REQUIRES: dist non-empty.
  static int32_t Draw(std::span<const std::pair<int32_t, float>> dist, float r);
  // A uniform in [0, 1) from the sampler's RNG (speculative decoding's
  // acceptance tests and corrections, engine/spec_verifier.h).
  float NextUniform() { return rng_.NextFloat(); }
  // Records a generated token: for the penalties, and moves the grammar past
  // it. False if the grammar refuses it (nothing changes then).
  bool Accept(int32_t token);
  // Records a token of the context the completion follows (the prompt): the
  // repetition penalty's window only.
  void AcceptPrompt(int32_t token);

  // Plain-data state for session persistence.
  SamplerState state() const;
  void set_state(const SamplerState& state);

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  // Refusals BestAllowed takes before leaving the work to the grammar's mask.
  static constexpr size_t kMaxRefusals = 256;

  // Applies the logit biases, the penalties and the bans to c (REQUIRES: c
  // sorted by id), dropping the candidates they leave at -infinity.
  void Adjust(std::vector<Candidate>& c) const;
  // The chain up to the draw: cand_ = the kept candidates, best first, with
  // their probabilities (greedy: the best one alone). False if none is left.
  bool Chain(const float* logits, int32_t n_vocab);
  void Remember(int32_t token);
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
  std::map<int32_t, int32_t> counts_;  // generated tokens: times each
  std::vector<int32_t> banned_;        // sorted
  std::vector<Candidate> cand_;    // scratch [n_vocab]
  std::vector<Candidate> picked_;  // scratch of BestAllowed
};

}  // namespace strata
