// LoRA adapters (model/lora_adapter.h, the Linear seam engine/linear.h): an
// adapter written by SynthesizeLora (strata synth --lora) gives the logits of
// the base model whose weights are merged, W + s·B·A, written as a model file
// of its own; requests with different adapters batched together each get the
// text they get alone, and the prefix cache never shares KV between adapter
// sets; bad adapters are one-line errors naming what is wrong.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/context.h"
#include "engine/engine.h"
#include "engine/output_processor.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"
#include "model/lora_adapter.h"
#include "model/model.h"
#include "model/synth.h"
#include "model/synth_lora.h"
#include "server/server.h"
#include "test_util.h"

namespace strata {
namespace {

std::string Dir() {
  static const std::string dir = testing::MakeTempDir();
  return dir;
}

SynthSpec SmallSpec(Arch arch) {
  SynthSpec s;
  s.arch = arch;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 128;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 512;
  s.n_ctx = 256;
  s.type = DType::kF32;
  s.seed = 11;
  s.weights = SynthWeights::kConformance;
  return s;
}

std::unique_ptr<Model> Load(const std::string& path, bool pack = true) {
  ModelLoadOptions o;
  o.path = path;
  o.pack_weights = pack;
  std::unique_ptr<Model> m;
  const Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return m;
}

std::string Synthesize(const SynthSpec& spec, const std::string& name) {
  const std::string path = Dir() + "/" + name + ".gguf";
  const Status s = SynthesizeModel(Env::Default(), spec, path, 2);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return path;
}

std::string SynthesizeAdapter(const std::string& base, const SynthLoraSpec& spec, const std::string& name) {
  std::unique_ptr<Model> m = Load(base, false);
  const std::string path = Dir() + "/" + name + ".gguf";
  if (!m) return path;
  const Status s = SynthesizeLora(Env::Default(), m->hparams(), m->weights(), spec, path);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return path;
}

// F32 rows of a 2-D tensor.
std::vector<float> ToF32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.elements()));
  for (int64_t r = 0; r < t.rows(); ++r) kernels::DequantizeRow(t.type, t.row(r), &out[r * t.cols()], t.cols());
  return out;
}

// The base model (F32) with every adapter's pairs merged into its weights,
// written to out: W + s·B·A (token_embd: row t + s·B·A[t]), s = scale ·
// alpha / r (or scale with alpha 0). An explicit computation, independent of
// the forward pass.
void WriteMerged(const std::string& base, const std::vector<std::pair<std::string, float>>& adapters,
                 const std::string& out) {
  std::unique_ptr<gguf::GgufFile> b;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), base, &b).ok());
  std::vector<std::unique_ptr<gguf::GgufFile>> files;
  for (const auto& [path, scale] : adapters) {
    ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), path, &files.emplace_back()).ok());
  }
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : b->metadata()) w.SetValue(kv.key, kv.value);
  std::vector<std::vector<float>> merged;
  merged.reserve(b->tensors().size());
  for (const gguf::TensorInfo& t : b->tensors()) {
    std::vector<int64_t> ne(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims);
    std::vector<float>& m = merged.emplace_back();
    for (size_t i = 0; i < files.size(); ++i) {
      const gguf::TensorInfo* a = files[i]->FindTensor(t.name + ".lora_a");
      const gguf::TensorInfo* bb = files[i]->FindTensor(t.name + ".lora_b");
      if (a == nullptr) continue;
      ASSERT_NE(bb, nullptr);
      ASSERT_EQ(t.tensor.type, DType::kF32);
      if (m.empty()) m = ToF32(t.tensor);
      const float alpha = static_cast<float>(files[i]->GetFloat("adapter.lora.alpha").value_or(0));
      const int64_t r = bb->tensor.ne[0];
      const float s = adapters[i].second * (alpha != 0 ? alpha / static_cast<float>(r) : 1.0f);
      const std::vector<float> fa = ToF32(a->tensor), fb = ToF32(bb->tensor);
      const int64_t cols = t.tensor.cols(), rows = t.tensor.rows();
      const bool embd = t.name == "token_embd.weight";
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t c = 0; c < cols; ++c) {
          double d = 0;
          for (int64_t k = 0; k < r; ++k)
            d += embd ? static_cast<double>(fb[c * r + k]) * fa[j * r + k]
                      : static_cast<double>(fb[j * r + k]) * fa[k * cols + c];
          m[j * cols + c] += s * static_cast<float>(d);
        }
    }
    if (m.empty()) {
      ASSERT_TRUE(w.AddTensor(t.name, t.tensor.type, ne, t.tensor.data).ok());
    } else {
      ASSERT_TRUE(w.AddTensor(t.name, DType::kF32, ne, m.data()).ok());
    }
  }
  const Status s = w.Write(Env::Default(), out);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

