// Work splitting shared by the instruction-set-specific matmul files
// (matmul_avx2.cc, matmul_avx512.cc). Internal to src/kernels.
//
// Everything here has internal linkage: each including file is compiled with
// its own -m flags, and one shared out-of-line copy (an inline function the
// linker may pick from the AVX-512 file) could run AVX-512 code on a CPU that
// only took the AVX2 path.
//
// Thread-safety: ForRowRuns runs fn on the pool's threads concurrently.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/tensor.h"
#include "kernels/thread_pool.h"

namespace strata::kernels::internal {
namespace {

[[maybe_unused]] size_t RoundUp64(size_t n) { return (n + 63) / 64 * 64; }

// Calls f(std::integral_constant<int, n>{}) for 1 <= n <= N: picks the
// register-tile instantiation for a run-time token count.
template <int N, class F>
void WithCount(int64_t n, const F& f) {
  if constexpr (N > 1) {
    if (n < N) return WithCount<N - 1>(n, f);
  }
  f(std::integral_constant<int, N>());
}

// Calls fn(o, t0, n) for every row o of w and token run t0 .. t0+n-1
// (n <= kTokens) in tasks of about task_bytes of rows; each thread streams a
// contiguous share of them (ThreadPool::ParallelStreams), which keeps the
// hardware prefetcher trained, and task_bytes is the grain of rebalancing.
template <int kTokens, class Fn>
void ForRowRuns(const Tensor& w, int64_t n_tok, int64_t task_bytes, ThreadPool& pool, const Fn& fn) {
  const int64_t n_out = w.rows();
  const int64_t rows_per_task = std::max<int64_t>(1, task_bytes / static_cast<int64_t>(w.row_bytes()));
  pool.ParallelStreams((n_out + rows_per_task - 1) / rows_per_task, [&](int64_t task, int) {
    const int64_t end = std::min(n_out, (task + 1) * rows_per_task);
    for (int64_t o = task * rows_per_task; o < end; ++o)
      for (int64_t t0 = 0; t0 < n_tok; t0 += kTokens) fn(o, t0, std::min<int64_t>(kTokens, n_tok - t0));
  });
}

}  // namespace
}  // namespace strata::kernels::internal
