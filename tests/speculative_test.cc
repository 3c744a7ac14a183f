// Speculative decoding's parts: the sampler's distribution, prompt lookup,
// the draft length, the verifier's statistics (against exact distributions,
// with a check that the test rejects a wrong rule), and the one-sequence
// Speculator against plain decoding on stories260K and synthetic models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "engine/context.h"
#include "engine/draft_length.h"
#include "engine/ngram_drafter.h"
#include "engine/pass_times.h"
#include "engine/sampler.h"
#include "engine/spec_verifier.h"
#include "engine/speculator.h"
#include "model/quantize.h"
#include "model/synth.h"
#include "test_util.h"
#include "vocab/vocab_compare.h"

namespace strata {
namespace {

// ---- chi-square ----

// The upper critical value of chi-square with df degrees of freedom at
// significance 0.001 (z = 3.0902), Wilson-Hilferty: within 1% for df >= 3.
double ChiSquareCritical001(int df) {
  const double z = 3.0902;
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3);
}

// Goodness of fit of counts (n samples) to probabilities: categories whose
// expected count is below 5 are pooled into one. Returns {statistic, df}.
std::pair<double, int> ChiSquareFit(const std::map<int64_t, int64_t>& counts, const std::map<int64_t, double>& probs,
                                    int64_t n) {
  double stat = 0, pooled_expected = 0;
  int64_t pooled_observed = 0;
  int cells = 0;
  for (const auto& [cat, p] : probs) {
    const double e = p * static_cast<double>(n);
    const auto it = counts.find(cat);
    const int64_t o = it == counts.end() ? 0 : it->second;
    if (e < 5) {
      pooled_expected += e;
      pooled_observed += o;
      continue;
    }
    stat += (o - e) * (o - e) / e;
    ++cells;
  }
  for (const auto& [cat, o] : counts)  // outcomes of probability 0 count against the fit
    if (probs.count(cat) == 0) pooled_observed += o;
  if (pooled_expected > 0 || pooled_observed > 0) {
    const double e = std::max(pooled_expected, 1e-9);
    stat += (pooled_observed - e) * (pooled_observed - e) / e;
    ++cells;
  }
  return {stat, cells - 1};
}

// Homogeneity of two samples (a, b) over the same categories; categories
// with fewer than 10 outcomes in both together are pooled. {statistic, df}.
std::pair<double, int> ChiSquareTwoSample(const std::map<int64_t, int64_t>& a, const std::map<int64_t, int64_t>& b) {
  std::map<int64_t, std::pair<int64_t, int64_t>> cells;
  for (const auto& [c, n] : a) cells[c].first += n;
  for (const auto& [c, n] : b) cells[c].second += n;
  std::vector<std::pair<int64_t, int64_t>> kept;
  std::pair<int64_t, int64_t> pooled{0, 0};
  for (const auto& [c, ab] : cells) {
    if (ab.first + ab.second < 10) {
      pooled.first += ab.first;
      pooled.second += ab.second;
    } else {
      kept.push_back(ab);
    }
  }
  if (pooled.first + pooled.second > 0) kept.push_back(pooled);
  int64_t na = 0, nb = 0;
  for (const auto& ab : kept) {
    na += ab.first;
    nb += ab.second;
  }
  double stat = 0;
  for (const auto& [oa, ob] : kept) {
    const double total = static_cast<double>(oa + ob);
    const double ea = total * na / (na + nb), eb = total * nb / (na + nb);
    stat += (oa - ea) * (oa - ea) / ea + (ob - eb) * (ob - eb) / eb;
  }
  return {stat, static_cast<int>(kept.size()) - 1};
}

using Dist = std::vector<std::pair<int32_t, float>>;

SamplerParams Params(float temp, int32_t top_k, float top_p, float min_p, uint64_t seed) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.seed = seed;
  return p;
}

// ---- Sampler::Distribution ----