// Logits F32 [n_vocab, tokens] of the tokens decoded as one batch, with the adapters (path, scale).
std::vector<float> Logits(const Model& m, const std::vector<int32_t>& tokens,
                          const std::vector<std::pair<std::string, float>>& adapters = {}) {
  std::vector<std::unique_ptr<LoraAdapter>> owned;
  LoraSet set;
  for (const auto& [path, scale] : adapters) {
    const Status s = LoraAdapter::Load(Env::Default(), path, m, &owned.emplace_back());
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return {};
    set.push_back({owned.back().get(), scale});
  }
  ContextParams p;
  p.n_ctx = 128;
  p.n_threads = 2;
  p.kv_type = DType::kF32;
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::Create(m, p, &ctx).ok());
  if (!ctx) return {};
  EXPECT_TRUE(ctx->SetAdapters(set).ok());
  EXPECT_TRUE(ctx->Decode(tokens, LogitsMode::kAll).ok());
  const int32_t V = m.hparams().n_vocab;
  std::vector<float> out;
  for (size_t i = 0; i < tokens.size(); ++i) out.insert(out.end(), ctx->logits(static_cast<int32_t>(i)), ctx->logits(static_cast<int32_t>(i)) + V);
  return out;
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

std::vector<int32_t> Tokens(int n, int n_vocab) {
  std::vector<int32_t> t = {1};
  for (int i = 1; i < n; ++i) t.push_back(3 + (i * 37 + 11) % (n_vocab - 3));
  return t;
}

// ---- equality with merged weights ----

struct MergeCase {
  std::string name;
  Arch arch;
  std::vector<std::string> targets;  // empty: every layer matrix
  DType type = DType::kF32;
};

class LoraMergeTest : public ::testing::TestWithParam<MergeCase> {};

// Logits within F32 rounding of the merged model's, and far from the base's
// (the adapter changes the model: the comparison could fail).
TEST_P(LoraMergeTest, EqualsMergedWeights) {
  const MergeCase& c = GetParam();
  const std::string base = Synthesize(SmallSpec(c.arch), "base-" + c.name);
  SynthLoraSpec ls;
  ls.rank = 4;
  ls.alpha = 8;
  ls.seed = 3;
  ls.type = c.type;
  ls.targets = c.targets;
  const std::string adapter = SynthesizeAdapter(base, ls, "lora-" + c.name);
  const std::string merged = Dir() + "/merged-" + c.name + ".gguf";
  WriteMerged(base, {{adapter, 0.7f}}, merged);
  std::unique_ptr<Model> mb = Load(base), mm = Load(merged);
  ASSERT_TRUE(mb && mm);
  const std::vector<int32_t> tokens = Tokens(40, mb->hparams().n_vocab);
  const std::vector<float> adapted = Logits(*mb, tokens, {{adapter, 0.7f}});
  const std::vector<float> want = Logits(*mm, tokens);
  const std::vector<float> plain = Logits(*mb, tokens);
  const float err = MaxAbsDiff(adapted, want), effect = MaxAbsDiff(plain, want);
  std::cout << "[lora] " << c.name << ": max |Δ logit| vs merged " << err << ", adapter's effect " << effect << "\n";
  EXPECT_LT(err, 1e-4f);
  EXPECT_GT(effect, 0.5f);
}

INSTANTIATE_TEST_SUITE_P(
    Arch, LoraMergeTest,
    ::testing::Values(MergeCase{"llama", Arch::kLlama, {}, DType::kF32},
                      MergeCase{"llama_all", Arch::kLlama,
                                {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "output",
                                 "token_embd"},
                                DType::kF32},
                      MergeCase{"llama_f16", Arch::kLlama, {}, DType::kF16},
                      MergeCase{"qwen2", Arch::kQwen2, {}, DType::kF32},    // biases after the low-rank term
                      MergeCase{"phi3", Arch::kPhi3, {}, DType::kF32},      // fused attn_qkv and ffn_up, split
                      MergeCase{"gemma2", Arch::kGemma2, {}, DType::kF32}),  // tied output, post norms
    [](const ::testing::TestParamInfo<MergeCase>& i) { return i.param.name; });

// Two adapters in one set add up, each with its scale; scale 0 is the base model.
TEST(LoraTest, AdaptersOfOneSetAddUp) {
  const std::string base = Synthesize(SmallSpec(Arch::kLlama), "base-sum");
  SynthLoraSpec ls;
  ls.rank = 8;
  ls.alpha = 0;  // s = scale
  ls.strength = 0.2f;
  ls.seed = 5;
  const std::string a1 = SynthesizeAdapter(base, ls, "sum1");
  ls.seed = 6;
  ls.rank = 2;
  ls.targets = {"attn_v", "ffn_down"};
  const std::string a2 = SynthesizeAdapter(base, ls, "sum2");
  const std::string merged = Dir() + "/merged-sum.gguf";
  WriteMerged(base, {{a1, 0.5f}, {a2, -1.25f}}, merged);
  std::unique_ptr<Model> mb = Load(base), mm = Load(merged);
  ASSERT_TRUE(mb && mm);
  const std::vector<int32_t> tokens = Tokens(24, mb->hparams().n_vocab);
  EXPECT_LT(MaxAbsDiff(Logits(*mb, tokens, {{a1, 0.5f}, {a2, -1.25f}}), Logits(*mm, tokens)), 1e-4f);
  EXPECT_EQ(Logits(*mb, tokens, {{a1, 0.0f}}), Logits(*mb, tokens));
}

// ---- batching: each request gets its text alone ----

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, std::string> text;
  int done = 0;
  EventSink Sink(int i) {
    return [this, i](const GenerationEvent& e) {
      std::lock_guard<std::mutex> l(mu);
      text[i] += e.text;
      EXPECT_NE(e.reason, FinishReason::kError) << e.error.ToString();
      if (e.finished) {
        ++done;
        cv.notify_all();
      }
      return true;
    };
  }
  void Wait(int n) {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done >= n; });
  }
};

