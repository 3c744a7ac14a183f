// strata bench-spec: speculative decoding (bench/spec_bench.h) — for one
// stream, plain decoding against a draft model (--draft-model) or prompt
// lookup (--spec ngram) at fixed draft lengths and adaptive; with
// --concurrent, the serving engine's aggregate throughput without and with
// speculation. Repetitions alternated.
#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/spec_bench.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "engine/engine.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct BenchSpecOptions {
  std::string model;
  SpecFlags spec;
  std::string prompt = "Once upon a time";
  std::string prompt_file;
  int32_t n_gen = 128;
  int32_t threads = 2;
  int32_t reps = 3;
  std::vector<int32_t> lengths = {2, 4, 8};
  std::vector<int32_t> concurrent;  // serving mode: these concurrencies
  int32_t spec_max_batch = EngineSpecParams{}.max_batch;
  float temperature = 0;
  uint64_t seed = 1;
  bool json = false;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void BenchServing(const BenchSpecOptions& o, const Model& model, const Model* draft, const std::string& prompt,
                  const std::string& method) {
  bench::ServingSpecConfig c;
  c.target = &model;
  c.draft = draft;
  c.prompt = prompt;
  c.n_gen = o.n_gen;
  c.threads = o.threads;
  c.reps = o.reps;
  c.concurrency = o.concurrent;
  c.spec.draft_min = o.spec.draft_min;
  c.spec.draft_max = o.spec.draft_max;
  c.spec.max_batch = o.spec_max_batch;
  c.sampling.temperature = o.temperature;
  c.sampling.seed = o.seed;
  std::vector<bench::ServingSpecRow> rows;
  CheckOk("bench-spec", bench::RunServingSpecBench(c, &rows));
  if (o.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const bench::ServingSpecRow& r : rows)
      out.push_back({{"concurrent", r.concurrent},
                     {"plain_tokens_per_s", r.plain_tokens_per_s},
                     {"spec_tokens_per_s", r.spec_tokens_per_s},
                     {"ratio", r.ratio},
                     {"acceptance", r.acceptance},
                     {"drafted_per_token", r.drafted_per_token},
                     {"median_ratio", Median(r.ratio)}});
    std::printf("%s\n", nlohmann::json{{"model", o.model}, {"draft", method == "draft" ? o.spec.draft_model : "ngram"},
                                       {"n_gen", o.n_gen}, {"threads", o.threads}, {"spec_max_batch", o.spec_max_batch},
                                       {"rows", out}}
                            .dump()
                            .c_str());
    return;
  }
  std::printf("serving with speculative decoding (drafts from %s, draft length %d-%d adaptive, up to %d generating "
              "requests): %d tokens per request, %d threads, %d reps\n\n",
              method == "draft" ? o.spec.draft_model.c_str() : "prompt lookup", o.spec.draft_min, o.spec.draft_max,
              o.spec_max_batch, o.n_gen, o.threads, o.reps);
  std::printf("| concurrent | plain t/s (median) | speculative t/s | median ratio (min-max) | acceptance | drafted per "
              "token |\n|---|---|---|---|---|---|\n");
  for (const bench::ServingSpecRow& r : rows)
    std::printf("| %d | %.2f | %.2f | %.2fx (%.2f-%.2f) | %.1f%% | %.2f |\n", r.concurrent, Median(r.plain_tokens_per_s),
                Median(r.spec_tokens_per_s), Median(r.ratio), *std::min_element(r.ratio.begin(), r.ratio.end()),
                *std::max_element(r.ratio.begin(), r.ratio.end()), 100 * Median(r.acceptance),
                Median(r.drafted_per_token));
}

