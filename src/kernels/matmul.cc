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

// The path MatMul runs for w: `path` capped by this CPU and by the most
// capable path with kernels for w's type.
Path PathFor(const Tensor& w, Path path) {
  return std::min(internal::ClampToAvailable(path), internal::Traits(w.type).kernel_path);
}

}  // namespace

void MatMul(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool, Path path) {
  if (n_tok <= 0 || w.rows() <= 0) return;
  const Path use = PathFor(w, path);
  assert(w.layout == TensorLayout::kRows || use >= Path::kAvx512);
  switch (use) {
    case Path::kScalar:
      MatMulScalar(w, x, n_tok, y, pool);
      return;
    case Path::kAvx2:
      internal::MatMulAvx2(w, x, n_tok, y, pool);
      return;
    case Path::kAvx512:
    case Path::kAmx:  // no AMX matmul kernels: AVX-512 serves AMX machines
      internal::MatMulAvx512(w, x, n_tok, y, pool);
      return;
  }
}

void MatMulShared(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool, Path path) {
  if (n_tok <= 0) return;
  const bool avx512 = std::all_of(outs.begin(), outs.end(),
                                  [&](const MatMulOut& o) { return PathFor(*o.w, path) >= Path::kAvx512; });
  if (avx512) return internal::MatMulSharedAvx512(outs, x, n_tok, pool);
  for (const MatMulOut& o : outs) MatMul(*o.w, x, n_tok, o.y, pool, path);
}

size_t PackedMatrixBytes(const Tensor& w, Path path) {
  if (w.layout != TensorLayout::kRows || PathFor(w, path) < Path::kAvx512) return 0;
  return internal::PackedMatrixBytesAvx512(w);
}

Tensor PackMatrix(const Tensor& w, void* dst, Path path) {
  assert(PackedMatrixBytes(w, path) > 0);
  (void)path;
  internal::PackMatrixAvx512(w, static_cast<uint8_t*>(dst));
  Tensor packed = w;
  packed.data = dst;
  packed.layout = TensorLayout::kPanels32;
  return packed;
}

}  // namespace strata::kernels
