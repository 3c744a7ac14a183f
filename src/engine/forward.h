// Forward: the Llama forward pass over a batch of sequences at once. All
// tokens of all entries go through each weight matrix in one multiplication
// (weights are read once per step for the whole batch); attention runs per
// token over its own sequence's KV blocks, wherever they live (BlockStore),
// block by block with exact log-sum-exp merging, and is parallel over
// (token, KV head, block range).
//
// Thread-safety: one Run at a time; the model is shared read-only.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "engine/batch.h"
#include "kernels/thread_pool.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"

namespace strata {

class Forward {
 public:
  // REQUIRES: model, kv and pool outlive this object.
  Forward(const Model& model, KvCacheManager& kv, ThreadPool& pool);

  // Computes the batch. REQUIRES: kv.Prepare succeeded for every entry's tokens
  // and no sequence appears twice. Does not Commit: the caller commits on
  // success or rolls back on failure (an I/O error from the disk tier).
  // logits: F32 [n_vocab, n_rows] where rows are, in entry order, every token
  // of all_logits entries or the last token of logits entries.
  [[nodiscard]] Status Run(const Batch& batch, std::vector<float>* logits);

 private:
  struct TokenRef {
    int32_t entry;  // index into the batch
    int32_t pos;    // absolute position
  };
  void Resize(int32_t n_tokens);
  // Pins every slice of layer il the batch reads; *slices[e][b] -> bytes of block b of entry e.
  [[nodiscard]] Status PinLayer(const Batch& batch, int32_t il, std::vector<std::vector<uint8_t*>>* slices);
  void UnpinLayer(const Batch& batch, int32_t il);
  void PrefetchLayer(const Batch& batch, int32_t il);
  void WriteKv(const Batch& batch, const std::vector<std::vector<uint8_t*>>& slices);
  void Attention(const std::vector<std::vector<uint8_t*>>& slices);

  const Model& model_;
  KvCacheManager& kv_;
  ThreadPool& pool_;
  std::vector<TokenRef> refs_;  // [n_tokens] of the current batch
  std::vector<float> x_;        // F32 [n_embd, n_tokens] residual stream
  std::vector<float> xb_;       // F32 [n_embd, n_tokens]
  std::vector<float> q_;        // F32 [n_embd, n_tokens]
  std::vector<float> k_;        // F32 [n_embd_kv, n_tokens]
  std::vector<float> v_;        // F32 [n_embd_kv, n_tokens]
  std::vector<float> att_;      // F32 [n_embd, n_tokens]
  std::vector<float> gate_;     // F32 [n_ff, n_tokens]
  std::vector<float> up_;       // F32 [n_ff, n_tokens]
  std::vector<float> partial_;  // F32 [(head_dim + 2) * group, n_jobs] attention partial results
  std::vector<float> scratch_;  // F32 [head_dim, n_threads] dequantized KV rows
};

}  // namespace strata
