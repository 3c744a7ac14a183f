// MatMul dispatch and the scalar reference that defines its semantics:
//   F32/F16/BF16 weights: weights widened to F32, dot product accumulated in F32.
//   Q8_0/Q4_0 weights: each activation row is quantized with QuantizeRow(Q8_0)
//   and every 32-element block contributes float(int dot) * (d_w * d_x), as
//   llama.cpp's vec_dot_q8_0_q8_0 / vec_dot_q4_0_q8_0.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"

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

// int dot of one weight block with one Q8_0 activation block.
int BlockDot(const BlockQ8_0& w, const BlockQ8_0& x) {
  int sum = 0;
  for (int j = 0; j < kQK8_0; ++j) sum += w.qs[j] * x.qs[j];
  return sum;
}

int BlockDot(const BlockQ4_0& w, const BlockQ8_0& x) {
  constexpr int kHalf = kQK4_0 / 2;
  int sum = 0;
  for (int j = 0; j < kHalf; ++j) {
    sum += ((w.qs[j] & 0xF) - 8) * x.qs[j];
    sum += ((w.qs[j] >> 4) - 8) * x.qs[j + kHalf];
  }
  return sum;
}

template <class Block>
void MatMulQuantScalar(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.cols(), n_out = w.rows(), nb = n_in / kQK8_0;
  auto* xq = static_cast<BlockQ8_0*>(pool.Scratch(static_cast<size_t>(n_tok * nb) * sizeof(BlockQ8_0)));
  for (int64_t t = 0; t < n_tok; ++t) QuantizeRow(DType::kQ8_0, x + t * n_in, xq + t * nb, n_in);
  pool.ParallelFor(n_out, kScalarRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const auto* wb = reinterpret_cast<const Block*>(w.row(o));
      for (int64_t t = 0; t < n_tok; ++t) {
        const BlockQ8_0* xb = xq + t * nb;
        float sum = 0.0f;
        for (int64_t b = 0; b < nb; ++b)
          sum += static_cast<float>(BlockDot(wb[b], xb[b])) * (Fp16ToF32(wb[b].d) * Fp16ToF32(xb[b].d));
        y[t * n_out + o] = sum;
      }
    }
  });
}

void MatMulScalar(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  switch (w.type) {
    case DType::kQ8_0:
      MatMulQuantScalar<BlockQ8_0>(w, x, n_tok, y, pool);
      return;
    case DType::kQ4_0:
      MatMulQuantScalar<BlockQ4_0>(w, x, n_tok, y, pool);
      return;
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      MatMulFloatScalar(w, x, n_tok, y, pool);
      return;
    default:
      assert(false && "MatMul: unsupported weight type");
  }
}

}  // namespace

void MatMul(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool, Path path) {
  if (n_tok <= 0 || w.rows() <= 0) return;
  const Path use = internal::ClampToAvailable(path);
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
  if (internal::ClampToAvailable(path) >= Path::kAvx512) return internal::MatMulSharedAvx512(outs, x, n_tok, pool);
  for (const MatMulOut& o : outs) MatMul(*o.w, x, n_tok, o.y, pool, path);
}

size_t PackedMatrixBytes(const Tensor& w, Path path) {
  if (w.layout != TensorLayout::kRows || internal::ClampToAvailable(path) < Path::kAvx512) return 0;
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
