#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

namespace strata {
namespace {

SamplerParams Plain(float temp, uint64_t seed = 1) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = seed;
  return p;
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s(Plain(0.0f));
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  EXPECT_EQ(s.Sample(logits.data(), 4), 1);
}

TEST(SamplerTest, SameSeedSameTokens) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 0.7f) * 2.0f;
  Sampler a(Plain(1.0f, 42)), b(Plain(1.0f, 42)), c(Plain(1.0f, 43));
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 100; ++i) {
    ta.push_back(a.Sample(logits.data(), 50));
    tb.push_back(b.Sample(logits.data(), 50));
    tc.push_back(c.Sample(logits.data(), 50));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
}

TEST(SamplerTest, FrequenciesFollowSoftmax) {
  std::vector<float> logits = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = .1 .2 .3 .4
  Sampler s(Plain(1.0f, 7));
  std::map<int32_t, int> counts;
  const int n = 40000;
  for (int i = 0; i < n; ++i) counts[s.Sample(logits.data(), 4)]++;
  for (int id = 0; id < 4; ++id) EXPECT_NEAR(counts[id] / double(n), (id + 1) / 10.0, 0.01) << id;
}

TEST(SamplerTest, TopKOneIsGreedy) {
  SamplerParams p = Plain(1.5f, 3);
  p.top_k = 1;
  Sampler s(p);
  std::vector<float> logits = {1.0f, 0.5f, 2.0f, 1.9f};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(logits.data(), 4), 2);
}

TEST(SamplerTest, TopPKeepsSmallestNucleus) {
  // p = .5 .3 .15 .05: top_p 0.7 keeps ids 0 and 1 only.
  std::vector<float> logits = {std::log(.5f), std::log(.3f), std::log(.15f), std::log(.05f)};
  SamplerParams p = Plain(1.0f, 5);
  p.top_p = 0.7f;
  Sampler s(p);
  std::map<int32_t, int> counts;
  for (int i = 0; i < 5000; ++i) counts[s.Sample(logits.data(), 4)]++;
  EXPECT_EQ(counts[2] + counts[3], 0);
  EXPECT_NEAR(counts[0] / 5000.0, 0.5 / 0.8, 0.03);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  std::vector<float> logits = {std::log(.6f), std::log(.3f), std::log(.05f), std::log(.05f)};
  SamplerParams p = Plain(1.0f, 9);
  p.min_p = 0.2f;  // keeps p >= 0.12
  Sampler s(p);
  for (int i = 0; i < 2000; ++i) EXPECT_LT(s.Sample(logits.data(), 4), 2);
}

TEST(SamplerTest, RepetitionPenaltyDemotesSeenTokens) {
  SamplerParams p = Plain(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  std::vector<float> logits = {2.0f, 1.5f, -1.0f};
  EXPECT_EQ(s.Sample(logits.data(), 3), 0);
  s.Accept(0);  // 2.0 -> 1.0 < 1.5
  EXPECT_EQ(s.Sample(logits.data(), 3), 1);
}

TEST(SamplerTest, RngStateRoundTrips) {
  Rng a(99);
  a.Next();
  Rng b(1);
  b.set_state(a.state());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.Next(), b.Next());
}

}  // namespace
}  // namespace strata