// Submits r to e with its tokens turned into text for c's sink i.
Status Submit(Engine& e, const GenerationRequest& r, Collector& c, int i) {
  uint64_t id = 0;
  return e.Submit(r, TextSink(e.model().vocab(), r.prompt.back(), {}, c.Sink(i)), &id);
}

GenerationRequest Greedy(const Model& m, const std::string& prompt, int n, LoraSet lora) {
  GenerationRequest r;
  r.prompt = m.vocab().Encode(prompt, true, false);
  r.max_tokens = n;
  r.sampling.temperature = 0;
  r.lora = std::move(lora);
  return r;
}

class LoraEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string base = testing::SharedPath("models/stories260K.gguf");
    model_ = Load(base);
    ASSERT_TRUE(model_);
    for (int i = 0; i < 3; ++i) {
      SynthLoraSpec ls;
      ls.rank = 4 + 4 * i;
      ls.alpha = 16;
      ls.seed = 100 + i;
      ls.strength = 0.3f;
      if (i == 1) ls.targets = {"attn_q", "attn_v", "ffn_up"};
      if (i == 2) ls.type = DType::kF16;
      const std::string path = SynthesizeAdapter(base, ls, "stories-" + std::to_string(i));
      ASSERT_TRUE(LoraAdapter::Load(Env::Default(), path, *model_, &adapters_.emplace_back()).ok());
    }
  }
  EngineParams Params(int parallel) const {
    EngineParams p;
    p.n_threads = 2;
    p.parallel = parallel;
    p.n_ctx = 256;
    p.kv_block_tokens = 8;
    for (const auto& a : adapters_) p.adapters.push_back(LoraSet{{a.get(), 1.0f}});
    return p;
  }
  // Adapter k (1-based) at scale; 0: none.
  LoraSet Set(int k, float scale = 1.0f) const {
    return k == 0 ? LoraSet{} : LoraSet{{adapters_[static_cast<size_t>(k - 1)].get(), scale}};
  }
  std::string Alone(const GenerationRequest& r) {
    std::unique_ptr<Engine> e;
    EXPECT_TRUE(Engine::Create(*model_, Params(1), &e).ok());
    Collector c;
    EXPECT_TRUE(Submit(*e, r, c, 0).ok());
    c.Wait(1);
    return c.text[0];
  }
  std::unique_ptr<Model> model_;
  std::vector<std::unique_ptr<LoraAdapter>> adapters_;
};

// 8 requests (each adapter set and the base model twice, prompts of different
// lengths, so prefill chunks and decode tokens of several sets share steps).
TEST_F(LoraEngineTest, MixedBatchGivesEachRequestItsTextAlone) {
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog ran to the park and saw a big"};
  std::vector<GenerationRequest> reqs;
  for (int k = 0; k < 8; ++k) reqs.push_back(Greedy(*model_, prompts[k / 4], 24 + k, Set(k % 4)));
  std::vector<std::string> alone;
  for (const GenerationRequest& r : reqs) alone.push_back(Alone(r));
  // The adapters change the text: a mix-up would show.
  for (int k = 1; k < 4; ++k) EXPECT_NE(alone[k].substr(0, 40), alone[0].substr(0, 40)) << k;
  std::unique_ptr<Engine> e;
  ASSERT_TRUE(Engine::Create(*model_, Params(8), &e).ok());
  Collector c;
  for (int k = 0; k < 8; ++k) ASSERT_TRUE(Submit(*e, reqs[static_cast<size_t>(k)], c, k).ok());
  c.Wait(8);
  for (int k = 0; k < 8; ++k) EXPECT_EQ(c.text[k], alone[static_cast<size_t>(k)]) << "request " << k;
}

// A prompt cached by one adapter set is not reused by another: after the base
// model and adapter 1 ran a long prompt, adapter 2's answer is its own.
TEST_F(LoraEngineTest, PrefixCacheIsPerAdapterSet) {
  const std::string prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.";
  const std::string want = Alone(Greedy(*model_, prompt, 20, Set(2)));
  std::unique_ptr<Engine> e;
  ASSERT_TRUE(Engine::Create(*model_, Params(1), &e).ok());
  for (int adapter : {0, 1, 2, 2}) {
    Collector c;
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, Set(adapter)), c, 0).ok());
    c.Wait(1);
    if (adapter == 2) EXPECT_EQ(c.text[0], want);
  }
  EXPECT_GT(e->Stats().prompt_tokens_cached, 0u);  // the second adapter-2 request did reuse its own blocks
}

