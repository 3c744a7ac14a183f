// The machine's memory read bandwidth: the ceiling (roofline) of memory-bound
// token generation, which streams every weight once per token.
//
// Method: an anonymous buffer far beyond the last-level cache, every page
// written (faulted in) before timing; n_threads threads, created and parked at
// a barrier before the timed region, each read one contiguous 1/n_threads of
// the buffer with the widest loads the CPU has, summed with integer adds into
// four independent accumulators (pure loads: no FMA or other long dependency
// chain limits the load rate). A repetition lasts from the first thread's
// start to the last thread's end, as the threads themselves stamp them.
//
// Thread-safety: MeasureReadBandwidth uses all n_threads cores for its
// duration; run it alone. SumU64 is pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/kernels.h"

namespace strata::bench {

// The probe's default buffer: 1 GiB, far beyond any last-level cache (tens of MiB).
constexpr uint64_t kDefaultProbeBytes = uint64_t{1} << 30;

struct ReadBandwidth {
  double median = 0;           // bytes/s, median over the repetitions
  double max = 0;              // bytes/s, best repetition: the roofline's ceiling
  int threads = 0;
  int reps = 0;                // repetitions in all (over every round)
  uint64_t buffer_bytes = 0;
  int rounds = 1;              // probes taken at different times (CombineRounds)
};

// REQUIRES: n_threads >= 1, reps >= 1, buffer_bytes a non-zero multiple of
// 256 * n_threads. Fails if the buffer cannot be mapped or a thread's sum is
// not the expected one (the sums keep the loads from being optimized away).
[[nodiscard]] Status MeasureReadBandwidth(int n_threads, int reps, uint64_t buffer_bytes, ReadBandwidth* out);

// One figure from probes taken next to each generation repetition, so the
// roofline sees the bandwidth the test saw (on a shared host it drifts by
// tens of percent within minutes): max = median of the rounds' best
// repetitions, median = median of their medians. REQUIRES: rounds non-empty,
// all with the same threads and buffer_bytes.
ReadBandwidth CombineRounds(const std::vector<ReadBandwidth>& rounds);

// The streaming kernel: sum (mod 2^64) of p[0..n) read as uint64 words, with
// the widest loads `path` has (kAvx512 and kAmx: 512-bit; others: portable
// vector code). REQUIRES: p 64-byte aligned, n % 256 == 0, the CPU runs path.
uint64_t SumU64(const uint8_t* p, size_t n, kernels::Path path);

}  // namespace strata::bench
