#include "bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <numeric>
#include <random>

#include "engine/sampler.h"

namespace strata::bench {

std::string TestSpec::name() const {
  if (kind == Kind::kBatched) return fmt::format("bs{}x{}", seqs, n_tokens);
  if (depth > 0) return fmt::format("tg{}@d{}", n_tokens, depth);
  return fmt::format("{}{}", kind == Kind::kPrompt ? "pp" : "tg", n_tokens);
}

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  return s;
}

namespace {

std::vector<int32_t> RandomTokens(const Context& ctx, int32_t n, uint64_t seed) {
  const int32_t n_vocab = ctx.model().hparams().n_vocab;
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
  return tokens;
}

}  // namespace

std::vector<int32_t> PrefixTokens(const Context& ctx, int32_t n) { return RandomTokens(ctx, n, /*seed=*/0x5eed); }

Status PreparePrefix(Context& ctx, int32_t depth, Env* env, const std::string& path, int32_t* read) {
  const std::vector<int32_t> prefix = PrefixTokens(ctx, depth);
  Sampler sampler{SamplerParams{}};  // the session's sampler state is not used
  ctx.Truncate(0);
  *read = 0;
  if (env->CheckRegularFile(path).ok()) {
    STRATA_RETURN_IF_ERROR(ctx.LoadSession(env, path, &sampler));
    const std::vector<int32_t>& have = ctx.tokens();
    *read = ctx.n_past();
    if (have == prefix) return Status::Ok();
    if (have.size() > prefix.size() || !std::equal(have.begin(), have.end(), prefix.begin())) {
      ctx.Truncate(0);
      return Status::InvalidArgument(
          fmt::format("{} holds another prefix ({} tokens) than --depth {}: remove it", path, *read, depth));
    }
  }
  // A shorter prefix of the same tokens (a smaller depth's) is extended.
  const size_t have = ctx.tokens().size();
  STRATA_RETURN_IF_ERROR(ctx.Decode(std::span<const int32_t>(prefix).subspan(have), LogitsMode::kLast));
  return ctx.SaveSession(env, path, sampler);
}

Status RunOnce(Context& ctx, const TestSpec& test, uint64_t seed, double* tokens_per_s) {
  const std::vector<int32_t> tokens = RandomTokens(ctx, test.n_tokens, seed);
  if (test.depth > 0) {
    // The prefix is computed once (not timed); later repetitions only drop what the last one added.
    const std::vector<int32_t> prefix = PrefixTokens(ctx, test.depth);
    const std::vector<int32_t>& have = ctx.tokens();
    if (have.size() < prefix.size() || !std::equal(prefix.begin(), prefix.end(), have.begin())) {
      ctx.Truncate(0);
      STRATA_RETURN_IF_ERROR(ctx.Decode(prefix, LogitsMode::kLast));
    }
    ctx.Truncate(test.depth);
  } else {
    ctx.Truncate(0);
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (test.kind == TestSpec::Kind::kPrompt) {
    STRATA_RETURN_IF_ERROR(ctx.Decode(tokens, LogitsMode::kLast));
  } else {
    for (int32_t t : tokens) STRATA_RETURN_IF_ERROR(ctx.Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *tokens_per_s = test.n_tokens / s;
  return Status::Ok();
}

Status RunPaired(Context& ctx, ReadProbe& probe, int32_t n_tokens, uint64_t seed, std::vector<PairedSample>* out) {
  const std::vector<int32_t> tokens = RandomTokens(ctx, n_tokens, seed);
  ctx.Truncate(0);
  for (int32_t t : tokens) {
    PairedSample p;
    STRATA_RETURN_IF_ERROR(probe.Read(&p.probe_bytes_per_s));
    const auto t0 = std::chrono::steady_clock::now();
    STRATA_RETURN_IF_ERROR(ctx.Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast));
    p.token_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out->push_back(p);
  }
  return Status::Ok();
}

}  // namespace strata::bench
