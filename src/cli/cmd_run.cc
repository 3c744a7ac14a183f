// strata run: generate a completion. Writes only the completion text to
// stdout (never the prompt); logs and timings go to stderr. Goes through the
// public C API, as any embedding application would.
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "strata/strata.h"

namespace strata::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  int32_t n_predict = 128;
  float temperature = 0.8f;
  int32_t top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  int64_t seed = -1;
  int32_t threads = 0;
  int32_t ctx_size = 0;
  int32_t batch = 512;
  bool verbose = false;
};

template <class T>
using Handle = std::unique_ptr<T, void (*)(T*)>;

[[noreturn]] void FailC(const std::string& what) {
  std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), strata_last_error());
  throw CLI::RuntimeError(1);
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void Run(const RunOptions& o) {
  strata_model_params mp = strata_model_default_params();
  const std::string model_path = o.model.empty() ? DefaultModelPath() : o.model;
  mp.path = model_path.c_str();
  mp.tokenizer_path = o.tokenizer.empty() ? nullptr : o.tokenizer.c_str();
  strata_model* raw_model = nullptr;
  if (strata_model_load(&mp, &raw_model) != STRATA_OK) FailC("cannot load model " + model_path);
  Handle<strata_model> model(raw_model, strata_model_free);

  size_t n_prompt = 0;
  std::vector<strata_token> tokens(o.prompt.size() + 8);
  if (strata_tokenize(model.get(), o.prompt.data(), o.prompt.size(), true, false, tokens.data(), tokens.size(),
                      &n_prompt) != STRATA_OK)
    FailC("cannot tokenize the prompt");
  tokens.resize(n_prompt);
  if (tokens.empty()) Fail("run", Status::InvalidArgument("empty prompt and the model adds no BOS token"));

  strata_context_params cp = strata_context_default_params();
  cp.n_threads = o.threads;
  cp.n_batch = o.batch;
  const int32_t n_train = strata_model_n_ctx_train(model.get());
  cp.n_ctx = o.ctx_size > 0 ? o.ctx_size : std::min<int32_t>(n_train, static_cast<int32_t>(n_prompt) + o.n_predict);
  strata_context* raw_ctx = nullptr;
  if (strata_context_init(model.get(), &cp, &raw_ctx) != STRATA_OK) FailC("cannot create context");
  Handle<strata_context> ctx(raw_ctx, strata_context_free);

  strata_sampler_params sp = strata_sampler_default_params();
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repeat_penalty = o.repeat_penalty;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  strata_sampler* raw_sampler = nullptr;
  if (strata_sampler_init(&sp, &raw_sampler) != STRATA_OK) FailC("cannot create sampler");
  Handle<strata_sampler> sampler(raw_sampler, strata_sampler_free);
  strata_detokenizer* raw_detok = nullptr;
  if (strata_detokenizer_init(model.get(), &raw_detok) != STRATA_OK) FailC("cannot create detokenizer");
  Handle<strata_detokenizer> detok(raw_detok, strata_detokenizer_free);
  if (o.verbose) std::fprintf(stderr, "strata: seed %llu\n", static_cast<unsigned long long>(sp.seed));

  for (strata_token t : tokens) strata_sampler_accept(sampler.get(), t);
  const auto t0 = std::chrono::steady_clock::now();
  if (strata_decode(ctx.get(), tokens.data(), tokens.size(), false) != STRATA_OK) FailC("prompt");
  const auto t1 = std::chrono::steady_clock::now();

  const int32_t n_vocab = strata_model_n_vocab(model.get());
  strata_token prev = tokens.back();
  int32_t n_gen = 0;
  while (n_gen < o.n_predict) {
    strata_token next = strata_sampler_sample(sampler.get(), strata_get_logits(ctx.get(), 0), n_vocab);
    if (strata_model_is_eog(model.get(), next)) break;
    strata_sampler_accept(sampler.get(), next);
    size_t len = 0;
    const char* text = strata_detokenizer_push(detok.get(), next, prev, &len);
    std::fwrite(text, 1, len, stdout);
    std::fflush(stdout);
    prev = next;
    if (++n_gen == o.n_predict) break;
    if (strata_context_n_past(ctx.get()) >= cp.n_ctx) {
      std::fprintf(stderr, "strata: context full after %d tokens; stopping\n", cp.n_ctx);
      break;
    }
    if (strata_decode(ctx.get(), &next, 1, false) != STRATA_OK) FailC("generation");
  }
  size_t len = 0;
  const char* rest = strata_detokenizer_flush(detok.get(), &len);
  std::fwrite(rest, 1, len, stdout);
  std::fflush(stdout);
  const auto t2 = std::chrono::steady_clock::now();
  const double pp = Seconds(t0, t1), tg = Seconds(t1, t2);
  std::fprintf(stderr, "\nstrata: prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s)\n",
               n_prompt, pp, n_prompt / (pp > 0 ? pp : 1e-9), n_gen, tg, n_gen / (tg > 0 ? tg : 1e-9));
}

}  // namespace

void AddRunCommand(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate a completion of a prompt (completion only on stdout)");
  cmd->add_option("-m,--model", opts->model, "Model file (.gguf or llama2.c .bin); default: the bundled stories260K");
  cmd->add_option("--tokenizer", opts->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  cmd->add_option("-p,--prompt", opts->prompt, "Prompt text");
  cmd->add_option("-n,--n-predict", opts->n_predict, "Number of tokens to generate")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--temp", opts->temperature, "Temperature; 0 = greedy")->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", opts->top_k, "Top-k sampling (0 = off)")->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--top-p", opts->top_p, "Top-p sampling (1 = off)")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--min-p", opts->min_p, "Min-p sampling (0 = off)")->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--repeat-penalty", opts->repeat_penalty, "Repetition penalty (1 = off)")->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("-s,--seed", opts->seed, "RNG seed (default: random)")->check(CLI::Range(int64_t{-1}, INT64_MAX));
  cmd->add_option("-t,--threads", opts->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", opts->ctx_size, "Context size (default: prompt + n, at most the model's)")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("-b,--batch-size", opts->batch, "Prompt tokens per forward pass")->check(CLI::Range(1, 8192));
  cmd->add_flag("-v,--verbose", opts->verbose, "Log more to stderr");
  cmd->callback([opts] { Run(*opts); });
}

}  // namespace strata::cli