TEST_F(LoraEngineTest, BadAdapterSetsAreRefused) {
  std::unique_ptr<Engine> e;
  ASSERT_TRUE(Engine::Create(*model_, Params(1), &e).ok());
  Collector c;
  std::unique_ptr<Model> other = Load(testing::SharedPath("models/stories260K.gguf"));
  ASSERT_TRUE(other);
  std::unique_ptr<LoraAdapter> foreign;
  ASSERT_TRUE(LoraAdapter::Load(Env::Default(), SynthesizeAdapter(testing::SharedPath("models/stories260K.gguf"),
                                                                   SynthLoraSpec{}, "stories-other"),
                                *other, &foreign)
                  .ok());
  EXPECT_EQ(Submit(*e, Greedy(*model_, "Hi", 4, {{foreign.get(), 1.0f}}), c, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Submit(*e, Greedy(*model_, "Hi", 4, {{nullptr, 1.0f}}), c, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Submit(*e, Greedy(*model_, "Hi", 4, Set(1, std::nanf(""))), c, 0).code(), StatusCode::kInvalidArgument);
}

// Scales chosen per request: each request runs its adapters at its scales,
// alone or batched with others, as an engine whose fixed set has them; scale
// 0 is the base model.
TEST_F(LoraEngineTest, PerRequestScales) {
  const std::string prompt = "Once upon a time";
  const auto fixed = [&](LoraSet set) {  // an engine whose only fixed set is `set`, asked for it
    EngineParams p = Params(1);
    p.adapters = {set};
    std::unique_ptr<Engine> e;
    EXPECT_TRUE(Engine::Create(*model_, p, &e).ok());
    Collector c;
    EXPECT_TRUE(Submit(*e, Greedy(*model_, prompt, 24, set), c, 0).ok());
    c.Wait(1);
    return c.text[0];
  };
  const std::vector<LoraSet> sets = {Set(1, 0.5f), Set(1, -0.75f), Set(2, 2.0f),
                                     LoraSet{{adapters_[0].get(), 0.25f}, {adapters_[2].get(), 1.5f}}, {}};
  std::vector<std::string> want;
  for (const LoraSet& set : sets) want.push_back(fixed(set));
  EXPECT_NE(want[0].substr(0, 40), want[1].substr(0, 40));
  EXPECT_EQ(fixed(Set(1, 0.0f)), want[4]);  // a scale of 0 adds nothing
  std::unique_ptr<Engine> e;
  EngineParams p = Params(8);
  p.adapters.clear();
  ASSERT_TRUE(Engine::Create(*model_, p, &e).ok());
  Collector c;
  for (size_t k = 0; k < 2 * sets.size(); ++k)
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 24, sets[k % sets.size()]), c, static_cast<int>(k)).ok());
  c.Wait(static_cast<int>(2 * sets.size()));
  for (size_t k = 0; k < 2 * sets.size(); ++k) EXPECT_EQ(c.text[static_cast<int>(k)], want[k % sets.size()]) << k;
}

// Different sets in use at once are bounded; a set's index is freed when its
// last request ends and a new set reuses it without its predecessor's KV.
TEST_F(LoraEngineTest, AdapterSetsInUseAreBounded) {
  const std::string prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun.";
  EngineParams p = Params(1);
  p.adapters.clear();
  p.max_adapter_sets = 2;
  std::unique_ptr<Engine> e;
  ASSERT_TRUE(Engine::Create(*model_, p, &e).ok());
  {
    Collector c;
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, Set(1, 0.5f)), c, 0).ok());
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, Set(1, 0.5f)), c, 1).ok());  // the same set: no new index
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, Set(2, 0.5f)), c, 2).ok());
    EXPECT_EQ(Submit(*e, Greedy(*model_, prompt, 20, Set(3, 0.5f)), c, 3).code(), StatusCode::kResourceExhausted);
    ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, {}), c, 4).ok());  // the base model needs none
    c.Wait(4);
  }
  // Both indices are free again: a third set takes one, and its text is its
  // own although its index's previous set left a cached prefix of this prompt.
  Collector c;
  ASSERT_TRUE(Submit(*e, Greedy(*model_, prompt, 20, Set(3, 0.5f)), c, 0).ok());
  c.Wait(1);
  EXPECT_EQ(c.text[0], Alone(Greedy(*model_, prompt, 20, Set(3, 0.5f))));
}

// ---- the server: adapters as model ids ----

using nlohmann::json;

class LoraServerTest : public LoraEngineTest {
 protected:
  void SetUp() override {
    LoraEngineTest::SetUp();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_TRUE(Engine::Create(*model_, Params(4), &engine_).ok());
    server::ServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.adapter_ids = {"a", "b", "c"};
    o.sessions.dir = testing::MakeTempDir();
    ASSERT_TRUE(server::Server::Create(engine_.get(), server::ChatTemplate(), o, &server_).ok());
    ASSERT_TRUE(server_->Bind(&port_).ok());
    thread_ = std::thread([this] { (void)server_->Serve(); });
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    if (thread_.joinable()) thread_.join();
  }
  // POST /v1/completions: status and body.
  std::pair<int, json> Complete(json body) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    body["prompt"] = "Once upon a time";
    body["max_tokens"] = 16;
    body["temperature"] = 0;
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    if (!r) return {0, json()};
    return {r->status, json::parse(r->body, nullptr, false)};
  }
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(LoraServerTest, AdaptersAreModelsOfTheirOwn) {
  httplib::Client c("127.0.0.1", port_);
  auto r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  const json models = json::parse(r->body);
  ASSERT_EQ(models["data"].size(), 4u);
  EXPECT_EQ(models["data"][0]["id"], model_->name());
  EXPECT_EQ(models["data"][2]["id"], "b");
  EXPECT_EQ(models["data"][2]["parent"], model_->name());
  r = c.Get("/v1/models/c");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["id"], "c");

  // By model name or by the lora field: the engine's text for that adapter.
  const auto [s_model, by_model] = Complete({{"model", "b"}});
  const auto [s_lora, by_lora] = Complete({{"lora", "b"}});
  const auto [s_base, base] = Complete({{"model", model_->name()}});
  ASSERT_EQ(s_model, 200);
  ASSERT_EQ(s_lora, 200);
  ASSERT_EQ(s_base, 200);
  EXPECT_EQ(by_model["model"], "b");
  EXPECT_EQ(by_lora["model"], "b");
  EXPECT_EQ(base["model"], model_->name());
  GenerationRequest g = Greedy(*model_, "Once upon a time", 16, Set(2));
  EXPECT_EQ(by_model["choices"][0]["text"], Alone(g));
  EXPECT_EQ(by_lora["choices"][0]["text"], Alone(g));
  g.lora.clear();
  EXPECT_EQ(base["choices"][0]["text"], Alone(g));
  EXPECT_NE(base["choices"][0]["text"], by_model["choices"][0]["text"]);
}

