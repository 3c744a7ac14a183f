// strata bench-grammar: the per-token cost of structured output
// (bench/grammar_bench.h) on a vocabulary, with logits from a model's
// forward pass (-m) or, for a vocabulary-only GGUF (--vocab), drawn at
// random (iid normal, sd 2: the grammar then wanders through its states much
// as a model that has not learned the format would).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/grammar_bench.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "engine/context.h"
#include "grammar/gbnf_parser.h"
#include "grammar/json_schema_gbnf.h"
#include "grammar/vocab_gbnf_options.h"
#include "format/gguf.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct BenchGrammarOptions {
  std::string model;
  std::string vocab;
  std::string grammar_file;
  std::string schema_file;
  std::string prompt;
  int32_t n_tokens = 512;
  int32_t threads = 2;
  uint64_t seed = 1;
  bool json = false;
};

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

void BenchGrammar(const BenchGrammarOptions& o) {
  if (o.grammar_file.empty() == o.schema_file.empty())
    Fail("bench-grammar", Status::InvalidArgument("give one of --grammar-file and --json-schema"));
  std::string gbnf;
  if (!o.grammar_file.empty()) {
    CheckOk("--grammar-file", ReadSmallFile(o.grammar_file, grammar::kMaxGbnfBytes, &gbnf));
  } else {
    std::string text;
    CheckOk("--json-schema", ReadSmallFile(o.schema_file, grammar::kMaxGbnfBytes, &text));
    const nlohmann::ordered_json schema = nlohmann::ordered_json::parse(text, nullptr, false);
    if (schema.is_discarded()) Fail("--json-schema", Status::InvalidArgument(o.schema_file + " is not JSON"));
    CheckOk("--json-schema", grammar::JsonSchemaGrammar(schema, &gbnf));
  }

  // The vocabulary, and where logits come from.
  std::unique_ptr<Model> model;
  std::unique_ptr<Vocab> vocab_only;
  std::unique_ptr<Context> ctx;
  bench::LogitsSource logits;
  std::mt19937_64 rng(o.seed);
  std::vector<int32_t> prompt;  // model logits: what each document starts from
  std::string source;
  if (!o.vocab.empty()) {
    std::unique_ptr<gguf::GgufFile> file;
    CheckOk("--vocab " + o.vocab, gguf::GgufFile::Open(Env::Default(), o.vocab, &file));
    CheckOk("--vocab " + o.vocab, Vocab::FromGguf(*file, &vocab_only));
    const int32_t n = vocab_only->n_tokens();
    logits = [&rng, n](int32_t, std::vector<float>* l) {
      std::normal_distribution<float> normal(0.0f, 2.0f);
      l->resize(static_cast<size_t>(n));
      for (float& x : *l) x = normal(rng);
      return Status::Ok();
    };
    source = o.vocab + " (random logits)";
  } else {
    ModelLoadOptions mo;
    mo.path = o.model.empty() ? DefaultModelPath() : o.model;
    CheckOk("cannot load model " + mo.path, Model::Load(Env::Default(), mo, &model));
    ContextParams cp;
    cp.n_threads = o.threads;
    CheckOk("cannot create context", Context::Create(*model, cp, &ctx));
    prompt = model->vocab().Encode(o.prompt, /*add_special=*/true, /*parse_special=*/false);
    if (prompt.empty()) Fail("bench-grammar", Status::InvalidArgument("the prompt has no tokens"));
    logits = [&](int32_t previous, std::vector<float>* l) {
      if (previous < 0) {
        ctx->Truncate(0);
        STRATA_RETURN_IF_ERROR(ctx->Decode(prompt, LogitsMode::kLast));
      } else {
        if (ctx->n_past() + 1 >= ctx->n_ctx()) ctx->Truncate(static_cast<int32_t>(prompt.size()));  // keep going
        STRATA_RETURN_IF_ERROR(ctx->Decode(std::span<const int32_t>(&previous, 1), LogitsMode::kLast));
      }
      l->assign(ctx->logits(), ctx->logits() + model->hparams().n_vocab);
      return Status::Ok();
    };
    source = mo.path + " (its logits)";
  }
  const Vocab& vocab = vocab_only != nullptr ? *vocab_only : model->vocab();
  auto g = std::make_shared<grammar::Grammar>();
  CheckOk("grammar", grammar::ParseGbnf(gbnf, grammar::VocabGbnfOptions(vocab), g.get()));

  bench::GrammarBenchResult r;
  CheckOk("bench-grammar", bench::RunGrammarBench(vocab, g, logits, o.n_tokens, o.seed, &r));
  std::vector<double> overhead;
  for (size_t i = 0; i < r.grammar_us.size(); ++i) overhead.push_back(r.grammar_us[i] - r.plain_us[i]);
  const bench::Stats plain = bench::Summarize(r.plain_us), with = bench::Summarize(r.grammar_us),
                     extra = bench::Summarize(overhead),
                     accept = bench::Summarize(r.accept_us);
  if (o.json) {
    const nlohmann::json out = {
        {"source", source}, {"n_vocab", vocab.n_tokens()}, {"trie_nodes", r.trie_nodes}, {"trie_ms", r.trie_ms},
        {"tokens", r.grammar_us.size()}, {"documents", r.documents}, {"states", r.states},
        {"plain_us", {{"median", plain.median}, {"mean", plain.mean}, {"p99", Percentile(r.plain_us, 0.99)}}},
        {"grammar_us", {{"median", with.median}, {"mean", with.mean}, {"p99", Percentile(r.grammar_us, 0.99)},
                        {"max", with.max}}},
        {"masks_computed", r.masks},
        {"accept_us", {{"median", accept.median}, {"mean", accept.mean}, {"p99", Percentile(r.accept_us, 0.99)}}},
        {"overhead_us", {{"median", extra.median}, {"mean", extra.mean}}}};
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("grammar benchmark: %s, %d tokens; trie of %zu nodes built in %.1f ms\n", source.c_str(),
              vocab.n_tokens(), r.trie_nodes, r.trie_ms);
  std::printf("%zu tokens sampled, %d documents completed, %zu grammar states built, %d masks computed\n\n",
              r.grammar_us.size(), r.documents, r.states, r.masks);
  std::printf("| sampler | median µs/token | mean | p99 | max |\n|---|---|---|---|---|\n");
  std::printf("| plain | %.1f | %.1f | %.1f | %.1f |\n", plain.median, plain.mean, Percentile(r.plain_us, 0.99), plain.max);
  std::printf("| grammar | %.1f | %.1f | %.1f | %.1f |\n", with.median, with.mean, Percentile(r.grammar_us, 0.99),
              with.max);
  std::printf("| of which: accept | %.1f | %.1f | %.1f | %.1f |\n", accept.median, accept.mean,
              Percentile(r.accept_us, 0.99), accept.max);
  std::printf("\ngrammar overhead per token: median %.1f µs, mean %.1f µs\n", extra.median, extra.mean);
}

}  // namespace