TEST(SamplerDistributionTest, DrawingFromItIsSample) {
  std::vector<float> logits(300);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = 3.0f * std::sin(0.37f * i) + 0.01f * i;
  const SamplerParams settings[] = {Params(0.8f, 40, 0.95f, 0.05f, 1), Params(1.0f, 0, 1.0f, 0.0f, 2),
                                    Params(1.5f, 5, 1.0f, 0.0f, 3),   Params(0.5f, 0, 0.7f, 0.0f, 4),
                                    Params(1.0f, 0, 1.0f, 0.3f, 5),   Params(0.0f, 40, 0.95f, 0.05f, 6)};
  for (const SamplerParams& sp : settings) {
    SamplerParams penalized = sp;
    penalized.repeat_penalty = 1.3f;
    for (const SamplerParams& p : {sp, penalized}) {
      Sampler a(p), b(p);
      for (int32_t t : {3, 17, 42}) {
        a.Accept(t);
        b.Accept(t);
      }
      Dist dist;
      for (int i = 0; i < 200; ++i) {
        dist = b.Distribution(logits.data(), 300);
        ASSERT_FALSE(dist.empty());
        double sum = 0;
        for (const auto& t : dist) sum += t.second;
        ASSERT_NEAR(sum, 1.0, 1e-5);
        ASSERT_TRUE(std::is_sorted(dist.begin(), dist.end(), [](auto x, auto y) { return x.second > y.second; }));
        const int32_t want = a.Sample(logits.data(), 300);
        const int32_t got = p.temperature <= 0 ? dist.front().first : Sampler::Draw(dist, b.NextUniform());
        ASSERT_EQ(got, want) << "temperature " << p.temperature << " draw " << i;
      }
      if (p.temperature <= 0) EXPECT_EQ(dist.size(), 1u);
      if (p.top_k > 0) EXPECT_LE(dist.size(), static_cast<size_t>(p.top_k));
    }
  }
}

// ---- prompt lookup ----

