// `strata perplexity [-m MODEL] -f TEXT [-c N_CTX] [--chunks N] [--threads N] [--kv-type T]`
//
// The perplexity of the model on the text, as llama-perplexity computes it
// (engine/perplexity.h): the text file (at most kMaxTextBytes; one trailing
// newline dropped, as llama.cpp reads -f) is tokenized with BOS, cut into
// chunks of N_CTX tokens, and the second half of each chunk is scored. The
// running estimate after each chunk goes to stderr as "[chunk]ppl,", then
// stdout gets "Final estimate: PPL = X +/- Y".
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "engine/perplexity.h"
#include "model/model.h"

namespace strata::cli {
namespace {

constexpr uint64_t kMaxTextBytes = uint64_t{1} << 30;

struct PerplexityOptions {
  std::string model;
  std::string text;
  int32_t n_ctx = 512;
  int32_t chunks = 0;
  int32_t threads = 0;
  std::string kv_type;
};

void RunPerplexity(PerplexityOptions o) {
  Env* env = Env::Default();
  if (o.model.empty()) o.model = DefaultModelPath();
  std::string text;
  CheckOk("perplexity", env->ReadFile(o.text, kMaxTextBytes, &text));
  if (!text.empty() && text.back() == '\n') text.pop_back();
  PerplexityParams p;
  p.n_ctx = o.n_ctx;
  p.n_chunks = o.chunks;
  p.context.n_threads = o.threads;
  if (!o.kv_type.empty()) {
    const std::optional<DType> t = ParseDType(o.kv_type);
    if (!t) Fail("--kv-type", Status::InvalidArgument("unknown KV type '" + o.kv_type + "' (f32, f16, q8_0)"));
    p.context.kv_type = *t;
  }
  ModelLoadOptions lo;
  lo.path = o.model;
  std::unique_ptr<Model> model;
  CheckOk("perplexity: " + o.model, Model::Load(env, lo, &model));
  const std::vector<int32_t> tokens = model->vocab().Encode(text, /*add_special=*/true, /*parse_special=*/false);
  std::fprintf(stderr, "strata: perplexity over %zu tokens, %d per chunk\n", tokens.size(), p.n_ctx);
  PerplexityResult r;
  CheckOk("perplexity", ComputePerplexity(*model, tokens, p, [](int32_t chunk, double ppl) {
    std::fprintf(stderr, "[%d]%.4f,", chunk + 1, ppl);
    std::fflush(stderr);
  }, &r));
  std::fprintf(stderr, "\n");
  std::printf("Final estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_error);
  if (std::fflush(stdout) != 0) Fail("perplexity", Status::IOError("writing standard output failed"));
}

}  // namespace

void AddPerplexityCommand(CLI::App& app) {
  auto opts = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text file, as llama-perplexity computes it");
  cmd->add_option("-m,--model", opts->model, "GGUF model (default: the bundled stories260K)")->check(NonEmpty());
  cmd->add_option("-f,--file", opts->text, "Text file")->required()->check(NonEmpty());
  cmd->add_option("-c,--ctx-size", opts->n_ctx, "Tokens per chunk (the second half of each is scored)")
      ->capture_default_str()
      ->check(CLI::Range(4, 1 << 20));
  cmd->add_option("--chunks", opts->chunks, "Chunks to score at most (default: all)")->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--threads", opts->threads, "Worker threads (default: all cores)")->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-type", opts->kv_type, "KV cache type: f32, f16, q8_0 (default: f32 for f32 models, else f16)");
  cmd->callback([opts] { RunPerplexity(*opts); });
}

}  // namespace strata::cli
