#include "bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <numeric>
#include <random>
#include <thread>

namespace strata::bench {

std::string TestSpec::name() const {
  if (kind == Kind::kBatched) return fmt::format("bs{}x{}", seqs, n_tokens);
  return fmt::format("{}{}", kind == Kind::kPrompt ? "pp" : "tg", n_tokens);
}

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(n);
  return s;
}

Status RunOnce(Context& ctx, const TestSpec& test, uint64_t seed, double* tokens_per_s) {
  const int32_t n_vocab = ctx.model().hparams().n_vocab;
  std::mt19937_64 rng(seed);
  std::vector<int32_t> tokens(static_cast<size_t>(test.n_tokens));
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(n_vocab));
  ctx.Truncate(0);
  const auto t0 = std::chrono::steady_clock::now();
  if (test.kind == TestSpec::Kind::kPrompt) {
    STRATA_RETURN_IF_ERROR(ctx.Decode(tokens, LogitsMode::kLast));
  } else {
    for (int32_t t : tokens) STRATA_RETURN_IF_ERROR(ctx.Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *tokens_per_s = test.n_tokens / s;
  return Status::Ok();
}

double MeasureReadBandwidth(int n_threads) {
  constexpr size_t kBytes = size_t{1} << 30;  // far beyond any cache
  const size_t n = kBytes / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  std::memset(buf.data(), 1, kBytes);  // fault every page in before timing
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> sums(static_cast<size_t>(n_threads));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
      threads.emplace_back([&, t] {
        const size_t begin = n * t / n_threads, end = n * (t + 1) / n_threads;
        // Eight independent accumulators keep enough loads in flight; the
        // compiler vectorizes this into wide loads.
        uint64_t acc[8] = {};
        size_t i = begin;
        for (; i + 8 <= end; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += buf[i + k];
        for (; i < end; ++i) acc[0] += buf[i];
        sums[t] = std::accumulate(acc, acc + 8, uint64_t{0});
      });
    }
    for (auto& th : threads) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (std::accumulate(sums.begin(), sums.end(), uint64_t{0}) == 42) return 0;  // keeps the loads alive
    best = std::max(best, static_cast<double>(kBytes) / s);
  }
  return best;
}

}  // namespace strata::bench