void AddBenchGrammarCommand(CLI::App& app) {
  auto o = std::make_shared<BenchGrammarOptions>();
  CLI::App* cmd = app.add_subcommand("bench-grammar", "Measure the per-token cost of a grammar (structured output)");
  cmd->add_option("-m,--model", o->model, "Model whose logits drive sampling; default: the bundled stories260K")
      ->check(NonEmpty());
  cmd->add_option("--vocab", o->vocab, "A GGUF with a tokenizer (e.g. vocab-only): random logits instead of a model")
      ->check(NonEmpty());
  cmd->add_option("--grammar-file", o->grammar_file, "GBNF grammar")->check(NonEmpty());
  cmd->add_option("--json-schema", o->schema_file, "JSON Schema file (converted as the server converts it)")
      ->check(NonEmpty());
  cmd->add_option("-p,--prompt", o->prompt, "Prompt before each document (model logits)");
  cmd->add_option("-n,--n-tokens", o->n_tokens, "Tokens to sample")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-t,--threads", o->threads, "Threads (model logits)")->check(CLI::Range(1, 1024));
  cmd->add_option("-s,--seed", o->seed, "Seed");
  cmd->add_flag("--json", o->json, "One JSON object instead of the table");
  cmd->callback([o] { BenchGrammar(*o); });
}

}  // namespace strata::cli
