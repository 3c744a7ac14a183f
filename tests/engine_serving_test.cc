// The serving engine: many requests at once give exactly what each gives alone.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "engine/context.h"
#include "kv/kv_layout.h"
#include "test_util.h"

namespace strata {
namespace {

struct Result {
  std::string text;
  FinishReason reason = FinishReason::kNone;
  int32_t completion_tokens = 0;
  int32_t prompt_tokens = 0;
  size_t n_logprobs = 0;
};

class Collector {
 public:
  EventSink Sink() {
    return [this](const GenerationEvent& e) {
      std::lock_guard<std::mutex> l(mu_);
      r_.text += e.text;
      r_.n_logprobs += e.logprobs.size();
      if (e.finished) {
        r_.reason = e.reason;
        r_.completion_tokens = e.completion_tokens;
        r_.prompt_tokens = e.prompt_tokens;
        done_ = true;
        cv_.notify_all();
      }
      return keep_going_;
    };
  }
  Result Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return done_; });
    return r_;
  }
  void StopAfterFirstEvent() { keep_going_ = false; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Result r_;
  bool done_ = false;
  bool keep_going_ = true;
};

class EngineServingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ModelLoadOptions o;
    o.path = testing::SharedPath("models/stories260K.gguf");
    ASSERT_TRUE(Model::Load(Env::Default(), o, &model_).ok());
  }
  GenerationRequest Greedy(const std::string& prompt, int32_t n) {
    GenerationRequest r;
    r.prompt = model_->vocab().Encode(prompt, true, false);
    r.max_tokens = n;
    r.sampling.temperature = 0;
    return r;
  }
  // Reference: the plain single-sequence Context, greedy.
  std::string Alone(const std::string& prompt, int32_t n) {
    std::unique_ptr<Context> ctx;
    EXPECT_TRUE(Context::Create(*model_, ContextParams{512, 512, 1}, &ctx).ok());
    std::vector<int32_t> toks = model_->vocab().Encode(prompt, true, false);
    EXPECT_TRUE(ctx->Decode(toks, LogitsMode::kLast).ok());
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
      const float* l = ctx->logits();
      int32_t best = 0;
      for (int32_t j = 1; j < model_->hparams().n_vocab; ++j)
        if (l[j] > l[best]) best = j;
      if (model_->vocab().IsEog(best)) break;
      out.push_back(best);
      EXPECT_TRUE(ctx->Decode(std::span<const int32_t>(&best, 1), LogitsMode::kLast).ok());
    }
    std::string text;
    int32_t prev = toks.back();
    StreamDecoder d(model_->vocab());
    for (int32_t t : out) {
      text += d.Push(t, prev);
      prev = t;
    }
    return text + d.Flush();
  }
  std::unique_ptr<Model> model_;
};

TEST_F(EngineServingTest, SixteenAtOnceEqualAlone) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 16, 64, 512}, &engine).ok());
  const std::vector<std::string> prompts = {"Once upon a time", "Lily had a", "The dog", "One day, Tom",
                                            "She was happy", "A big red", "They played", "Mom said"};
  std::vector<std::unique_ptr<Collector>> cs;
  for (int i = 0; i < 16; ++i) {
    cs.push_back(std::make_unique<Collector>());
    uint64_t id = 0;
    ASSERT_TRUE(engine->Submit(Greedy(prompts[i % prompts.size()], 24 + i), cs.back()->Sink(), &id).ok());
  }
  for (int i = 0; i < 16; ++i) {
    Result r = cs[i]->Wait();
    EXPECT_EQ(r.text, Alone(prompts[i % prompts.size()], 24 + i)) << i;
    EXPECT_EQ(r.reason, FinishReason::kLength);
    EXPECT_EQ(r.completion_tokens, 24 + i);
  }
  EngineStats s = engine->Stats();
  EXPECT_EQ(s.requests_total, 16u);
  EXPECT_EQ(s.running, 0);
}

