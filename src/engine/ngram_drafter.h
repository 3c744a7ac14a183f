// Prompt lookup (n-gram) drafting for speculative decoding: no second model.
// Text often repeats what came before it (code, lists, quotes of the
// prompt), so the continuation of the most recent earlier occurrence of the
// sequence's last n tokens is a cheap guess of what comes next.
//
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace strata {

struct NgramParams {
  int32_t ngram_min = 1;  // the shortest suffix looked up
  int32_t ngram_max = 4;  // the longest (tried first: a longer match predicts better)
};

// k tokens: for n = ngram_max down to ngram_min, the tokens that followed
// the latest earlier occurrence of tokens' last n tokens (the first n with
// one), continued periodically where they reach the end. Empty if no suffix
// of those lengths occurred before.
// O(tokens.size() * ngram_max).
std::vector<int32_t> NgramDraft(std::span<const int32_t> tokens, int32_t k, const NgramParams& params);

}  // namespace strata