TEST(NgramDraftTest, ContinuesTheLatestLongestMatch) {
  const NgramParams np{1, 3};
  // "5 6" occurred twice; the latest (followed by 9) wins; the 3-gram "4 5 6" occurred once, followed by 7.
  EXPECT_EQ(NgramDraft(std::vector<int32_t>{4, 5, 6, 7, 8, 5, 6, 9, 1, 4, 5, 6}, 2, np), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(NgramDraft(std::vector<int32_t>{1, 5, 6, 7, 8, 5, 6, 9, 1, 2, 5, 6}, 2, np), (std::vector<int32_t>{9, 1}));
  // A repeating pattern repeats on past the end.
  EXPECT_EQ(NgramDraft(std::vector<int32_t>{1, 2, 3, 1, 2, 3, 1}, 7, np), (std::vector<int32_t>{2, 3, 1, 2, 3, 1, 2}));
  EXPECT_EQ(NgramDraft(std::vector<int32_t>{7, 7}, 3, np), (std::vector<int32_t>{7, 7, 7}));
  // Nothing seen before, or suffixes shorter than ngram_min only.
  EXPECT_TRUE(NgramDraft(std::vector<int32_t>{1, 2, 3, 4}, 4, np).empty());
  EXPECT_TRUE(NgramDraft(std::vector<int32_t>{1, 2, 9, 2}, 4, NgramParams{2, 3}).empty());
  EXPECT_TRUE(NgramDraft(std::vector<int32_t>{}, 4, np).empty());
  EXPECT_TRUE(NgramDraft(std::vector<int32_t>{1, 1}, 0, np).empty());
}

// ---- draft length ----

TEST(DraftLengthTest, FollowsAcceptanceAndCost) {
  // Rates as one sequence's: tokens per unit of time, a round drafting k costing 1 + c k.
  const auto cheap = [](int32_t k, double tokens) { return tokens / (1.0 + 0.05 * k); };
  DraftLength good(1, 8);
  for (int i = 0; i < 20; ++i) good.Record(8, 8);
  EXPECT_GT(good.acceptance(), 0.95);
  EXPECT_EQ(good.Choose(cheap), 8);

  DraftLength poor(1, 8);
  for (int i = 0; i < 20; ++i) poor.Record(4, 0);
  EXPECT_LT(poor.acceptance(), 0.2);  // (0 + 1) / (0 + ~5 decayed rejections + 2)
  // Costly drafts that are rejected: plain decoding, with a probe every kProbeEvery rounds.
  const auto costly = [](int32_t k, double tokens) { return tokens / (1.0 + 0.4 * k); };
  int zeros = 0;
  for (int i = 0; i < DraftLength::kProbeEvery; ++i) zeros += poor.Choose(costly) == 0;
  EXPECT_EQ(zeros, DraftLength::kProbeEvery - 1);
  // Middling acceptance: a middling length (E(k) saturates at 1 / (1 - a)).
  DraftLength mid(1, 16);
  for (int i = 0; i < 30; ++i) mid.Record(4, 2);
  const int32_t k = mid.Choose([](int32_t k, double tokens) { return tokens / (1.0 + 0.1 * k); });
  EXPECT_GE(k, 1);
  EXPECT_LE(k, 6);
  // It recovers when the acceptance does.
  for (int i = 0; i < 30; ++i) poor.Record(8, 8);
  EXPECT_EQ(poor.Choose(cheap), 8);
}

TEST(PassTimesTest, InterpolatesAndAverages) {
  PassTimes t;
  EXPECT_EQ(t.Seconds(3), 0);
  t.Record(1, 0.010);
  t.Record(5, 0.030);
  EXPECT_DOUBLE_EQ(t.Seconds(1), 0.010);
  EXPECT_DOUBLE_EQ(t.Seconds(3), 0.020);  // between the measured ones
  EXPECT_DOUBLE_EQ(t.Seconds(9), 0.030);  // beyond: the nearest
  EXPECT_TRUE(t.measured(5));
  EXPECT_FALSE(t.measured(3));
  EXPECT_TRUE(t.measured_up_to(1));
  PassTimes long_only;
  long_only.Record(20, 0.1);
  EXPECT_FALSE(long_only.measured_up_to(2));
  t.Record(5, 0.050);  // moving average
  EXPECT_DOUBLE_EQ(t.Seconds(5), 0.030 + PassTimes::kWeight * 0.020);
}

// ---- the verifier's statistics ----

// A toy model over kV tokens: logits of the next token given the previous one.
constexpr int32_t kV = 6;
using Table = std::array<std::array<float, kV>, kV>;

const Table kTarget = {{{1.0f, 0.2f, -0.5f, 0.7f, 0.0f, -1.0f},
                        {0.1f, 1.3f, 0.4f, -0.2f, 0.9f, 0.0f},
                        {-0.3f, 0.6f, 1.1f, 0.2f, -0.8f, 0.5f},
                        {0.8f, -0.1f, 0.3f, 1.2f, 0.4f, -0.6f},
                        {0.0f, 0.5f, -0.4f, 0.6f, 1.0f, 0.3f},
                        {0.4f, 0.0f, 0.7f, -0.3f, 0.2f, 0.9f}}};
// The draft: the target perturbed (a plausible, imperfect draft model).
Table DraftTable() {
  Table d = kTarget;
  for (int i = 0; i < kV; ++i)
    for (int j = 0; j < kV; ++j) d[i][j] += 0.6f * std::sin(1.7f * i + 2.3f * j);
  return d;
}

// One round's verifier, as a function (so the test can swap in a wrong one).
using VerifyFn = std::function<Verdict(Sampler&, const float*, const Draft&)>;

// Generates a continuation of `len` tokens after token 0 by speculative
// rounds of k drafts (q from the draft table through its own sampler, or a
// fixed deterministic draft when `deterministic`), returns it as a base-kV number.
int64_t Generate(Sampler& target, Sampler& draft_sampler, const Table& draft_table, int32_t len, int32_t k,
                 bool deterministic, const VerifyFn& verify) {
  std::vector<int32_t> seq = {0};
  while (static_cast<int32_t>(seq.size()) < len + 1) {
    Draft d;
    int32_t prev = seq.back();
    for (int32_t i = 0; i < k; ++i) {
      int32_t x = 0;
      if (deterministic) {
        x = (prev + 1) % kV;  // a fixed guess, as prompt lookup's
      } else {
        Dist q = draft_sampler.Distribution(draft_table[prev].data(), kV);
        EXPECT_FALSE(q.empty());
        x = Sampler::Draw(q, draft_sampler.NextUniform());
        d.q.push_back(q);
      }
      d.tokens.push_back(x);
      prev = x;
    }
    std::vector<float> logits;
    int32_t ctx = seq.back();
    for (int32_t i = 0; i <= k; ++i) {
      logits.insert(logits.end(), kTarget[ctx].begin(), kTarget[ctx].end());
      if (i < k) ctx = d.tokens[i];
    }
    const Verdict v = verify(target, logits.data(), d);
    seq.insert(seq.end(), d.tokens.begin(), d.tokens.begin() + v.n_accepted);
    EXPECT_GE(v.next, 0);
    target.Accept(v.next);
    seq.push_back(v.next);
  }
  int64_t code = 0;
  for (int32_t i = 1; i <= len; ++i) code = code * kV + seq[i];
  return code;
}

// The exact distribution of the len-token continuation after token 0 under
// the sampler's filtered distribution (no penalty: it is history-free).
std::map<int64_t, double> ExactDistribution(const SamplerParams& sp, int32_t len) {
  std::map<int64_t, double> out = {{0, 1.0}};
  Sampler s(sp);
  for (int32_t step = 0; step < len; ++step) {
    std::map<int64_t, double> next;
    for (const auto& [code, p] : out) {
      const int32_t prev = step == 0 ? 0 : static_cast<int32_t>(code % kV);
      const Dist dist = s.Distribution(kTarget[prev].data(), kV);
      EXPECT_FALSE(dist.empty());
      for (const auto& [id, q] : dist) next[code * kV + id] += p * q;
    }
    out.swap(next);
  }
  return out;
}

struct FitResult {
  double stat;
  int df;
  double critical;
};

FitResult Fit(const SamplerParams& sp, int32_t k, bool deterministic, const VerifyFn& verify, int64_t n) {
  constexpr int32_t kLen = 3;
  Sampler target(sp);
  SamplerParams dp = sp;
  dp.seed = sp.seed + 1000;
  Sampler draft_sampler(dp);
  const Table draft = DraftTable();
  std::map<int64_t, int64_t> counts;
  for (int64_t i = 0; i < n; ++i) ++counts[Generate(target, draft_sampler, draft, kLen, k, deterministic, verify)];
  const auto [stat, df] = ChiSquareFit(counts, ExactDistribution(sp, kLen), n);
  return {stat, df, ChiSquareCritical001(df)};
}

VerifyFn TheVerifier() {
  auto v = std::make_shared<SpecVerifier>();
  return [v](Sampler& s, const float* logits, const Draft& d) {
    return v->Verify(s, logits, kV, d, [](int32_t) { return false; });
  };
}

// The distribution test: 3-token continuations (216 outcomes) drawn through
// speculative rounds fit the exact distribution of sampling token by token,
// at significance 0.001. Seeds are fixed, so the outcome is deterministic
// (it cannot flake); the test's power is shown below: the same fit rejects
// plausible wrong rules by a wide margin.
TEST(SpecVerifierTest, KeepsTheTargetDistribution) {
  constexpr int64_t kN = 60000;
  const SamplerParams settings[] = {Params(1.0f, 0, 1.0f, 0.0f, 11), Params(0.8f, 4, 0.95f, 0.0f, 12),
                                    Params(1.3f, 0, 1.0f, 0.1f, 13)};
  for (const SamplerParams& sp : settings) {
    for (int32_t k : {1, 3}) {
      for (bool deterministic : {false, true}) {
        const FitResult r = Fit(sp, k, deterministic, TheVerifier(), kN);
        std::printf("temp %.1f top_k %d min_p %.2f k %d %s: chi-square %.1f, df %d, critical (0.001) %.1f\n",
                    sp.temperature, sp.top_k, sp.min_p, k, deterministic ? "deterministic" : "sampled", r.stat, r.df,
                    r.critical);
        EXPECT_LT(r.stat, r.critical) << "temp " << sp.temperature << " top_k " << sp.top_k << " k " << k
                                      << (deterministic ? " deterministic" : " sampled") << " df " << r.df;
      }
    }
  }
}

TEST(SpecVerifierTest, TheFitRejectsWrongRules) {
  constexpr int64_t kN = 60000;
  const SamplerParams sp = Params(1.0f, 0, 1.0f, 0.0f, 21);
  // Wrong: keeps every drafted token the model would ever sample (p > 0):
  // the output follows the draft's distribution.
  const VerifyFn keep_all = [](Sampler& s, const float* logits, const Draft& d) {
    Verdict v;
    for (size_t i = 0;; ++i) {
      const Dist dist = s.Distribution(logits + i * kV, kV);
      if (i == d.tokens.size()) {
        v.next = Sampler::Draw(dist, s.NextUniform());
        return v;
      }
      s.Accept(d.tokens[i]);
      ++v.n_accepted;
    }
  };
  // Wrong: the right acceptance test, but the correction sampled from p
  // instead of norm(max(0, p - q)) (over-represents rejected tokens).
  const VerifyFn no_residual = [](Sampler& s, const float* logits, const Draft& d) {
    Verdict v;
    for (size_t i = 0;; ++i) {
      const Dist dist = s.Distribution(logits + i * kV, kV);
      if (i == d.tokens.size()) {
        v.next = Sampler::Draw(dist, s.NextUniform());
        return v;
      }
      const int32_t x = d.tokens[i];
      float px = 0, qx = 1;
      for (const auto& [id, p] : dist)
        if (id == x) px = p;
      if (!d.q.empty())
        for (const auto& [id, q] : d.q[i])
          if (id == x) qx = q;
      if (s.NextUniform() * qx < px) {
        s.Accept(x);
        ++v.n_accepted;
        continue;
      }
      v.next = Sampler::Draw(dist, s.NextUniform());
      return v;
    }
  };
  for (bool deterministic : {false, true}) {
    const FitResult wrong1 = Fit(sp, 2, deterministic, keep_all, kN);
    EXPECT_GT(wrong1.stat, 3 * wrong1.critical) << "keep-all, df " << wrong1.df;
    const FitResult wrong2 = Fit(sp, 2, deterministic, no_residual, kN);
    std::printf("%s draft: keep-all chi-square %.0f, no-residual %.0f (critical %.1f, df %d)\n",
                deterministic ? "deterministic" : "sampled", wrong1.stat, wrong2.stat, wrong2.critical, wrong2.df);
    EXPECT_GT(wrong2.stat, 3 * wrong2.critical) << "no residual, df " << wrong2.df;
  }
}

TEST(SpecVerifierTest, GreedyKeepsExactlyTheArgmaxPrefix) {
  Sampler s(Params(0.0f, 40, 0.95f, 0.05f, 1));
  // Rows: argmax 2, then 4, then 1, then 5.
  std::vector<float> logits(4 * kV, 0.0f);
  const int32_t best[] = {2, 4, 1, 5};
  for (int r = 0; r < 4; ++r) logits[r * kV + best[r]] = 1.0f;
  const auto never = [](int32_t) { return false; };
  SpecVerifier v;
  Verdict a = v.Verify(s, logits.data(), kV, Draft{{2, 4, 1}, {}}, never);
  EXPECT_EQ(a.n_accepted, 3);
  EXPECT_EQ(a.next, 5);
  Verdict b = v.Verify(s, logits.data(), kV, Draft{{2, 3, 1}, {}}, never);
  EXPECT_EQ(b.n_accepted, 1);
  EXPECT_EQ(b.next, 4);
  // An accepted end-of-generation token ends the verdict, not accepted into the sampler.
  Verdict c = v.Verify(s, logits.data(), kV, Draft{{2, 4, 1}, {}}, [](int32_t t) { return t == 4; });
  EXPECT_EQ(c.n_accepted, 1);
  EXPECT_EQ(c.next, 4);
}

// ---- the Speculator on real models ----

std::vector<int32_t> PlainGenerate(const Model& m, const std::vector<int32_t>& prompt, const SamplerParams& sp, int n) {
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::Create(m, ContextParams{512, 512, 2}, &ctx).ok());
  Sampler s(sp);
  for (int32_t t : prompt) s.AcceptPrompt(t);
  EXPECT_TRUE(ctx->Decode(prompt, LogitsMode::kLast).ok());
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < n) {
    const int32_t t = s.Sample(ctx->logits(), m.hparams().n_vocab);
    if (t < 0 || m.vocab().IsEog(t)) break;
    s.Accept(t);
    out.push_back(t);
    EXPECT_TRUE(ctx->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  }
  return out;
}

