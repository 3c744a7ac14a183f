#include "engine/linear.h"

#include <algorithm>

namespace strata {
namespace {

// Rows of the batch per item: small enough that 2 items per thread remain in
// a decode step, large enough that a pair's Aᵀ and Bᵀ are read from cache for
// several rows.
constexpr int64_t kMaxRowsPerItem = 8;

// One parallel pass over the rows of every group: for each row, each
// product's t = x·Aᵀ (shared by the products of one fused matrix), then
// y += scale · t·Bᵀ. Rows are independent, so there is no barrier between the
// two halves. x: F32 [n_in, n_tok] (null for embeddings, whose t is A's row
// of the row's token: tokens).
void LowRankPass(const float* x, const int32_t* tokens, ThreadPool& pool, LoraBatch& lora) {
  struct Item {
    size_t first, end;  // products [first, end): one group's
    int64_t j0, j1;     // its rows [j0, j1)
  };
  std::vector<Item> items;
  int64_t total_rows = 0;
  for (const LoraGroup& g : lora.groups) total_rows += static_cast<int64_t>(g.rows.size());
  const int64_t per_item =
      std::clamp<int64_t>((total_rows + 2 * pool.n_threads() - 1) / (2 * pool.n_threads()), 1, kMaxRowsPerItem);
  const std::vector<LoraBatch::Product>& ps = lora.products;
  for (size_t i = 0; i < ps.size();) {
    size_t e = i + 1;
    while (e < ps.size() && ps[e].group == ps[i].group) ++e;
    const int64_t n = static_cast<int64_t>(ps[i].group->rows.size());
    for (int64_t j = 0; j < n; j += per_item) items.push_back({i, e, j, std::min(j + per_item, n)});
    i = e;
  }
  pool.ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> t(lora.t_row), coef;
    for (int64_t i = begin; i < end; ++i) {
      const Item& it = items[static_cast<size_t>(i)];
      for (int64_t j = it.j0; j < it.j1; ++j) {
        const int32_t row = ps[it.first].group->rows[static_cast<size_t>(j)];
        for (size_t q = it.first; q < it.end; ++q) {
          const LoraBatch::Product& p = ps[q];
          const LoraPair& pr = *p.pair;
          float* tq = t.data() + p.t;
          if (p.owns_t && x != nullptr) {
            std::fill_n(tq, pr.rank, 0.0f);
            kernels::AxpyRowsF32(x + static_cast<int64_t>(row) * pr.n_in, pr.at, pr.n_in, pr.rank, tq, pr.rank);
          } else if (p.owns_t) {
            std::copy_n(pr.at + static_cast<int64_t>(tokens[row]) * pr.rank, pr.rank, tq);
          }
          coef.resize(static_cast<size_t>(pr.rank));
          for (int64_t k = 0; k < pr.rank; ++k) coef[static_cast<size_t>(k)] = p.scale * tq[k];
          kernels::AxpyRowsF32(coef.data(), pr.bt, pr.rank, pr.bt_stride, p.y + static_cast<int64_t>(row) * pr.n_out,
                               pr.n_out);
        }
      }
    }
  });
}

// Appends a product of group g to lora.products, its t after the group's
// others unless an earlier product of g has the same A.
void AddProduct(const LoraGroup& g, const LoraPair* p, float scale, float* y, size_t group_first, size_t* t_row,
                LoraBatch& lora) {
  LoraBatch::Product prod{&g, p, scale * p->factor, y, *t_row, true};
  for (size_t q = group_first; q < lora.products.size(); ++q)
    if (lora.products[q].pair->at == p->at && lora.products[q].owns_t) {
      prod.t = lora.products[q].t;
      prod.owns_t = false;
    }
  if (prod.owns_t) *t_row += static_cast<size_t>(p->rank);
  lora.products.push_back(prod);
}

}  // namespace

void ApplyLinear(std::span<const LinearOut> outs, const float* x, int64_t n_tok, ThreadPool& pool, LoraBatch* lora) {
  if (outs.size() == 1) {
    kernels::MatMul(outs[0].linear->w, x, n_tok, outs[0].y, pool);
  } else {
    kernels::MatMulOut mm[4];
    std::vector<kernels::MatMulOut> more;
    kernels::MatMulOut* p = mm;
    if (outs.size() > std::size(mm)) {
      more.resize(outs.size());
      p = more.data();
    }
    for (size_t i = 0; i < outs.size(); ++i) p[i] = {&outs[i].linear->w, outs[i].y};
    kernels::MatMulShared(std::span<const kernels::MatMulOut>(p, outs.size()), x, n_tok, pool);
  }
  if (lora != nullptr && !lora->groups.empty()) {
    // Products of outs' Linears the groups' adapters adapt, by group.
    lora->products.clear();
    lora->t_row = 0;
    for (const LoraGroup& g : lora->groups) {
      if (g.rows.empty()) continue;
      const size_t first = lora->products.size();
      size_t t_row = 0;
      for (const LinearOut& o : outs)
        for (const LoraUse& use : *g.set)
          if (const LoraPair* p = use.adapter->pair(o.linear->slot)) AddProduct(g, p, use.scale, o.y, first, &t_row, *lora);
      lora->t_row = std::max(lora->t_row, t_row);
    }
    if (!lora->products.empty()) LowRankPass(x, nullptr, pool, *lora);
  }
  for (const LinearOut& o : outs) {
    const Tensor& b = o.linear->b;
    if (b.data == nullptr) continue;
    const float* bias = static_cast<const float*>(b.data);
    const int64_t n_out = b.ne[0];
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < n_out; ++i) o.y[t * n_out + i] += bias[i];
  }
}

void ApplyLoraEmbedding(const int32_t* tokens, float* x, LoraBatch& lora, ThreadPool& pool) {
  lora.products.clear();
  lora.t_row = 0;
  for (const LoraGroup& g : lora.groups) {
    if (g.rows.empty()) continue;
    const size_t first = lora.products.size();
    size_t t_row = 0;
    for (const LoraUse& use : *g.set)
      if (const LoraPair* p = use.adapter->token_embd()) AddProduct(g, p, use.scale, x, first, &t_row, lora);
    lora.t_row = std::max(lora.t_row, t_row);
  }
  if (!lora.products.empty()) LowRankPass(nullptr, tokens, pool, lora);
}

}  // namespace strata