TEST_F(LoraServerTest, AdapterIdsAreUniqueAndOnePerSet) {
  for (const std::vector<std::string>& ids : std::vector<std::vector<std::string>>{
           {"a", "a", "c"}, {model_->name(), "b", "c"}, {"a", "", "c"}, {"a", "b"}}) {
    server::ServerOptions o;
    o.adapter_ids = ids;
    std::unique_ptr<server::Server> s;
    EXPECT_EQ(server::Server::Create(engine_.get(), server::ChatTemplate(), o, &s).code(), StatusCode::kInvalidArgument);
  }
}

TEST_F(LoraServerTest, UnknownAdaptersAreErrors) {
  const auto [s1, e1] = Complete({{"model", "nope"}});
  EXPECT_EQ(s1, 404);
  EXPECT_EQ(e1["error"]["code"], "model_not_found");
  const auto [s2, e2] = Complete({{"lora", "nope"}});
  EXPECT_EQ(s2, 400);
  EXPECT_EQ(e2["error"]["param"], "lora");
  const auto [s3, e3] = Complete({{"model", "a"}, {"lora", "b"}});
  EXPECT_EQ(s3, 400);
  const auto [s4, e4] = Complete({{"lora", 3}});
  EXPECT_EQ(s4, 400);
  EXPECT_EQ(e4["error"]["param"], "lora");
  // llama-server's array form.
  for (const auto& [lora, param] : std::vector<std::pair<json, std::string>>{
           {json::array({{{"id", 3}, {"scale", 1}}}), "lora[0].id"},
           {json::array({{{"id", 0}, {"scale", 1}}, {{"id", "nope"}, {"scale", 1}}}), "lora[1].id"},
           {json::array({{{"id", -1}, {"scale", 1}}}), "lora[0].id"},
           {json::array({{{"id", 0}}}), "lora[0].scale"},
           {json::array({{{"id", 0}, {"scale", "1"}}}), "lora[0].scale"},
           {json::array({{{"id", 0}, {"scale", 101}}}), "lora[0].scale"},
           {json::array({3}), "lora[0]"},
           {json::array({{{"id", 0}, {"scale", 1e300}}}), "lora[0].scale"}}) {
    const auto [st, err] = Complete({{"lora", lora}});
    EXPECT_EQ(st, 400) << lora.dump();
    EXPECT_EQ(err["error"]["param"], param) << lora.dump();
  }
  json many = json::array();
  for (int i = 0; i < 65; ++i) many.push_back({{"id", 0}, {"scale", 1}});
  EXPECT_EQ(Complete({{"lora", many}}).first, 400);
  const auto [s5, e5] = Complete({{"model", "a"}, {"lora", json::array({{{"id", 0}, {"scale", 1}}})}});
  EXPECT_EQ(s5, 400);
}

// llama-server's "lora": [{"id", "scale"}]: the adapters listed, by index or
// id, run at their scales (the last entry of one wins); the others do not.
TEST_F(LoraServerTest, PerRequestScales) {
  GenerationRequest g = Greedy(*model_, "Once upon a time", 16, {});
  const std::string base = Alone(g);
  g.lora = Set(2, 3.0f);
  const std::string b_three = Alone(g);
  g.lora = {{adapters_[0].get(), -0.5f}, {adapters_[2].get(), 2.0f}};
  const std::string a_c = Alone(g);
  EXPECT_NE(b_three, base);
  EXPECT_NE(a_c, base);
  const auto text = [&](json lora) {
    const auto [st, r] = Complete({{"lora", std::move(lora)}});
    EXPECT_EQ(st, 200) << r.dump();
    EXPECT_EQ(r["model"], model_->name());
    return r["choices"][0]["text"].get<std::string>();
  };
  EXPECT_EQ(text(json::array({{{"id", 1}, {"scale", 3}}})), b_three);
  EXPECT_EQ(text(json::array({{{"id", "b"}, {"scale", 0.5}}, {{"id", 1}, {"scale", 3}}})), b_three);
  EXPECT_EQ(text(json::array({{{"id", 2}, {"scale", 2}}, {{"id", "a"}, {"scale", -0.5}}})), a_c);
  EXPECT_EQ(text(json::array({{{"id", 1}, {"scale", 0}}})), base);
  EXPECT_EQ(text(json::array()), base);
  // Zero scales on a session are the base model; others are refused.
  const auto [s_zero, zero] = Complete({{"lora", json::array({{{"id", 0}, {"scale", 0}}})}, {"session", "z1"}});
  EXPECT_EQ(s_zero, 200) << zero.dump();
  const auto [s_one, one] = Complete({{"lora", json::array({{{"id", 0}, {"scale", 1}}})}, {"session", "z1"}});
  EXPECT_EQ(s_one, 400);
  EXPECT_EQ(one["error"]["code"], "session_with_adapter");
}

