#include "engine/perplexity.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <memory>
#include <vector>

namespace strata {
namespace {

// log p(tok) under logits F32 [n_vocab], as llama-perplexity computes it:
// the maximum in float, the sum of expf(x - max) in double.
double LogProb(const float* logits, int32_t n_vocab, int32_t tok) {
  const float max = *std::max_element(logits, logits + n_vocab);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);
  return logits[tok] - max - std::log(sum);
}

}  // namespace

Status ComputePerplexity(const Model& model, std::span<const int32_t> tokens, const PerplexityParams& params,
                         const PerplexityProgress& progress, PerplexityResult* out) {
  const int32_t n_ctx = params.n_ctx;
  if (n_ctx < 4) return Status::InvalidArgument(fmt::format("the context must hold at least 4 tokens, not {}", n_ctx));
  if (params.n_chunks < 0) return Status::InvalidArgument("the number of chunks must not be negative");
  if (tokens.size() < 2 * static_cast<size_t>(n_ctx))
    return Status::InvalidArgument(fmt::format("the text tokenizes to {} tokens; a context of {} needs at least {}",
                                               tokens.size(), n_ctx, 2 * static_cast<int64_t>(n_ctx)));
  const int32_t n_vocab = model.hparams().n_vocab;
  for (int32_t t : tokens)
    if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("token {} is out of range", t));
  const int32_t max_chunks = static_cast<int32_t>(std::min<size_t>(tokens.size() / n_ctx, INT32_MAX));
  const int32_t n_chunks = params.n_chunks > 0 ? std::min(params.n_chunks, max_chunks) : max_chunks;
  const int32_t first = n_ctx / 2;
  const Vocab& vocab = model.vocab();
  if (vocab.add_eos())  // as llama-perplexity: the text would end in an EOS that is not part of it
    return Status::Unsupported("perplexity of a model whose vocabulary appends EOS to every text");

  ContextParams cp = params.context;
  cp.n_ctx = n_ctx;
  std::unique_ptr<Context> ctx;
  STRATA_RETURN_IF_ERROR(Context::Create(model, cp, &ctx));
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (int32_t c = 0; c < n_chunks; ++c) {
    std::copy_n(tokens.begin() + static_cast<size_t>(c) * n_ctx, n_ctx, chunk.begin());
    if (vocab.add_bos() && vocab.bos() >= 0) chunk[0] = vocab.bos();
    ctx->Truncate(0);
    // The first half only gives context; its logits are not needed.
    STRATA_RETURN_IF_ERROR(ctx->Decode(std::span<const int32_t>(chunk.data(), first), LogitsMode::kLast));
    STRATA_RETURN_IF_ERROR(ctx->Decode(std::span<const int32_t>(chunk.data() + first, n_ctx - first), LogitsMode::kAll));
    // Logits row i predicts chunk[first + i + 1].
    for (int32_t k = first; k < n_ctx - 1; ++k) {
      const double lp = LogProb(ctx->logits(k - first), n_vocab, chunk[static_cast<size_t>(k) + 1]);
      nll -= lp;
      nll2 += lp * lp;
      ++count;
    }
    if (progress) progress(c, std::exp(nll / static_cast<double>(count)));
  }
  const double mean = nll / static_cast<double>(count);
  const double var = nll2 / static_cast<double>(count) - mean * mean;
  out->ppl = std::exp(mean);
  out->ppl_error = var > 0 && count > 1 ? std::sqrt(var / static_cast<double>(count - 1)) * out->ppl : 0.0;
  out->n_chunks = n_chunks;
  out->n_scored = count;
  return Status::Ok();
}

}  // namespace strata
