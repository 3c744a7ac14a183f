// Synthetic LoRA adapters: a random low-rank adapter for a loaded base model,
// in llama.cpp's GGUF adapter format (model/lora_adapter.h), for tests
// (equality with merged weights, conformance with llama.cpp) and benchmarks.
//
// Contents: general.type "adapter", general.architecture (the base's),
// general.name, adapter.type "lora", adapter.lora.alpha; for each targeted
// matrix NAME of the base file, in the order the model binds them,
// NAME.lora_a [n_in, r] and NAME.lora_b [r, n_out] (token_embd.weight:
// lora_a [r, n_vocab] and lora_b [r, n_embd]).
// Values: mean 0, an Irwin-Hall(4) approximation of a normal, the same std
// for A and B, chosen so that the merged change s·B·A (s = alpha / r) has
// `strength` times the RMS of the base matrix (measured over up to 64 of
// its rows; for a fused matrix, over its first part's rows); then rounded
// to the type. Rows are seeded from (seed, tensor index, row).
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace strata {

// The tensor types synth writes adapters in, as ParseDType spells them.
inline constexpr const char* kSynthLoraTypeNames = "f32, f16, bf16, q8_0";

struct SynthLoraSpec {
  int rank = 8;
  float alpha = 16.0f;  // adapter.lora.alpha; 0: s = the user's scale alone
  DType type = DType::kF32;
  uint64_t seed = 0;
  float strength = 0.2f;  // RMS of s·B·A over the base matrix's RMS
  // Matrices adapted, by kind: "attn_q", "attn_k", "attn_v", "attn_qkv",
  // "attn_output", "ffn_gate", "ffn_up", "ffn_down" (blk.N.KIND.weight),
  // "output", "token_embd". Empty: every layer matrix of the base.
  std::vector<std::string> targets;
  std::string name = "synthetic LoRA";  // general.name
};

// The kind of a base tensor name: "blk.3.attn_q.weight" -> "attn_q",
// "output.weight" -> "output"; "" for anything else.
std::string LoraTargetKind(const std::string& tensor_name);

// Writes an adapter for the base model (hp, w) to path atomically.
// kInvalidArgument for a rank < 1 or above 4096, a type not in
// kSynthLoraTypeNames (q8_0 needs n_in and r multiples of 32), a strength
// or alpha that is not finite, an unknown target kind or targets the base
// does not have (token_embd with a tied output included).
// REQUIRES: w's matrices are in the file's row layout (a model loaded with
// pack_weights = false).
[[nodiscard]] Status SynthesizeLora(Env* env, const HParams& hp, const ModelWeights& w, const SynthLoraSpec& spec,
                                    const std::string& path);

}  // namespace strata
