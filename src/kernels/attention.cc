#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/attention_isa.h"
#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"

namespace strata::kernels {
namespace {

// Fewer query rows than this do not amortize transposing each key chunk.
constexpr int32_t kMinRowsTransposed = 3;

const float* RowF32(const uint8_t* row, DType type, int32_t D, float* scratch) {
  if (type == DType::kF32) return reinterpret_cast<const float*>(row);
  DequantizeRow(type, row, scratch, D);
  return scratch;
}

float Score(float dot, const ScoreParams& score) {
  const float s = dot * score.scale;
  return score.softcap > 0.0f ? score.softcap * std::tanh(s / score.softcap) : s;
}

// One key at a time; Dot and Axpy run on `path`.
void AttendRowsRowwise(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                       int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, float* scratch, Path path) {
  for (int32_t j = 0; j < n; ++j) {
    const float s = Score(DotF32(q, RowF32(k + j * row_bytes, type, D, scratch), D, path), score);
    if (s > p->m) {
      // New maximum: rescale what was accumulated so far.
      const float c = std::exp(p->m - s);
      p->l *= c;
      for (int32_t d = 0; d < D; ++d) acc[d] *= c;
      p->m = s;
    }
    const float w = std::exp(s - p->m);
    p->l += w;
    AxpyF32(w, RowF32(v + j * row_bytes, type, D, scratch), acc, D, path);
  }
}

}  // namespace

void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, float* scratch, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kAvx512:
    case Path::kAmx:
      return internal::AttendRowsAvx512(q, k, v, row_bytes, type, n, D, score, p, acc);
    case Path::kScalar:
    case Path::kAvx2:
      return AttendRowsRowwise(q, k, v, row_bytes, type, n, D, score, p, acc, scratch, path);
  }
}

void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, float* scratch) {
  AttendRows(q, k, v, row_bytes, type, n, D, score, p, acc, scratch, BestPath());
}

void AttendTile(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t D,
                const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride, float* scratch,
                Path path) {
  path = internal::ClampToAvailable(path);
  const bool simd = path == Path::kAvx512 || path == Path::kAmx;
  if (simd && n_tok * n_heads >= kMinRowsTransposed && n_heads <= internal::kMaxRowsAvx512 &&
      D <= internal::kMaxHeadDimAvx512) {
    const int32_t per_call = internal::kMaxRowsAvx512 / n_heads;  // tokens
    for (int32_t t0 = 0; t0 < n_tok; t0 += per_call) {
      const size_t row0 = static_cast<size_t>(t0) * n_heads;
      internal::AttendTileAvx512(q + t0 * q_stride, q_stride, std::min(per_call, n_tok - t0), n_heads,
                                 first_key + t0, n_keys + t0, k, v, row_bytes, type, D, score, p + row0,
                                 acc + row0 * acc_stride, acc_stride);
    }
    return;
  }
  if (path == Path::kAvx2 && n_tok * n_heads >= kMinRowsTransposed && n_heads <= internal::kMaxRowsAvx2 &&
      D <= internal::kMaxHeadDimAvx2 && D % 8 == 0) {
    const int32_t per_call = internal::kMaxRowsAvx2 / n_heads;  // tokens
    for (int32_t t0 = 0; t0 < n_tok; t0 += per_call) {
      const size_t row0 = static_cast<size_t>(t0) * n_heads;
      internal::AttendTileAvx2(q + t0 * q_stride, q_stride, std::min(per_call, n_tok - t0), n_heads, first_key + t0,
                               n_keys + t0, k, v, row_bytes, type, D, score, p + row0, acc + row0 * acc_stride,
                               acc_stride);
    }
    return;
  }
  for (int32_t t = 0; t < n_tok; ++t) {
    const int32_t first = first_key[t];
    if (n_keys[t] <= first) continue;
    for (int32_t h = 0; h < n_heads; ++h) {
      const size_t r = static_cast<size_t>(t) * n_heads + h;
      AttendRows(q + t * q_stride + h * D, k + first * row_bytes, v + first * row_bytes, row_bytes, type,
                 n_keys[t] - first, D, score, &p[r], acc + r * acc_stride, scratch, path);
    }
  }
}

void MergePartial(SoftmaxPartial* a, float* acc_a, const SoftmaxPartial& b, const float* acc_b, int32_t D) {
  if (b.l == 0.0f) return;
  if (a->l == 0.0f) {
    *a = b;
    std::copy(acc_b, acc_b + D, acc_a);
    return;
  }
  const float m = std::max(a->m, b.m);
  const float ca = std::exp(a->m - m), cb = std::exp(b.m - m);
  for (int32_t d = 0; d < D; ++d) acc_a[d] = acc_a[d] * ca + acc_b[d] * cb;
  a->l = a->l * ca + b.l * cb;
  a->m = m;
}

}  // namespace strata::kernels
