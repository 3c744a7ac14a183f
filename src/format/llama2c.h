// Reader of llama2.c's legacy checkpoint (.bin): a 28-byte header of 7 int32
// followed by fp32 weights in llama2.c's order (export.py legacy_export):
//   token_embedding [vocab][dim], rms_att [L][dim], wq [L][dim][dim],
//   wk [L][kv_dim][dim], wv [L][kv_dim][dim], wo [L][dim][dim], rms_ffn [L][dim],
//   w1 [L][hidden][dim], w2 [L][dim][hidden], w3 [L][hidden][dim], rms_final [dim],
//   freq_cis_real [seq_len][head_size/2], freq_cis_imag [seq_len][head_size/2],
//   wcls [vocab][dim] (only if vocab_size in the header is negative).
// (C order, outermost first; matrices are [out][in].) The freq_cis tables are
// unused (RoPE is computed) and may be absent when the classifier is tied.
//
// Tensors are exposed under llama.cpp's GGUF names with ggml shapes (innermost
// first), pointing into the file (never copied):
//   token_embd.weight {dim, vocab}          output_norm.weight {dim}
//   blk.N.attn_norm.weight {dim}            blk.N.ffn_norm.weight {dim}
//   blk.N.attn_q.weight {dim, dim}          blk.N.attn_output.weight {dim, dim}
//   blk.N.attn_k.weight {dim, kv_dim}       blk.N.attn_v.weight {dim, kv_dim}
//   blk.N.ffn_gate.weight (w1) {dim, hidden} blk.N.ffn_up.weight (w3) {dim, hidden}
//   blk.N.ffn_down.weight (w2) {hidden, dim}
//   output.weight {dim, vocab}              only if the classifier is untied
//
// Thread-safety: a Llama2cFile is immutable after Open and safe to share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "core/tensor.h"

namespace strata {

struct Llama2cConfig {
  int32_t dim = 0;           // model width
  int32_t hidden_dim = 0;    // FFN width
  int32_t n_layers = 0;
  int32_t n_heads = 0;       // query heads
  int32_t n_kv_heads = 0;    // key/value heads (divides n_heads)
  int32_t vocab_size = 0;    // always positive here; see shared_classifier
  int32_t seq_len = 0;       // maximum context the model was trained for
  bool shared_classifier = true;  // header vocab_size > 0: output = token_embd
  int32_t head_size() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_size() * n_kv_heads; }
};

// A tensor with its GGUF-style name.
struct NamedTensor {
  std::string name;
  Tensor tensor;  // F32, data points into the file
};

class Llama2cFile {
 public:
  // Size of the header: 7 little-endian int32.
  static constexpr size_t kHeaderBytes = 28;

  // Maps and parses the file at path.
  [[nodiscard]] static Status Open(Env* env, const std::string& path, std::unique_ptr<Llama2cFile>* out);
  // Parses bytes the caller keeps alive for the life of the result.
  // REQUIRES: data points to size readable bytes. Tensor data is only 4-byte
  // aligned if data is.
  // Errors: kCorrupt for a header out of range (non-positive or > 2^20 sizes,
  // n_heads not dividing dim, n_kv_heads not dividing n_heads, odd head size)
  // or a size that does not match the header (naming the first missing part).
  [[nodiscard]] static Status Parse(const uint8_t* data, size_t size, std::unique_ptr<Llama2cFile>* out);

  const Llama2cConfig& config() const { return config_; }
  const std::vector<NamedTensor>& tensors() const { return tensors_; }
  // nullptr if there is no tensor of that name.
  const Tensor* FindTensor(std::string_view name) const;

  // MappedFile::ReleasePages / WillNeed for bytes of this file (no-ops for caller-owned bytes).
  void ReleasePages(const void* p, size_t n) const {
    if (mapping_) mapping_->ReleasePages(p, n);
  }
  void WillNeed(const void* p, size_t n) const {
    if (mapping_) mapping_->WillNeed(p, n);
  }

 private:
  Llama2cFile() = default;
  // Checks what follows rms_final_weight at offset (freq_cis tables, wcls)
  // and adds output.weight if the classifier is untied.
  [[nodiscard]] Status ParseTail(const uint8_t* data, size_t size, uint64_t offset);
  std::unique_ptr<MappedFile> mapping_;  // null when parsed from caller-owned bytes
  Llama2cConfig config_;
  std::vector<NamedTensor> tensors_;  // in file order
};

}  // namespace strata
