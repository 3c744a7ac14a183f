// Compute kernels: the hot loops of inference. Every operation has a portable
// scalar reference; SIMD paths (AVX2, AVX-512 with VNNI, and its BF16 dot
// product where the CPU has it) are chosen at run time from CPUID and are
// tested against the reference path by path (tests/kernels_test.cc, one table
// with per-dtype tolerances). There are no AMX kernels: Path::kAmx runs the
// AVX-512 ones.
//
// Shapes use ggml order in comments: [inner, outer]. All pointers are to
// contiguous row-major data; nothing here allocates on the hot path except
// through the pool's scratch (ThreadPool::Scratch).
//
// Thread-safety: functions are reentrant; parallel ones split work over the
// given ThreadPool and must not be called concurrently on one pool.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "kernels/thread_pool.h"

namespace strata::kernels {

// Instruction-set paths, from least to most capable. Append-only.
enum class Path : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };
const char* PathName(Path p);

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx512dq = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;  // amx_* only if the OS granted tile state
};
// Detected once (CPUID + arch_prctl for AMX); cheap to call.
const CpuFeatures& DetectCpu();
// The CPU's model name (CPUID brand string, trimmed; "unknown" without one).
std::string CpuModelName();
// Paths this machine can run, always including kScalar; each path's CPU
// requirements include the previous path's, so the list is a prefix of Path.
// kAvx2: AVX2+FMA+F16C; kAvx512: + AVX-512 F/BW/VL/DQ/VNNI; kAmx: + AMX tile/int8/bf16.
std::vector<Path> AvailablePaths();
// The fastest available path, capped by $STRATA_KERNEL_PATH (scalar|avx2|
// avx512|amx; read once) for benchmarks and A/B checks.
Path BestPath();

// ---- element conversion and quantization (reference rows) ----
// dst: n elements of type t, quantized as llama-quantize writes them without
// an importance matrix (bit for bit). REQUIRES: n % block_size(t) == 0; t is
// Info(t).supported, or an activation format (Q8_1, Q8_K).
void QuantizeRow(DType t, const float* src, void* dst, int64_t n);
// src: n elements of type t -> F32 [n], as ggml's dequantize_row_*. REQUIRES: as QuantizeRow.
void DequantizeRow(DType t, const void* src, float* dst, int64_t n);

// ---- matrix multiplication ----
// y = x · Wᵀ:  w: type w.type [n_in, n_out], x: F32 [n_in, n_tok], y: F32 [n_out, n_tok].
// Quantized weights quantize x on the fly (Q8_0, Q8_1 or Q8_K activations,
// as llama.cpp pairs them with each weight type; kernels/vec_dot.h). Types
// without SIMD kernels run the scalar reference on every path.
// `path` is an upper bound: the most capable path this CPU runs that is not
// above it is used (tests pass each available path; callers use the default).
// Uses pool.Scratch() for quantized activations and packed weight panels.
// REQUIRES: w.cols() == n_in; y does not alias x; no other user of pool's
// scratch is live across the call; if w is packed (layout kPanels32), `path`
// and this CPU reach the path it was packed for.
void MatMul(const Tensor& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool, Path path = BestPath());
// BF16 weights on the AVX-512 path of a CPU with AVX512_BF16: batches of at
// least this many tokens round x to BF16 (nearest even) and multiply with
// VDPBF16PS, as llama.cpp does; smaller batches use x as it is.
inline constexpr int64_t kBf16DotMinTokens = 6;

// One product of MatMulShared: y = x · wᵀ, y: F32 [w.rows(), n_tok].
struct MatMulOut {
  const Tensor* w;
  float* y;
};
// MatMul of one x by several matrices (q/k/v, gate/up) in one parallel pass:
// x is quantized once and the threads run through every matrix's panels in a
// single stream, with no barrier in between. Same results as MatMul per out.
// REQUIRES: outs non-empty; as MatMul for each out; no y aliases x.
void MatMulShared(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool,
                  Path path = BestPath());