// A session's KV is the base model's: a turn under an adapter is refused
// before the session is read, and the session stays usable with the base model.
TEST_F(LoraServerTest, SessionsRunWithTheBaseModel) {
  const auto [s_lora, e_lora] = Complete({{"lora", "b"}, {"session", "s1"}});
  EXPECT_EQ(s_lora, 400);
  EXPECT_EQ(e_lora["error"]["code"], "session_with_adapter");
  EXPECT_EQ(e_lora["error"]["param"], "lora");
  const auto [s_model, e_model] = Complete({{"model", "a"}, {"session", "s1"}});
  EXPECT_EQ(s_model, 400);
  EXPECT_EQ(e_model["error"]["param"], "model");
  const auto [s_base, base] = Complete({{"session", "s1"}});
  ASSERT_EQ(s_base, 200) << base.dump();
  GenerationRequest g = Greedy(*model_, "Once upon a time", 16, {});
  EXPECT_EQ(base["choices"][0]["text"], Alone(g));
}

// ---- the CLI: synth --lora, run --lora, serve --lora ----

TEST(LoraCliTest, SynthRunAndServe) {
  const std::string model = testing::SharedPath("models/stories260K.gguf");
  const std::string adapter = Dir() + "/cli-lora.gguf";
  testing::CommandResult r = testing::RunCommand(
      {testing::CliPath(), "synth", adapter, "--lora", model, "--rank", "4", "--alpha", "8", "--seed", "9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {testing::CliPath(), "run", "-m", model, "--temp", "0", "-n", "24", "-t", "2", "-p",
                                  "Once upon a time"};
    a.insert(a.end(), extra.begin(), extra.end());
    return testing::RunCommand(a);
  };
  const testing::CommandResult base = run({}), adapted = run({"--lora", adapter}), zero = run({"--lora", adapter + ":0"});
  ASSERT_EQ(base.exit_code, 0) << base.err;
  ASSERT_EQ(adapted.exit_code, 0) << adapted.err;
  ASSERT_EQ(zero.exit_code, 0) << zero.err;
  EXPECT_NE(adapted.out, base.out);
  EXPECT_EQ(zero.out, base.out);  // scale 0 adds nothing
  // The same adapter twice at half scale is the adapter once (within rounding: greedy text).
  EXPECT_EQ(run({"--lora", adapter + ":0.5", "--lora", adapter + ":0.5"}).out, adapted.out);

  // Errors: one line, exit 1.
  for (const auto& [args, part] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--lora", model}, "this is not an adapter file"},
           {{"--lora", Dir() + "/missing.gguf"}, "no such file"},
           {{"--lora", adapter, "--session", "s"}, "--lora with --session"}}) {
    const testing::CommandResult e = run(args);
    EXPECT_EQ(e.exit_code, 1) << part;
    EXPECT_NE(e.err.find(part), std::string::npos) << e.err;
  }
  const testing::CommandResult e = testing::RunCommand(
      {testing::CliPath(), "serve", "-m", model, "--port", "0", "--lora", "x=" + model, "--no-tune"});
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.err.find("--lora: LoRA adapter " + model + ": general.type"), std::string::npos) << e.err;
}

// ---- bad adapters: one-line errors ----

// A GGUF's metadata and tensors as editable data, and written back.
struct GgufContents {
  std::vector<gguf::KeyValue> kv;
  struct T {
    std::string name;
    DType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> bytes;
  };
  std::vector<T> tensors;

  static GgufContents Read(const std::string& path) {
    std::unique_ptr<gguf::GgufFile> f;
    EXPECT_TRUE(gguf::GgufFile::Open(Env::Default(), path, &f).ok());
    GgufContents c;
    if (!f) return c;
    c.kv = f->metadata();
    for (const gguf::TensorInfo& t : f->tensors()) {
      const uint8_t* p = static_cast<const uint8_t*>(t.tensor.data);
      c.tensors.push_back({t.name, t.tensor.type, std::vector<int64_t>(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims),
                           std::vector<uint8_t>(p, p + t.nbytes)});
    }
    return c;
  }
  T* Find(const std::string& name) {
    for (T& t : tensors)
      if (t.name == name) return &t;
    ADD_FAILURE() << "no tensor " << name;
    return nullptr;
  }
  void Drop(const std::string& name) {
    std::erase_if(tensors, [&](const T& t) { return t.name == name; });
  }
  void Set(const std::string& key, gguf::Value v) {
    std::erase_if(kv, [&](const gguf::KeyValue& k) { return k.key == key; });
    kv.push_back({key, std::move(v)});
  }
  void Write(const std::string& path) const {
    gguf::GgufWriter w;
    for (const gguf::KeyValue& k : kv) w.SetValue(k.key, k.value);
    for (const T& t : tensors) ASSERT_TRUE(w.AddTensor(t.name, t.type, t.ne, t.bytes.data()).ok()) << t.name;
    ASSERT_TRUE(w.Write(Env::Default(), path).ok());
  }
};

