#include "bench/read_bandwidth.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <fmt/format.h>
#include <thread>
#include <vector>

#include "bench/bench.h"
#include "bench/read_bandwidth_isa.h"

namespace strata::bench {
namespace {

using U64x8 = uint64_t __attribute__((vector_size(64), may_alias));

uint64_t SumU64Portable(const uint8_t* p, size_t n) {
  U64x8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  for (size_t k = 0; k < n; k += 256) {
    a0 += *reinterpret_cast<const U64x8*>(p + k);
    a1 += *reinterpret_cast<const U64x8*>(p + k + 64);
    a2 += *reinterpret_cast<const U64x8*>(p + k + 128);
    a3 += *reinterpret_cast<const U64x8*>(p + k + 192);
  }
  const U64x8 s = a0 + a1 + a2 + a3;
  uint64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += s[i];
  return sum;
}

// Sum (mod 2^64) of the words [first, end) when word i holds i. Halves the even
// factor first so the result is exact modulo 2^64.
uint64_t IndexSum(uint64_t first, uint64_t end) {
  const uint64_t count = end - first, ends = first + end - 1;
  return count % 2 == 0 ? count / 2 * ends : ends / 2 * count;
}

// An anonymous private mapping, unmapped on destruction.
class Mapping {
 public:
  explicit Mapping(size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  ~Mapping() {
    if (data_) munmap(data_, bytes_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* data() const { return data_; }

 private:
  size_t bytes_;
  uint8_t* data_;
};

}  // namespace

uint64_t SumU64(const uint8_t* p, size_t n, kernels::Path path) {
  if (path >= kernels::Path::kAvx512) return internal::SumU64Avx512(p, n);
  return SumU64Portable(p, n);
}

Status MeasureReadBandwidth(int n_threads, int reps, uint64_t buffer_bytes, ReadBandwidth* out) {
  if (n_threads < 1 || reps < 1 || buffer_bytes == 0 || buffer_bytes % (256 * static_cast<uint64_t>(n_threads)) != 0)
    return Status::InvalidArgument(
        fmt::format("bandwidth probe: {} bytes is not a non-zero multiple of 256 x {} threads", buffer_bytes, n_threads));
  Mapping buf(buffer_bytes);
  if (!buf.data()) return Status::ResourceExhausted(fmt::format("bandwidth probe: cannot map {} bytes", buffer_bytes));
  const kernels::Path path = kernels::AvailablePaths().back();  // a machine property: ignores STRATA_KERNEL_PATH
  const uint64_t words = buffer_bytes / sizeof(uint64_t), chunk = words / static_cast<uint64_t>(n_threads);
  // Each thread stamps its own start and end: a repetition lasts from the
  // first start to the last end. (Timing from the coordinating thread would
  // undercount when it is scheduled late on cores busy with the readers.)
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> starts(static_cast<size_t>(n_threads)), ends(static_cast<size_t>(n_threads));
  std::barrier sync(n_threads + 1);
  std::atomic<bool> wrong_sum{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < n_threads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t first = chunk * static_cast<uint64_t>(t);
      uint64_t* w = reinterpret_cast<uint64_t*>(buf.data()) + first;
      for (uint64_t i = 0; i < chunk; ++i) w[i] = first + i;  // faults the pages in, by the thread that reads them
      const uint64_t expected = IndexSum(first, first + chunk);
      for (int r = 0; r < reps; ++r) {
        sync.arrive_and_wait();
        starts[static_cast<size_t>(t)] = Clock::now();
        if (SumU64(reinterpret_cast<const uint8_t*>(w), chunk * sizeof(uint64_t), path) != expected)
          wrong_sum = true;
        ends[static_cast<size_t>(t)] = Clock::now();
        sync.arrive_and_wait();
      }
    });
  }
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    sync.arrive_and_wait();  // releases the readers
    sync.arrive_and_wait();  // all have read their part and stamped it
    const double s = std::chrono::duration<double>(*std::max_element(ends.begin(), ends.end()) -
                                                   *std::min_element(starts.begin(), starts.end()))
                         .count();
    rates.push_back(static_cast<double>(buffer_bytes) / s);
  }
  for (std::thread& t : threads) t.join();
  if (wrong_sum) return Status::Internal("bandwidth probe: a streaming sum does not match the buffer's contents");
  const Stats st = Summarize(rates);
  *out = ReadBandwidth{st.median, st.max, n_threads, reps, buffer_bytes, 1};
  return Status::Ok();
}

ReadBandwidth CombineRounds(const std::vector<ReadBandwidth>& rounds) {
  std::vector<double> maxima, medians;
  ReadBandwidth out = rounds.front();
  out.reps = 0;
  out.rounds = static_cast<int>(rounds.size());
  for (const ReadBandwidth& r : rounds) {
    maxima.push_back(r.max);
    medians.push_back(r.median);
    out.reps += r.reps;
  }
  out.max = Summarize(maxima).median;
  out.median = Summarize(medians).median;
  return out;
}

}  // namespace strata::bench