struct SpecRun {
  std::vector<int32_t> tokens;
  SpecStats stats;
};

// draft: null for prompt lookup.
SpecRun SpeculativeGenerate(const Model& m, const Model* draft, const std::vector<int32_t>& prompt,
                            const SamplerParams& sp, int n, int32_t draft_max = 4) {
  std::unique_ptr<Context> ctx, dctx;
  EXPECT_TRUE(Context::Create(m, ContextParams{512, 512, 2}, &ctx).ok());
  if (draft != nullptr) EXPECT_TRUE(Context::Create(*draft, ContextParams{512, 512, 2}, &dctx).ok());
  Sampler s(sp);
  for (int32_t t : prompt) s.AcceptPrompt(t);
  EXPECT_TRUE(ctx->Decode(prompt, LogitsMode::kLast).ok());
  SpecParams p;
  p.draft_max = draft_max;
  std::unique_ptr<Speculator> spec;
  EXPECT_TRUE(Speculator::Create(ctx.get(), dctx.get(), p, &spec).ok());
  SpecRun r;
  std::vector<int32_t> got;
  while (static_cast<int>(r.tokens.size()) < n) {
    EXPECT_TRUE(spec->Next(&s, n - static_cast<int>(r.tokens.size()), &got).ok());
    EXPECT_FALSE(got.empty());
    bool end = false;
    for (int32_t t : got) {
      if (t < 0 || m.vocab().IsEog(t)) {
        end = true;
        break;
      }
      r.tokens.push_back(t);
    }
    if (end || got.empty()) break;
  }
  EXPECT_LE(static_cast<int>(r.tokens.size()), n);
  // The context holds the prompt and all generated tokens but the last.
  if (!r.tokens.empty()) {
    std::vector<int32_t> want = prompt;
    want.insert(want.end(), r.tokens.begin(), r.tokens.end() - 1);
    const bool ended = static_cast<int>(r.tokens.size()) < n;  // by an end-of-generation token: it is not kept
    if (!ended) EXPECT_EQ(ctx->tokens(), want);
  }
  r.stats = spec->stats();
  return r;
}

class SpeculatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir());
    ModelLoadOptions o;
    o.path = testing::SharedPath("models/stories260K.gguf");
    ASSERT_TRUE(Model::Load(Env::Default(), o, &stories_).ok());
    // A draft: stories260K quantized to Q4_0 (its output matrix Q6_K, as llama-quantize's mix).
    QuantizeOptions qo;
    qo.ftype = FileType::kQ4_0;
    ASSERT_TRUE(QuantizeModel(Env::Default(), o.path, *dir_ + "/stories-q4_0.gguf", qo, nullptr).ok());
    o.path = *dir_ + "/stories-q4_0.gguf";
    ASSERT_TRUE(Model::Load(Env::Default(), o, &stories_q4_).ok());
  }
  static void TearDownTestSuite() {
    stories_.reset();
    stories_q4_.reset();
    delete dir_;
  }
  std::vector<int32_t> Prompt(const std::string& text) const { return stories_->vocab().Encode(text, true, false); }

  static std::string* dir_;
  static std::unique_ptr<Model> stories_, stories_q4_;
};
std::string* SpeculatorTest::dir_ = nullptr;
std::unique_ptr<Model> SpeculatorTest::stories_, SpeculatorTest::stories_q4_;

const char* const kPrompts[] = {
    "Once upon a time",
    "Lily had a big red ball. Lily had a big red ball. Lily had a",
    "The cat sat on the mat. The dog sat on the log. The cat sat on the",
};

