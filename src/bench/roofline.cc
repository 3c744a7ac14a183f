#include "bench/roofline.h"

#include <algorithm>
#include <vector>

#include "bench/bench.h"

namespace strata::bench {

uint64_t WeightBytesPerToken(const ModelWeights& w) { return StreamedWeightBytes(w) + w.token_embd.row_bytes(); }

double RooflineFraction(double tokens_per_s, uint64_t bytes_per_token, double bandwidth_bytes_per_s) {
  return tokens_per_s * static_cast<double>(bytes_per_token) / bandwidth_bytes_per_s;
}

PairedRoofline SummarizePairs(std::span<const PairedSample> samples, uint64_t bytes_per_token) {
  std::vector<double> fractions, bandwidths;
  for (const PairedSample& p : samples) {
    fractions.push_back(RooflineFraction(1.0 / p.token_s, bytes_per_token, p.probe_bytes_per_s));
    bandwidths.push_back(p.probe_bytes_per_s);
  }
  const Stats bw = Summarize(bandwidths);
  return {Summarize(fractions).median, bw.median, bw.min, bw.max, static_cast<int>(samples.size())};
}

uint64_t PairedProbeBytes(uint64_t bytes_per_token, int threads) {
  constexpr uint64_t kMin = uint64_t{256} << 20, kHugePage = uint64_t{2} << 20;
  const uint64_t unit = kHugePage * static_cast<uint64_t>(threads);
  return (std::max(bytes_per_token, kMin) + unit - 1) / unit * unit;
}

}  // namespace strata::bench
