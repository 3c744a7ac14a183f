// `strata synth OUT.gguf --layers L --embd E --ff F --heads H --kv-heads KV
//  --vocab V --type f32|f16|bf16|q8_0|q4_0 [--arch A] [--head-dim D] [--rope-freqs]
//  [--longrope ORIG_CTX] [--sliding-window N] [--attn-softcap C] [--final-softcap C]
//  [--rope-linear FACTOR | --yarn FACTOR --yarn-orig-ctx N]
//  [--weights small|conformance] [--ctx C] [--seed S] [--threads K]`
#include <algorithm>
#include <fmt/format.h>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/dtype.h"
#include "core/env.h"
#include "model/synth.h"

namespace strata::cli {
namespace {

struct SynthOptions {
  std::string out_path;
  std::string type;
  std::string arch = "llama";
  std::string weights = "small";
  SynthSpec spec;
  float yarn = 0.0f;
  int yarn_orig_ctx = 0;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

void RunSynth(SynthOptions o) {
  const std::optional<DType> type = ParseDType(o.type);
  if (!type) Fail("synth", Status::InvalidArgument(fmt::format("unknown type '{}' (allowed: {})", o.type, kSynthTypeNames)));
  o.spec.type = *type;
  CheckOk("synth", ParseArch(o.arch, &o.spec.arch));
  if (o.weights != "small" && o.weights != "conformance")
    Fail("synth", Status::InvalidArgument(fmt::format("unknown --weights '{}' (allowed: small, conformance)", o.weights)));
  o.spec.weights = o.weights == "small" ? SynthWeights::kSmall : SynthWeights::kConformance;
  if (o.yarn > 0) {
    o.spec.rope_scaling = SynthRopeScaling::kYarn;
    o.spec.rope_scaling_factor = o.yarn;
    o.spec.n_ctx_orig = o.yarn_orig_ctx;
  } else {
    o.spec.longrope = o.spec.n_ctx_orig > 0;
    if (o.spec.rope_scaling_factor > 0) o.spec.rope_scaling = SynthRopeScaling::kLinear;
  }
  ProgressBar bar("synth");
  const Status s = SynthesizeModel(Env::Default(), o.spec, o.out_path, o.threads,
                                   [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Finish();
  CheckOk("synth", s);
}

}  // namespace

void AddSynthCommand(CLI::App& app) {
  auto opts = std::make_shared<SynthOptions>();
  SynthSpec& spec = opts->spec;
  spec.seed = 1234;
  CLI::App* cmd = app.add_subcommand("synth", "Write a GGUF of a given architecture and shape with random weights");
  cmd->add_option("output", opts->out_path, "Output GGUF path (written atomically)")->required();
  cmd->add_option("--layers", spec.n_layer, "Transformer blocks")->required();
  cmd->add_option("--embd", spec.n_embd, "Embedding width")->required();
  cmd->add_option("--ff", spec.n_ff, "Feed-forward width")->required();
  cmd->add_option("--heads", spec.n_head, "Attention heads")->required();
  cmd->add_option("--kv-heads", spec.n_head_kv, "Key/value heads (divides --heads)")->required();
  cmd->add_option("--vocab", spec.n_vocab, "Vocabulary size (>= 260)")->required();
  cmd->add_option("--type", opts->type, std::string("Weight type: ") + kSynthTypeNames)->required();
  cmd->add_option("--arch", opts->arch, "Architecture: " + SupportedArchNames())->capture_default_str();
  cmd->add_option("--head-dim", spec.head_dim, "Head dimension (default: embd / heads)");
  cmd->add_flag("--rope-freqs", spec.rope_freqs, "llama: Llama 3 RoPE scaling factors (rope_freqs.weight)");
  cmd->add_option("--longrope", spec.n_ctx_orig,
                  "phi3: LongRoPE factors (rope_factors_long/short.weight) for this original context (<= --ctx)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--rope-linear", spec.rope_scaling_factor, "Linear RoPE scaling by this factor (> 1)");
  cmd->add_option("--yarn", opts->yarn, "YaRN RoPE scaling by this factor (> 1), with --yarn-orig-ctx");
  cmd->add_option("--yarn-orig-ctx", opts->yarn_orig_ctx, "YaRN: the original context (<= --ctx)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--sliding-window", spec.n_swa,
                  "gemma2, gemma3: attention.sliding_window (default: llama.cpp's 4096 for gemma2, none for gemma3)")
      ->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--attn-softcap", spec.attn_softcap, "gemma2: attn_logit_softcapping (default: llama.cpp's 50)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--final-softcap", spec.final_softcap,
                  "gemma2, gemma3: final_logit_softcapping (default: llama.cpp's 30 for gemma2, none for gemma3)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--weights", opts->weights,
                  "Weight scales: small (std 0.02, benchmarks) or conformance (dominant embeddings, logits std ~4)")
      ->capture_default_str();
  cmd->add_option("--ctx", spec.n_ctx, "Context length")->capture_default_str();
  cmd->add_option("--seed", spec.seed, "PRNG seed (same seed, same bytes)")->capture_default_str();
  cmd->add_option("--threads", opts->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([opts] { RunSynth(*opts); });
}

}  // namespace strata::cli
