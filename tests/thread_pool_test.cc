#include "kernels/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <vector>

namespace strata {
namespace {

TEST(ThreadPool, RunCallsEveryThreadIndexOnce) {
  for (int n : {1, 2, 3, 5}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.n_threads(), n);
    std::vector<std::atomic<int>> calls(n);
    std::atomic<int> bad_nth{0};
    pool.Run([&](int ith, int nth) {
      calls[ith].fetch_add(1);
      if (nth != n) bad_nth.fetch_add(1);
    });
    for (int i = 0; i < n; ++i) EXPECT_EQ(calls[i].load(), 1) << "n=" << n << " ith=" << i;
    EXPECT_EQ(bad_nth.load(), 0);
  }
}

TEST(ThreadPool, CallerRunsThreadZero) {
  ThreadPool pool(3);
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<std::thread::id> ids(3);
  pool.Run([&](int ith, int) { ids[ith] = std::this_thread::get_id(); });
  EXPECT_EQ(ids[0], caller);
  EXPECT_NE(ids[1], caller);
  EXPECT_NE(ids[2], caller);
  EXPECT_NE(ids[1], ids[2]);
}

TEST(ThreadPool, ParallelForCoversRangeOnceInGrainChunks) {
  for (int n_threads : {1, 2, 4}) {
    ThreadPool pool(n_threads);
    for (int64_t n : {0, 1, 7, 64, 100, 1001}) {
      for (int64_t grain : {1, 4, 16, 2000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> misaligned{0};
        pool.ParallelFor(n, grain, [&](int64_t begin, int64_t end) {
          if (begin % grain != 0 || (end != n && (end - begin) % grain != 0) || begin >= end) misaligned.fetch_add(1);
          for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << n << " " << grain << " " << i;
        EXPECT_EQ(misaligned.load(), 0) << n << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, ParallelTasksRunsEachTaskOnce) {
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    for (int64_t n_tasks : {0, 1, 2, 17, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      std::atomic<int> bad_ith{0};
      pool.ParallelTasks(n_tasks, [&](int64_t task, int ith) {
        if (ith < 0 || ith >= n_threads) bad_ith.fetch_add(1);
        hits[task].fetch_add(1);
      });
      for (int64_t i = 0; i < n_tasks; ++i) ASSERT_EQ(hits[i].load(), 1) << n_tasks << " " << i;
      EXPECT_EQ(bad_ith.load(), 0);
    }
  }
}

TEST(ThreadPool, ParallelStreamsRunsEachTaskOnceInAscendingShares) {
  for (int n_threads : {1, 2, 3}) {
    ThreadPool pool(n_threads);
    for (int64_t n_tasks : {0, 1, 2, 17, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      std::vector<std::vector<int64_t>> order(static_cast<size_t>(n_threads));
      pool.ParallelStreams(n_tasks, [&](int64_t task, int ith) {
        hits[task].fetch_add(1);
        order[static_cast<size_t>(ith)].push_back(task);
      });
      for (int64_t i = 0; i < n_tasks; ++i) ASSERT_EQ(hits[i].load(), 1) << n_tasks << " " << i;
      if (n_tasks <= 1 || n_threads == 1) continue;
      // What a thread ran of its own share is a run from the share's front
      // (others may have taken the rest from its end).
      for (int ith = 0; ith < n_threads; ++ith) {
        const int64_t begin = n_tasks * ith / n_threads, end = n_tasks * (ith + 1) / n_threads;
        int64_t expect = begin;
        for (int64_t t : order[static_cast<size_t>(ith)])
          if (t >= begin && t < end) EXPECT_EQ(t, expect++) << n_tasks << " " << ith;
      }
    }
  }
}

// A thread held up in its first task leaves the rest of its share to the
// others, which take it from the end: thread 0 waits until thread 1 has run a
// task of share 0, so the test finishes only if stealing works.
TEST(ThreadPool, ParallelStreamsStealsFromAStalledThread) {
  ThreadPool pool(2);
  const int64_t n_tasks = 40;  // share 0 is [0, 20)
  std::vector<std::atomic<int>> ran_by(n_tasks);
  std::atomic<bool> stolen{false};
  pool.ParallelStreams(n_tasks, [&](int64_t task, int ith) {
    ran_by[task].store(ith);
    if (ith == 1 && task < n_tasks / 2) stolen.store(true);
    if (ith == 0 && task == 0)
      while (!stolen.load()) std::this_thread::yield();
  });
  EXPECT_EQ(ran_by[0].load(), 0);
  EXPECT_EQ(ran_by[n_tasks / 2 - 1].load(), 1);  // the end of share 0 went first
  for (int64_t t = n_tasks / 2; t < n_tasks; ++t) EXPECT_EQ(ran_by[t].load(), 1) << t;
}

// Back-to-back jobs (workers spinning) and jobs after the workers went to sleep
// must neither lose a wake-up nor run a job twice.
TEST(ThreadPool, ManyJobsHotAndAfterSleep) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  const int kHot = 5000;
  for (int i = 0; i < kHot; ++i) pool.Run([&](int, int) { total.fetch_add(1, std::memory_order_relaxed); });
  EXPECT_EQ(total.load(), 3 * kHot);
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));  // past the spin window
    pool.Run([&](int, int) { total.fetch_add(1, std::memory_order_relaxed); });
  }
  EXPECT_EQ(total.load(), 3 * kHot + 15);
}

TEST(ThreadPool, JobResultsVisibleToCaller) {
  ThreadPool pool(4);
  std::vector<int64_t> out(4000, 0);  // plain writes, published by Run's completion
  for (int round = 1; round <= 50; ++round) {
    pool.ParallelFor(4000, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] += i * round;
    });
  }
  for (int64_t i = 0; i < 4000; ++i) ASSERT_EQ(out[i], i * (50 * 51 / 2));
}

TEST(ThreadPool, ScratchIsAlignedAndGrows) {
  ThreadPool pool(2);
  auto* a = static_cast<uint8_t*>(pool.Scratch(100));
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::fill(a, a + 100, 7);
  EXPECT_EQ(pool.Scratch(50), a);  // smaller requests reuse the buffer
  auto* b = static_cast<uint8_t*>(pool.Scratch(1 << 20));
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 64, 0u);
  b[(1 << 20) - 1] = 1;
}

// Hand-off latency (run with --gtest_also_run_disabled_tests).
TEST(ThreadPool, DISABLED_BenchmarkRunLatency) {
  ThreadPool pool(2);
  const auto empty = [](int, int) {};
  for (int i = 0; i < 1000; ++i) pool.Run(empty);
  const int kIters = 200000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) pool.Run(empty);
  const double hot_ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kIters;
  std::vector<double> cold;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    t0 = std::chrono::steady_clock::now();
    pool.Run(empty);
    cold.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(cold.begin(), cold.end());
  std::printf("Run() round trip, 2 threads: hot %.0f ns; after sleeping: median %.1f us, p90 %.1f us\n", hot_ns,
              cold[cold.size() / 2], cold[cold.size() * 9 / 10]);
}

}  // namespace
}  // namespace strata
