#include "engine/linear.h"

#include <algorithm>

namespace strata {
namespace {

// y rows [n_out, rows] += s · u for group g's rows.
void ScatterAdd(const LoraGroup& g, const float* u, int64_t n_out, float s, float* y) {
  for (size_t j = 0; j < g.rows.size(); ++j) {
    float* yr = y + static_cast<int64_t>(g.rows[j]) * n_out;
    const float* ur = u + static_cast<int64_t>(j) * n_out;
    for (int64_t i = 0; i < n_out; ++i) yr[i] += s * ur[i];
  }
}

// Group g's rows of x: F32 [n_in, n_tok], contiguous in place or gathered into lora.xg.
const float* GroupRows(const LoraGroup& g, const float* x, int64_t n_in, LoraBatch& lora) {
  const int32_t first = g.rows.front();
  if (g.rows.back() - first + 1 == static_cast<int32_t>(g.rows.size())) return x + static_cast<int64_t>(first) * n_in;
  lora.xg.resize(static_cast<size_t>(n_in) * g.rows.size());
  for (size_t j = 0; j < g.rows.size(); ++j)
    std::copy_n(x + static_cast<int64_t>(g.rows[j]) * n_in, n_in, lora.xg.data() + static_cast<int64_t>(j) * n_in);
  return lora.xg.data();
}

void ApplyLora(std::span<const LinearOut> outs, const float* x, ThreadPool& pool, LoraBatch& lora) {
  const int64_t n_in = outs[0].linear->w.cols();
  for (const LoraGroup& g : lora.groups) {
    if (g.rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(g.rows.size());
    const float* xg = nullptr;  // gathered on the first pair that needs it
    for (const LinearOut& o : outs) {
      for (const LoraUse& use : *g.set) {
        const LoraPair* p = use.adapter->pair(o.linear->slot);
        if (p == nullptr) continue;
        if (xg == nullptr) xg = GroupRows(g, x, n_in, lora);
        const int64_t r = p->a.rows(), n_out = p->b.rows();
        lora.t.resize(static_cast<size_t>(r * n));
        lora.u.resize(static_cast<size_t>(n_out * n));
        kernels::MatMul(p->a, xg, n, lora.t.data(), pool);
        kernels::MatMul(p->b, lora.t.data(), n, lora.u.data(), pool);
        ScatterAdd(g, lora.u.data(), n_out, use.scale * p->factor, o.y);
      }
    }
  }
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
  if (lora != nullptr) ApplyLora(outs, x, pool, *lora);
  for (const LinearOut& o : outs) {
    const Tensor& b = o.linear->b;
    if (b.data == nullptr) continue;
    const float* bias = static_cast<const float*>(b.data);
    const int64_t n_out = b.ne[0];
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < n_out; ++i) o.y[t * n_out + i] += bias[i];
  }
}

void ApplyLoraEmbedding(const int32_t* tokens, float* x, int64_t n_embd, LoraBatch& lora, ThreadPool& pool) {
  for (const LoraGroup& g : lora.groups) {
    if (g.rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(g.rows.size());
    for (const LoraUse& use : *g.set) {
      const LoraPair* p = use.adapter->token_embd();
      if (p == nullptr) continue;
      // Row tokens[j] of A (r values) for each row j of the group, then B times them.
      const int64_t r = p->a.cols();
      lora.t.resize(static_cast<size_t>(r * n));
      for (int64_t j = 0; j < n; ++j)
        kernels::DequantizeRow(p->a.type, p->a.row(tokens[g.rows[static_cast<size_t>(j)]]), lora.t.data() + j * r, r);
      lora.u.resize(static_cast<size_t>(n_embd * n));
      kernels::MatMul(p->b, lora.t.data(), n, lora.u.data(), pool);
      ScatterAdd(g, lora.u.data(), n_embd, use.scale * p->factor, x);
    }
  }
}

}  // namespace strata
