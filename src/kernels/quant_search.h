// The scale searches llama.cpp's quantizers use without an importance matrix
// (ggml-quants.c: nearest_int, make_qx_quants, make_q3_quants,
// make_qkx2_quants, best_index_int8), reimplemented with the same float
// operations in the same order so that the blocks they lead to are
// bit-identical. Internal to src/kernels.
//
// Thread-safety: reentrant.
#pragma once

#include <cstdint>
#include <cstring>

namespace strata::kernels::internal {

// Round to nearest, ties to even, through the float adder: v + 1.5 * 2^23
// puts the integer in the low mantissa bits. REQUIRES |v| <= 4194303.
inline int NearestInt(float v) {
  const float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof bits);
  return (bits & 0x007FFFFF) - 0x00400000;
}

// Symmetric quantization of x[n] to L[i] = q + nmax, q in [-nmax, nmax - 1],
// minimizing sum w (x - scale q)^2 over 19 candidate scales around
// nmax / max|x| with w = x^2 (rmse_type 1, no importance weights; the only
// form llama.cpp's reference quantizers use). Returns the scale (0 for an
// all-zero x, L = 0).
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L);

// Symmetric 3-bit-style quantization (q in [-nmax, nmax - 1], L = q + nmax)
// refined element by element for up to 5 rounds, weights x^2. Returns the scale.
float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L);

// Asymmetric quantization x ~ scale * L - min_out, L in [0, nmax], over
// nstep + 1 candidate scales (rmin + rdelta * is + nmax) / (max - min), each
// refined by weighted least squares; use_mad picks |error| over error^2.
// *min_out is the (non-negative) offset. aux: scratch of n bytes.
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* min_out, uint8_t* aux,
                     float rmin, float rdelta, int nstep, bool use_mad);

// Index of the value in the sorted table values[n] nearest to x (ties to the
// lower index only when strictly nearer, as ggml).
int BestIndexInt8(int n, const int8_t* values, float x);

}  // namespace strata::kernels::internal
