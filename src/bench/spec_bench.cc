#include "bench/spec_bench.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
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
  if (v.empty()) return 0;
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
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

namespace {

// One serving run: S requests at once; tokens per second of the generation phase.
Status ServeOnce(const ServingSpecConfig& c, int32_t seqs, bool speculate, double* tokens_per_s, EngineStats* stats) {
  EngineParams p;
  p.n_threads = c.threads;
  p.parallel = seqs;
  p.max_queue = seqs;
  std::vector<std::vector<int32_t>> prompts;
  size_t longest = 0;
  for (int32_t i = 0; i < seqs; ++i) {
    prompts.push_back(c.target->vocab().Encode(c.prompt + " " + std::to_string(i), true, false));
    longest = std::max(longest, prompts.back().size());
  }
  p.n_ctx = static_cast<int32_t>(longest) + c.n_gen + c.spec.draft_max + 2;
  p.max_batch_tokens = std::max(512, seqs * (c.spec.draft_max + 1));
  if (speculate) {
    p.spec = c.spec;
    p.spec.method = c.draft != nullptr ? SpecMethod::kDraftModel : SpecMethod::kNgram;
    p.spec.draft_model = c.draft;
  }
  std::unique_ptr<Engine> engine;
  STRATA_RETURN_IF_ERROR(Engine::Create(*c.target, p, &engine));
  std::mutex mu;
  std::condition_variable cv;
  int32_t pending = seqs;
  int64_t tokens = 0;
  std::vector<Clock::time_point> first(static_cast<size_t>(seqs));
  Clock::time_point last;
  Status error;
  for (int32_t i = 0; i < seqs; ++i) {
    GenerationRequest r;
    r.prompt = prompts[static_cast<size_t>(i)];
    r.max_tokens = c.n_gen;
    r.sampling = c.sampling;
    r.sampling.seed = c.sampling.seed + static_cast<uint64_t>(i);
    uint64_t id = 0;
    STRATA_RETURN_IF_ERROR(engine->Submit(std::move(r), [&, i](const TokenEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      const auto now = Clock::now();
      if (first[static_cast<size_t>(i)] == Clock::time_point{}) first[static_cast<size_t>(i)] = now;
      if (e.finished) {
        tokens += e.completion_tokens;
        if (e.reason == FinishReason::kError) error = e.error;
        last = now;
        if (--pending == 0) cv.notify_all();
      }
      return SinkReply::kContinue;
    }, &id));
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return pending == 0; });
  }
  STRATA_RETURN_IF_ERROR(error);
  const Clock::time_point start = *std::max_element(first.begin(), first.end());
  // Every request's first token (an event of its own) came by `start`; count the rest.
  *stats = engine->Stats();
  *tokens_per_s = static_cast<double>(tokens - seqs) / std::max(Seconds(start, last), 1e-9);
  return Status::Ok();
}

}  // namespace

Status RunServingSpecBench(const ServingSpecConfig& c, std::vector<ServingSpecRow>* out) {
  if (c.target == nullptr || c.prompt.empty() || c.n_gen < 2 || c.reps < 1)
    return Status::InvalidArgument("the serving benchmark needs a model, a prompt, at least 2 tokens and 1 repetition");
  out->clear();
  for (int32_t s : c.concurrency) out->push_back(ServingSpecRow{s, {}, {}, {}, {}, {}});
  for (int rep = 0; rep < c.reps; ++rep) {
    for (ServingSpecRow& row : *out) {
      double plain = 0, spec = 0;
      EngineStats st;
      for (int order = 0; order < 2; ++order) {
        const bool speculate = (order == 0) == (rep % 2 == 1);  // alternate which runs first
        EngineStats s;
        STRATA_RETURN_IF_ERROR(ServeOnce(c, row.concurrent, speculate, speculate ? &spec : &plain, &s));
        if (speculate) st = s;
      }
      row.plain_tokens_per_s.push_back(plain);
      row.spec_tokens_per_s.push_back(spec);
      row.ratio.push_back(spec / plain);
      row.acceptance.push_back(st.spec_drafted > 0 ? static_cast<double>(st.spec_accepted) / st.spec_drafted : 0);
      row.drafted_per_token.push_back(static_cast<double>(st.spec_drafted) /
                                      std::max<uint64_t>(st.completion_tokens_total, 1));
    }
  }
  return Status::Ok();
}

}  // namespace strata::bench
