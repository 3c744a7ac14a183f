#include "bench/read_bandwidth.h"

#include <sys/mman.h>

#include <algorithm>
#include <fmt/format.h>

#include "bench/stream_sum.h"

namespace strata::bench {
namespace {

// Sum (mod 2^64) of the words [first, end) when word i holds i. Halves the even
// factor first so the result is exact modulo 2^64.
uint64_t IndexSum(uint64_t first, uint64_t end) {
  const uint64_t count = end - first, ends = first + end - 1;
  return count % 2 == 0 ? count / 2 * ends : ends / 2 * count;
}

}  // namespace

uint64_t SumU64(const uint8_t* p, size_t n, kernels::Path path) {
  if (path >= kernels::Path::kAvx512) return strata_stream_sum_avx512(p, n);
  return strata_stream_sum_portable(p, n);
}

Status ReadProbe::Create(int n_threads, uint64_t buffer_bytes, std::unique_ptr<ReadProbe>* out) {
  if (n_threads < 1 || buffer_bytes == 0 || buffer_bytes % (256 * static_cast<uint64_t>(n_threads)) != 0)
    return Status::InvalidArgument(
        fmt::format("bandwidth probe: {} bytes is not a non-zero multiple of 256 x {} threads", buffer_bytes, n_threads));
  void* p = mmap(nullptr, buffer_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::ResourceExhausted(fmt::format("bandwidth probe: cannot map {} bytes", buffer_bytes));
  madvise(p, buffer_bytes, MADV_HUGEPAGE);  // advice: 4 KiB pages if refused
  out->reset(new ReadProbe(n_threads, buffer_bytes, static_cast<uint8_t*>(p)));
  return Status::Ok();
}

ReadProbe::ReadProbe(int n_threads, uint64_t bytes, uint8_t* data)
    : n_threads_(n_threads),
      bytes_(bytes),
      data_(data),
      path_(kernels::AvailablePaths().back()),  // a machine property: ignores STRATA_KERNEL_PATH
      sync_(n_threads + 1),
      starts_(static_cast<size_t>(n_threads)),
      ends_(static_cast<size_t>(n_threads)),
      wrong_sum_(static_cast<size_t>(n_threads)) {
  for (int t = 0; t < n_threads; ++t) threads_.emplace_back([this, t] { Reader(t); });
  sync_.arrive_and_wait();  // every page written
}

ReadProbe::~ReadProbe() {
  stop_ = true;
  sync_.arrive_and_wait();
  for (std::thread& t : threads_) t.join();
  munmap(data_, bytes_);
}

void ReadProbe::Reader(int t) {
  const uint64_t chunk = bytes_ / sizeof(uint64_t) / static_cast<uint64_t>(n_threads_);
  const uint64_t first = chunk * static_cast<uint64_t>(t);
  uint64_t* w = reinterpret_cast<uint64_t*>(data_) + first;
  for (uint64_t i = 0; i < chunk; ++i) w[i] = first + i;  // faults the pages in, by the thread that reads them
  const uint64_t expected = IndexSum(first, first + chunk);
  sync_.arrive_and_wait();
  for (;;) {
    sync_.arrive_and_wait();  // released by Read() or the destructor
    if (stop_) return;
    starts_[static_cast<size_t>(t)] = Clock::now();
    wrong_sum_[static_cast<size_t>(t)] = SumU64(reinterpret_cast<const uint8_t*>(w), chunk * sizeof(uint64_t), path_) != expected;
    ends_[static_cast<size_t>(t)] = Clock::now();
    sync_.arrive_and_wait();
  }
}

Status ReadProbe::Read(double* bytes_per_s) {
  sync_.arrive_and_wait();  // releases the readers
  sync_.arrive_and_wait();  // all have read their part and stamped it
  if (std::find(wrong_sum_.begin(), wrong_sum_.end(), 1) != wrong_sum_.end())
    return Status::Internal("bandwidth probe: a streaming sum does not match the buffer's contents");
  const double s =
      std::chrono::duration<double>(*std::max_element(ends_.begin(), ends_.end()) - *std::min_element(starts_.begin(), starts_.end()))
          .count();
  *bytes_per_s = static_cast<double>(bytes_) / s;
  return Status::Ok();
}

}  // namespace strata::bench