// ---- packed matrices ----
// A path may read a matrix in a layout of its own, packed once at model load
// instead of on every call: AVX-512 packs F32, F16, BF16 and every quantized
// type it has kernels for, AVX2 packs Q8_0, Q4_0 and Q4_K, into 32-row panels
// (TensorLayout::kPanels32) that their register tiles read as they are.
// Packing keeps the bytes per row (the last panel is padded to 32 rows).
// It does not change quantized results or prefill's; float decode (fewer
// than 6 tokens) then sums in the prefill GEMM's order instead of along rows
// (float rounding).
// Bytes PackMatrix needs for w on `path`; 0 when that path has no packed
// layout for w's type (then w is used as it is). REQUIRES: w.layout == kRows.
size_t PackedMatrixBytes(const Tensor& w, Path path = BestPath());
// Writes w packed for `path` to dst and returns the packed view (data = dst).
// REQUIRES: PackedMatrixBytes(w, path) > 0; dst 64-byte aligned with that many bytes.
Tensor PackMatrix(const Tensor& w, void* dst, Path path = BestPath());

// ---- elementwise and row operations ----
// out[i] = x[i] / sqrt(mean(x²) + eps) * weight[i];  x, out, weight: F32 [n]. out may alias x.
void RmsNorm(const float* x, const float* weight, float* out, int64_t n, float eps);
// In place rotary embedding on one head vector x: F32 [head_dim] at position pos.
// neox=false: pairs (x[2i], x[2i+1]); neox=true: pairs (x[i], x[i + n_rot/2]).
// theta_i = pos * freq_scale * base^(-2i/n_rot), for 2i < n_rot; dims >= n_rot untouched.
// The angles are 1/powf(base, 2i/n_rot) in float, as llama2.c computes them.
void Rope(float* x, int head_dim, int n_rot, int pos, float freq_base, float freq_scale, bool neox);
// The angles Rope uses at position pos: cos_out, sin_out: F32 [n_rot / 2]. They
// depend only on pos and the pair, so a forward pass computes them once per
// token for every head of every layer.
void RopeAngles(int n_rot, int pos, float freq_base, float freq_scale, float* cos_out, float* sin_out);
// Rope on n_heads consecutive head vectors x: F32 [head_dim, n_heads] with
// angles from RopeAngles (cos, sin: F32 [n_rot / 2]); same results as Rope on
// each head. REQUIRES: n_rot <= head_dim.
void RopeHeads(float* x, int n_heads, int head_dim, int n_rot, bool neox, const float* cos, const float* sin);
// In place softmax over F32 [n].
void Softmax(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i];  F32 [n]. out may alias gate.
void SwiGLU(const float* gate, const float* up, float* out, int64_t n);
// out[i] = gelu(gate[i]) * up[i] with GELU's tanh approximation,
// gelu(x) = x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))), computed as
// x / (1 + e^(-2u)) for u the tanh's argument;  F32 [n]. out may alias gate.
void GeGLU(const float* gate, const float* up, float* out, int64_t n);
// x[i] = cap · tanh(x[i] / cap) (logit soft-capping);  F32 [n]. REQUIRES: cap > 0.
void SoftCap(float* x, int64_t n, float cap);
// dot product of two F32 vectors [n].
float DotF32(const float* a, const float* b, int64_t n);
// y[i] += a * x[i];  F32 [n].
void AxpyF32(float a, const float* x, float* y, int64_t n);
// y[i] += Σ_r a[r] · rows[r · stride + i] for i < n, r < n_rows: y plus a
// weighted sum of rows (F32 a [n_rows], y [n]); a vector-matrix product
// accumulated into y, for the small products of LoRA adapters.
// REQUIRES: stride >= n; y does not alias rows.
void AxpyRowsF32(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n);

// The row operations above on an explicit path (capped like MatMul's); the
// overloads without one use BestPath(). Results match the scalar path within
// float rounding (exp is a polynomial approximation with <= 2 ulp error).
void RmsNorm(const float* x, const float* weight, float* out, int64_t n, float eps, Path path);
void Softmax(float* x, int64_t n, Path path);
void SwiGLU(const float* gate, const float* up, float* out, int64_t n, Path path);
void GeGLU(const float* gate, const float* up, float* out, int64_t n, Path path);
float DotF32(const float* a, const float* b, int64_t n, Path path);
void AxpyF32(float a, const float* x, float* y, int64_t n, Path path);
void AxpyRowsF32(const float* a, const float* rows, int64_t n_rows, int64_t stride, float* y, int64_t n, Path path);

}  // namespace strata::kernels
