#include "kernels/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace strata {
namespace {

// How long an idle thread polls before blocking: longer than the gap between
// the parallel operations of one decode step (a few microseconds of serial
// work), much shorter than a human-visible pause. The first kPureSpinTime polls
// back to back; after that each poll also yields, so that when the machine is
// oversubscribed a descheduled peer gets the core instead of waiting for the
// spinner's time slice to run out.
constexpr auto kSpinTime = std::chrono::microseconds(200);
constexpr auto kPureSpinTime = std::chrono::microseconds(20);
// Polls between clock reads (a clock read costs about as much as 10 pauses).
constexpr int kPollsPerClockRead = 64;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Polls done() for up to kSpinTime; returns whether it became true.
template <class Done>
bool SpinUntil(Done done) {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < kPollsPerClockRead; ++i) {
      if (done()) return true;
      CpuRelax();
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (elapsed >= kSpinTime) return false;
    if (elapsed >= kPureSpinTime) std::this_thread::yield();
  }
}

constexpr uint64_t kLow32 = 0xFFFFFFFFu;

// Takes the first (from_back = false) or last task of a share packed as
// front | back << 32; -1 once it is empty.
int64_t TakeFromShare(std::atomic<uint64_t>& range, bool from_back) {
  uint64_t r = range.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t front = r & kLow32, back = r >> 32;
    if (front >= back) return -1;
    const uint64_t next = from_back ? (front | (back - 1) << 32) : ((front + 1) | back << 32);
    if (range.compare_exchange_weak(r, next, std::memory_order_relaxed))
      return static_cast<int64_t>(from_back ? back - 1 : front);
  }
}

}  // namespace

void ThreadPool::FreeDeleter::operator()(void* p) const { std::free(p); }

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(std::max(1, n_threads)), shares_(std::make_unique<Share[]>(static_cast<size_t>(n_threads_))) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

uint64_t ThreadPool::AwaitGeneration(uint64_t seen) {
  uint64_t g = seen;
  const auto changed = [&] {
    g = generation_.load(std::memory_order_acquire);
    return g != seen;
  };
  if (SpinUntil(changed)) return g;
  std::unique_lock<std::mutex> lock(mu_);
  // seq_cst pairs with Run(): either Run sees this sleeper and notifies under
  // the mutex, or this thread sees Run's new generation before waiting.
  sleepers_.fetch_add(1);
  while (!changed()) cv_.wait(lock);
  sleepers_.fetch_sub(1);
  return g;
}

void ThreadPool::WorkerLoop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    seen = AwaitGeneration(seen);
    if (stop_.load()) return;
    (*job_)(ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::Run(const std::function<void(int ith, int nth)>& fn) {
  if (n_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: see AwaitGeneration
  if (sleepers_.load() > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }
  fn(0, n_threads_);
  const auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  // Workers normally finish within microseconds of the caller; if one was
  // descheduled, yield the core to it instead of competing.
  if (!SpinUntil(done))
    while (!done()) std::this_thread::yield();
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t begin, int64_t end)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n <= grain || n_threads_ == 1) {
    fn(0, n);
    return;
  }
  const int64_t per_thread = (n + n_threads_ - 1) / n_threads_;
  const int64_t chunk = (per_thread + grain - 1) / grain * grain;
  Run([&](int ith, int) {
    const int64_t begin = std::min(n, ith * chunk);
    const int64_t end = std::min(n, begin + chunk);
    if (begin < end) fn(begin, end);
  });
}

void ThreadPool::ParallelTasks(int64_t n_tasks, const std::function<void(int64_t task, int ith)>& fn) {
  if (n_tasks <= 0) return;
  if (n_tasks == 1 || n_threads_ == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) fn(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  Run([&](int ith, int) {
    for (int64_t i = next.fetch_add(1, std::memory_order_relaxed); i < n_tasks;
         i = next.fetch_add(1, std::memory_order_relaxed))
      fn(i, ith);
  });
}

void ThreadPool::ParallelStreams(int64_t n_tasks, const std::function<void(int64_t task, int ith)>& fn) {
  // Shares are packed in 32 bits each; beyond that fall back to single tasks.
  if (n_tasks <= 1 || n_threads_ == 1 || n_tasks > static_cast<int64_t>(kLow32)) return ParallelTasks(n_tasks, fn);
  const auto n = static_cast<uint64_t>(n_tasks), nth = static_cast<uint64_t>(n_threads_);
  for (uint64_t i = 0; i < nth; ++i)
    shares_[i].range.store(n * i / nth | (n * (i + 1) / nth) << 32, std::memory_order_relaxed);
  Run([&](int ith, int) {
    for (int64_t t; (t = TakeFromShare(shares_[ith].range, false)) >= 0;) fn(t, ith);
    for (int k = 1; k < n_threads_; ++k) {
      std::atomic<uint64_t>& other = shares_[(ith + k) % n_threads_].range;
      for (int64_t t; (t = TakeFromShare(other, true)) >= 0;) fn(t, ith);
    }
  });
}

void* ThreadPool::Scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    scratch_.reset(std::aligned_alloc(64, rounded));
    scratch_bytes_ = scratch_ ? rounded : 0;
  }
  return scratch_.get();
}

}  // namespace strata
