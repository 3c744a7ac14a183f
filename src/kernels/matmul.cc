// MatMul dispatch and the scalar reference that defines its semantics:
//   F32/F16/BF16 weights: weights widened to F32, dot product accumulated in F32.
//   Quantized weights: each activation row is quantized with
//   QuantizeRow(vec_dot_type) (Q8_0, Q8_1 or Q8_K, as llama.cpp pairs them)
//   and multiplied block by block in integers (kernels/vec_dot.h).
#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"
#include "kernels/type_traits.h"

namespace strata::kernels {
namespace {

// Rows per ParallelFor chunk: enough to amortize the hand-off.
constexpr int64_t kScalarRowGrain = 16;

void MatMulFloatScalar(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows();
  pool.ParallelFor(n_out, kScalarRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(n_in));
    for (int64_t o = begin; o < end; ++o) {
      DequantizeRow(w.type, w.row(o), row.data(), n_in);
      for (int64_t t = 0; t < n_tok; ++t) {
        const float* xt = x + t * n_in;
        float sum = 0.0f;
        for (int64_t i = 0; i < n_in; ++i) sum += row[i] * xt[i];
        y[t * n_out + o] = sum;
      }
    }
  });
}

// Quantized weights: each activation row quantized once to the weight type's
// partner format, then one vec_dot per (row, token).
void MatMulQuantScalar(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const internal::TypeTraits& traits = internal::Traits(w.type);
  const int64_t n_in = w.cols(), n_out = w.rows();
  const size_t x_row_bytes = static_cast<size_t>(*RowBytes(traits.vec_dot_type, static_cast<uint64_t>(n_in)));
  auto* xq = static_cast<uint8_t*>(pool.Scratch(static_cast<size_t>(n_tok) * x_row_bytes));
  for (int64_t t = 0; t < n_tok; ++t) QuantizeRow(traits.vec_dot_type, x + t * n_in, xq + t * x_row_bytes, n_in);
  pool.ParallelFor(n_out, kScalarRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o)
      for (int64_t t = 0; t < n_tok; ++t) y[t * n_out + o] = traits.vec_dot(w.row(o), xq + t * x_row_bytes, n_in);
  });
}

void MatMulScalar(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  if (internal::Traits(w.type).vec_dot == nullptr) return MatMulFloatScalar(w, x, n_tok, y, pool);
  MatMulQuantScalar(w, x, n_tok, y, pool);
}

// The kernels `p` has for weight type t (nullptr: none; kScalar has none).
const internal::MatMulKernels* KernelsOn(DType t, Path p) {
  const internal::TypeTraits& traits = internal::Traits(t);
  switch (p) {
    case Path::kScalar: return nullptr;
    case Path::kAvx2: return traits.avx2;
    case Path::kAvx512:
    case Path::kAmx: return traits.avx512;  // no AMX matmul kernels: AVX-512 serves AMX machines
  }
  return nullptr;
}

// The path MatMul runs for weight type t: the most capable one not above
// `path` that this CPU runs and that has kernels for t (else kScalar).
Path PathFor(DType t, Path path) {
  Path p = internal::ClampToAvailable(path);
  while (p != Path::kScalar && KernelsOn(t, p) == nullptr) p = static_cast<Path>(static_cast<int>(p) - 1);
  return p;
}

}  // namespace

void MatMul(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool, Path path) {
  if (n_tok <= 0 || w.rows() <= 0) return;
  const internal::MatMulKernels* kernels = KernelsOn(w.type, PathFor(w.type, path));
  assert(w.layout == TensorLayout::kRows || (kernels != nullptr && kernels->pack != nullptr));
  if (kernels == nullptr) return MatMulScalar(w, x, n_tok, y, pool);
  const MatMulOut out[1] = {{&w, y}};
  kernels->matmul(std::span<const MatMulOut>(out, 1), x, n_tok, pool);
}

void MatMulShared(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool, Path path) {
  if (n_tok <= 0) return;
  // Outputs whose type has kernels on the path run them together, one call
  // per type in the order of first appearance; the rest one by one.
  std::vector<MatMulOut> group;
  for (size_t i = 0; i < outs.size(); ++i) {
    const DType t = outs[i].w->type;
    const internal::MatMulKernels* kernels = KernelsOn(t, PathFor(t, path));
    if (kernels == nullptr) {
      MatMul(*outs[i].w, x, n_tok, outs[i].y, pool, path);
      continue;
    }
    if (std::any_of(outs.begin(), outs.begin() + static_cast<std::ptrdiff_t>(i),
                    [&](const MatMulOut& o) { return o.w->type == t; }))
      continue;  // ran with the first output of its type
    group.clear();
    for (size_t j = i; j < outs.size(); ++j)
      if (outs[j].w->type == t && outs[j].w->rows() > 0) group.push_back(outs[j]);
    if (!group.empty()) kernels->matmul(group, x, n_tok, pool);
  }
}

size_t PackedMatrixBytes(const Tensor& w, Path path) {
  if (w.layout != TensorLayout::kRows) return 0;
  const internal::MatMulKernels* kernels = KernelsOn(w.type, PathFor(w.type, path));
  return kernels != nullptr && kernels->packed_bytes != nullptr ? kernels->packed_bytes(w) : 0;
}

Tensor PackMatrix(const Tensor& w, void* dst, Path path) {
  assert(PackedMatrixBytes(w, path) > 0);
  KernelsOn(w.type, PathFor(w.type, path))->pack(w, static_cast<uint8_t*>(dst));
  Tensor packed = w;
  packed.data = dst;
  packed.layout = TensorLayout::kPanels32;
  return packed;
}

}  // namespace strata::kernels
