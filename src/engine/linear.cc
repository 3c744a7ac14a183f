#include "engine/linear.h"

#include <vector>

namespace strata {

void ApplyLinear(std::span<const LinearOut> outs, const float* x, int64_t n_tok, ThreadPool& pool) {
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
  for (const LinearOut& o : outs) {
    const Tensor& b = o.linear->b;
    if (b.data == nullptr) continue;
    const float* bias = static_cast<const float*>(b.data);
    const int64_t n_out = b.ne[0];
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t i = 0; i < n_out; ++i) o.y[t * n_out + i] += bias[i];
  }
}

}  // namespace strata