TEST_F(SpeculatorTest, GreedyEqualsPlainWithPromptLookup) {
  const SamplerParams greedy = Params(0.0f, 40, 0.95f, 0.05f, 1);
  uint64_t accepted = 0;
  for (const char* text : kPrompts) {
    for (int32_t k : {1, 4, 8}) {
      const SpecRun r = SpeculativeGenerate(*stories_, nullptr, Prompt(text), greedy, 96, k);
      EXPECT_EQ(r.tokens, PlainGenerate(*stories_, Prompt(text), greedy, 96)) << text << " k " << k;
      accepted += r.stats.accepted;
    }
  }
  EXPECT_GT(accepted, 0u);  // the repetitive prompts do get drafts accepted
}

TEST_F(SpeculatorTest, GreedyEqualsPlainWithDraftModel) {
  const SamplerParams greedy = Params(0.0f, 40, 0.95f, 0.05f, 1);
  for (const char* text : kPrompts) {
    for (int32_t k : {1, 3, 8}) {
      const SpecRun r = SpeculativeGenerate(*stories_, stories_q4_.get(), Prompt(text), greedy, 96, k);
      EXPECT_EQ(r.tokens, PlainGenerate(*stories_, Prompt(text), greedy, 96)) << text << " k " << k;
      EXPECT_GT(r.stats.accepted, 0u) << text;
    }
  }
  // The model drafting for itself: every draft is accepted.
  const SpecRun self = SpeculativeGenerate(*stories_, stories_.get(), Prompt(kPrompts[0]), greedy, 64, 4);
  EXPECT_EQ(self.stats.accepted, self.stats.drafted);
  EXPECT_EQ(self.tokens, PlainGenerate(*stories_, Prompt(kPrompts[0]), greedy, 64));
}

