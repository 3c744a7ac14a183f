// strata run: generate a completion. Writes only the completion text to
// stdout (never the prompt); logs and timings go to stderr. Goes through the
// public C API, as any embedding application would.
//
// With --session NAME the conversation persists: an existing session's tokens
// are the prefix, the prompt is appended, and the session (now including the
// completion) is saved again — so "-p P -n 40" then "-p '' -n 40" prints what
// one "-p P -n 80" prints. The session is locked from before the model loads
// until it is saved: a second run on the same session fails at once ("session
// NAME is in use") instead of one of the two continuations being lost.
//
// With --lora FILE[:SCALE] (several) the model runs with those LoRA adapters,
// their products summed, as llama.cpp's --lora applies them.
//
// With --grammar-file the completion follows a GBNF grammar (structured
// output) and ends where the grammar is complete and the model stops.
//
// The prompt is -p TEXT, else the text of -f FILE, else standard input when it
// is not a terminal (`echo hi | strata run`), else empty. A file's or standard
// input's one trailing newline is dropped (as llama.cpp's -f does), so
// `echo hi` prompts with "hi".
//
// With --draft-model or --spec ngram it decodes speculatively
// (engine/speculator.h): the same text greedy, the same distribution sampled,
// several tokens per pass over the model when the drafts are accepted.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "grammar/gbnf_parser.h"
#include "strata/strata.h"

