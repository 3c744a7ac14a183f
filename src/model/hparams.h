// HParams: a model's hyper-parameters, read from GGUF metadata per
// architecture ({arch}.* keys, with llama.cpp's defaults) or from a llama2.c
// header. Metadata that would change the math in a way strata does not
// implement (an unknown rope scaling type, experts, per-layer head counts) is
// refused with a message naming the key, never ignored.
//
// Thread-safety: plain data; the loaders are reentrant.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/arch.h"

namespace strata {
namespace gguf { class GgufFile; }

struct HParams {
  Arch arch = Arch::kLlama;
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;   // context length the model was trained for
  int32_t n_ctx_orig = 0;    // rope.scaling.original_context_length (default n_ctx_train): the
                             // context before RoPE scaling; LongRoPE picks its factors by it
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;     // grouped-query attention: n_head % n_head_kv == 0
  int32_t n_ff = 0;
  int32_t head_dim = 0;      // attention.key_length (= value_length); default n_embd / n_head
  int32_t n_rot = 0;         // rotary dimensions per head, <= head_dim
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // positions are multiplied by this (linear scaling = 1/factor)
  float rope_attn_factor = 1.0f; // rope.scaling.attn_factor: cos and sin are multiplied by this, so
                                 // every attention score by its square (LongRoPE files set it)
  // rope.scaling.type yarn: YaRN with llama.cpp's parameters for these
  // architectures (extrapolation mix 1, beta_fast 32, beta_slow 1, over
  // n_ctx_orig; llama.cpp reads no rope.scaling.yarn_* key for them).
  bool rope_yarn = false;
  RopeType rope_type = RopeType::kNorm;
  FfnAct ffn_act = FfnAct::kSilu;
  float embd_scale = 1.0f;  // token embeddings are multiplied by this (gemma: sqrtf(n_embd))

  // Attention scores: attn_scale · q·k, soft-capped when attn_softcap > 0
  // (engine/attention_pass.h AttentionMath).
  float attn_scale = 0.0f;     // 1/sqrtf(head_dim), unless the architecture says otherwise
  float attn_softcap = 0.0f;   // gemma2: {arch}.attn_logit_softcapping (default 50)
  float final_softcap = 0.0f;  // > 0: logits soft-capped at this (gemma2, gemma3: final_logit_softcapping)
  // Sliding-window attention: a layer il with swa_layers[il] != 0 sees the
  // n_swa positions up to the query's. swa_layers: [n_layer], or empty (none).
  int32_t n_swa = 0;
  std::vector<uint8_t> swa_layers;
  float rope_freq_base_swa = 10000.0f;  // the RoPE of the sliding-window layers
  float rope_freq_scale_swa = 1.0f;

  int32_t n_embd_q() const { return n_head * head_dim; }
  int32_t n_embd_kv() const { return n_head_kv * head_dim; }
  bool is_swa(int32_t il) const { return !swa_layers.empty() && swa_layers[static_cast<size_t>(il)] != 0; }
};

// Reads the hyper-parameters of architecture arch from f's metadata; n_vocab
// is taken from the token_embd.weight tensor. Checks them (CheckHParams).
[[nodiscard]] Status LoadGgufHParams(const gguf::GgufFile& f, Arch arch, HParams* hp);

// Every count within sanity limits (a hostile file must not make us allocate
// or loop absurdly), divisibility, rotary dimensions, finite rope parameters.
[[nodiscard]] Status CheckHParams(const HParams& hp);

}  // namespace strata
