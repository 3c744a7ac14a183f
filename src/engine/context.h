// Context: runs the Llama forward pass for one sequence — owns its KV cache,
// scratch buffers and thread pool; the model is shared and read-only.
//
// A prompt is processed as batches of up to n_batch tokens (one matrix
// multiplication per weight per batch, not per token).
//
// Thread-safety: one thread at a time per Context. Several Contexts may share
// one Model concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/kv_cache.h"
#include "kernels/thread_pool.h"
#include "model/model.h"

namespace strata {

struct ContextParams {
  int32_t n_ctx = 0;      // 0: the model's training context
  int32_t n_batch = 512;  // max tokens per forward pass
  int32_t n_threads = 0;  // 0: all cores
};

enum class LogitsMode { kLast, kAll };

class Context {
 public:
  // REQUIRES: model outlives the context.
  [[nodiscard]] static Status Create(const Model& model, const ContextParams& params, std::unique_ptr<Context>* out);

  const Model& model() const { return model_; }
  int32_t n_ctx() const { return kv_.n_ctx(); }
  int32_t n_past() const { return kv_.n_past(); }
  int32_t n_threads() const { return pool_.n_threads(); }

  // Appends tokens at positions n_past.. and runs the forward pass. On error
  // (token out of range, context full) the sequence is unchanged.
  // kLast: logits of the last token only; kAll: of every token of this call.
  [[nodiscard]] Status Decode(std::span<const int32_t> tokens, LogitsMode mode);

  // F32 [n_vocab] logits of the i-th token of the last Decode (with kLast, i = 0 is the last token).
  const float* logits(int32_t i = 0) const { return &logits_[static_cast<size_t>(i) * model_.hparams().n_vocab]; }

  // Forgets positions >= n. REQUIRES: 0 <= n <= n_past().
  void Truncate(int32_t n) { kv_.Truncate(n); }

 private:
  Context(const Model& model, int32_t n_ctx, int32_t n_batch, int32_t n_threads);
  // One batch: tokens at positions [n_past, n_past + n). REQUIRES: n <= n_batch, KV reserved.
  void ForwardBatch(const int32_t* tokens, int32_t n, bool all_logits, float* logits_out);
  void Attention(int32_t il, int32_t n);

  const Model& model_;
  int32_t n_batch_;
  KvCache kv_;
  ThreadPool pool_;
  // Scratch, sized for n_batch tokens.
  std::vector<float> x_;       // F32 [n_embd, n_batch] residual stream
  std::vector<float> xb_;      // F32 [n_embd, n_batch] normed input / attention output
  std::vector<float> q_;       // F32 [n_embd, n_batch]
  std::vector<float> k_;       // F32 [n_embd_kv, n_batch]
  std::vector<float> v_;       // F32 [n_embd_kv, n_batch]
  std::vector<float> att_;     // F32 [n_embd, n_batch] attention output before wo
  std::vector<float> gate_;    // F32 [n_ff, n_batch]
  std::vector<float> up_;      // F32 [n_ff, n_batch]
  std::vector<float> scores_;  // F32 [n_ctx, n_threads] per-thread attention scores
  std::vector<float> logits_;  // F32 [n_vocab, n_logits] of the last Decode
};

}  // namespace strata