gguf::Value Str(const std::string& s) {
  gguf::Value v;
  v.type = gguf::ValueType::kString;
  v.str = s;
  return v;
}

// A matrix of zeros [cols, rows] in F32.
GgufContents::T Zeros(const std::string& name, int64_t cols, int64_t rows) {
  return {name, DType::kF32, {cols, rows}, std::vector<uint8_t>(static_cast<size_t>(cols * rows * 4))};
}

class LoraErrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = Synthesize(SmallSpec(Arch::kLlama), "errors-base");
    SynthLoraSpec ls;
    ls.rank = 4;
    ls.targets = {"attn_q", "ffn_down", "output"};
    good_ = SynthesizeAdapter(base_, ls, "errors-good");
  }
  // Loading the good adapter edited by edit: the status.
  Status LoadEdited(const std::function<void(GgufContents&)>& edit, const std::string& onto = "") {
    GgufContents c = GgufContents::Read(good_);
    edit(c);
    const std::string path = Dir() + "/edited.gguf";
    c.Write(path);
    std::unique_ptr<Model> m = Load(onto.empty() ? base_ : onto);
    std::unique_ptr<LoraAdapter> a;
    return m ? LoraAdapter::Load(Env::Default(), path, *m, &a) : Status::Internal("no model");
  }
  static void ExpectError(const Status& s, StatusCode code, const std::string& part) {
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("LoRA adapter "), std::string::npos) << s.message();  // names the file
  }
  static std::string base_, good_;
};
std::string LoraErrorsTest::base_, LoraErrorsTest::good_;

TEST_F(LoraErrorsTest, GoodAdapterLoads) {
  const Status s = LoadEdited([](GgufContents&) {});
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(LoraErrorsTest, Metadata) {
  ExpectError(LoadEdited([](GgufContents& c) { c.Set("general.type", Str("model")); }), StatusCode::kInvalidArgument,
              "general.type is 'model', not 'adapter'");
  ExpectError(LoadEdited([](GgufContents& c) { c.Set("adapter.type", Str("control_vector")); }),
              StatusCode::kUnsupported, "adapter.type is 'control_vector'");
  ExpectError(LoadEdited([](GgufContents& c) { c.Set("general.architecture", Str("qwen2")); }),
              StatusCode::kInvalidArgument, "the adapter is for architecture 'qwen2', the model is 'llama'");
  ExpectError(LoadEdited([](GgufContents& c) { c.Set("adapter.lora.alpha", Str("sixteen")); }), StatusCode::kCorrupt,
              "adapter.lora.alpha is not a finite number");
  gguf::Value tokens;
  tokens.type = gguf::ValueType::kArray;
  tokens.elem_type = gguf::ValueType::kUint32;
  ExpectError(LoadEdited([&](GgufContents& c) { c.Set("adapter.alora.invocation_tokens", tokens); }),
              StatusCode::kUnsupported, "activated LoRA");
  ExpectError(LoadEdited([](GgufContents& c) { c.tensors.clear(); }), StatusCode::kInvalidArgument,
              "the adapter has no tensors");
}

TEST_F(LoraErrorsTest, MissingAndExtraTensors) {
  ExpectError(LoadEdited([](GgufContents& c) { c.Drop("blk.1.ffn_down.weight.lora_b"); }),
              StatusCode::kInvalidArgument, "tensor blk.1.ffn_down.weight.lora_b is missing");
  ExpectError(LoadEdited([](GgufContents& c) { c.Drop("output.weight.lora_a"); }), StatusCode::kInvalidArgument,
              "tensor output.weight.lora_a is missing");
  ExpectError(LoadEdited([](GgufContents& c) { c.Find("blk.0.attn_q.weight.lora_a")->name = "blk.0.attn_q.weight.lora_c"; }),
              StatusCode::kInvalidArgument, "tensor blk.0.attn_q.weight.lora_c is neither NAME.lora_a nor NAME.lora_b");
  ExpectError(LoadEdited([](GgufContents& c) {
                c.tensors.push_back(Zeros("blk.7.attn_q.weight.lora_a", 64, 4));
                c.tensors.push_back(Zeros("blk.7.attn_q.weight.lora_b", 4, 64));
              }),
              StatusCode::kInvalidArgument, "the base model has no matrix blk.7.attn_q.weight");
  ExpectError(LoadEdited([](GgufContents& c) { c.tensors.push_back(Zeros("blk.0.attn_norm.weight", 64, 1)); }),
              StatusCode::kUnsupported, "tensor blk.0.attn_norm.weight replaces a norm weight");
}

TEST_F(LoraErrorsTest, ShapesAndTypes) {
  // lora_a with the wrong input width, lora_b with the wrong output height, ranks that disagree.
  ExpectError(LoadEdited([](GgufContents& c) { *c.Find("blk.0.attn_q.weight.lora_a") = Zeros("blk.0.attn_q.weight.lora_a", 96, 4); }),
              StatusCode::kInvalidArgument, "do not fit blk.0.attn_q.weight [64, 64]: expected [64, r] and [r, 64]");
  ExpectError(LoadEdited([](GgufContents& c) { *c.Find("output.weight.lora_b") = Zeros("output.weight.lora_b", 4, 511); }),
              StatusCode::kInvalidArgument, "do not fit output.weight [64, 512]");
  ExpectError(LoadEdited([](GgufContents& c) { *c.Find("blk.1.ffn_down.weight.lora_b") = Zeros("blk.1.ffn_down.weight.lora_b", 5, 64); }),
              StatusCode::kInvalidArgument, "(wrong base model?)");
  ExpectError(LoadEdited([](GgufContents& c) {
                GgufContents::T& t = *c.Find("blk.0.attn_q.weight.lora_a");
                t.type = DType::kI32;
              }),
              StatusCode::kUnsupported, "tensor blk.0.attn_q.weight.lora_a has type i32");
  ExpectError(LoadEdited([](GgufContents& c) {
                GgufContents::T& t = *c.Find("blk.0.attn_q.weight.lora_a");
                t.ne = {64, 2, 2};
              }),
              StatusCode::kCorrupt, "a LoRA tensor is a matrix");
}

// An adapter made for another model: another architecture, or the same one with other sizes.
TEST_F(LoraErrorsTest, WrongBaseModel) {
  const std::string qwen = Synthesize(SmallSpec(Arch::kQwen2), "errors-qwen2");
  SynthLoraSpec ls;
  ls.rank = 4;
  std::unique_ptr<Model> llama = Load(base_);
  std::unique_ptr<LoraAdapter> a;
  ExpectError(LoraAdapter::Load(Env::Default(), SynthesizeAdapter(qwen, ls, "errors-qwen2-lora"), *llama, &a),
              StatusCode::kInvalidArgument, "the adapter is for architecture 'qwen2'");
  SynthSpec wide = SmallSpec(Arch::kLlama);
  wide.n_embd = 128;
  const std::string wide_lora = SynthesizeAdapter(Synthesize(wide, "errors-wide"), ls, "errors-wide-lora");
  ExpectError(LoraAdapter::Load(Env::Default(), wide_lora, *llama, &a), StatusCode::kInvalidArgument,
              "(wrong base model?)");
  // A model file is not an adapter.
  ExpectError(LoraAdapter::Load(Env::Default(), base_, *llama, &a), StatusCode::kInvalidArgument,
              "this is not an adapter file");
  // Nor is a truncated one.
  std::string bytes;
  ASSERT_TRUE(Env::Default()->ReadFile(good_, 1 << 24, &bytes).ok());
  const std::string cut = Dir() + "/cut.gguf";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), cut, std::string_view(bytes).substr(0, bytes.size() / 2)).ok());
  EXPECT_EQ(LoraAdapter::Load(Env::Default(), cut, *llama, &a).code(), StatusCode::kCorrupt);
}

