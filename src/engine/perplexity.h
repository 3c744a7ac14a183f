// Perplexity of a model on a text, computed as llama.cpp's llama-perplexity
// computes it, so that the two figures compare: the tokens are cut into
// non-overlapping chunks of n_ctx (the rest dropped); each chunk is decoded
// from an empty context with its first token replaced by BOS (when the
// vocabulary adds one); only the second half of each chunk is scored (every
// scored token has at least n_ctx/2 tokens of context): the negative
// log-likelihood of tokens first+1 .. n_ctx-1 given the ones before, first =
// n_ctx/2. PPL = exp(mean NLL); its error (llama-perplexity's) is
// sqrt(var(NLL) / (count - 1)) · PPL.
//
// Thread-safety: runs its own Context on the shared, read-only model.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "core/status.h"
#include "engine/context.h"
#include "model/model.h"

namespace strata {

struct PerplexityParams {
  int32_t n_ctx = 512;    // tokens per chunk; >= 4
  int32_t n_chunks = 0;   // chunks to score at most; 0: every whole chunk
  ContextParams context;  // threads, KV type, ...; n_ctx is set to the chunk size
};

struct PerplexityResult {
  double ppl = 0;
  double ppl_error = 0;   // 0 when the NLL's variance is not positive
  int32_t n_chunks = 0;   // chunks scored
  int64_t n_scored = 0;   // tokens scored
};

// Called after each chunk with its index and the running estimate exp(mean NLL).
using PerplexityProgress = std::function<void(int32_t chunk, double ppl)>;

// tokens: the text as the vocabulary encodes it with its special tokens (BOS).
// kInvalidArgument when there are fewer than 2 * n_ctx tokens or n_ctx < 4;
// a decode error as Context::Decode reports it.
[[nodiscard]] Status ComputePerplexity(const Model& model, std::span<const int32_t> tokens,
                                       const PerplexityParams& params, const PerplexityProgress& progress,
                                       PerplexityResult* out);

}  // namespace strata