TEST_F(SpeculatorTest, RepetitionPenaltyAndShortBudgets) {
  SamplerParams sp = Params(0.0f, 40, 0.95f, 0.05f, 1);
  sp.repeat_penalty = 1.3f;  // the penalty sees each accepted draft before the next position
  for (const Model* draft : {static_cast<const Model*>(nullptr), static_cast<const Model*>(stories_q4_.get())}) {
    for (int n : {1, 2, 5, 40}) {
      const SpecRun r = SpeculativeGenerate(*stories_, draft, Prompt(kPrompts[1]), sp, n, 6);
      EXPECT_EQ(r.tokens, PlainGenerate(*stories_, Prompt(kPrompts[1]), sp, n)) << n;
    }
  }
}

// Sampled continuations (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05:
// the defaults) with and without speculation: the first three tokens' joint
// outcomes agree by a two-sample chi-square at significance 0.001. Seeds
// are fixed (deterministic outcome); the verifier's own distribution test
// above shows the power of such a fit.
TEST_F(SpeculatorTest, SampledDistributionMatchesPlain) {
  constexpr int kN = 1500, kLen = 3;
  const std::vector<int32_t> prompt = Prompt(kPrompts[1]);
  auto code = [&](const std::vector<int32_t>& t) {
    int64_t c = 0;
    for (int i = 0; i < kLen; ++i) c = c * 1000 + (i < static_cast<int>(t.size()) ? t[i] : 999);
    return c;
  };
  std::map<int64_t, int64_t> plain, ngram, draft;
  uint64_t accepted_ngram = 0, accepted_draft = 0;
  for (int i = 0; i < kN; ++i) {
    SamplerParams sp = Params(0.8f, 40, 0.95f, 0.05f, 1000 + i);
    ++plain[code(PlainGenerate(*stories_, prompt, sp, kLen))];
    sp.seed = 50000 + i;  // independent of the plain samples
    SpecRun r = SpeculativeGenerate(*stories_, nullptr, prompt, sp, kLen, 2);
    ++ngram[code(r.tokens)];
    accepted_ngram += r.stats.accepted;
    r = SpeculativeGenerate(*stories_, stories_q4_.get(), prompt, sp, kLen, 2);
    ++draft[code(r.tokens)];
    accepted_draft += r.stats.accepted;
  }
  // Drafts were kept in many of the runs (the speculative path was taken).
  EXPECT_GT(accepted_ngram, kN / 8u);
  EXPECT_GT(accepted_draft, kN / 8u);
  for (const auto* spec : {&ngram, &draft}) {
    const auto [stat, df] = ChiSquareTwoSample(plain, *spec);
    EXPECT_GE(df, 5);
    EXPECT_LT(stat, ChiSquareCritical001(df)) << "df " << df;
    std::printf("chi-square %.1f, df %d, critical (0.001) %.1f; drafts accepted: prompt lookup %llu, draft model %llu\n",
                stat, df, ChiSquareCritical001(df), static_cast<unsigned long long>(accepted_ngram),
                static_cast<unsigned long long>(accepted_draft));
  }
}

