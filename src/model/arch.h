// Arch: the model architectures strata runs (GGUF general.architecture) and
// the per-architecture facts that do not come from a file's metadata: how
// RoPE pairs dimensions, the FFN activation, which optional blocks exist.
// One table (arch.cc) instead of architecture switches spread over files;
// the forward pass picks its layer builder from the same enum
// (Forward::BuilderFor, engine/forward.h).
//
// Thread-safety: pure functions over constant tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace strata {

enum class Arch : uint8_t {
  kLlama,  // Llama 1/2/3.x, Mistral, SmolLM, TinyLlama; llama2.c .bin models
  kQwen2,  // q/k/v biases
  kQwen3,  // RMS norm over each head of q and k; head_dim from attention.key_length
  kPhi3,   // fused attn_qkv and ffn_up ([gate | up]); LongRoPE rope_factors_long/short
  kGemma,  // embeddings × √n_embd, GELU, the output tied to token_embd
  kGemma2, // gemma + post-attention/post-FFN norms, soft-capping, sliding window on even layers
  kGemma3, // gemma2 without attention soft-capping, + q/k norms, 5 of 6 layers sliding, an optional output
};

// How rotary embeddings pair dimensions (llama.cpp's rope types).
enum class RopeType : int {
  kNorm = 0,  // pairs (2i, 2i+1): llama, llama2.c
  kNeox = 2,  // pairs (i, i + n_rot/2): qwen2, qwen3, phi3, gemma
};

// Which per-pair RoPE frequency factors (θ_i divided by factor[i]) a file may hold.
enum class RopeFactors : uint8_t {
  kNone,
  kLlama3,    // rope_freqs.weight (Llama 3 scaling)
  kLongRope,  // rope_factors_long.weight / rope_factors_short.weight (Phi-3 LongRoPE)
};

// The FFN's gate activation: out = act(gate) * up.
enum class FfnAct : uint8_t {
  kSilu,
  kGeluTanh,  // GELU's tanh approximation (kernels::GeGLU)
};

struct ArchTraits {
  Arch arch;
  const char* name;  // general.architecture
  RopeType rope_type;
  FfnAct ffn_act;
  bool qk_norm;        // blk.N.attn_q_norm / attn_k_norm [head_dim] are required
  bool fused_gate_up;  // blk.N.ffn_up [n_embd, 2 n_ff] holds the gate rows, then the up rows; no ffn_gate
  RopeFactors rope_factors;
  bool scale_embd;     // token embeddings are multiplied by √n_embd
  bool tied_output;    // the output matrix is always token_embd (an output.weight is not used)
  bool post_norms;     // blk.N.post_attention_norm / post_ffw_norm [n_embd] normalize each block's output
};

const ArchTraits& Traits(Arch arch);
inline const char* ArchName(Arch arch) { return Traits(arch).name; }

// The architecture named by general.architecture. kUnsupported naming the
// architecture otherwise; mixture-of-experts architectures (mixtral,
// qwen2moe, qwen3moe, ...) are refused as such.
[[nodiscard]] Status ParseArch(std::string_view name, Arch* out);
// "llama, qwen2, ..." for messages.
std::string SupportedArchNames();

}  // namespace strata
