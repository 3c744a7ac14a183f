// Row operations: scalar references (written as llama2.c computes them, which
// the F32 end-to-end tests compare against) and dispatch to the SIMD versions.
#include <algorithm>
#include <cmath>

#include "kernels/isa_kernels.h"
#include "kernels/kernels.h"

namespace strata::kernels {
namespace {

constexpr int kMaxRotPairs = 512;

void RmsNormScalar(const float* x, const float* weight, float* out, int64_t n, float eps) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = weight[i] * (scale * x[i]);
}

void SoftmaxScalar(float* x, int64_t n) {
  if (n <= 0) return;
  const float max = *std::max_element(x, x + n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

void SwiGLUScalar(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g * (1.0f / (1.0f + std::exp(-g))) * up[i];
  }
}

void GeGLUScalar(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608f, kCubic = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float u = kSqrt2OverPi * g * (1.0f + kCubic * g * g);
    out[i] = g / (1.0f + std::exp(-2.0f * u)) * up[i];
  }
}

float DotF32Scalar(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void AxpyRowsF32Scalar(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) y[i] += a[r] * rows[r * stride + i];
}

void AxpyF32Scalar(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void RopeApply(float* x, int n_rot, bool neox, const float* c, const float* s) {
  const int half = n_rot / 2;
  for (int i = 0; i < half; ++i) {
    float* a = neox ? &x[i] : &x[2 * i];
    float* b = neox ? &x[i + half] : &x[2 * i + 1];
    const float v0 = *a, v1 = *b;
    *a = v0 * c[i] - v1 * s[i];
    *b = v0 * s[i] + v1 * c[i];
  }
}

}  // namespace

void RopeAngles(int n_rot, int pos, float freq_base, float freq_scale, float* cos_out, float* sin_out) {
  for (int i = 0; i < n_rot / 2; ++i) {
    const float freq = 1.0f / std::pow(freq_base, static_cast<float>(2 * i) / static_cast<float>(n_rot));
    const float theta = static_cast<float>(pos) * freq_scale * freq;
    cos_out[i] = std::cos(theta);
    sin_out[i] = std::sin(theta);
  }
}

void Rope(float* x, int head_dim, int n_rot, int pos, float freq_base, float freq_scale, bool neox) {
  float c[kMaxRotPairs], s[kMaxRotPairs];
  n_rot = std::min(n_rot, 2 * kMaxRotPairs);
  RopeAngles(n_rot, pos, freq_base, freq_scale, c, s);
  RopeApply(x, n_rot, neox, c, s);
}

void RopeHeads(float* x, int n_heads, int head_dim, int n_rot, bool neox, const float* cos, const float* sin) {
  for (int h = 0; h < n_heads; ++h) RopeApply(x + static_cast<int64_t>(h) * head_dim, n_rot, neox, cos, sin);
}

void RmsNorm(const float* x, const float* weight, float* out, int64_t n, float eps, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return RmsNormScalar(x, weight, out, n, eps);
    case Path::kAvx2: return internal::RmsNormAvx2(x, weight, out, n, eps);
    case Path::kAvx512:
    case Path::kAmx: return internal::RmsNormAvx512(x, weight, out, n, eps);
  }
}

void Softmax(float* x, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return SoftmaxScalar(x, n);
    case Path::kAvx2: return internal::SoftmaxAvx2(x, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::SoftmaxAvx512(x, n);
  }
}

void SwiGLU(const float* gate, const float* up, float* out, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return SwiGLUScalar(gate, up, out, n);
    case Path::kAvx2: return internal::SwiGLUAvx2(gate, up, out, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::SwiGLUAvx512(gate, up, out, n);
  }
}

void GeGLU(const float* gate, const float* up, float* out, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return GeGLUScalar(gate, up, out, n);
    case Path::kAvx2: return internal::GeGLUAvx2(gate, up, out, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::GeGLUAvx512(gate, up, out, n);
  }
}

void SoftCap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] * inv);
}

float DotF32(const float* a, const float* b, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return DotF32Scalar(a, b, n);
    case Path::kAvx2: return internal::DotF32Avx2(a, b, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::DotF32Avx512(a, b, n);
  }
  return 0.0f;
}

void AxpyF32(float a, const float* x, float* y, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return AxpyF32Scalar(a, x, y, n);
    case Path::kAvx2: return internal::AxpyF32Avx2(a, x, y, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::AxpyF32Avx512(a, x, y, n);
  }
}

void RmsNorm(const float* x, const float* weight, float* out, int64_t n, float eps) {
  RmsNorm(x, weight, out, n, eps, BestPath());
}
void Softmax(float* x, int64_t n) { Softmax(x, n, BestPath()); }
void SwiGLU(const float* gate, const float* up, float* out, int64_t n) { SwiGLU(gate, up, out, n, BestPath()); }
void GeGLU(const float* gate, const float* up, float* out, int64_t n) { GeGLU(gate, up, out, n, BestPath()); }
float DotF32(const float* a, const float* b, int64_t n) { return DotF32(a, b, n, BestPath()); }
void AxpyF32(float a, const float* x, float* y, int64_t n) { AxpyF32(a, x, y, n, BestPath()); }

void AxpyRowsF32(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n, Path path) {
  switch (internal::ClampToAvailable(path)) {
    case Path::kScalar: return AxpyRowsF32Scalar(a, rows, n_rows, stride, y, n);
    case Path::kAvx2: return internal::AxpyRowsF32Avx2(a, rows, n_rows, stride, y, n);
    case Path::kAvx512:
    case Path::kAmx: return internal::AxpyRowsF32Avx512(a, rows, n_rows, stride, y, n);
  }
}

void AxpyRowsF32(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n) {
  AxpyRowsF32(a, rows, n_rows, stride, y, n, BestPath());
}

}  // namespace strata::kernels
