// Speculative decoding in the serving engine: greedy requests give exactly
// the tokens plain decoding gives, alone and in a batch of 16 mixing
// speculating and plain requests (prompt lookup and a draft model, on
// stories260K and on a synthetic F16 model with its Q4_0 draft); sampled
// requests keep their distribution; stop strings, limits and statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>

#include "engine/context.h"
#include "engine/engine.h"
#include "engine/output_processor.h"
#include "grammar/gbnf_parser.h"
#include "grammar/vocab_gbnf_options.h"
#include "model/quantize.h"
#include "test_util.h"

namespace strata {
namespace {

// Collects one request's token ids.
class Tokens {
 public:
  TokenSink Sink() {
    return [this](const TokenEvent& e) {
      std::lock_guard<std::mutex> l(mu_);
      tokens_.insert(tokens_.end(), e.tokens.begin(), e.tokens.end());
      if (e.finished) {
        reason_ = e.reason;
        completion_tokens_ = e.completion_tokens;
        error_ = e.error;
        done_ = true;
        cv_.notify_all();
      }
      return SinkReply::kContinue;
    };
  }
  std::vector<int32_t> Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return done_; });
    EXPECT_TRUE(error_.ok()) << error_.ToString();
    EXPECT_EQ(completion_tokens_, static_cast<int32_t>(tokens_.size()));
    return tokens_;
  }
  FinishReason reason() const { return reason_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int32_t> tokens_;
  FinishReason reason_ = FinishReason::kNone;
  int32_t completion_tokens_ = 0;
  Status error_;
  bool done_ = false;
};

// Plain decoding, one token at a time (what `strata run` does).
std::vector<int32_t> Alone(const Model& m, const std::vector<int32_t>& prompt, const SamplerParams& sp, int n) {
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::Create(m, ContextParams{512, 512, 1}, &ctx).ok());
  Sampler s(sp);
  for (int32_t t : prompt) s.Accept(t);
  EXPECT_TRUE(ctx->Decode(prompt, LogitsMode::kLast).ok());
  std::vector<int32_t> out;
  while (static_cast<int>(out.size()) < n) {
    const int32_t t = s.Sample(ctx->logits(), m.hparams().n_vocab);
    if (t < 0 || m.vocab().IsEog(t)) break;
    s.Accept(t);
    out.push_back(t);
    if (static_cast<int>(out.size()) == n) break;
    EXPECT_TRUE(ctx->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  }
  return out;
}

GenerationRequest Request(const Model& m, const std::string& prompt, int32_t n, float temp, uint64_t seed) {
  GenerationRequest r;
  r.prompt = m.vocab().Encode(prompt, true, false);
  r.max_tokens = n;
  r.sampling.temperature = temp;
  r.sampling.seed = seed;
  return r;
}

// adapt false: always draft_max (stories260K's draft model costs about what
// the model costs, so the adaptive length would rightly draft little).
EngineParams SpecEngine(SpecMethod method, const Model* draft, int32_t parallel, bool adapt = false) {
  EngineParams p;
  p.n_threads = 2;
  p.parallel = parallel;
  p.max_queue = 64;
  p.n_ctx = 512;
  p.spec.method = method;
  p.spec.draft_model = draft;
  p.spec.draft_max = 6;
  p.spec.max_batch = 64;  // speculate at any batch size here (the default stops at larger batches)
  p.spec.adapt = adapt;
  return p;
}

const char* const kPrompts[] = {
    "Lily had a big red ball. Lily had a big red ball. Lily had a",
    "Once upon a time",
    "The cat sat on the mat. The dog sat on the log. The cat sat on the",
    "One day, Tom went to the park. One day, Tom went to the",
};

class EngineSpeculativeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir());
    ModelLoadOptions o;
    o.path = testing::SharedPath("models/stories260K.gguf");
    ASSERT_TRUE(Model::Load(Env::Default(), o, &stories_).ok());
    QuantizeOptions qo;
    qo.ftype = FileType::kQ4_0;
    ASSERT_TRUE(QuantizeModel(Env::Default(), o.path, *dir_ + "/q4_0.gguf", qo, nullptr).ok());
    o.path = *dir_ + "/q4_0.gguf";
    ASSERT_TRUE(Model::Load(Env::Default(), o, &stories_q4_).ok());
  }
  static void TearDownTestSuite() {
    stories_.reset();
    stories_q4_.reset();
    delete dir_;
  }
  static std::string* dir_;
  static std::unique_ptr<Model> stories_, stories_q4_;
};
std::string* EngineSpeculativeTest::dir_ = nullptr;
std::unique_ptr<Model> EngineSpeculativeTest::stories_, EngineSpeculativeTest::stories_q4_;

