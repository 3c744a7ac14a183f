// strata bench-kv: what the paged, tiered KV cache buys on a long context.
//  1. time to first token resuming an N-token session from disk, page cache
//     dropped, versus recomputing the prefill;
//  2. generation speed with a quarter of the context's KV in RAM and the rest
//     on the disk tier, versus all in RAM;
//  3. the longest context a RAM budget holds without a disk tier (computed
//     from the block size, and run when --verify-longest is given).
#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/context.h"
#include "engine/sampler.h"
#include "kv/session_file.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct BenchKvOptions {
  std::string model;
  int32_t n_ctx_tokens = 4096;
  int32_t n_gen = 32;
  int32_t threads = 2;
  int32_t reps = 3;
  std::string dir = "/tmp/strata-bench-kv";
  std::string ram_budget = "256M";
  double disk_fraction = 0.75;
  bool verify_longest = false;
  bool json = false;
  int32_t kv_block = 32;
};

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::unique_ptr<Context> NewContext(const Model& m, const BenchKvOptions& o, int32_t n_ctx, KvTierConfig tiers) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_threads = o.threads;
  p.kv_tiers = std::move(tiers);
  p.kv_block_tokens = o.kv_block;
  std::unique_ptr<Context> c;
  CheckOk("cannot create context", Context::Create(m, p, &c));
  return c;
}

// Generates n tokens greedily after whatever ctx holds; returns tokens/s.
double Generate(Context& ctx, int32_t n) {
  const int32_t n_vocab = ctx.model().hparams().n_vocab;
  const auto t0 = Clock::now();
  for (int32_t i = 0; i < n; ++i) {
    const float* l = ctx.logits();
    int32_t best = 0;
    for (int32_t j = 1; j < n_vocab; ++j)
      if (l[j] > l[best]) best = j;
    CheckOk("generate", ctx.Decode(std::span<const int32_t>(&best, 1), LogitsMode::kLast));
  }
  return n / Since(t0);
}

