#include "model/arch.h"

#include <fmt/format.h>

namespace strata {
namespace {

constexpr ArchTraits kArchs[] = {
    // arch, name, rope_type, ffn_act, qk_norm, fused_gate_up, rope_factors, scale_embd, tied_output, post_norms
    {Arch::kLlama, "llama", RopeType::kNorm, FfnAct::kSilu, false, false, RopeFactors::kLlama3, false, false, false},
    {Arch::kQwen2, "qwen2", RopeType::kNeox, FfnAct::kSilu, false, false, RopeFactors::kNone, false, false, false},
    {Arch::kQwen3, "qwen3", RopeType::kNeox, FfnAct::kSilu, true, false, RopeFactors::kNone, false, false, false},
    {Arch::kPhi3, "phi3", RopeType::kNeox, FfnAct::kSilu, false, true, RopeFactors::kLongRope, false, false, false},
    {Arch::kGemma, "gemma", RopeType::kNeox, FfnAct::kGeluTanh, false, false, RopeFactors::kNone, true, true, false},
    {Arch::kGemma2, "gemma2", RopeType::kNeox, FfnAct::kGeluTanh, false, false, RopeFactors::kNone, true, true, true},
    {Arch::kGemma3, "gemma3", RopeType::kNeox, FfnAct::kGeluTanh, true, false, RopeFactors::kNone, true, false, true},
};

// Architectures whose FFN routes tokens to experts: refused by name.
constexpr std::string_view kMoeArchs[] = {"mixtral", "qwen2moe", "qwen3moe", "deepseek2", "dbrx",
                                          "grok",    "olmoe",    "granitemoe", "llama4", "phimoe"};

}  // namespace

const ArchTraits& Traits(Arch arch) { return kArchs[static_cast<size_t>(arch)]; }

std::string SupportedArchNames() {
  std::string names;
  for (const ArchTraits& t : kArchs) names += (names.empty() ? "" : ", ") + std::string(t.name);
  return names;
}

Status ParseArch(std::string_view name, Arch* out) {
  for (const ArchTraits& t : kArchs) {
    if (name == t.name) {
      *out = t.arch;
      return Status::Ok();
    }
  }
  for (std::string_view moe : kMoeArchs)
    if (name == moe)
      return Status::Unsupported(fmt::format("model architecture '{}' is a mixture of experts, which strata does not "
                                             "support yet (supported: {})",
                                             name, SupportedArchNames()));
  return Status::Unsupported(
      fmt::format("model architecture '{}' is not supported (supported: {})", name, SupportedArchNames()));
}

}  // namespace strata
