// AVX-512 streaming read kernel of read_bandwidth.h (compiled with -mavx512f;
// called only after a CPUID check).
#include <immintrin.h>

#include <cstdint>

#include "bench/read_bandwidth_isa.h"

namespace strata::bench::internal {

uint64_t SumU64Avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t k = 0; k < n; k += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + k));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + k + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + k + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + k + 192));
  }
  alignas(64) uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
  uint64_t sum = 0;
  for (uint64_t v : lanes) sum += v;
  return sum;
}

}  // namespace strata::bench::internal
