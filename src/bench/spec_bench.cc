#include "bench/spec_bench.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <memory>

#include "engine/context.h"
#include "engine/speculator.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// One generation of n tokens after the prompt; spec null: plain decoding.
struct Generated {
  std::vector<int32_t> tokens;
  double seconds = 0;
  SpecStats stats;
  int64_t passes = 0;
};

Status Generate(const SpecBenchConfig& c, Context* ctx, Context* dctx, const SpecParams* spec, Generated* out) {
  ctx->Truncate(0);
  if (dctx != nullptr) dctx->Truncate(0);
  STRATA_RETURN_IF_ERROR(ctx->Decode(c.prompt, LogitsMode::kLast));
  if (dctx != nullptr && spec != nullptr) STRATA_RETURN_IF_ERROR(dctx->Decode(c.prompt, LogitsMode::kLast));
  Sampler sampler(c.sampling);
  for (int32_t t : c.prompt) sampler.AcceptPrompt(t);
  const int32_t n_vocab = c.target->hparams().n_vocab;
  const auto t0 = Clock::now();
  if (spec == nullptr) {
    while (static_cast<int32_t>(out->tokens.size()) < c.n_gen) {
      const int32_t t = sampler.Sample(ctx->logits(), n_vocab);
      if (t < 0 || c.target->vocab().IsEog(t)) break;
      sampler.Accept(t);
      out->tokens.push_back(t);
      if (static_cast<int32_t>(out->tokens.size()) == c.n_gen) break;
      STRATA_RETURN_IF_ERROR(ctx->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast));
      ++out->passes;
    }
  } else {
    std::unique_ptr<Speculator> sp;
    STRATA_RETURN_IF_ERROR(Speculator::Create(ctx, dctx, *spec, &sp));
    std::vector<int32_t> got;
    bool end = false;
    while (!end && static_cast<int32_t>(out->tokens.size()) < c.n_gen) {
      STRATA_RETURN_IF_ERROR(sp->Next(&sampler, c.n_gen - static_cast<int32_t>(out->tokens.size()), &got));
      ++out->passes;
      for (int32_t t : got) {
        if (t < 0 || c.target->vocab().IsEog(t)) {
          end = true;
          break;
        }
        out->tokens.push_back(t);
      }
    }
    --out->passes;  // the first Next samples from the prompt's logits
    out->stats = sp->stats();
  }
  out->seconds = Seconds(t0, Clock::now());
  return Status::Ok();
}

}  // namespace

Status RunSpecBench(const SpecBenchConfig& c, SpecBenchResult* out) {
  if (c.target == nullptr || c.prompt.empty() || c.n_gen < 2 || c.reps < 1 || c.lengths.empty())
    return Status::InvalidArgument("bench-spec needs a model, a prompt, at least 2 tokens and 1 repetition");
  const int32_t max_len = *std::max_element(c.lengths.begin(), c.lengths.end());
  const int32_t n_ctx = static_cast<int32_t>(c.prompt.size()) + c.n_gen + max_len + 2;
  ContextParams cp;
  cp.n_ctx = n_ctx;
  cp.n_threads = c.threads;
  std::unique_ptr<Context> ctx, dctx;
  STRATA_RETURN_IF_ERROR(Context::Create(*c.target, cp, &ctx));
  if (c.draft != nullptr) STRATA_RETURN_IF_ERROR(Context::Create(*c.draft, cp, &dctx));

  // Pass times: the model over T tokens after the prompt, the draft model over one.
  std::vector<int32_t> filler(static_cast<size_t>(max_len) + 1, c.prompt.back());
  const int32_t base = static_cast<int32_t>(c.prompt.size());
  STRATA_RETURN_IF_ERROR(ctx->Decode(c.prompt, LogitsMode::kLast));
  out->target_pass_ms.assign(static_cast<size_t>(max_len) + 1, 0);
  for (int32_t T = 1; T <= max_len + 1; ++T) {
    std::vector<double> ms;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = Clock::now();
      STRATA_RETURN_IF_ERROR(ctx->Decode(std::span(filler).first(T), T == 1 ? LogitsMode::kLast : LogitsMode::kAll));
      ms.push_back(1e3 * Seconds(t0, Clock::now()));
      ctx->Truncate(base);
    }
    out->target_pass_ms[T - 1] = Median(ms);
  }
  if (dctx != nullptr) {
    STRATA_RETURN_IF_ERROR(dctx->Decode(c.prompt, LogitsMode::kLast));
    std::vector<double> ms;
    for (int rep = 0; rep < 9; ++rep) {
      const auto t0 = Clock::now();
      STRATA_RETURN_IF_ERROR(dctx->Decode(std::span(filler).first(1), LogitsMode::kLast));
      ms.push_back(1e3 * Seconds(t0, Clock::now()));
      dctx->Truncate(base);
    }
    out->draft_pass_ms = Median(ms);
  }

  // The runs: plain, each fixed length, adaptive.
  std::vector<SpecParams> specs;
  out->runs.clear();
  out->runs.push_back({"plain", {}, {}, {}, {}});
  for (int32_t k : c.lengths) {
    SpecParams p;
    p.draft_min = p.draft_max = k;
    p.adapt = false;
    specs.push_back(p);
    out->runs.push_back({fmt::format("k={}", k), {}, {}, {}, {}});
  }
  SpecParams adaptive;
  adaptive.draft_max = max_len;
  specs.push_back(adaptive);
  out->runs.push_back({fmt::format("adaptive (1-{})", max_len), {}, {}, {}, {}});
  const bool greedy = c.sampling.temperature <= 0;
  for (int rep = 0; rep < c.reps; ++rep) {
    Generated plain;
    STRATA_RETURN_IF_ERROR(Generate(c, ctx.get(), dctx.get(), nullptr, &plain));
    const double plain_tps = static_cast<double>(plain.tokens.size()) / plain.seconds;
    out->runs[0].tokens_per_s.push_back(plain_tps);
    out->runs[0].tokens_per_pass.push_back(1.0);
    out->runs[0].ratio.push_back(1.0);
    for (size_t i = 0; i < specs.size(); ++i) {
      Generated g;
      STRATA_RETURN_IF_ERROR(Generate(c, ctx.get(), dctx.get(), &specs[i], &g));
      SpecBenchRun& r = out->runs[i + 1];
      const double tps = static_cast<double>(g.tokens.size()) / g.seconds;
      r.tokens_per_s.push_back(tps);
      r.ratio.push_back(tps / plain_tps);
      r.acceptance.push_back(g.stats.drafted > 0 ? static_cast<double>(g.stats.accepted) / g.stats.drafted : 0);
      r.tokens_per_pass.push_back(static_cast<double>(g.tokens.size() - 1) / std::max<int64_t>(g.passes, 1));
      if (greedy && g.tokens != plain.tokens) out->texts_differ.push_back(r.name);
    }
  }
  return Status::Ok();
}

}  // namespace strata::bench