TEST_F(SpeculatorTest, DifferentVocabularyIsRefused) {
  SynthSpec s;
  s.n_layer = 1;
  s.n_embd = 64;
  s.n_ff = 128;
  s.n_head = 2;
  s.n_head_kv = 2;
  s.n_vocab = 512;  // stories260K has 512 tokens too, different ones
  s.n_ctx = 512;
  std::unique_ptr<Model> other = testing::SynthesizeAndLoad(Env::Default(), s, *dir_ + "/other.gguf");
  ASSERT_NE(other, nullptr);
  std::unique_ptr<Context> ctx, dctx;
  ASSERT_TRUE(Context::Create(*stories_, ContextParams{512, 512, 1}, &ctx).ok());
  ASSERT_TRUE(Context::Create(*other, ContextParams{512, 512, 1}, &dctx).ok());
  std::unique_ptr<Speculator> spec;
  const Status st = Speculator::Create(ctx.get(), dctx.get(), SpecParams{}, &spec);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("the draft model's vocabulary differs from the model's: token"), std::string::npos)
      << st.message();
  s.n_vocab = 300;
  other = testing::SynthesizeAndLoad(Env::Default(), s, *dir_ + "/small.gguf");
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(CheckSameVocabulary(stories_->vocab(), other->vocab()).message(),
            "the draft model's vocabulary differs from the model's: 300 tokens vs 512");
  // A shorter draft context, and parameters out of range.
  ASSERT_TRUE(Context::Create(*stories_q4_, ContextParams{256, 256, 1}, &dctx).ok());
  EXPECT_NE(Speculator::Create(ctx.get(), dctx.get(), SpecParams{}, &spec).message().find("shorter"), std::string::npos);
  SpecParams bad;
  bad.draft_min = 5;
  bad.draft_max = 4;
  EXPECT_EQ(Speculator::Create(ctx.get(), nullptr, bad, &spec).code(), StatusCode::kInvalidArgument);
}

// Synthetic models: the target in F16 and Q8_0, the draft Q4_0 of the same
// F16 weights (strata quantize), conformance-scaled weights (logits far from
// uniform, as a trained model's).
class SyntheticSpeculatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir());
    SynthSpec s;
    s.n_layer = 2;
    s.n_embd = 128;
    s.n_ff = 256;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_vocab = 512;
    s.n_ctx = 512;
    s.type = DType::kF16;
    s.seed = 7;
    s.weights = SynthWeights::kConformance;
    const std::string f16 = *dir_ + "/f16.gguf";
    ASSERT_TRUE(SynthesizeModel(Env::Default(), s, f16, 2).ok());
    QuantizeOptions qo;
    qo.ftype = FileType::kQ8_0;
    ASSERT_TRUE(QuantizeModel(Env::Default(), f16, *dir_ + "/q8_0.gguf", qo, nullptr).ok());
    qo.ftype = FileType::kQ4_0;
    ASSERT_TRUE(QuantizeModel(Env::Default(), f16, *dir_ + "/q4_0.gguf", qo, nullptr).ok());
    models_ = new std::map<std::string, std::unique_ptr<Model>>();
    for (const char* name : {"f16", "q8_0", "q4_0"}) {
      ModelLoadOptions o;
      o.path = *dir_ + "/" + name + ".gguf";
      ASSERT_TRUE(Model::Load(Env::Default(), o, &(*models_)[name]).ok());
    }
  }
  static void TearDownTestSuite() {
    delete models_;
    delete dir_;
  }
  static std::string* dir_;
  static std::map<std::string, std::unique_ptr<Model>>* models_;
};
std::string* SyntheticSpeculatorTest::dir_ = nullptr;
std::map<std::string, std::unique_ptr<Model>>* SyntheticSpeculatorTest::models_ = nullptr;

TEST_F(SyntheticSpeculatorTest, GreedyEqualsPlain) {
  const SamplerParams greedy = Params(0.0f, 40, 0.95f, 0.05f, 1);
  const Model& draft = *models_->at("q4_0");
  for (const char* target : {"f16", "q8_0"}) {
    const Model& m = *models_->at(target);
    for (const std::string text : {"hello world", "abc abc abc abc abc"}) {
      const std::vector<int32_t> prompt = m.vocab().Encode(text, true, false);
      const std::vector<int32_t> plain = PlainGenerate(m, prompt, greedy, 80);
      const SpecRun with_draft = SpeculativeGenerate(m, &draft, prompt, greedy, 80, 4);
      EXPECT_EQ(with_draft.tokens, plain) << target << " draft model, " << text;
      EXPECT_GT(with_draft.stats.accepted, 0u) << target << " " << text;
      EXPECT_EQ(SpeculativeGenerate(m, nullptr, prompt, greedy, 80, 4).tokens, plain) << target << " ngram, " << text;
    }
  }
}

}  // namespace
}  // namespace strata