void BenchKv(const BenchKvOptions& o) {
  ModelLoadOptions mo;
  mo.path = o.model.empty() ? DefaultModelPath() : o.model;
  std::unique_ptr<Model> model;
  CheckOk("cannot load model " + mo.path, Model::Load(Env::Default(), mo, &model));
  Env* env = Env::Default();
  CheckOk("create " + o.dir, env->CreateDirs(o.dir));
  const int32_t N = o.n_ctx_tokens, n_ctx = N + o.n_gen + 1;
  nlohmann::json out = {{"model", model->name()}, {"context_tokens", N}, {"threads", o.threads}, {"kv_block", o.kv_block}};

  // 1. Prefill N tokens (the cost of recomputing), then save the session.
  std::mt19937_64 rng(42);
  std::vector<int32_t> prompt(static_cast<size_t>(N));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(model->hparams().n_vocab));
  auto ram_ctx = NewContext(*model, o, n_ctx, {});
  auto t0 = Clock::now();
  CheckOk("prefill", ram_ctx->Decode(prompt, LogitsMode::kLast));
  const double prefill_s = Since(t0);
  const std::string session = o.dir + "/bench.session";
  Sampler sampler(SamplerParams{});
  CheckOk("save session", ram_ctx->SaveSession(env, session, sampler));
  uint64_t session_bytes = 0;
  CheckOk("stat session", env->FileSize(session, &session_bytes));

  // Resume: load cold (page cache dropped) + the forward pass of the last token for fresh logits.
  std::vector<double> resume;
  for (int32_t r = 0; r < o.reps; ++r) {
    auto ctx = NewContext(*model, o, n_ctx, {});
    t0 = Clock::now();
    CheckOk("load session", ctx->LoadSession(env, session, &sampler, /*drop_cache=*/true));
    const int32_t last = ctx->tokens().back();
    ctx->Truncate(ctx->n_past() - 1);
    CheckOk("decode", ctx->Decode(std::span<const int32_t>(&last, 1), LogitsMode::kLast));
    resume.push_back(Since(t0));
  }
  const double resume_s = bench::Summarize(resume).median;
  out["prefill_seconds"] = prefill_s;
  out["resume_seconds_median"] = resume_s;
  out["resume_speedup"] = prefill_s / resume_s;
  out["session_bytes"] = session_bytes;

  // 2. Generation with disk_fraction of the KV on disk versus all in RAM.
  const uint64_t kv_bytes = static_cast<uint64_t>((N + ram_ctx->kv().layout().block_tokens - 1) /
                                                  ram_ctx->kv().layout().block_tokens) *
                            ram_ctx->kv().layout().block_bytes();
  std::vector<double> tg_ram, tg_tier;
  KvTierConfig tiers;
  tiers.ram_bytes = static_cast<uint64_t>(static_cast<double>(kv_bytes) * (1.0 - o.disk_fraction));
  tiers.disk_dir = o.dir;
  uint64_t disk_loads = 0;
  for (int32_t r = 0; r < o.reps; ++r) {
    ram_ctx->Truncate(N);
    CheckOk("decode", ram_ctx->Decode(std::span<const int32_t>(&prompt.back(), 1), LogitsMode::kLast));
    tg_ram.push_back(Generate(*ram_ctx, o.n_gen));
    auto tier_ctx = NewContext(*model, o, n_ctx, tiers);
    CheckOk("load session", tier_ctx->LoadSession(env, session, &sampler));
    const int32_t last = tier_ctx->tokens().back();
    tier_ctx->Truncate(tier_ctx->n_past() - 1);
    CheckOk("decode", tier_ctx->Decode(std::span<const int32_t>(&last, 1), LogitsMode::kLast));
    const uint64_t before = tier_ctx->kv().stats().store.loads;
    tg_tier.push_back(Generate(*tier_ctx, o.n_gen));
    disk_loads = tier_ctx->kv().stats().store.loads - before;
  }
  out["kv_bytes"] = kv_bytes;
  out["tg_all_ram_tps_median"] = bench::Summarize(tg_ram).median;
  out["tg_disk_fraction"] = o.disk_fraction;
  out["tg_tiered_tps_median"] = bench::Summarize(tg_tier).median;
  out["tg_tiered_over_ram"] = bench::Summarize(tg_tier).median / bench::Summarize(tg_ram).median;
  out["tg_tiered_slices_read_from_disk"] = disk_loads;

  // 3. The longest context a RAM budget holds without a disk tier.
  std::optional<uint64_t> budget = ParseSize(o.ram_budget);
  if (!budget) Fail("--ram-budget", Status::InvalidArgument("not a size: " + o.ram_budget));
  const KvLayout& L = ram_ctx->kv().layout();
  const int64_t longest = static_cast<int64_t>(*budget / L.block_bytes()) * L.block_tokens;
  out["ram_budget_bytes"] = *budget;
  out["kv_bytes_per_token"] = L.block_bytes() / L.block_tokens;
  out["longest_context_in_ram_budget"] = longest;
  if (o.verify_longest) {
    ram_ctx.reset();
    KvTierConfig ram_only;
    ram_only.ram_bytes = *budget;
    auto c = NewContext(*model, o, static_cast<int32_t>(longest), ram_only);
    std::vector<int32_t> toks(static_cast<size_t>(longest));
    for (int32_t& t : toks) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(model->hparams().n_vocab));
    t0 = Clock::now();
    CheckOk("longest context", c->Decode(toks, LogitsMode::kLast));
    out["longest_context_prefill_seconds"] = Since(t0);
  }
  (void)env->RemoveFile(session);
  if (o.json) {
    std::printf("%s\n", out.dump(1).c_str());
    return;
  }
  std::printf("model %s, %d-token context, %d threads\n", model->name().c_str(), N, o.threads);
  std::printf("time to first token: recompute prefill %.3f s, resume from disk (cold cache) %.3f s -> %.1fx faster "
              "(session %.1f MiB)\n",
              prefill_s, resume_s, prefill_s / resume_s, session_bytes / 1048576.0);
  std::printf("generation: all KV in RAM %.2f tok/s, %.0f%% of KV on disk %.2f tok/s (ratio %.2f)\n",
              out["tg_all_ram_tps_median"].get<double>(), 100 * o.disk_fraction,
              out["tg_tiered_tps_median"].get<double>(), out["tg_tiered_over_ram"].get<double>());
  std::printf("longest context in a %s RAM budget without a disk tier: %lld tokens (%llu bytes of KV per token); "
              "with --kv-disk the limit is the disk budget\n",
              o.ram_budget.c_str(), static_cast<long long>(longest),
              static_cast<unsigned long long>(L.block_bytes() / L.block_tokens));
}

}  // namespace

void AddBenchKvCommand(CLI::App& app) {
  auto o = std::make_shared<BenchKvOptions>();
  CLI::App* cmd = app.add_subcommand("bench-kv", "Measure session resume, tiered-KV generation and KV capacity");
  cmd->add_option("-m,--model", o->model, "Model file; default: the bundled stories260K");
  cmd->add_option("-c,--context", o->n_ctx_tokens, "Context length to build")->check(CLI::Range(2, 1 << 20));
  cmd->add_option("-n,--n-gen", o->n_gen, "Tokens generated per generation measurement")->check(CLI::Range(1, 1 << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->add_option("-r,--reps", o->reps, "Repetitions")->check(CLI::Range(1, 100));
  cmd->add_option("--dir", o->dir, "Directory for the session file and the disk tier");
  cmd->add_option("--disk-fraction", o->disk_fraction, "Fraction of the KV kept on disk")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--ram-budget", o->ram_budget, "RAM budget for the longest-context figure");
  cmd->add_flag("--verify-longest", o->verify_longest, "Also prefill the longest context the budget holds");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_option("--kv-block", o->kv_block, "Positions per KV block")->check(CLI::Range(1, 4096));
  cmd->callback([o] { BenchKv(*o); });
}

}  // namespace strata::cli
