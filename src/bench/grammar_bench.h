// What structured output costs per token: the sampler's time for one token
// with a grammar (the allowed-token mask, the chain over the allowed tokens,
// moving the grammar past the token) next to the same sampler without one,
// both on the same logits, token after token; and how often the sampler
// computed a state's whole mask (the rest of the time it found the cached
// mask, or asked the grammar about its best tokens one by one). The grammar starts cold (no
// states cached) for every document; when a document completes (the grammar
// ends and the end-of-generation token is drawn) the next one starts.
//
// Thread-safety: one run at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"
#include "vocab/vocab.h"

namespace strata::bench {

// Fills *logits (F32 [n_vocab]) for the next token, given the one before it
// (-1: a new document starts).
using LogitsSource = std::function<Status(int32_t previous, std::vector<float>* logits)>;

struct GrammarBenchResult {
  std::vector<double> plain_us;    // [token] sampling without the grammar, microseconds
  std::vector<double> grammar_us;  // [token] sampling under the grammar and moving it past the token
  std::vector<double> accept_us;   // [token] of which: moving the grammar past the token
  int32_t masks = 0;               // tokens for which a state's allowed-token mask was computed
  int32_t documents = 0;           // documents completed
  size_t states = 0;               // grammar states built, summed over documents
  double trie_ms = 0;              // building the vocabulary's token trie (once per vocabulary)
  size_t trie_nodes = 0;
};

// Samples n_tokens tokens (strata run's default chain: temperature 0.8,
// top-k 40, top-p 0.95, min-p 0.05; seed fixed) under grammar from the logits
// source, timing each.
[[nodiscard]] Status RunGrammarBench(const Vocab& vocab, std::shared_ptr<const grammar::Grammar> grammar,
                                     const LogitsSource& logits, int32_t n_tokens, uint64_t seed,
                                     GrammarBenchResult* out);

}  // namespace strata::bench
