// ThreadPool: persistent workers that run one parallel loop at a time; the
// calling thread takes part. No thread is created per operation.
//
// A decode step issues ~100 parallel operations of tens of microseconds, so
// hand-off latency matters: idle workers spin (with pause) for a short while
// before sleeping on a condition variable, and the caller spins for completion.
//
// Thread-safety: Run, ParallelFor and Scratch must be called from one thread at
// a time (the engine's step thread), never from inside a job. Workers only run
// the function they are handed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  // n_threads >= 1 includes the caller; n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int n_threads() const { return n_threads_; }

  // Calls fn(thread_index, n_threads) once on each thread and waits for all.
  // fn splits the work itself (static partition: deterministic results).
  // The caller runs ith == 0.
  void Run(const std::function<void(int ith, int nth)>& fn);

  // Splits [0, n) into contiguous chunks, one per thread, rounded to `grain`
  // (grain >= 1). Threads whose chunk is empty are not called; n <= grain runs
  // on the caller alone.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

  // Calls fn(task, ith) for every task in [0, n_tasks), each task once, handing
  // the next task to whichever thread is free (balances uneven or interrupted
  // threads). Results are deterministic if tasks write disjoint outputs.
  void ParallelTasks(int64_t n_tasks, const std::function<void(int64_t task, int ith)>& fn);

  // Calls fn(task, ith) for every task in [0, n_tasks), each task once. Thread
  // ith first runs its own contiguous share of the tasks in ascending order,
  // then takes what is left of the other shares from their ends (balances an
  // interrupted thread). For tasks laid out in memory order this gives each
  // thread one long sequential stream, which the hardware prefetcher follows
  // much better than tasks handed out one at a time (decode matmuls). Results
  // are deterministic if tasks write disjoint outputs.
  void ParallelStreams(int64_t n_tasks, const std::function<void(int64_t task, int ith)>& fn);

  // A 64-byte aligned buffer of at least `bytes` owned by the pool and reused
  // across calls (kernels carve per-call activations and per-thread panels from
  // it, so the hot path does not allocate). Contents are unspecified; the
  // pointer is valid until the next Scratch call or the pool's destruction.
  void* Scratch(size_t bytes);

 private:
  struct FreeDeleter {
    void operator()(void* p) const;
  };

  void WorkerLoop(int ith);
  // Blocks until generation_ differs from seen; returns the new value.
  uint64_t AwaitGeneration(uint64_t seen);

  int n_threads_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;  // published by generation_
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};   // workers still running the current job
  std::atomic<int> sleepers_{0};  // workers blocked (or about to block) on cv_
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  // ParallelStreams' remaining share per thread: [front, back) packed as
  // front | back << 32, one cache line each.
  struct alignas(64) Share {
    std::atomic<uint64_t> range{0};
  };
  std::unique_ptr<Share[]> shares_;
  std::unique_ptr<void, FreeDeleter> scratch_;
  size_t scratch_bytes_ = 0;
};

}  // namespace strata
