// Benchmarks of the engine itself, in the spirit of llama-bench: prompt
// processing (ppN: N tokens in one forward pass) and text generation (tgN: N
// tokens one at a time from an empty cache, or with --depth D after a cached
// D-token prefix: "tgN@dD", as llama-bench's -d).
//
// Thread-safety: functions are independent; run one at a time (they use all cores).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/read_bandwidth.h"
#include "bench/roofline.h"
#include "core/status.h"
#include "engine/context.h"
#include "model/model.h"

namespace strata::bench {

// A test like llama-bench's: "pp512", "tg128".
struct TestSpec {
  // kBatched: `seqs` sequences generating n_tokens each at once ("bsSxN").
  enum class Kind { kPrompt, kGenerate, kBatched };
  Kind kind;
  int32_t n_tokens;
  int32_t seqs = 1;
  // kGenerate: positions already in the cache before the test (a random
  // prefix, computed once and kept across repetitions); 0: an empty cache.
  int32_t depth = 0;
  std::string name() const;
};

struct Stats {
  double median = 0, min = 0, max = 0, mean = 0;
};
Stats Summarize(std::vector<double> values);

// Runs one repetition of test on a fresh sequence in ctx; returns tokens/s.
// REQUIRES: ctx->n_ctx() >= test.depth + test.n_tokens.
[[nodiscard]] Status RunOnce(Context& ctx, const TestSpec& test, uint64_t seed, double* tokens_per_s);

// The paired roofline run (roofline.h): generates n_tokens random tokens one
// at a time on a fresh sequence in ctx, each right after one probe->Read(),
// and appends one sample per token to *out.
// REQUIRES: n_tokens >= 1, ctx->n_ctx() >= n_tokens.
[[nodiscard]] Status RunPaired(Context& ctx, ReadProbe& probe, int32_t n_tokens, uint64_t seed,
                               std::vector<PairedSample>* out);

}  // namespace strata::bench