// 16 greedy requests at once, every other one opting out of speculation:
// each gets exactly its plain tokens; drafts were accepted.
void SixteenMixedEqualAlone(const Model& m, SpecMethod method, const Model* draft) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(m, SpecEngine(method, draft, 16), &engine).ok());
  std::vector<std::unique_ptr<Tokens>> got;
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    reqs.push_back(Request(m, kPrompts[i % 4], 40 + i, 0.0f, 1));
    reqs.back().speculate = i % 2 == 0;
    got.push_back(std::make_unique<Tokens>());
    uint64_t id = 0;
    ASSERT_TRUE(engine->Submit(reqs.back(), got.back()->Sink(), &id).ok());
  }
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(got[i]->Wait(), Alone(m, reqs[i].prompt, reqs[i].sampling, reqs[i].max_tokens)) << i;
  const EngineStats s = engine->Stats();
  EXPECT_GT(s.spec_verifications, 0u);
  EXPECT_GT(s.spec_accepted, 0u);
  EXPECT_LE(s.spec_accepted, s.spec_drafted);
  EXPECT_EQ(s.kv.blocks_used - s.kv.blocks_cached, 0);  // every block returned (rejected drafts' too)
}

TEST_F(EngineSpeculativeTest, SixteenMixedEqualAloneWithPromptLookup) {
  SixteenMixedEqualAlone(*stories_, SpecMethod::kNgram, nullptr);
}

TEST_F(EngineSpeculativeTest, SixteenMixedEqualAloneWithDraftModel) {
  SixteenMixedEqualAlone(*stories_, SpecMethod::kDraftModel, stories_q4_.get());
}

TEST_F(EngineSpeculativeTest, AloneEqualsPlain) {
  for (const auto& [method, adapt] : {std::pair{SpecMethod::kNgram, false}, std::pair{SpecMethod::kDraftModel, false},
                                      std::pair{SpecMethod::kNgram, true}, std::pair{SpecMethod::kDraftModel, true}}) {
    std::unique_ptr<Engine> engine;
    ASSERT_TRUE(Engine::Create(*stories_,
                               SpecEngine(method, method == SpecMethod::kDraftModel ? stories_q4_.get() : nullptr, 4, adapt),
                               &engine)
                    .ok());
    for (const char* prompt : kPrompts) {
      for (int n : {1, 2, 7, 120}) {
        GenerationRequest r = Request(*stories_, prompt, n, 0.0f, 1);
        r.sampling.repeat_penalty = n == 120 ? 1.2f : 1.0f;
        Tokens t;
        uint64_t id = 0;
        ASSERT_TRUE(engine->Submit(r, t.Sink(), &id).ok());
        EXPECT_EQ(t.Wait(), Alone(*stories_, r.prompt, r.sampling, n)) << prompt << " n " << n;
      }
    }
    EXPECT_GT(engine->Stats().spec_verifications, 0u);
  }
}

// Speculation stops at max_batch generating requests (0: never).
TEST_F(EngineSpeculativeTest, NoSpeculationBeyondTheBatchLimit) {
  EngineParams p = SpecEngine(SpecMethod::kNgram, nullptr, 4);
  p.spec.max_batch = 0;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*stories_, p, &engine).ok());
  Tokens t;
  uint64_t id = 0;
  const GenerationRequest r = Request(*stories_, kPrompts[0], 60, 0.0f, 1);
  ASSERT_TRUE(engine->Submit(r, t.Sink(), &id).ok());
  EXPECT_EQ(t.Wait(), Alone(*stories_, r.prompt, r.sampling, 60));
  EXPECT_EQ(engine->Stats().spec_verifications, 0u);
}

