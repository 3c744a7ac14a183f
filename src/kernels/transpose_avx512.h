// In-register 16x16 float transpose with AVX-512F, shared by the *_avx512.cc
// kernel files (packing weight panels, transposing key chunks).
// Include only from files compiled with AVX-512 flags.
// Thread-safety: pure function.
#pragma once

#include <immintrin.h>

namespace strata::kernels::internal {

// r[i] lane j -> r[j] lane i. The loops must unroll for r and t to live in
// registers (GCC does so only at -O3 without the pragmas).
inline void Transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  // r[4i + c], each 128-bit lane L: rows 4i .. 4i+3 at column 4L + c.
#pragma GCC unroll 16
  for (int j = 0; j < 4; ++j) {
    const __m512 u0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
    const __m512 u1 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
    const __m512 u2 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
    const __m512 u3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    t[j] = _mm512_shuffle_f32x4(u0, u1, 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(u0, u1, 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(u2, u3, 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(u2, u3, 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

}  // namespace strata::kernels::internal
