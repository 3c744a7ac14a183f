// The machine's memory read bandwidth: the ceiling (roofline) of memory-bound
// token generation, which streams every weight once per token.
//
// Method: an anonymous buffer far beyond the last-level cache, in huge pages
// where the OS allows (as strata's weights are: the best the machine reads),
// every page written by the thread that later reads it; n_threads threads,
// parked at a barrier between reads, each read one contiguous 1/n_threads of
// the buffer with the widest loads the CPU has (stream_sum.h). A read lasts
// from the first thread's start to the last thread's end, as the threads
// themselves stamp them.
//
// Thread-safety: a ReadProbe is used from one thread at a time; Read() uses
// all n_threads cores for its duration, so run nothing else meanwhile.
// SumU64 is pure.
#pragma once

#include <barrier>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "core/status.h"
#include "kernels/kernels.h"

namespace strata::bench {

class ReadProbe {
 public:
  // REQUIRES: n_threads >= 1; buffer_bytes a non-zero multiple of
  // 256 * n_threads. Fails if the buffer cannot be mapped.
  [[nodiscard]] static Status Create(int n_threads, uint64_t buffer_bytes, std::unique_ptr<ReadProbe>* out);
  ~ReadProbe();
  ReadProbe(const ReadProbe&) = delete;
  ReadProbe& operator=(const ReadProbe&) = delete;

  // One read of the whole buffer; *bytes_per_s = buffer_bytes / its duration.
  // Fails if a thread's sum is not the buffer's (the sums keep the loads from
  // being optimized away).
  [[nodiscard]] Status Read(double* bytes_per_s);

  int threads() const { return n_threads_; }
  uint64_t buffer_bytes() const { return bytes_; }

 private:
  using Clock = std::chrono::steady_clock;
  ReadProbe(int n_threads, uint64_t bytes, uint8_t* data);
  void Reader(int t);

  const int n_threads_;
  const uint64_t bytes_;
  uint8_t* const data_;  // mmapped [bytes_], word i holds i
  const kernels::Path path_;
  std::barrier<> sync_;  // the readers and the caller: start, then end of a read
  bool stop_ = false;    // written before releasing the readers for the last time
  std::vector<Clock::time_point> starts_, ends_;  // [n_threads]
  std::vector<uint8_t> wrong_sum_;                // [n_threads]
  std::vector<std::thread> threads_;
};

// The streaming kernel: sum (mod 2^64) of p[0..n) read as uint64 words, with
// the widest loads `path` has (kAvx512 and kAmx: 512-bit; others: portable
// vector code). REQUIRES: p 64-byte aligned, n % 256 == 0, the CPU runs path.
uint64_t SumU64(const uint8_t* p, size_t n, kernels::Path path);

}  // namespace strata::bench
