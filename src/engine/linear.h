// Linear: the one seam every weight multiplication of the forward pass goes
// through — y = x · Wᵀ + b for a model/weights.h Linear. Adapters (LoRA) and
// tensor-parallel sharding plug in here, without touching the layer builders.
//
// LoRA: the base product runs once for the whole batch; then each group of
// rows that runs with an adapter set (model/lora_adapter.h) adds, per
// adapter of the set that adapts the Linear, scale · factor · (x·Aᵀ)·Bᵀ over
// its rows only: in one parallel pass per call over the groups' rows,
// whatever the number of groups and adapters (each row's x·Aᵀ, then its
// ·Bᵀ: rows are independent, so no barrier in between), as these products
// are small and a barrier costs more.
//
// Thread-safety: as kernels::MatMul (one call at a time per pool).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "model/lora_adapter.h"
#include "model/weights.h"

namespace strata {

// One product: y = x · linear.wᵀ (+ linear.b), y: F32 [linear.w.rows(), n_tok].
struct LinearOut {
  const Linear* linear;
  float* y;
};

// Rows of a batch (token indices, ascending) that run with one adapter set.
struct LoraGroup {
  const LoraSet* set = nullptr;
  std::vector<int32_t> rows;
};

// A batch's adapter groups (rows in none run the base model alone) and the
// buffers their low-rank products use (kernels' pool scratch is MatMul's).
struct LoraBatch {
  std::vector<LoraGroup> groups;
  // One call's products, group by group: each (group, use, output), with
  // where its x·Aᵀ (rank values per row) lies among its group's.
  struct Product {
    const LoraGroup* group;
    const LoraPair* pair;
    float scale;  // the use's scale times the pair's factor
    float* y;     // F32 [pair->n_out, n_tok]
    size_t t;     // offset of its x·Aᵀ in a row's scratch
    bool owns_t;  // the first product of its group with this A computes it (fused matrices share one)
  };
  std::vector<Product> products;
  size_t t_row = 0;  // a row's scratch: the most any group needs
};

// Applies several Linears to the same x: F32 [n_in, n_tok] in one parallel
// pass (kernels::MatMulShared: x is quantized once); a single one runs as
// kernels::MatMul. Results equal MatMul's, plus the bias where there is one,
// plus lora's low-rank products where it has groups.
// REQUIRES: outs non-empty; every linear takes n_in inputs; no y aliases x;
// biases are F32; lora's rows are below n_tok.
void ApplyLinear(std::span<const LinearOut> outs, const float* x, int64_t n_tok, ThreadPool& pool,
                 LoraBatch* lora = nullptr);

// Adds the token embedding's low-rank products to x: F32 [n_embd, n_tok],
// the embeddings of tokens[0..n_tok), for lora's groups (scale · B·A[token]).
void ApplyLoraEmbedding(const int32_t* tokens, float* x, LoraBatch& lora, ThreadPool& pool);

}  // namespace strata