// token_embd pairs where the output is token_embd (tied): llama.cpp would
// apply them to the output too, in shapes that do not multiply.
TEST_F(LoraErrorsTest, TokenEmbdOfATiedOutput) {
  const std::string gemma = Synthesize(SmallSpec(Arch::kGemma), "errors-gemma");
  ExpectError(LoadEdited(
                  [](GgufContents& c) {
                    c.tensors.clear();
                    c.Set("general.architecture", Str("gemma"));
                    c.tensors.push_back(Zeros("token_embd.weight.lora_a", 4, 512));
                    c.tensors.push_back(Zeros("token_embd.weight.lora_b", 4, 64));
                  },
                  gemma),
              StatusCode::kUnsupported, "this model's output reuses token_embd (tied)");
}

TEST(LoraSynthTest, TargetKinds) {
  EXPECT_EQ(LoraTargetKind("blk.12.attn_qkv.weight"), "attn_qkv");
  EXPECT_EQ(LoraTargetKind("blk.0.ffn_down.weight"), "ffn_down");
  EXPECT_EQ(LoraTargetKind("output.weight"), "output");
  EXPECT_EQ(LoraTargetKind("token_embd.weight"), "token_embd");
  EXPECT_EQ(LoraTargetKind("blk.0.attn_norm.weight"), "");
  EXPECT_EQ(LoraTargetKind("blk.0.attn_q.bias"), "");
}

TEST(LoraSynthTest, RefusesWhatItCannotWrite) {
  const std::string base = Synthesize(SmallSpec(Arch::kGemma), "synth-refuse");
  std::unique_ptr<Model> m = Load(base, false);
  ASSERT_TRUE(m);
  auto write = [&](const SynthLoraSpec& s) {
    return SynthesizeLora(Env::Default(), m->hparams(), m->weights(), s, Dir() + "/refused.gguf");
  };
  SynthLoraSpec s;
  s.targets = {"attn_z"};
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
  s.targets = {"output"};  // gemma's output is token_embd
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
  s.targets = {"token_embd"};
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
  s.targets = {};
  s.type = DType::kQ8_0;
  s.rank = 8;  // not a whole q8_0 block
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
  s.type = DType::kQ4_0;
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
  s.type = DType::kF32;
  s.rank = 0;
  EXPECT_EQ(write(s).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
