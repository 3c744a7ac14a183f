// KvCache: the keys and values of one sequence, contiguous per layer.
//
// Changes follow prepare/apply: the forward pass writes K/V rows for the
// positions [n_past, n_past + n) after Reserve(n) succeeded, and only Commit(n)
// makes them part of the sequence — a batch that fails midway leaves the
// cache exactly as it was.
//
// Thread-safety: not thread-safe; owned by one Context. Distinct rows may be
// written concurrently by the forward pass's workers.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/model.h"

namespace strata {

class KvCache {
 public:
  // REQUIRES: n_ctx >= 1.
  KvCache(const LlamaHParams& hp, int32_t n_ctx);

  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_past() const { return n_past_; }

  // kResourceExhausted if n more positions do not fit.
  [[nodiscard]] Status Reserve(int32_t n) const;
  // Makes positions [n_past, n_past + n) part of the sequence. REQUIRES: Reserve(n) ok.
  void Commit(int32_t n) { n_past_ += n; }
  // Forgets every position >= n (roll back). REQUIRES: 0 <= n <= n_past.
  void Truncate(int32_t n) { n_past_ = n; }

  // F32 [n_embd_kv] rows of layer il at position pos. REQUIRES: pos < n_ctx.
  float* k(int32_t il, int32_t pos) { return &k_[Index(il, pos)]; }
  float* v(int32_t il, int32_t pos) { return &v_[Index(il, pos)]; }
  const float* k(int32_t il, int32_t pos) const { return &k_[Index(il, pos)]; }
  const float* v(int32_t il, int32_t pos) const { return &v_[Index(il, pos)]; }

 private:
  size_t Index(int32_t il, int32_t pos) const {
    return (static_cast<size_t>(il) * n_ctx_ + pos) * static_cast<size_t>(n_embd_kv_);
  }

  int32_t n_ctx_;
  int32_t n_embd_kv_;
  int32_t n_past_ = 0;
  std::vector<float> k_;  // F32 [n_embd_kv, n_ctx, n_layer]
  std::vector<float> v_;  // F32 [n_embd_kv, n_ctx, n_layer]
};

}  // namespace strata
