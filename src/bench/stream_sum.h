/* The bandwidth probe's read loop: the sum (mod 2^64) of p[0..n) read as
 * uint64 words into four independent accumulators (pure loads: no long
 * dependency chain limits the load rate).
 *
 * Plain C, included by strata (read_bandwidth.cc)
 * and by the llama.cpp harness (bench/llamacpp_harness.c), so that the
 * roofline of both engines divides by reads of the same instructions.
 *
 * REQUIRES: p 64-byte aligned, n % 256 == 0; strata_stream_sum_avx512 only on
 * a CPU with AVX-512F. Thread-safety: pure functions. */
#ifndef STRATA_BENCH_STREAM_SUM_H_
#define STRATA_BENCH_STREAM_SUM_H_

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t strata_u64x8 __attribute__((vector_size(64), may_alias));

static inline uint64_t strata_stream_sum_portable(const uint8_t* p, size_t n) {
  strata_u64x8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
  for (size_t k = 0; k < n; k += 256) {
    a0 += *(const strata_u64x8*)(p + k);
    a1 += *(const strata_u64x8*)(p + k + 64);
    a2 += *(const strata_u64x8*)(p + k + 128);
    a3 += *(const strata_u64x8*)(p + k + 192);
  }
  const strata_u64x8 s = a0 + a1 + a2 + a3;
  uint64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += s[i];
  return sum;
}

__attribute__((target("avx512f"))) static inline uint64_t strata_stream_sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t k = 0; k < n; k += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void*)(p + k)));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void*)(p + k + 64)));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void*)(p + k + 128)));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void*)(p + k + 192)));
  }
  uint64_t lanes[8] __attribute__((aligned(64)));
  _mm512_store_si512((void*)lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += lanes[i];
  return sum;
}

#endif /* STRATA_BENCH_STREAM_SUM_H_ */