namespace strata::cli {
namespace {

// Largest prompt read from -f FILE or standard input: more text than the
// largest context (-c at most 4M tokens) can hold.
constexpr uint64_t kMaxPromptBytes = uint64_t{64} << 20;

struct RunOptions {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  bool prompt_given = false;  // -p was on the command line (even empty)
  std::string prompt_file;
  int32_t n_predict = 128;
  SamplingFlags sampling;
  int64_t seed = -1;
  int32_t threads = 0;
  int32_t ctx_size = 0;
  int32_t batch = 512;
  std::string session;
  std::string session_dir;
  std::string kv_type;
  int32_t kv_block = 32;
  std::string kv_ram;
  std::string kv_disk;
  std::string kv_disk_max;
  TuneFlags tune;
  MpiFlags mpi;
  std::string logits_out;
  std::string grammar_file;
  SpecFlags spec;
  std::vector<std::string> loras;
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

std::vector<strata_token> Tokenize(strata_model* model, const std::string& text, bool add_special) {
  size_t n = 0;
  std::vector<strata_token> tokens(text.size() + 8);
  if (strata_tokenize(model, text.data(), text.size(), add_special, false, tokens.data(), tokens.size(), &n) != STRATA_OK)
    FailC("cannot tokenize the prompt");
  tokens.resize(n);
  return tokens;
}

// Locks the session named o.session (creating its directory); *path: its file.
Handle<strata_session_lock> LockSession(const RunOptions& o, std::string* path) {
  const std::string dir = SessionDir(o.session_dir);
  *path = SessionPath(dir, o.session);
  CheckOk("session directory", Env::Default()->CreateDirs(dir));
  strata_session_lock* lock = nullptr;
  const strata_status st = strata_session_lock_init(path->c_str(), &lock);
  if (st == STRATA_ERR_BUSY)
    Fail("run", Status::Busy("session " + o.session + " is in use by another process; try again when it has finished"));
  if (st != STRATA_OK) FailC("cannot lock session " + o.session);
  return Handle<strata_session_lock>(lock, strata_session_lock_free);
}

// Drops one trailing newline ("\n" or "\r\n"): what `echo` and editors end text with.
void DropFinalNewline(std::string* text) {
  if (text->ends_with("\r\n")) {
    text->resize(text->size() - 2);
  } else if (text->ends_with('\n')) {
    text->pop_back();
  }
}

// The prompt: -p, else -f FILE, else standard input unless it is a terminal, else "".
std::string ReadPrompt(const RunOptions& o) {
  if (o.prompt_given) return o.prompt;
  std::string text;
  if (!o.prompt_file.empty()) {
    CheckOk("-f", ReadSmallFile(o.prompt_file, kMaxPromptBytes, &text));
  } else if (!::isatty(STDIN_FILENO)) {
    CheckOk("prompt", Env::Default()->ReadStdin(kMaxPromptBytes, &text));
  }
  DropFinalNewline(&text);
  return text;
}

void Run(RunOptions o) {
  // Under mpirun rank 0 runs the command; the others serve its plans.
  Cluster* cluster = JoinCluster(o.mpi);
  const std::string model_path = o.model.empty() ? DefaultModelPath() : o.model;
  if (!o.loras.empty() && !o.session.empty())
    Fail("run", Status::Unsupported("--lora with --session (session files do not record adapters)"));
  std::vector<LoraFlag> lora_flags(o.loras.size());
  for (size_t i = 0; i < o.loras.size(); ++i) CheckOk("--lora", ParseLoraFlag(o.loras[i], &lora_flags[i]));
  if (cluster != nullptr && cluster->rank() != 0) {
    ServeOtherRank(*cluster, model_path, o.tokenizer, o.threads, TuneCachePath(o.tune), SizeOption(o.kv_ram, "--kv-ram"));
    return;
  }
  // Read before the session is locked: standard input may take its time.
  o.prompt = ReadPrompt(o);
  const std::string spec_method = o.spec.Method();
  if (!spec_method.empty() && cluster != nullptr)
    Fail("--spec", Status::Unsupported("speculative decoding under mpirun"));
  if (!spec_method.empty() && !o.logits_out.empty())
    Fail("--logits-out", Status::InvalidArgument("not with speculative decoding (tokens come several per pass)"));
  // A session is locked first: a concurrent run on it fails before any work.
  std::string session_path;
  Handle<strata_session_lock> session_lock(nullptr, strata_session_lock_free);
  if (!o.session.empty()) session_lock = LockSession(o, &session_path);

  strata_model_params mp = strata_model_default_params();
  mp.path = model_path.c_str();
  mp.tokenizer_path = o.tokenizer.empty() ? nullptr : o.tokenizer.c_str();
  strata_model* raw_model = nullptr;
  if (strata_model_load(&mp, &raw_model) != STRATA_OK) FailC("cannot load model " + model_path);
  Handle<strata_model> model(raw_model, strata_model_free);

  strata_context_params cp = strata_context_default_params();
  cp.n_threads = o.threads;
  cp.n_batch = o.batch;
  cp.n_ctx = o.ctx_size;  // KV blocks are allocated as used, so the default is the model's full context
  cp.kv_type = o.kv_type.empty() ? nullptr : o.kv_type.c_str();
  cp.kv_block = o.kv_block;
  cp.kv_ram = SizeOption(o.kv_ram, "--kv-ram");
  cp.kv_disk = o.kv_disk.empty() ? nullptr : o.kv_disk.c_str();
  cp.kv_disk_max = SizeOption(o.kv_disk_max, "--kv-disk-max");
  const std::string tune_cache = TuneCachePath(o.tune);
  cp.tune_cache = tune_cache.empty() ? nullptr : tune_cache.c_str();
  const int32_t n_ctx = cp.n_ctx > 0 ? cp.n_ctx : strata_model_n_ctx_train(model.get());
  strata_context* raw_ctx = nullptr;
  if (strata_context_init(model.get(), &cp, &raw_ctx) != STRATA_OK) FailC("cannot create context");
  Handle<strata_context> ctx(raw_ctx, strata_context_free);
  std::fprintf(stderr, "strata: %s\n", strata_context_load_summary(ctx.get()));
  std::vector<Handle<strata_lora>> loras;
  std::vector<strata_lora*> lora_ptrs;
  std::vector<float> lora_scales;
  for (const LoraFlag& f : lora_flags) {
    strata_lora* raw = nullptr;
    if (strata_lora_load(model.get(), f.path.c_str(), &raw) != STRATA_OK) FailC("--lora");
    loras.emplace_back(raw, strata_lora_free);
    lora_ptrs.push_back(raw);
    lora_scales.push_back(f.scale);
    std::fprintf(stderr, "strata: LoRA adapter %s (scale %g)\n", f.path.c_str(), static_cast<double>(f.scale));
  }
  if (!loras.empty() && strata_context_set_loras(ctx.get(), lora_ptrs.data(), lora_scales.data(), lora_ptrs.size()) !=
                            STRATA_OK)
    FailC("--lora");

  // Speculative decoding: the draft model gets a context of its own, as long as the model's.
  Handle<strata_model> draft_model(nullptr, strata_model_free);
  Handle<strata_context> draft_ctx(nullptr, strata_context_free);
  if (spec_method == "draft") {
    strata_model_params dmp = strata_model_default_params();
    dmp.path = o.spec.draft_model.c_str();
    strata_model* raw = nullptr;
    if (strata_model_load(&dmp, &raw) != STRATA_OK) FailC("cannot load draft model " + o.spec.draft_model);
    draft_model.reset(raw);
    strata_context_params dcp = cp;
    dcp.n_ctx = n_ctx;
    dcp.kv_type = nullptr;  // the draft model's default
    dcp.kv_ram = UINT64_MAX;
    dcp.kv_disk = nullptr;  // a small model's KV stays in RAM
    strata_context* raw_dctx = nullptr;
    if (strata_context_init(draft_model.get(), &dcp, &raw_dctx) != STRATA_OK)
      FailC("cannot create the draft model's context");
    draft_ctx.reset(raw_dctx);
    std::fprintf(stderr, "strata: draft: %s\n", strata_context_load_summary(draft_ctx.get()));
  }

  strata_sampler_params sp = strata_sampler_default_params();
  sp.temperature = o.sampling.temperature;
  sp.top_k = o.sampling.top_k;
  sp.top_p = o.sampling.top_p;
  sp.min_p = o.sampling.min_p;
  sp.repeat_penalty = o.sampling.repeat_penalty;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  strata_sampler* raw_sampler = nullptr;
  if (strata_sampler_init(&sp, &raw_sampler) != STRATA_OK) FailC("cannot create sampler");
  Handle<strata_sampler> sampler(raw_sampler, strata_sampler_free);
  strata_detokenizer* raw_detok = nullptr;
  if (strata_detokenizer_init(model.get(), &raw_detok) != STRATA_OK) FailC("cannot create detokenizer");
  Handle<strata_detokenizer> detok(raw_detok, strata_detokenizer_free);
  if (o.verbose) std::fprintf(stderr, "strata: seed %llu\n", static_cast<unsigned long long>(sp.seed));
  std::string gbnf;
  if (!o.grammar_file.empty()) CheckOk("--grammar-file", ReadSmallFile(o.grammar_file, grammar::kMaxGbnfBytes, &gbnf));

  // A session's tokens (and its sampler state) are the prefix of this run.
  size_t n_cached = 0;
  if (!session_path.empty()) {
    const strata_status st = strata_session_load(ctx.get(), sampler.get(), session_path.c_str());
    if (st != STRATA_OK && st != STRATA_ERR_NOT_FOUND) FailC("cannot load session " + o.session);
    n_cached = static_cast<size_t>(strata_context_n_past(ctx.get()));
  }
  std::vector<strata_token> tokens = Tokenize(model.get(), o.prompt, n_cached == 0);
  if (n_cached > 0 && tokens.empty()) {
    // Nothing new to append: recompute the last cached token to get the logits to sample from.
    std::vector<strata_token> all(n_cached);
    size_t n = 0;
    if (strata_context_tokens(ctx.get(), all.data(), all.size(), &n) != STRATA_OK) FailC("session");
    tokens.push_back(all.back());
    if (strata_context_truncate(ctx.get(), static_cast<int32_t>(n_cached - 1)) != STRATA_OK) FailC("session");
  }
  if (tokens.empty()) Fail("run", Status::InvalidArgument("empty prompt and the model adds no BOS token"));
  if (n_cached > 0 && o.verbose) std::fprintf(stderr, "strata: session %s: %zu tokens restored\n", o.session.c_str(), n_cached);

  for (size_t i = n_cached > 0 && o.prompt.empty() ? tokens.size() : 0; i < tokens.size(); ++i)
    strata_sampler_accept_prompt(sampler.get(), tokens[i]);
  // The grammar constrains this run's completion (set after the prompt, which it does not cover).
  if (!gbnf.empty() && strata_sampler_set_grammar(sampler.get(), model.get(), gbnf.data(), gbnf.size()) != STRATA_OK)
    FailC("--grammar-file " + o.grammar_file);
  const auto t0 = std::chrono::steady_clock::now();
  if (strata_decode(ctx.get(), tokens.data(), tokens.size(), false) != STRATA_OK) FailC("prompt");
  const auto t1 = std::chrono::steady_clock::now();

  const int32_t n_vocab = strata_model_n_vocab(model.get());
  strata_token prev = tokens.back();
  int32_t n_gen = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> logits_out(nullptr, std::fclose);
  if (!o.logits_out.empty()) {
    logits_out.reset(std::fopen(o.logits_out.c_str(), "wb"));
    if (!logits_out) Fail("--logits-out", Status::IOError(o.logits_out + ": cannot create"));
  }
  // Writes a generated token's text.
  auto emit = [&](strata_token next) {
    size_t len = 0;
    const char* text = strata_detokenizer_push(detok.get(), next, prev, &len);
    std::fwrite(text, 1, len, stdout);
    std::fflush(stdout);
    prev = next;
    ++n_gen;
  };
  // After a generated token: false if the context has no room left to run it.
  auto room = [&]() {
    if (strata_context_n_past(ctx.get()) < n_ctx) return true;
    std::fprintf(stderr, "strata: context full after %d tokens; stopping\n", n_ctx);
    return false;
  };
  // A token below 0: the grammar allows none. True if that ends the text (it is complete).
  auto grammar_ends = [&]() {
    if (strata_sampler_grammar_can_end(sampler.get())) return true;
    std::fprintf(stderr, "\nstrata: no token of the vocabulary continues the grammar (or it is too ambiguous to follow)\n");
    throw CLI::RuntimeError(1);
  };
  Handle<strata_speculator> spec(nullptr, strata_speculator_free);
  if (!spec_method.empty()) {
    strata_speculator_params spp = strata_speculator_default_params();
    spp.draft_min = o.spec.draft_min;
    spp.draft_max = o.spec.draft_max;
    strata_speculator* raw_spec = nullptr;
    if (strata_speculator_init(ctx.get(), draft_ctx.get(), &spp, &raw_spec) != STRATA_OK)
      FailC(spec_method == "draft" ? "--draft-model " + o.spec.draft_model : "--spec ngram");
    spec.reset(raw_spec);
    std::vector<strata_token> out(static_cast<size_t>(o.spec.draft_max) + 1);
    bool ended = false, full = false;  // by the model or grammar; by the context
    while (n_gen < o.n_predict && !ended && !full) {
      size_t n = 0;
      const size_t want = std::min(out.size(), static_cast<size_t>(o.n_predict - n_gen));
      if (strata_speculator_next(spec.get(), sampler.get(), out.data(), want, &n) != STRATA_OK) FailC("generation");
      for (size_t i = 0; i < n && !ended; ++i) {
        if (out[i] < 0) {
          ended = grammar_ends();
        } else if (strata_model_is_eog(model.get(), out[i])) {
          ended = true;
        } else {
          emit(out[i]);  // accepted into the sampler by the speculator
        }
      }
      // The context holds all but the last generated token.
      full = !ended && !room();
    }
    // A session keeps every generated token: the last one runs through the model too.
    if (!session_path.empty() && !ended && !full && strata_speculator_flush(spec.get()) != STRATA_OK) FailC("generation");
  }
  while (spec == nullptr && n_gen < o.n_predict) {
    const float* logits = strata_get_logits(ctx.get(), 0);
    if (logits_out && std::fwrite(logits, sizeof(float), static_cast<size_t>(n_vocab), logits_out.get()) !=
                          static_cast<size_t>(n_vocab))
      Fail("--logits-out", Status::IOError(o.logits_out + ": write failed"));
    strata_token next = strata_sampler_sample(sampler.get(), logits, n_vocab);
    if (next < 0 && grammar_ends()) break;
    if (strata_model_is_eog(model.get(), next)) break;
    strata_sampler_accept(sampler.get(), next);
    emit(next);
    if (!room()) break;
    // The last token needs no forward pass unless a session keeps it.
    if (n_gen == o.n_predict && session_path.empty()) break;
    if (strata_decode(ctx.get(), &next, 1, false) != STRATA_OK) FailC("generation");
  }
  size_t len = 0;
  const char* rest = strata_detokenizer_flush(detok.get(), &len);
  std::fwrite(rest, 1, len, stdout);
  std::fflush(stdout);
  const auto t2 = std::chrono::steady_clock::now();
  if (!session_path.empty() && strata_session_save(ctx.get(), sampler.get(), session_path.c_str()) != STRATA_OK)
    FailC("cannot save session " + o.session);
  const double pp = Seconds(t0, t1), tg = Seconds(t1, t2);
  std::fprintf(stderr, "\nstrata: prompt %zu tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s)\n",
               tokens.size(), pp, tokens.size() / (pp > 0 ? pp : 1e-9), n_gen, tg, n_gen / (tg > 0 ? tg : 1e-9));
  if (const char* nodes = strata_context_kv_nodes_summary(ctx.get()); *nodes != '\0')
    std::fprintf(stderr, "strata: %s\n", nodes);
  if (spec != nullptr) {
    uint64_t rounds = 0, drafted = 0, accepted = 0;
    strata_speculator_stats(spec.get(), &rounds, &drafted, &accepted);
    std::fprintf(stderr, "strata: speculative (%s): %llu rounds, %llu tokens drafted, %llu accepted (%.1f%%)\n",
                 spec_method.c_str(), static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(drafted),
                 static_cast<unsigned long long>(accepted), drafted > 0 ? 100.0 * accepted / drafted : 0.0);
  }
}

}  // namespace

void AddRunCommand(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate a completion of a prompt (completion only on stdout)");
  cmd->add_option("-m,--model", opts->model, "Model file (.gguf or llama2.c .bin); default: the bundled stories260K")
      ->check(NonEmpty());
  cmd->add_option("--tokenizer", opts->tokenizer, "llama2.c tokenizer.bin (for .bin models)")->check(NonEmpty());
  CLI::Option* prompt = cmd->add_option("-p,--prompt", opts->prompt,
                                        "Prompt text (default: -f, else standard input unless it is a terminal)");
  cmd->add_option("-f,--file", opts->prompt_file, "Read the prompt from this file (one final newline dropped)")
      ->check(NonEmpty())
      ->excludes(prompt);
  cmd->add_option("-n,--n-predict", opts->n_predict, "Number of tokens to generate")->check(CLI::Range(0, 1 << 24));
  AddSamplingFlags(cmd, &opts->sampling, "");
  cmd->add_option("-s,--seed", opts->seed, "RNG seed (default: random)")->check(CLI::Range(int64_t{-1}, INT64_MAX));
  cmd->add_option("-t,--threads", opts->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", opts->ctx_size, "Context size (default: the model's)")->check(CLI::Range(0, 1 << 22));
  cmd->add_option("-b,--batch-size", opts->batch, "Prompt tokens per forward pass")->check(CLI::Range(1, 8192));
  cmd->add_option("--session", opts->session, "Continue and save the named session (locked while it runs)")
      ->check(NonEmpty());
  cmd->add_option("--session-dir", opts->session_dir, "Where sessions live (default: ~/.cache/strata/sessions)")
      ->check(NonEmpty());
  cmd->add_option("--kv-type", opts->kv_type, "KV cache type: f32, f16, q8_0 (default: f32 for f32 models, else f16)");
  cmd->add_option("--kv-block", opts->kv_block, "Positions per KV block")->check(CLI::Range(1, 4096));
  cmd->add_option("--kv-ram", opts->kv_ram, "RAM budget for the KV cache, e.g. 256M (0: only what a step needs)");
  cmd->add_option("--kv-disk", opts->kv_disk, "Directory for KV blocks beyond the RAM budget")->check(NonEmpty());
  cmd->add_option("--kv-disk-max", opts->kv_disk_max, "Disk budget for the KV cache, e.g. 8G");
  cmd->add_option("--grammar-file", opts->grammar_file,
                  "GBNF grammar (llama.cpp's format) the completion must follow; it ends where the grammar can")
      ->check(NonEmpty());
  AddSpecFlags(cmd, &opts->spec);
  cmd->add_option("--lora", opts->loras,
                  "LoRA adapter (llama.cpp's GGUF format) as FILE[:SCALE] (repeatable; several are summed)")
      ->check(NonEmpty());
  AddTuneFlags(cmd, &opts->tune);
  AddMpiFlags(cmd, &opts->mpi);
  cmd->add_option("--logits-out", opts->logits_out,
                  "Write the logits each token is sampled from to this file (F32 [n_vocab] per token, comparing runs)")
      ->check(NonEmpty());
  cmd->add_flag("-v,--verbose", opts->verbose, "Log more to stderr");
  cmd->callback([opts, prompt] {
    opts->prompt_given = prompt->count() > 0;
    Run(*opts);
  });
}

}  // namespace strata::cli
