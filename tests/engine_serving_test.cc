// The serving engine: many requests at once give exactly what each gives alone.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <thread>

#include "engine/context.h"
#include "engine/output_processor.h"
#include "fault_env.h"
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
  Status error;
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
        r_.error = e.error;
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
  // Submits r with an OutputProcessor turning its tokens into c's text.
  Status Submit(Engine& engine, GenerationRequest r, Collector& c, uint64_t* id, OutputParams o = {}) {
    const int32_t last = r.prompt.empty() ? -1 : r.prompt.back();
    return engine.Submit(std::move(r), TextSink(model_->vocab(), last, std::move(o), c.Sink()), id);
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
    ASSERT_TRUE(Submit(*engine, Greedy(prompts[i % prompts.size()], 24 + i), *cs.back(), &id).ok());
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
    ASSERT_TRUE(Submit(*engine, Greedy(prompts[i % 4], 90), *cs.back(), &id).ok());
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
    ASSERT_TRUE(Submit(*engine, Greedy(prefix + tail, 20), c, &id).ok());
    EXPECT_EQ(c.Wait().text, Alone(prefix + tail, 20)) << tail;
  }
  EXPECT_GT(engine->Stats().prompt_tokens_cached, 40u);
  EXPECT_GE(engine->Stats().kv.prefix_hits, 4u);
}

// Requests submitted together with one long prefix compute it once: the
// later ones wait for the first to fill the shared blocks, then attach them.
TEST_F(EngineServingTest, ConcurrentSharedPrefixIsComputedOnce) {
  EngineParams p{2, 4, 8, 512};
  p.kv_block_tokens = 16;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  const std::string prefix =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,";
  const std::vector<std::string> tails = {" she saw", " she found", " she met", " she saw"};
  std::vector<std::unique_ptr<Collector>> cs;
  for (const std::string& tail : tails) {
    cs.push_back(std::make_unique<Collector>());
    uint64_t id = 0;
    ASSERT_TRUE(Submit(*engine, Greedy(prefix + tail, 20), *cs.back(), &id).ok());
  }
  for (size_t i = 0; i < tails.size(); ++i) EXPECT_EQ(cs[i]->Wait().text, Alone(prefix + tails[i], 20)) << i;
  // The prefix is ~30 tokens: at least one whole 16-token block, attached by each of the three later requests.
  EXPECT_GE(engine->Stats().prompt_tokens_cached, 3u * 16u);
}

TEST_F(EngineServingTest, StopStringEndsGeneration) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  const std::string full = Alone("Once upon a time", 60);
  const size_t cut = full.find("Lily");
  ASSERT_NE(cut, std::string::npos);
  GenerationRequest r = Greedy("Once upon a time", 60);
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(Submit(*engine, r, c, &id, OutputParams{{"Lily"}}).ok());
  Result res = c.Wait();
  EXPECT_EQ(res.text, full.substr(0, cut));
  EXPECT_EQ(res.reason, FinishReason::kStop);
  // The processor ended the request at the token completing "Lily": the
  // engine counted exactly the tokens up to it and released its KV.
  const std::vector<int32_t> prompt = model_->vocab().Encode("Once upon a time", true, false);
  int32_t tokens_to_stop = 1;
  while (Alone("Once upon a time", tokens_to_stop).find("Lily") == std::string::npos) ++tokens_to_stop;
  EXPECT_EQ(res.completion_tokens, tokens_to_stop);
  EXPECT_EQ(res.prompt_tokens, static_cast<int32_t>(prompt.size()));
  for (int i = 0; i < 100 && engine->Stats().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const EngineStats st = engine->Stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.kv.blocks_used, st.kv.blocks_cached);  // nothing held but the prefix cache
}

// A stop string completed by the request's last allowed token ends it as a stop.
TEST_F(EngineServingTest, StopStringOnTheLastTokenIsAStop) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  const std::string full = Alone("Once upon a time", 60);
  const size_t cut = full.find("Lily");
  ASSERT_NE(cut, std::string::npos);
  int32_t n = 1;
  while (Alone("Once upon a time", n).find("Lily") == std::string::npos) ++n;
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(Submit(*engine, Greedy("Once upon a time", n), c, &id, OutputParams{{"Lily"}}).ok());
  const Result res = c.Wait();
  EXPECT_EQ(res.text, full.substr(0, cut));
  EXPECT_EQ(res.reason, FinishReason::kStop);
  EXPECT_EQ(res.completion_tokens, n);
}

