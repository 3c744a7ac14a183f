#include "engine/linear.h"

#include <algorithm>

namespace strata {
namespace {

// Columns of y per item of the Bᵀ pass: a rank x 256 slice of Bᵀ stays in L1.
constexpr int64_t kColumns = 256;
// Batch rows per item of the x·Aᵀ pass.
constexpr int64_t kRows = 4;

// The x·Aᵀ pass: lora.t for every product that owns its t, a few rows at a time.
void DownPass(const float* x, ThreadPool& pool, LoraBatch& lora) {
  struct Item {
    const LoraBatch::Product* p;
    int64_t j0, j1;  // the group's rows [j0, j1)
  };
  std::vector<Item> items;
  for (const LoraBatch::Product& p : lora.products) {
    const int64_t n = static_cast<int64_t>(p.group->rows.size());
    if (p.owns_t)
      for (int64_t j = 0; j < n; j += kRows) items.push_back({&p, j, std::min(j + kRows, n)});
  }
  pool.ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Item& it = items[static_cast<size_t>(i)];
      const LoraPair& pr = *it.p->pair;
      for (int64_t j = it.j0; j < it.j1; ++j) {
        float* tj = lora.t.data() + it.p->t + j * pr.rank;
        std::fill_n(tj, pr.rank, 0.0f);
        const float* xj = x + static_cast<int64_t>(it.p->group->rows[static_cast<size_t>(j)]) * pr.n_in;
        kernels::AxpyRowsF32(xj, pr.at, pr.n_in, pr.rank, tj, pr.rank);
      }
    }
  });
}

// The Bᵀ pass: y rows of each product's group += scale · Σ_k t_k · bt_k, by
// column ranges; the products of one (group, output) share an item (they
// add into the same rows).
void UpPass(ThreadPool& pool, LoraBatch& lora) {
  struct Item {
    size_t first, end;  // products [first, end): one group and output
    int64_t c0, c1;
  };
  std::vector<Item> items;
  const std::vector<LoraBatch::Product>& ps = lora.products;
  for (size_t i = 0; i < ps.size();) {
    size_t e = i + 1;
    while (e < ps.size() && ps[e].group == ps[i].group && ps[e].y == ps[i].y) ++e;
    for (int64_t c = 0; c < ps[i].pair->n_out; c += kColumns)
      items.push_back({i, e, c, std::min(c + kColumns, ps[i].pair->n_out)});
    i = e;
  }
  pool.ParallelFor(static_cast<int64_t>(items.size()), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> coef;
    for (int64_t i = begin; i < end; ++i) {
      const Item& it = items[static_cast<size_t>(i)];
      for (size_t q = it.first; q < it.end; ++q) {
        const LoraBatch::Product& p = ps[q];
        const LoraPair& pr = *p.pair;
        coef.resize(static_cast<size_t>(pr.rank));
        const std::vector<int32_t>& rows = p.group->rows;
        for (size_t j = 0; j < rows.size(); ++j) {
          const float* tj = lora.t.data() + p.t + static_cast<int64_t>(j) * pr.rank;
          for (int64_t k = 0; k < pr.rank; ++k) coef[static_cast<size_t>(k)] = p.scale * tj[k];
          kernels::AxpyRowsF32(coef.data(), pr.bt + it.c0, pr.rank, pr.bt_stride,
                               p.y + static_cast<int64_t>(rows[j]) * pr.n_out + it.c0, it.c1 - it.c0);
        }
      }
    }
  });
}

// Lists the call's products (outs' Linears the groups' adapters adapt) and
// where each one's x·Aᵀ goes; Linears cut from one fused matrix share it.
void ListProducts(std::span<const LinearOut> outs, LoraBatch& lora) {
  lora.products.clear();
  size_t t_size = 0;
  for (const LoraGroup& g : lora.groups) {
    if (g.rows.empty()) continue;
    const size_t first = lora.products.size();
    for (const LinearOut& o : outs)
      for (const LoraUse& use : *g.set) {
        const LoraPair* p = use.adapter->pair(o.linear->slot);
        if (p == nullptr) continue;
        LoraBatch::Product prod{&g, p, use.scale * p->factor, o.y, t_size, true};
        for (size_t q = first; q < lora.products.size(); ++q)
          if (lora.products[q].pair->at == p->at && lora.products[q].owns_t) {
            prod.t = lora.products[q].t;
            prod.owns_t = false;
          }
        if (prod.owns_t) t_size += static_cast<size_t>(p->rank) * g.rows.size();
        lora.products.push_back(prod);
      }
  }
  lora.t.resize(t_size);
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
    ListProducts(outs, *lora);
    if (!lora->products.empty()) {
      DownPass(x, pool, *lora);
      UpPass(pool, *lora);
    }
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
  // x·Aᵀ of an embedding is row tokens[j] of A: the Bᵀ pass reads it from t.
  lora.products.clear();
  size_t t_size = 0;
  for (const LoraGroup& g : lora.groups) {
    if (g.rows.empty()) continue;
    for (const LoraUse& use : *g.set) {
      const LoraPair* p = use.adapter->token_embd();
      if (p == nullptr) continue;
      lora.products.push_back({&g, p, use.scale * p->factor, x, t_size, true});
      t_size += static_cast<size_t>(p->rank) * g.rows.size();
    }
  }
  if (lora.products.empty()) return;
  lora.t.resize(t_size);
  for (const LoraBatch::Product& p : lora.products)
    for (size_t j = 0; j < p.group->rows.size(); ++j)
      std::copy_n(p.pair->at + static_cast<int64_t>(tokens[p.group->rows[j]]) * p.pair->rank, p.pair->rank,
                  lora.t.data() + p.t + j * static_cast<size_t>(p.pair->rank));
  UpPass(pool, lora);
}

}  // namespace strata