// A stop string completed by an accepted draft ends the request there, as
// it ends the plain request.
TEST_F(EngineSpeculativeTest, StopStringInsideDrafts) {
  const GenerationRequest r = Request(*stories_, kPrompts[0], 100, 0.0f, 1);
  auto text = [&](SpecMethod method, const std::string& stop, GenerationEvent* last) {
    std::unique_ptr<Engine> engine;
    EXPECT_TRUE(Engine::Create(*stories_, SpecEngine(method, nullptr, 4), &engine).ok());
    std::mutex mu;
    std::condition_variable cv;
    std::string out;
    bool done = false;
    OutputParams op;
    if (!stop.empty()) op.stop = {stop};
    uint64_t id = 0;
    EXPECT_TRUE(engine->Submit(r, TextSink(stories_->vocab(), r.prompt.back(), op, [&](const GenerationEvent& e) {
                                 std::lock_guard<std::mutex> l(mu);
                                 out += e.text;
                                 if (e.finished) {
                                   *last = e;
                                   done = true;
                                   cv.notify_all();
                                 }
                                 return true;
                               }), &id)
                    .ok());
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
    return out;
  };
  GenerationEvent plain_end, spec_end;
  const std::string whole = text(SpecMethod::kNone, "", &plain_end);
  const std::string stop = "play with her";  // after a repeated phrase: drafts reach into it
  ASSERT_NE(whole.find(stop), std::string::npos) << whole;
  const std::string plain = text(SpecMethod::kNone, stop, &plain_end);
  EXPECT_EQ(plain, whole.substr(0, whole.find(stop)));
  EXPECT_EQ(text(SpecMethod::kNgram, stop, &spec_end), plain);
  EXPECT_EQ(spec_end.reason, FinishReason::kStop);
  EXPECT_EQ(spec_end.completion_tokens, plain_end.completion_tokens);
}

// A grammar constrains the drafts through the verifier: greedy grammar
// requests give their plain tokens, with and without speculation.
TEST_F(EngineSpeculativeTest, GrammarRequestsEqualPlain) {
  auto g = std::make_shared<grammar::Grammar>();
  ASSERT_TRUE(grammar::ParseGbnf("root ::= item{2,6}\nitem ::= \"- \" [a-z]{1,8} (\" \" [a-z]{1,8}){0,3} \"\\n\"\n",
                                 grammar::VocabGbnfOptions(stories_->vocab()), g.get())
                  .ok());
  const std::string prompt = "- lily had a ball\n- lily had a ball\n- lily had";
  // Reference: plain decoding through the grammar (an engine without speculation).
  auto generate = [&](SpecMethod method) {
    std::unique_ptr<Engine> engine;
    EXPECT_TRUE(Engine::Create(*stories_, SpecEngine(method, method == SpecMethod::kDraftModel ? stories_q4_.get() : nullptr, 4),
                               &engine)
                    .ok());
    GenerationRequest r = Request(*stories_, prompt, 120, 0.0f, 1);
    r.grammar = g;
    Tokens t;
    uint64_t id = 0;
    EXPECT_TRUE(engine->Submit(r, t.Sink(), &id).ok());
    std::vector<int32_t> out = t.Wait();
    EXPECT_EQ(t.reason(), FinishReason::kStop);
    return std::pair(out, engine->Stats().spec_accepted);
  };
  const auto plain = generate(SpecMethod::kNone);
  const auto ngram = generate(SpecMethod::kNgram);
  const auto draft = generate(SpecMethod::kDraftModel);
  EXPECT_EQ(ngram.first, plain.first);
  EXPECT_EQ(draft.first, plain.first);
  EXPECT_GT(ngram.second, 0u);
  EXPECT_GT(draft.second, 0u);
}

TEST_F(EngineSpeculativeTest, BadParamsAreRefused) {
  std::unique_ptr<Engine> engine;
  EngineParams p = SpecEngine(SpecMethod::kDraftModel, nullptr, 4);
  EXPECT_EQ(Engine::Create(*stories_, p, &engine).code(), StatusCode::kInvalidArgument);
  p = SpecEngine(SpecMethod::kNgram, nullptr, 4);
  p.spec.draft_min = 9;
  EXPECT_EQ(Engine::Create(*stories_, p, &engine).code(), StatusCode::kInvalidArgument);
  SynthSpec s;
  s.n_layer = 1;
  s.n_embd = 64;
  s.n_ff = 128;
  s.n_head = 2;
  s.n_head_kv = 2;
  s.n_vocab = 300;
  s.n_ctx = 512;
  std::unique_ptr<Model> other = testing::SynthesizeAndLoad(Env::Default(), s, *dir_ + "/other.gguf");
  ASSERT_NE(other, nullptr);
  const Status st = Engine::Create(*stories_, SpecEngine(SpecMethod::kDraftModel, other.get(), 4), &engine);
  EXPECT_EQ(st.message(), "the draft model's vocabulary differs from the model's: 300 tokens vs 512");
}