// Token-level endings. With EOS biased +100 the completion ends at once
// (EOS is drawn first); min_tokens holds it back until then; ignore_eos bans
// it, so the completion runs to max_tokens; a stop token id ends the text
// where that token first comes (it is not part of it).
TEST_F(EngineServingTest, IgnoreEosMinTokensAndStopTokenIds) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  const std::string prompt = "Once upon a time";
  auto run = [&](const GenerationRequest& r, OutputParams o = {}) {
    Collector c;
    uint64_t id = 0;
    EXPECT_TRUE(Submit(*engine, r, c, &id, std::move(o)).ok());
    return c.Wait();
  };
  const int32_t eos = model_->vocab().eos();
  ASSERT_GE(eos, 0);
  GenerationRequest eager = Greedy(prompt, 40);
  eager.sampling.logit_bias = {{eos, 100.0f}};
  const Result at_once = run(eager);
  EXPECT_EQ(at_once.reason, FinishReason::kStop);
  EXPECT_EQ(at_once.completion_tokens, 0);
  EXPECT_EQ(at_once.text, "");

  GenerationRequest min = eager;
  min.min_tokens = 7;
  const Result seven = run(min);
  EXPECT_EQ(seven.reason, FinishReason::kStop);
  EXPECT_EQ(seven.completion_tokens, 7);
  EXPECT_EQ(seven.text, Alone(prompt, 7));

  GenerationRequest ignore = eager;
  ignore.ignore_eos = true;
  const Result past = run(ignore);
  EXPECT_EQ(past.reason, FinishReason::kLength);
  EXPECT_EQ(past.completion_tokens, 40);
  EXPECT_EQ(past.text, Alone(prompt, 40));

  // The 6th token of the story as a stop token: the text ends before its first occurrence.
  const std::vector<int32_t> ids = model_->vocab().Encode(prompt, true, false);
  const std::string five = run(Greedy(prompt, 5)).text;
  int32_t sixth = -1;
  {
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::Create(*model_, ContextParams{512, 512, 1}, &ctx).ok());
    std::vector<int32_t> toks = ids;
    ASSERT_TRUE(ctx->Decode(toks, LogitsMode::kLast).ok());
    for (int i = 0; i < 6; ++i) {
      const float* l = ctx->logits();
      int32_t best = 0;
      for (int32_t j = 1; j < model_->hparams().n_vocab; ++j)
        if (l[j] > l[best]) best = j;
      sixth = best;
      ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&best, 1), LogitsMode::kLast).ok());
      if (i < 5) toks.push_back(best);
    }
    // The 6th must not also be among the first 5 for the cut below to be there.
    ASSERT_EQ(std::find(toks.begin() + static_cast<std::ptrdiff_t>(ids.size()), toks.end(), sixth), toks.end());
  }
  GenerationRequest stop = Greedy(prompt, 50);
  stop.stop_token_ids = {sixth};
  const Result cut = run(stop);
  EXPECT_EQ(cut.reason, FinishReason::kStop);
  EXPECT_EQ(cut.completion_tokens, 5);
  EXPECT_EQ(cut.text, five);
  // min_tokens holds the stop token back too, and stop strings (OutputParams::min_tokens).
  stop.min_tokens = 8;
  const Result held = run(stop);
  EXPECT_GE(held.completion_tokens, 8);
  const std::string story = Alone(prompt, 30);
  GenerationRequest no_early_stop = Greedy(prompt, 30);
  no_early_stop.min_tokens = 30;
  const std::string word = story.substr(0, story.find(' ', 3));  // the story's first word or two
  const Result no_stop = run(no_early_stop, OutputParams{{word}, 30});
  EXPECT_EQ(no_stop.reason, FinishReason::kLength);
  EXPECT_EQ(no_stop.text, story);
  EXPECT_EQ(run(Greedy(prompt, 30), OutputParams{{word}}).text, "");  // without min_tokens it stops at once
}

