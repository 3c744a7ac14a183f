// `strata synth OUT.gguf --layers L --embd E --ff F --heads H --kv-heads KV
//  --vocab V --type f32|f16|bf16|q8_0|q4_0 [--arch A] [--head-dim D] [--rope-freqs]
//  [--longrope ORIG_CTX] [--sliding-window N] [--attn-softcap C] [--final-softcap C]
//  [--rope-linear FACTOR | --yarn FACTOR --yarn-orig-ctx N]
//  [--weights small|conformance] [--ctx C] [--seed S] [--threads K]`
// `strata synth OUT.gguf --lora BASE.gguf [--rank R] [--alpha A] [--strength X]
//  [--lora-targets KIND,...] [--type f32|f16|bf16|q8_0] [--seed S]`: a random
//  LoRA adapter for BASE in llama.cpp's format (model/synth_lora.h).
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
#include "model/model.h"
#include "model/synth.h"
#include "model/synth_lora.h"

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
  std::string lora_base;  // --lora: write an adapter for this model instead
  SynthLoraSpec lora;
  std::vector<CLI::Option*> shape;  // required without --lora
};

void RunSynthLora(SynthOptions o) {
  for (const CLI::Option* opt : o.shape)
    if (opt->count() > 0)
      Fail("synth", Status::InvalidArgument(fmt::format("{} describes a model; --lora writes an adapter for BASE's shape",
                                                        opt->get_name())));
  if (!o.type.empty()) {
    const std::optional<DType> type = ParseDType(o.type);
    if (!type)
      Fail("synth", Status::InvalidArgument(fmt::format("unknown type '{}' (allowed: {})", o.type, kSynthLoraTypeNames)));
    o.lora.type = *type;
  }
  o.lora.seed = o.spec.seed;
  ModelLoadOptions mo;
  mo.path = o.lora_base;
  mo.pack_weights = false;  // the adapter's scale is measured on the file's rows
  std::unique_ptr<Model> base;
  CheckOk("synth: cannot load model " + o.lora_base, Model::Load(Env::Default(), mo, &base));
  CheckOk("synth", SynthesizeLora(Env::Default(), base->hparams(), base->weights(), o.lora, o.out_path));
}

void RunSynth(SynthOptions o) {
  if (!o.lora_base.empty()) return RunSynthLora(std::move(o));
  for (const CLI::Option* opt : o.shape)
    if (opt->count() == 0)
      Fail("synth", Status::InvalidArgument(fmt::format("{} is required (or --lora BASE for an adapter)", opt->get_name())));
  if (o.type.empty()) Fail("synth", Status::InvalidArgument("--type is required (or --lora BASE for an adapter)"));
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
  opts->shape = {cmd->add_option("--layers", spec.n_layer, "Transformer blocks"),
                 cmd->add_option("--embd", spec.n_embd, "Embedding width"),
                 cmd->add_option("--ff", spec.n_ff, "Feed-forward width"),
                 cmd->add_option("--heads", spec.n_head, "Attention heads"),
                 cmd->add_option("--kv-heads", spec.n_head_kv, "Key/value heads (divides --heads)"),
                 cmd->add_option("--vocab", spec.n_vocab, "Vocabulary size (>= 260)")};
  cmd->add_option("--type", opts->type,
                  std::string("Weight type: ") + kSynthTypeNames + " (--lora: " + kSynthLoraTypeNames + ", default f32)");
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
  SynthLoraSpec& lora = opts->lora;
  cmd->add_option("--lora", opts->lora_base,
                  "Write a random LoRA adapter for this base model (llama.cpp's GGUF adapter format) instead")
      ->check(NonEmpty());
  cmd->add_option("--rank", lora.rank, "--lora: rank r")->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("--alpha", lora.alpha, "--lora: adapter.lora.alpha (scale alpha / r)")->capture_default_str();
  cmd->add_option("--strength", lora.strength, "--lora: RMS of the weight change over the base matrix's")
      ->capture_default_str();
  cmd->add_option("--lora-targets", lora.targets,
                  "--lora: matrices adapted (attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up, "
                  "ffn_down, output, token_embd; default: every layer matrix)")
      ->delimiter(',');
  cmd->callback([opts] { RunSynth(*opts); });
}

}  // namespace strata::cli
