#include "bench/serve_bench.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fmt/format.h>
#include <mutex>
#include <random>
#include <vector>

#include "engine/engine.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int32_t n, int32_t n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = 3 + static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab - 3));
  return t;
}

// Collects event times of many requests.
struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  int32_t pending = 0;
  int64_t tokens = 0;
  std::vector<Clock::time_point> first;  // first token of each request
  Clock::time_point last;
  Status error;

  TokenSink Sink(size_t i) {
    return [this, i](const TokenEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      const auto now = Clock::now();
      if (first[i] == Clock::time_point{} && (e.completion_tokens > 0 || e.finished)) first[i] = now;
      if (e.finished) {
        tokens += e.completion_tokens;
        if (e.reason == FinishReason::kError) error = e.error;
        last = now;
        if (--pending == 0) cv.notify_all();
      }
      return SinkReply::kContinue;
    };
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return pending == 0; });
  }
};

GenerationRequest Greedy(std::vector<int32_t> prompt, int32_t n) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = n;
  r.sampling.temperature = 0;
  return r;
}

}  // namespace

Status AggregateThroughput(const Model& model, int32_t seqs, int32_t prompt_tokens, int32_t n_gen, int32_t threads,
                           uint64_t seed, ThroughputResult* out, const std::vector<LoraSet>& adapters,
                           int32_t active) {
  if (active < 0 || active > static_cast<int32_t>(adapters.size()))
    return Status::InvalidArgument(fmt::format("{} active adapter sets of {}", active, adapters.size()));
  EngineParams p;
  p.n_threads = threads;
  p.parallel = seqs;
  p.max_queue = seqs;
  p.n_ctx = prompt_tokens + n_gen + 1;
  p.max_batch_tokens = std::max(512, seqs);
  p.adapters = adapters;
  std::unique_ptr<Engine> engine;
  STRATA_RETURN_IF_ERROR(Engine::Create(model, p, &engine));
  std::mt19937_64 rng(seed);
  Tracker t;
  t.first.resize(static_cast<size_t>(seqs));
  t.pending = seqs;
  for (int32_t i = 0; i < seqs; ++i) {
    uint64_t id = 0;
    GenerationRequest r = Greedy(RandomTokens(rng, prompt_tokens, model.hparams().n_vocab), n_gen);
    if (active > 0) r.lora = adapters[static_cast<size_t>(i % active)];
    STRATA_RETURN_IF_ERROR(engine->Submit(std::move(r), t.Sink(static_cast<size_t>(i)), &id));
  }
  t.Wait();
  STRATA_RETURN_IF_ERROR(t.error);
  const Clock::time_point start = *std::max_element(t.first.begin(), t.first.end());
  out->seconds = std::chrono::duration<double>(t.last - start).count();
  // Every request's first token came before `start`; count the rest.
  out->tokens_per_s = static_cast<double>(t.tokens - seqs) / out->seconds;
  return Status::Ok();
}

Status PrefixTtft(const Model& model, int32_t n_prefix, int32_t threads, double* cold_s, double* warm_s) {
  EngineParams p;
  p.n_threads = threads;
  p.parallel = 1;
  p.n_ctx = n_prefix + 64;
  p.max_batch_tokens = 512;
  std::unique_ptr<Engine> engine;
  STRATA_RETURN_IF_ERROR(Engine::Create(model, p, &engine));
  std::mt19937_64 rng(7);
  const std::vector<int32_t> prefix = RandomTokens(rng, n_prefix, model.hparams().n_vocab);
  for (double* out : {cold_s, warm_s}) {
    std::vector<int32_t> prompt = prefix;
    for (int32_t x : RandomTokens(rng, 16, model.hparams().n_vocab)) prompt.push_back(x);
    Tracker t;
    t.first.resize(1);
    t.pending = 1;
    const auto t0 = Clock::now();
    uint64_t id = 0;
    STRATA_RETURN_IF_ERROR(engine->Submit(Greedy(prompt, 1), t.Sink(0), &id));
    t.Wait();
    STRATA_RETURN_IF_ERROR(t.error);
    *out = std::chrono::duration<double>(t.first[0] - t0).count();
  }
  return Status::Ok();
}

}  // namespace strata::bench