// logit_bias +100 on a token makes greedy (and sampling) pick it every time;
// -100 on the greedy first token makes the first token another one.
TEST_F(EngineServingTest, LogitBiasForcesAndBans) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  const int32_t the = model_->vocab().Encode(" the", false, false).back();
  for (float temperature : {0.0f, 1.0f}) {
    GenerationRequest r = Greedy("Once upon a time", 6);
    r.sampling.temperature = temperature;
    r.sampling.seed = 3;
    r.sampling.logit_bias = {{the, 100.0f}};
    Collector c;
    uint64_t id = 0;
    ASSERT_TRUE(Submit(*engine, r, c, &id).ok());
    std::string want;
    for (int i = 0; i < 6; ++i) want += model_->vocab().TokenToPiece(the);
    EXPECT_EQ(c.Wait().text, want) << temperature;
  }
  const std::vector<int32_t> prompt = model_->vocab().Encode("Once upon a time", true, false);
  const std::string first = Alone("Once upon a time", 1);
  int32_t greedy_first = -1;
  for (int32_t t = 0; t < model_->vocab().n_tokens(); ++t)
    if (model_->vocab().DecodePiece(t, prompt.back()) == first) greedy_first = t;
  ASSERT_GE(greedy_first, 0);
  GenerationRequest r = Greedy("Once upon a time", 1);
  r.sampling.logit_bias = {{greedy_first, -100.0f}};
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(Submit(*engine, r, c, &id).ok());
  const Result banned = c.Wait();
  EXPECT_EQ(banned.completion_tokens, 1);
  EXPECT_NE(banned.text, first);
  // Bad values are refused at submission.
  GenerationRequest bad = Greedy("Once upon a time", 1);
  bad.sampling.logit_bias = {{model_->hparams().n_vocab, 1.0f}};
  Collector d;
  EXPECT_EQ(Submit(*engine, bad, d, &id).code(), StatusCode::kInvalidArgument);
  bad.sampling.logit_bias = {{1, std::numeric_limits<float>::quiet_NaN()}};
  EXPECT_EQ(Submit(*engine, bad, d, &id).code(), StatusCode::kInvalidArgument);
  bad.sampling.logit_bias.clear();
  bad.stop_token_ids = {-1};
  EXPECT_EQ(Submit(*engine, bad, d, &id).code(), StatusCode::kInvalidArgument);
}

TEST_F(EngineServingTest, LogprobsPerToken) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  GenerationRequest r = Greedy("Once upon a time", 10);
  r.top_logprobs = 3;
  Collector c;
  uint64_t id = 0;
  ASSERT_TRUE(Submit(*engine, r, c, &id).ok());
  Result res = c.Wait();
  EXPECT_EQ(res.n_logprobs, 10u);
}

TEST_F(EngineServingTest, SinkReturningFalseCancels) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{2, 4, 8, 512}, &engine).ok());
  Collector c;
  c.StopAfterFirstEvent();
  uint64_t id = 0;
  ASSERT_TRUE(Submit(*engine, Greedy("Once upon a time", 200), c, &id).ok());
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
    Status s = Submit(*engine, Greedy("Once upon a time", 100), *cs.back(), &id);
    if (s.code() == StatusCode::kResourceExhausted) {
      ++refused;
      cs.pop_back();
    } else {
      ASSERT_TRUE(s.ok());
    }
  }
  EXPECT_GT(refused, 0);
  for (auto& c : cs) c->Wait();
  EXPECT_EQ(engine->Stats().requests_rejected, static_cast<uint64_t>(refused));
}

TEST_F(EngineServingTest, BadRequestsRejected) {
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, EngineParams{1, 1, 4, 64}, &engine).ok());
  Collector c;
  uint64_t id = 0;
  GenerationRequest empty;
  EXPECT_EQ(Submit(*engine, empty, c, &id).code(), StatusCode::kInvalidArgument);
  GenerationRequest big;
  big.prompt.assign(100, 5);  // longer than the 64-token context: can never fit
  EXPECT_EQ(Submit(*engine, big, c, &id).code(), StatusCode::kOutOfRange);
  GenerationRequest bad_id;
  bad_id.prompt = {1, 99999};
  EXPECT_EQ(Submit(*engine, bad_id, c, &id).code(), StatusCode::kInvalidArgument);
}

// ---- KV budgets and disk tier faults ----