void BenchSpec(const BenchSpecOptions& o) {
  const std::string method = o.spec.Method();
  if (method.empty()) Fail("bench-spec", Status::InvalidArgument("give --draft-model or --spec ngram"));
  std::unique_ptr<Model> model, draft;
  const std::string model_path = o.model.empty() ? DefaultModelPath() : o.model;
  ModelLoadOptions mo;
  mo.path = model_path;
  CheckOk("cannot load model " + mo.path, Model::Load(Env::Default(), mo, &model));
  if (method == "draft") {
    mo.path = o.spec.draft_model;
    CheckOk("cannot load draft model " + mo.path, Model::Load(Env::Default(), mo, &draft));
  }
  std::string prompt = o.prompt;
  if (!o.prompt_file.empty()) CheckOk("--prompt-file", ReadSmallFile(o.prompt_file, 1 << 20, &prompt));
  if (!o.concurrent.empty()) {
    BenchServing(o, *model, draft.get(), prompt, method);
    return;
  }
  bench::SpecBenchConfig c;
  c.target = model.get();
  c.draft = draft.get();
  c.prompt = model->vocab().Encode(prompt, /*add_special=*/true, /*parse_special=*/false);
  c.n_gen = o.n_gen;
  c.threads = o.threads;
  c.reps = o.reps;
  c.lengths = o.lengths;
  c.sampling.temperature = o.temperature;
  c.sampling.seed = o.seed;
  bench::SpecBenchResult r;
  CheckOk("bench-spec", bench::RunSpecBench(c, &r));
  if (o.json) {
    nlohmann::json runs = nlohmann::json::array();
    for (const bench::SpecBenchRun& run : r.runs)
      runs.push_back({{"name", run.name},
                      {"tokens_per_s", run.tokens_per_s},
                      {"ratio", run.ratio},
                      {"acceptance", run.acceptance},
                      {"tokens_per_pass", run.tokens_per_pass},
                      {"median_tokens_per_s", Median(run.tokens_per_s)},
                      {"median_ratio", Median(run.ratio)}});
    const nlohmann::json out = {{"model", model_path},          {"draft", method == "draft" ? o.spec.draft_model : "ngram"},
                                {"prompt_tokens", c.prompt.size()}, {"n_gen", o.n_gen},
                                {"threads", o.threads},      {"target_pass_ms", r.target_pass_ms},
                                {"draft_pass_ms", r.draft_pass_ms}, {"runs", runs},
                                {"greedy_texts_differ", r.texts_differ}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("speculative decoding: %s, drafts from %s; %zu prompt tokens, %d generated, %d threads, %d reps\n",
                model_path.c_str(), method == "draft" ? o.spec.draft_model.c_str() : "prompt lookup", c.prompt.size(),
                o.n_gen, o.threads, o.reps);
    std::printf("model pass ms by tokens T:");
    for (size_t t = 0; t < r.target_pass_ms.size(); ++t) std::printf(" T=%zu %.1f", t + 1, r.target_pass_ms[t]);
    if (r.draft_pass_ms > 0) std::printf("; draft model pass %.1f ms", r.draft_pass_ms);
    std::printf("\n\n| run | median t/s | median ratio to plain | acceptance | tokens per pass |\n|---|---|---|---|---|\n");
    for (const bench::SpecBenchRun& run : r.runs)
      std::printf("| %s | %.2f | %.2fx | %s | %.2f |\n", run.name.c_str(), Median(run.tokens_per_s), Median(run.ratio),
                  run.acceptance.empty() ? "-" : fmt::format("{:.1f}%", 100 * Median(run.acceptance)).c_str(),
                  Median(run.tokens_per_pass));
  }
  if (!r.texts_differ.empty())
    Fail("bench-spec", Status::Internal("greedy speculative text differed from plain decoding: " + r.texts_differ[0]));
}

}  // namespace

void AddBenchSpecCommand(CLI::App& app) {
  auto o = std::make_shared<BenchSpecOptions>();
  CLI::App* cmd = app.add_subcommand("bench-spec", "Measure speculative decoding against plain decoding (one stream)");
  cmd->add_option("-m,--model", o->model, "Model; default: the bundled stories260K")->check(NonEmpty());
  AddSpecFlags(cmd, &o->spec);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt");
  cmd->add_option("--prompt-file", o->prompt_file, "Prompt from a file (instead of -p)")->check(NonEmpty());
  cmd->add_option("-n,--n-gen", o->n_gen, "Tokens generated per run")->check(CLI::Range(2, 1 << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->add_option("-r,--reps", o->reps, "Repetitions (each runs plain, every length and adaptive)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("-k,--lengths", o->lengths, "Fixed draft lengths to measure")->delimiter(',')->check(CLI::Range(1, 64));
  cmd->add_option("--concurrent", o->concurrent,
                  "Serving mode: aggregate throughput of the engine at these concurrencies, without and with "
                  "speculation (adaptive)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--spec-max-batch", o->spec_max_batch,
                  "Serving mode: steps with more generating requests than this do not draft")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--temp", o->temperature, "Temperature (0: greedy, texts checked equal to plain)")
      ->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("-s,--seed", o->seed, "Sampling seed");
  cmd->add_flag("--json", o->json, "One JSON object instead of the table");
  cmd->callback([o] { BenchSpec(*o); });
}

}  // namespace strata::cli
