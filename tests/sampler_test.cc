#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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

// The distribution Sample draws from, exactly: softmax of the adjusted logits.
std::vector<std::pair<int32_t, float>> Softmax(const std::vector<std::pair<int32_t, float>>& id_logits) {
  double z = 0;
  for (const auto& [id, l] : id_logits) z += std::exp(static_cast<double>(l));
  std::vector<std::pair<int32_t, float>> d;
  for (const auto& [id, l] : id_logits) d.emplace_back(id, static_cast<float>(std::exp(static_cast<double>(l)) / z));
  return d;
}

void ExpectDistribution(const std::vector<std::pair<int32_t, float>>& got,
                        const std::vector<std::pair<int32_t, float>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << i;
    EXPECT_NEAR(got[i].second, want[i].second, 1e-6) << i;
  }
}

// OpenAI's rule over the generated tokens: logit -= count * frequency + (count > 0) * presence.
TEST(SamplerTest, FrequencyAndPresencePenaltiesAreExact) {
  SamplerParams p = Plain(1.0f);
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sampler s(p);
  const std::vector<float> logits = {1.0f, 1.0f, 1.0f, 1.0f};
  s.Accept(1);
  s.Accept(1);
  s.Accept(2);
  // id 1: 1 - (2 * 0.5 + 0.25) = -0.25; id 2: 1 - (0.5 + 0.25) = 0.25; ids 0 and 3 untouched.
  ExpectDistribution(s.Distribution(logits.data(), 4), Softmax({{0, 1.0f}, {3, 1.0f}, {2, 0.25f}, {1, -0.25f}}));
}

TEST(SamplerTest, NegativePenaltiesFavourRepeats) {
  SamplerParams p = Plain(1.0f);
  p.frequency_penalty = -1.0f;
  p.presence_penalty = -0.5f;
  Sampler s(p);
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f};
  s.Accept(2);
  ExpectDistribution(s.Distribution(logits.data(), 3), Softmax({{2, 1.5f}, {0, 0.0f}, {1, 0.0f}}));
}

// The prompt feeds the repetition penalty's window, not the generated counts.
TEST(SamplerTest, PromptTokensAreNotCounted) {
  SamplerParams p = Plain(1.0f);
  p.frequency_penalty = 2.0f;
  p.presence_penalty = 2.0f;
  Sampler s(p);
  const std::vector<float> logits = {0.0f, std::log(3.0f)};
  for (int i = 0; i < 5; ++i) s.AcceptPrompt(1);
  ExpectDistribution(s.Distribution(logits.data(), 2), {{1, 0.75f}, {0, 0.25f}});
}

TEST(SamplerTest, LogitBiasIsAddedAndMinusInfinityBans) {
  SamplerParams p = Plain(1.0f);
  p.logit_bias = {{0, 2.0f}, {3, -std::numeric_limits<float>::infinity()}, {2, -1.0f}};
  Sampler s(p);
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f, 5.0f};
  ExpectDistribution(s.Distribution(logits.data(), 4), Softmax({{0, 2.0f}, {1, 0.0f}, {2, -1.0f}}));
  for (int i = 0; i < 500; ++i) EXPECT_NE(s.Sample(logits.data(), 4), 3);
}

// OpenAI's extremes: +100 makes a token (all but) certain, -100 (all but) impossible.
TEST(SamplerTest, LogitBiasOfHundredForcesAndBans) {
  const std::vector<float> logits = {3.0f, 1.0f, -2.0f, 0.5f};
  SamplerParams force = Plain(1.0f, 11);
  force.logit_bias = {{2, 100.0f}};
  Sampler f(force);
  for (int i = 0; i < 500; ++i) EXPECT_EQ(f.Sample(logits.data(), 4), 2);
  SamplerParams ban = Plain(0.0f);
  ban.logit_bias = {{0, -100.0f}};
  EXPECT_EQ(Sampler(ban).Sample(logits.data(), 4), 1);  // greedy: the next best
}

// llama.cpp's order: the bias first, then the repetition penalty (they do not commute).
TEST(SamplerTest, BiasComesBeforeRepetitionPenalty) {
  SamplerParams p = Plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.logit_bias = {{1, 2.0f}};
  Sampler s(p);
  s.AcceptPrompt(1);
  const std::vector<float> logits = {2.0f, 1.0f};
  // (1 + 2) / 2 = 1.5 < 2 (the penalty first would give 1 / 2 + 2 = 2.5 > 2).
  EXPECT_EQ(s.Sample(logits.data(), 2), 0);
  ExpectDistribution(s.Distribution(logits.data(), 2), {{0, 1.0f}});
}

TEST(SamplerTest, BannedTokensAreNeverDrawn) {
  Sampler s(Plain(1.0f, 5));
  const std::vector<float> logits = {0.0f, 4.0f, 0.0f};
  s.set_banned({1});
  ExpectDistribution(s.Distribution(logits.data(), 3), {{0, 0.5f}, {2, 0.5f}});
  for (int i = 0; i < 200; ++i) EXPECT_NE(s.Sample(logits.data(), 3), 1);
  s.set_banned({});
  EXPECT_EQ(s.Distribution(logits.data(), 3).front().first, 1);
  s.set_banned({0, 1, 2, 7});  // 7: outside the vocabulary, ignored
  EXPECT_EQ(s.Sample(logits.data(), 3), -1);
  EXPECT_TRUE(s.Distribution(logits.data(), 3).empty());
}

// Distribution draws nothing: the draws after it are those without it.
TEST(SamplerTest, DistributionLeavesTheRngAlone) {
  std::vector<float> logits(20);
  for (int i = 0; i < 20; ++i) logits[i] = std::cos(i * 1.3f);
  Sampler a(Plain(0.9f, 3)), b(Plain(0.9f, 3));
  for (int i = 0; i < 50; ++i) {
    b.Distribution(logits.data(), 20);
    EXPECT_EQ(a.Sample(logits.data(), 20), b.Sample(logits.data(), 20));
  }
}

// The state a session stores: a sampler restored from it draws what the original draws.
TEST(SamplerTest, StateRoundTripsPenaltiesHistoryAndRng) {
  SamplerParams p = Plain(1.0f, 21);
  p.frequency_penalty = 0.7f;
  p.presence_penalty = 0.3f;
  p.repeat_penalty = 1.3f;
  p.repeat_last_n = 4;
  std::vector<float> logits(16);
  for (int i = 0; i < 16; ++i) logits[i] = std::sin(i * 0.9f);
  Sampler a(p);
  for (int i = 0; i < 30; ++i) a.Accept(a.Sample(logits.data(), 16));
  const SamplerState st = a.state();
  EXPECT_EQ(st.history.size(), 4u);
  int32_t counted = 0;
  for (const auto& [id, n] : st.counts) counted += n;
  EXPECT_EQ(counted, 30);
  Sampler b(p);
  b.set_state(st);
  for (int i = 0; i < 30; ++i) {
    const int32_t x = a.Sample(logits.data(), 16);
    ASSERT_EQ(x, b.Sample(logits.data(), 16)) << i;
    a.Accept(x);
    b.Accept(x);
  }
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