class EngineKvFaultTest : public EngineServingTest {
 protected:
  KvLayout Layout(int32_t block) {
    KvLayout L;
    EXPECT_TRUE(MakeKvLayout(model_->hparams(), DType::kF32, block, &L).ok());
    return L;
  }
  EngineParams Params(int32_t block) {
    EngineParams p{1, 4, 16, 256};
    p.kv_block_tokens = block;
    p.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu_);
      log_.push_back(line);
    };
    return p;
  }
  bool Logged(const std::string& what) {
    std::lock_guard<std::mutex> l(log_mu_);
    return std::any_of(log_.begin(), log_.end(), [&](const std::string& x) { return x.find(what) != std::string::npos; });
  }
  Result Run(Engine& engine, const GenerationRequest& r) {
    Collector c;
    uint64_t id = 0;
    Status s = Submit(engine, r, c, &id);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return Result{};
    return c.Wait();
  }
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

// A request's context is what its KV pool can hold: a prompt that can never
// fit is kOutOfRange at once (not queued, not "retry later"), and a
// generation that fills the pool ends with "length", as at n_ctx.
TEST_F(EngineKvFaultTest, ContextIsBoundedByTheKvBudget) {
  auto mem = NewMemEnv();
  EngineParams ram_only = Params(16);
  ram_only.kv_tiers.ram_bytes = 4 * Layout(16).block_bytes();
  EngineParams disk_max = Params(16);  // as --kv-ram 0 --kv-disk DIR --kv-disk-max 4 blocks
  disk_max.kv_tiers.ram_bytes = 0;
  disk_max.kv_tiers.disk_dir = "/kv";
  disk_max.kv_tiers.disk_bytes = 4 * Layout(16).block_bytes();
  disk_max.env = mem.get();
  for (const EngineParams& p : {ram_only, disk_max}) {
    std::unique_ptr<Engine> engine;
    ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
    EXPECT_EQ(engine->n_ctx(), 64);
    GenerationRequest big;
    big.prompt.assign(70, 5);
    Collector c;
    uint64_t id = 0;
    const Status s = Submit(*engine, big, c, &id);
    EXPECT_EQ(s.code(), StatusCode::kOutOfRange) << s.ToString();
    EXPECT_NE(s.message().find("KV cache budget"), std::string::npos) << s.message();
    const GenerationRequest r = Greedy("Once upon a time", 100);
    const Result res = Run(*engine, r);
    EXPECT_EQ(res.reason, FinishReason::kLength) << res.error.ToString();
    EXPECT_EQ(res.completion_tokens, 64 - static_cast<int32_t>(r.prompt.size()));
    EXPECT_EQ(res.text, Alone("Once upon a time", res.completion_tokens));
    EXPECT_EQ(engine->Stats().requests_rejected, 0u);
  }
}

