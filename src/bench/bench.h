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
#include "core/env.h"
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

// The tokens of a --depth prefix of n positions (random, the same for every run and rank count).
std::vector<int32_t> PrefixTokens(const Context& ctx, int32_t n);

// Makes ctx's sequence hold the depth-token prefix (PrefixTokens) with its KV
// read from the session file at path when that file exists, else computed
// and saved there (kv/session_file.h: atomic, checksummed), so the prefix of
// a long-context benchmark is computed once for many runs (under any rank
// count and split: session files hold the whole KV). A file holding a
// shorter prefix of the same tokens (PrefixTokens of a smaller depth) is
// read, extended and saved again. *read: the prefix tokens whose KV the
// file held (0: computed whole). A
// file holding other tokens (or more) is kInvalidArgument naming it; another
// model's is refused by the session loader (fingerprint).
// REQUIRES: depth >= 1, ctx->n_ctx() >= depth, no adapters set.
[[nodiscard]] Status PreparePrefix(Context& ctx, int32_t depth, Env* env, const std::string& path, int32_t* read);

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