// A KV budget far too small for all requests at once: requests are
// preempted and resumed, and every one still gets exactly its text.
TEST_F(EngineServingTest, PreemptionUnderTightKvGivesSameText) {
  EngineParams p{2, 8, 64, 512};
  KvLayout L;
  ASSERT_TRUE(MakeKvLayout(model_->hparams(), DType::kF32, 16, &L).ok());
  p.kv_block_tokens = 16;
  p.kv_tiers.ram_bytes = 14 * L.block_bytes();  // ~220 positions for 8 requests of ~100
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  const std::vector<std::string> prompts = {"Once upon a time", "Lily had a", "The dog", "One day, Tom"};
  std::vector<std::unique_ptr<Collector>> cs;
  for (int i = 0; i < 8; ++i) {
    cs.push_back(std::make_unique<Collector>());
    uint64_t id = 0;
    ASSERT_TRUE(engine->Submit(Greedy(prompts[i % 4], 90), cs.back()->Sink(), &id).ok());
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(cs[i]->Wait().text, Alone(prompts[i % 4], 90)) << i;
  EngineStats s = engine->Stats();
  EXPECT_GT(s.preemptions, 0u);
  EXPECT_EQ(s.kv.blocks_used, s.kv.blocks_cached);  // nothing held but the prefix cache
}

TEST_F(EngineServingTest, SharedPrefixIsServedFromCache) {
  EngineParams p{2, 4, 8, 512};
  p.kv_block_tokens = 16;  // the ~30-token shared prefix spans whole blocks
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  const std::string prefix =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,";
  for (const char* tail : {" she saw", " she found", " she met"}) {
    Collector c;
    uint64_t id = 0;
    ASSERT_TRUE(engine->Submit(Greedy(prefix + tail, 20), c.Sink(), &id).ok());
    EXPECT_EQ(c.Wait().text, Alone(prefix + tail, 20)) << tail;
  }
  EXPECT_GT(engine->Stats().prompt_tokens_cached, 40u);
  EXPECT_GE(engine->Stats().kv.prefix_hits, 4u);
}

TEST_F(EngineServingTest, StopStringEndsGeneration) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  const std::string full = Alone("Once upon a time", 60);
  const size_t cut = full.find("Lily");
  ASSERT_NE(cut, std::string::npos);
  GenerationRequest r = Greedy("Once upon a time", 60);
  r.stop = {"Lily"};
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(engine->Submit(r, c.Sink(), &id).ok());
  Result res = c.Wait();
  EXPECT_EQ(res.text, full.substr(0, cut));
  EXPECT_EQ(res.reason, FinishReason::kStop);
}

TEST_F(EngineServingTest, LogprobsPerToken) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  GenerationRequest r = Greedy("Once upon a time", 10);
  r.top_logprobs = 3;
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(engine->Submit(r, c.Sink(), &id).ok());
  Result res = c.Wait();
  EXPECT_EQ(res.n_logprobs, 10u);
}

TEST_F(EngineServingTest, SinkReturningFalseCancels) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  Collector c;
  c.StopAfterFirstEvent();
  uint64_t id = 0;
  ASSERT_TRUE(engine->Submit(Greedy("Once upon a time", 200), c.Sink(), &id).ok());
  Result res = c.Wait();
  EXPECT_EQ(res.reason, FinishReason::kCancelled);
  EXPECT_LT(res.completion_tokens, 200);
  for (int i = 0; i < 100 && engine->Stats().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(engine->Stats().running, 0);
}

TEST_F(EngineServingTest, FullQueueRefuses) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{1, 1, 1, 512}, &engine).ok());
  std::vector<std::unique_ptr<Collector>> cs;
  int refused = 0;
  for (int i = 0; i < 8; ++i) {
    cs.push_back(std::make_unique<Collector>());
    uint64_t id = 0;
    Status s = engine->Submit(Greedy("Once upon a time", 100), cs.back()->Sink(), &id);
    if (s.code() == StatusCode::kResourceExhausted) {
      ++refused;
      cs.pop_back();
    } else {
      ASSERT_TRUE(s.ok());
    }
  }
  EXPECT_GT(refused, 0);
  for (auto& c : cs) c->Wait();
}

TEST_F(EngineServingTest, BadRequestsRejected) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{1, 1, 4, 64}, &engine).ok());
  Collector c;
  uint64_t id = 0;
  GenerationRequest empty;
  EXPECT_EQ(engine->Submit(empty, c.Sink(), &id).code(), StatusCode::kInvalidArgument);
  GenerationRequest big;
  big.prompt.assign(100, 5);  // longer than the 64-token context
  EXPECT_EQ(engine->Submit(big, c.Sink(), &id).code(), StatusCode::kInvalidArgument);
  GenerationRequest bad_id;
  bad_id.prompt = {1, 99999};
  EXPECT_EQ(engine->Submit(bad_id, c.Sink(), &id).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