// A real disk tier in a temp dir: a block file corrupted on disk under a
// cached prefix. The next request with that prefix succeeds with the text of
// a run without tiers; the block is counted lost and recomputed.
TEST_F(EngineKvFaultTest, CorruptBlockOnDiskIsRecomputed) {
  const std::string dir = testing::MakeTempDir();
  EngineParams p = Params(16);
  p.kv_tiers.ram_bytes = 0;
  p.kv_tiers.disk_dir = dir;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  const std::string prefix =
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,";
  EXPECT_EQ(Run(*engine, Greedy(prefix + " she saw", 20)).text, Alone(prefix + " she saw", 20));
  ASSERT_GE(engine->Stats().kv.blocks_cached, 2);

  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  const uint64_t slice = Layout(16).slice_bytes();
  {
    // Slot 0 holds the first slice written: layer 0 of the prompt's first block.
    std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
    for (uint64_t off = 0; off < slice; off += 61) {
      f.seekg(static_cast<std::streamoff>(off));
      const char b = static_cast<char>(f.get() ^ 0x5a);
      f.seekp(static_cast<std::streamoff>(off));
      f.put(b);
    }
  }
  for (const char* tail : {" she found", " she found", " she met"}) {
    const Result r = Run(*engine, Greedy(prefix + tail, 20));
    EXPECT_EQ(r.reason, FinishReason::kLength) << r.error.ToString();
    EXPECT_EQ(r.text, Alone(prefix + tail, 20)) << tail;
  }
  // Stats are taken at the end of a step, after the sinks ran.
  for (int i = 0; i < 500 && engine->Stats().running > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  const EngineStats st = engine->Stats();
  EXPECT_GE(st.kv.store.checksum_failures, 1u);
  EXPECT_GE(st.kv.blocks_lost, 1u);
  EXPECT_FALSE(st.kv.ram_only);  // one bad block is not a failing disk
  EXPECT_TRUE(Logged("lost on the disk tier"));
  EXPECT_EQ(st.kv.blocks_used, st.kv.blocks_cached);
  engine.reset();
  std::filesystem::remove_all(dir);
}

// The disk refuses every write (ENOSPC) while four requests need more KV than
// the RAM budget: they all succeed, one after another in RAM; the fallback is
// logged and counted; once the disk takes writes again the tier is used again.
TEST_F(EngineKvFaultTest, FullDiskServesFromRamAndRecovers) {
  auto mem = NewMemEnv();
  testing::Faults faults;
  testing::FaultInjectionEnv env(mem.get(), &faults);
  EngineParams p = Params(16);
  p.kv_tiers.ram_bytes = 6 * Layout(16).block_bytes();
  p.kv_tiers.disk_dir = "/kv";
  p.env = &env;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  const std::vector<std::string> prompts = {"Once upon a time", "Lily had a", "The dog", "One day, Tom"};
  faults.write_budget = 0;
  std::vector<std::unique_ptr<Collector>> cs;
  for (const std::string& prompt : prompts) {
    cs.push_back(std::make_unique<Collector>());
    uint64_t id = 0;
    ASSERT_TRUE(Submit(*engine, Greedy(prompt, 60), *cs.back(), &id).ok());
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Result r = cs[i]->Wait();
    EXPECT_EQ(r.reason, FinishReason::kLength) << r.error.ToString();
    EXPECT_EQ(r.text, Alone(prompts[i], 60)) << i;
  }
  EngineStats st = engine->Stats();
  EXPECT_TRUE(st.kv.ram_only);
  EXPECT_EQ(st.kv.ram_only_fallbacks, 1u);
  EXPECT_GT(st.kv.store.write_failures, 0u);
  EXPECT_TRUE(Logged("serving from RAM only"));
  EXPECT_EQ(st.requests_rejected, 0u);

  faults.write_budget = INT64_MAX;
  for (int i = 0; i < 30 && engine->Stats().kv.ram_only; ++i)
    EXPECT_EQ(Run(*engine, Greedy(prompts[i % 4], 60)).text, Alone(prompts[i % 4], 60));
  st = engine->Stats();
  EXPECT_FALSE(st.kv.ram_only);
  EXPECT_TRUE(Logged("takes writes again"));
  const uint64_t writes = st.kv.store.writes;
  EXPECT_EQ(Run(*engine, Greedy("The cat", 60)).text, Alone("The cat", 60));
  EXPECT_GT(engine->Stats().kv.store.writes, writes);  // the disk tier is in use again
}

// With a RAM budget of 0 and the disk full, a request that needs more KV is
// told to retry later (kUnavailable, no path, not counted as a queue
// rejection); once the disk has room, the next request succeeds at once.
TEST_F(EngineKvFaultTest, FullDiskWithNoRamIsUnavailableThenRecovers) {
  auto mem = NewMemEnv();
  testing::Faults faults;
  testing::FaultInjectionEnv env(mem.get(), &faults);
  EngineParams p = Params(8);
  p.kv_tiers.ram_bytes = 0;
  p.kv_tiers.disk_dir = "/kv";
  p.env = &env;
  std::unique_ptr<Engine> engine;
  ASSERT_TRUE(Engine::Create(*model_, p, &engine).ok());
  EXPECT_EQ(Run(*engine, Greedy("Once upon a time", 40)).text, Alone("Once upon a time", 40));
  faults.write_budget = 0;
  const Result r = Run(*engine, Greedy("Lily had a", 40));
  EXPECT_EQ(r.reason, FinishReason::kError);
  EXPECT_EQ(r.error.code(), StatusCode::kUnavailable) << r.error.ToString();
  EXPECT_EQ(r.error.message().find("/kv"), std::string::npos) << r.error.message();
  EXPECT_TRUE(engine->Stats().kv.ram_only);
  EXPECT_EQ(engine->Stats().requests_rejected, 0u);
  faults.write_budget = INT64_MAX;
  const Result ok = Run(*engine, Greedy("Lily had a", 40));
  EXPECT_EQ(ok.reason, FinishReason::kLength) << ok.error.ToString();
  EXPECT_EQ(ok.text, Alone("Lily had a", 40));
  EXPECT_FALSE(engine->Stats().kv.ram_only);
}

}  // namespace
}  // namespace strata
