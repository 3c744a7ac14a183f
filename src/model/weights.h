// ModelWeights: views of every weight of a model, bound by GGUF tensor name
// per architecture. Every tensor of the file must be bound (one the
// architecture does not use is refused, naming it, never ignored); every
// tensor the architecture requires must be present with the expected type and
// shape.
//
// Shapes in ggml order [inner, outer]: a matrix [n_in, n_out] has n_out rows of n_in.
//
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/hparams.h"

namespace strata {

// A weight matrix and its optional bias: y = x · wᵀ (+ b). Every matmul of the
// forward pass goes through one (engine/linear.h), the place where adapters
// and sharding plug in.
struct Linear {
  Tensor w;  // [n_in, n_out]
  Tensor b;  // F32 [n_out], or data == nullptr: no bias
  // Index of this product in ModelWeights::linear_sources, by which an adapter
  // (model/lora_adapter.h) finds its low-rank pair; -1: not adaptable.
  int32_t slot = -1;
};

// The file tensor a Linear's matrix comes from: rows [first_row, first_row +
// rows) of tensor `name` [n_in, file_rows] (a fused attn_qkv or phi3 ffn_up
// feeds several Linears; every other matrix is whole).
struct LinearSource {
  std::string name;  // e.g. "blk.3.attn_q.weight"
  int64_t n_in = 0;
  int64_t first_row = 0;
  int64_t rows = 0;
  int64_t file_rows = 0;
};

struct LayerWeights {
  Tensor attn_norm;    // F32 [n_embd]
  Linear wq;           // [n_embd, n_embd_q]       (+ bias [n_embd_q]: qwen2)
  Linear wk;           // [n_embd, n_embd_kv]      (+ bias: qwen2)
  Linear wv;           // [n_embd, n_embd_kv]      (+ bias: qwen2)
  Tensor attn_q_norm;  // F32 [head_dim] (qwen3, gemma3), else null
  Tensor attn_k_norm;  // F32 [head_dim] (qwen3, gemma3), else null
  Linear wo;           // [n_embd_q, n_embd]
  Tensor attn_post_norm;  // F32 [n_embd]: the attention output's norm (gemma2, gemma3), else null
  Tensor ffn_norm;     // F32 [n_embd]
  Linear ffn_gate;     // [n_embd, n_ff]   (w1; phi3: the first n_ff rows of the file's ffn_up)
  Linear ffn_up;       // [n_embd, n_ff]   (w3; phi3: the last n_ff rows of the file's ffn_up)
  Linear ffn_down;     // [n_ff, n_embd]   (w2)
  Tensor ffn_post_norm;  // F32 [n_embd]: the FFN output's norm (gemma2, gemma3), else null
};

struct ModelWeights {
  Tensor token_embd;   // [n_embd, n_vocab], any supported type (rows dequantized on lookup)
  Tensor output_norm;  // F32 [n_embd]
  Linear output;       // [n_embd, n_vocab]; the same bytes as token_embd when tied
  Tensor rope_freqs;   // F32 [n_rot / 2]: Llama 3 RoPE scaling (θ_i divided by rope_freqs[i]), or null
  // F32 [n_rot / 2] each, or null: Phi-3 LongRoPE factors (θ_i divided by
  // them) for contexts longer than hp.n_ctx_orig, and for the others
  // (engine/rope.h RopeFactorsFor picks one).
  Tensor rope_factors_long;
  Tensor rope_factors_short;
  std::vector<LayerWeights> layers;  // [n_layer]
  // Per Linear slot: where its matrix comes from (every bound matrix of the
  // file but a tied output, which reads token_embd).
  std::vector<LinearSource> linear_sources;
};

// Every matrix a forward pass multiplies by (the output matrix, then each
// layer's), for packing; biases and norms are not matrices.
std::vector<Tensor*> WeightMatrices(ModelWeights* w);

// Bytes of every layer's matrices, biases and norms, the output norm and the
// output matrix: what generating one token streams, besides its embedding row.
uint64_t StreamedWeightBytes(const ModelWeights& w);
// The part of it one layer streams, and the output norm and matrix's.
uint64_t LayerStreamedBytes(const LayerWeights& l);
uint64_t HeadStreamedBytes(const ModelWeights& w);

// Looks a tensor up by name: data == nullptr when absent.
using TensorLookup = std::function<Tensor(const std::string& name)>;

// Binds hp.arch's tensors by name and checks them: required ones present,
// every type supported, every shape as hp says (kCorrupt / kUnsupported
// naming the tensor). names: every tensor in the file; one the architecture
// does not use is refused (kUnsupported naming it and, for known features
// such as experts, the feature).
[[nodiscard]] Status BindWeights(const HParams& hp, const std::vector<std::string>& names, const TensorLookup& lookup,
                                 ModelWeights* out);

}  // namespace strata
