// LoraAdapter: a LoRA adapter in llama.cpp's GGUF adapter format, bound to
// the base model it adapts. The forward pass adds its low-rank products at
// the Linear seam (engine/linear.h).
//
// File (as llama.cpp's convert_lora_to_gguf.py writes it and
// llama_adapter_lora_init reads it):
//   metadata  general.type = "adapter", adapter.type = "lora",
//             general.architecture = the base model's, adapter.lora.alpha
//             (a number; absent: 0)
//   tensors   for each adapted matrix NAME of the base file (e.g.
//             blk.3.attn_q.weight, [n_in, n_out] in ggml order) the pair
//             NAME.lora_a [n_in, r] and NAME.lora_b [r, n_out]: r rows of n_in
//             and n_out rows of r, so that W' = W + s·B·A and
//             y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ. For token_embd.weight [n_embd, n_vocab]
//             they are stored the other way round: lora_a [r, n_vocab] and
//             lora_b [r, n_embd], and the embedding of token t gains s·B·A[t]
//             (A[t] = row t of lora_a).
//   s = scale · alpha / r when alpha != 0, else scale; r is lora_b's ne[0];
//   scale is the user's, per use of the adapter (LoraUse). The pairs may be
//   of any type strata reads; they are held as F32 (LoraPair).
// A matrix the base file fuses (phi3's attn_qkv and ffn_up) is adapted
// whole: each Linear cut from it takes its rows of lora_b.
//
// Every check fails with a one-line message naming the key or tensor:
// general.type, adapter.type and the architecture as above; alpha finite;
// every tensor named NAME.lora_a or NAME.lora_b, both present, 2-D, of a
// type strata supports; NAME a matrix of the base model's file (token_embd
// only where the output is not tied to it: llama.cpp would apply the pair to
// the output too, where its shapes do not multiply); the shapes as above
// against the base tensor's. Norm weights an adapter carries
// (mergekit-extract-lora writes *_norm.weight; llama.cpp ignores them) and
// activated LoRA (adapter.alora.invocation_tokens) are refused as
// unsupported, never silently ignored.
//
// Thread-safety: immutable after creation; share freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace strata {
namespace gguf { class GgufFile; }
class Model;

// One adapted product, held as F32 copies (dequantized at load: the
// low-rank products are small, and F32 keeps them exact), both transposed so
// that each product is a weighted sum of rows (kernels::AxpyRowsF32):
// t = Σ_i x_i · at_i (t = x·Aᵀ, rank values), y += scale · factor · Σ_k t_k · bt_k.
struct LoraPair {
  int64_t n_in = 0, rank = 0, n_out = 0;  // token_embd: n_in is n_vocab
  // lora_a transposed: n_in rows of rank (token_embd: row t is A[t], as stored).
  const float* at = nullptr;
  // lora_b transposed: rank rows of n_out, each starting bt_stride floats
  // after the previous (a Linear cut from a fused matrix reads its columns
  // of the whole matrix's rows).
  const float* bt = nullptr;
  int64_t bt_stride = 0;
  float factor = 1.0f;  // alpha / rank, or 1 when alpha is 0
};

class LoraAdapter {
 public:
  // Maps path and binds it to model (see the header comment for the checks).
  [[nodiscard]] static Status Load(Env* env, const std::string& path, const Model& model,
                                   std::unique_ptr<LoraAdapter>* out);
  // Binds a parsed file to a base model of hyper-parameters hp and weights w
  // (as BindWeights made them), copying the pairs out of it.
  // REQUIRES: w outlives the adapter.
  [[nodiscard]] static Status Bind(const gguf::GgufFile& file, const HParams& hp, const ModelWeights& w,
                                   std::unique_ptr<LoraAdapter>* out);
  ~LoraAdapter();

  // The pair of Linear slot `slot` (model/weights.h), or null when the adapter leaves it alone.
  const LoraPair* pair(int32_t slot) const {
    return slot >= 0 && static_cast<size_t>(slot) < pairs_.size() && pairs_[static_cast<size_t>(slot)].at != nullptr
               ? &pairs_[static_cast<size_t>(slot)]
               : nullptr;
  }
  // The token embedding's pair, or null.
  const LoraPair* token_embd() const { return token_embd_.at != nullptr ? &token_embd_ : nullptr; }
  // The weights it was bound to (a runner accepts only adapters of its model).
  const ModelWeights* base() const { return base_; }
  float alpha() const { return alpha_; }
  // Base matrices adapted (a fused one counted once) and the largest rank.
  int32_t n_matrices() const { return n_matrices_; }
  int32_t max_rank() const { return max_rank_; }

 private:
  LoraAdapter() = default;

  const ModelWeights* base_ = nullptr;
  std::vector<std::vector<float>> owned_;  // the pairs' F32 copies
  std::vector<LoraPair> pairs_;  // [linear slot]; at == nullptr: not adapted
  LoraPair token_embd_;
  float alpha_ = 0.0f;
  int32_t n_matrices_ = 0;
  int32_t max_rank_ = 0;
};

// One adapter applied with the user's scale.
struct LoraUse {
  const LoraAdapter* adapter = nullptr;
  float scale = 1.0f;
};
// Adapters applied together (their products summed), as llama.cpp applies
// every adapter set on a context. A sequence runs with one set, or none.
using LoraSet = std::vector<LoraUse>;

}  // namespace strata