// Seeded sampling through the engine (16 at a time): the first three
// tokens' joint outcomes with speculation (draft model) and without agree,
// two-sample chi-square at significance 0.001 (deterministic seeds; the
// verifier's exact-distribution test in speculative_test.cc shows the
// power of such a fit against wrong rules).
TEST_F(EngineSpeculativeTest, SampledDistributionMatchesPlain) {
  constexpr int kN = 1200, kLen = 3;
  auto run = [&](SpecMethod method, uint64_t seed0, uint64_t* accepted) {
    std::unique_ptr<Engine> engine;
    EXPECT_TRUE(
        Engine::Create(*stories_, SpecEngine(method, method == SpecMethod::kNone ? nullptr : stories_q4_.get(), 16), &engine)
            .ok());
    std::map<int64_t, int64_t> counts;
    for (int batch = 0; batch < kN / 16; ++batch) {
      std::vector<std::unique_ptr<Tokens>> got;
      for (int i = 0; i < 16; ++i) {
        GenerationRequest r = Request(*stories_, kPrompts[0], kLen, 0.8f, seed0 + batch * 16 + i);
        r.sampling.top_k = 40;
        r.sampling.top_p = 0.95f;
        r.sampling.min_p = 0.05f;
        got.push_back(std::make_unique<Tokens>());
        uint64_t id = 0;
        EXPECT_TRUE(engine->Submit(r, got.back()->Sink(), &id).ok());
      }
      for (auto& t : got) {
        const std::vector<int32_t> toks = t->Wait();
        int64_t code = 0;
        for (int j = 0; j < kLen; ++j) code = code * 1000 + (j < static_cast<int>(toks.size()) ? toks[j] : 999);
        ++counts[code];
      }
    }
    *accepted = engine->Stats().spec_accepted;
    return counts;
  };
  uint64_t accepted_plain = 0, accepted = 0;
  const auto plain = run(SpecMethod::kNone, 1000, &accepted_plain);
  const auto spec = run(SpecMethod::kDraftModel, 900000, &accepted);
  EXPECT_EQ(accepted_plain, 0u);
  EXPECT_GT(accepted, static_cast<uint64_t>(kN / 8));
  // Two-sample chi-square, categories with fewer than 10 outcomes pooled.
  std::map<int64_t, std::pair<int64_t, int64_t>> cells;
  for (const auto& [c, n] : plain) cells[c].first += n;
  for (const auto& [c, n] : spec) cells[c].second += n;
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
  double stat = 0;
  for (const auto& [a, b] : kept) {
    const double e = (a + b) / 2.0;  // equal sample sizes
    stat += (a - e) * (a - e) / e + (b - e) * (b - e) / e;
  }
  const int df = static_cast<int>(kept.size()) - 1;
  const double a = 2.0 / (9.0 * df);
  const double critical = df * std::pow(1.0 - a + 3.0902 * std::sqrt(a), 3);  // significance 0.001
  std::printf("engine: chi-square %.1f, df %d, critical (0.001) %.1f; drafts accepted %llu\n", stat, df, critical,
              static_cast<unsigned long long>(accepted));
  EXPECT_GE(df, 5);
  EXPECT_LT(stat, critical);
}

// A synthetic F16 model with its Q4_0 quantization drafting: 16 mixed
// requests give each request's plain tokens (target F16 and Q8_0).
TEST(EngineSpeculativeSyntheticTest, SixteenMixedEqualAlone) {
  const std::string dir = testing::MakeTempDir();
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
  ASSERT_TRUE(SynthesizeModel(Env::Default(), s, dir + "/f16.gguf", 2).ok());
  QuantizeOptions qo;
  qo.ftype = FileType::kQ4_0;
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/f16.gguf", dir + "/q4_0.gguf", qo, nullptr).ok());
  qo.ftype = FileType::kQ8_0;
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/f16.gguf", dir + "/q8_0.gguf", qo, nullptr).ok());
  std::unique_ptr<Model> draft;
  ModelLoadOptions o;
  o.path = dir + "/q4_0.gguf";
  ASSERT_TRUE(Model::Load(Env::Default(), o, &draft).ok());
  for (const char* target : {"f16", "q8_0"}) {
    std::unique_ptr<Model> m;
    o.path = dir + "/" + target + ".gguf";
    ASSERT_TRUE(Model::Load(Env::Default(), o, &m).ok());
    SixteenMixedEqualAlone(*m, SpecMethod::kDraftModel, draft.get());
  }
}

}  // namespace
}  // namespace strata
