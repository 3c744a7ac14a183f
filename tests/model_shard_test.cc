// BalancedLayerBounds: --split layer's ranges, by the bytes each rank streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "model/model_shard.h"

namespace strata {
namespace {

// The most any rank streams with these bounds.
uint64_t MaxPart(const std::vector<uint64_t>& bytes, uint64_t rank0, const std::vector<int32_t>& bounds) {
  uint64_t worst = 0;
  for (size_t r = 0; r + 1 < bounds.size(); ++r) {
    uint64_t part = r == 0 ? rank0 : 0;
    for (int32_t i = bounds[r]; i < bounds[r + 1]; ++i) part += bytes[static_cast<size_t>(i)];
    worst = std::max(worst, part);
  }
  return worst;
}

// The least maximum over every way to cut n layers into size non-empty ranges.
uint64_t BruteForce(const std::vector<uint64_t>& bytes, uint64_t rank0, int32_t size) {
  const auto n = static_cast<int32_t>(bytes.size());
  uint64_t best = UINT64_MAX;
  std::vector<int32_t> bounds(static_cast<size_t>(size) + 1, 0);
  bounds.back() = n;
  const auto walk = [&](auto&& self, int32_t r) -> void {
    if (r == size) {
      best = std::min(best, MaxPart(bytes, rank0, bounds));
      return;
    }
    for (int32_t b = bounds[static_cast<size_t>(r) - 1] + 1; b <= n - (size - r); ++b) {
      bounds[static_cast<size_t>(r)] = b;
      self(self, r + 1);
    }
  };
  walk(walk, 1);
  return best;
}

TEST(ModelShardTest, EqualLayersSplitEvenly) {
  const std::vector<uint64_t> six(6, 100);
  EXPECT_EQ(BalancedLayerBounds(six, 0, 1), (std::vector<int32_t>{0, 6}));
  EXPECT_EQ(BalancedLayerBounds(six, 0, 2), (std::vector<int32_t>{0, 3, 6}));
  EXPECT_EQ(BalancedLayerBounds(six, 0, 4), (std::vector<int32_t>{0, 2, 4, 5, 6}));  // earlier ranks take more
  EXPECT_EQ(BalancedLayerBounds(six, 0, 6), (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
}

// Rank 0 also streams the output matrix: it takes fewer layers.
TEST(ModelShardTest, RankZeroCarriesTheOutputMatrix) {
  // The 1.1B shape: 22 layers of ~47 MB, an output matrix of ~70 MB (1.5 layers).
  const std::vector<uint64_t> layers(22, 47'000'000);
  EXPECT_EQ(BalancedLayerBounds(layers, 70'500'000, 2), (std::vector<int32_t>{0, 10, 22}));
  EXPECT_EQ(BalancedLayerBounds(std::vector<uint64_t>(4, 10), 100, 2), (std::vector<int32_t>{0, 1, 4}));
  // Uneven layers: the cut follows the bytes.
  EXPECT_EQ(BalancedLayerBounds(std::vector<uint64_t>{50, 10, 10, 10, 10, 10}, 0, 2), (std::vector<int32_t>{0, 1, 6}));
  EXPECT_EQ(BalancedLayerBounds(std::vector<uint64_t>{10, 10, 10, 10, 10, 50}, 0, 2), (std::vector<int32_t>{0, 5, 6}));
}

TEST(ModelShardTest, BoundsAreOptimal) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const auto n = static_cast<int32_t>(1 + rng() % 9);
    const auto size = static_cast<int32_t>(1 + rng() % static_cast<uint64_t>(n));
    std::vector<uint64_t> bytes(static_cast<size_t>(n));
    for (uint64_t& b : bytes) b = 1 + rng() % 100;
    const uint64_t rank0 = rng() % 200;
    const std::vector<int32_t> bounds = BalancedLayerBounds(bytes, rank0, size);
    ASSERT_EQ(bounds.size(), static_cast<size_t>(size) + 1);
    EXPECT_EQ(bounds.front(), 0);
    EXPECT_EQ(bounds.back(), n);
    for (size_t r = 0; r + 1 < bounds.size(); ++r) EXPECT_LT(bounds[r], bounds[r + 1]) << "a rank without layers";
    EXPECT_EQ(MaxPart(bytes, rank0, bounds), BruteForce(bytes, rank0, size)) << "trial " << trial;
  }
}

}  // namespace
}  // namespace strata
