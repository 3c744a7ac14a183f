// Architectures: per-architecture hyper-parameters and tensors from hostile
// or unusual files. Every architecture's synthetic model is rewritten with one
// change at a time (a key missing or absurd, a tensor missing, misshapen or
// unknown, the file truncated): each gives a clear error naming what is wrong
// and never a crash; a refused feature is named, never ignored.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/env.h"
#include "engine/context.h"
#include "engine/rope.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "model/hparams.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

gguf::Value U32(uint32_t v) {
  gguf::Value x;
  x.type = gguf::ValueType::kUint32;
  x.u = v;
  x.i = v;
  return x;
}
gguf::Value F32(float v) {
  gguf::Value x;
  x.type = gguf::ValueType::kFloat32;
  x.f = v;
  return x;
}
gguf::Value Str(std::string s) {
  gguf::Value x;
  x.type = gguf::ValueType::kString;
  x.str = std::move(s);
  return x;
}
gguf::Value U32Array(std::vector<uint32_t> v) {
  gguf::Value x;
  x.type = gguf::ValueType::kArray;
  x.elem_type = gguf::ValueType::kUint32;
  for (uint32_t e : v) x.arr.push_back(U32(e));
  return x;
}

// One change to a GGUF file: metadata set (nullopt: removed), tensors
// dropped, tensors replaced by zeros of another shape, zero tensors added.
struct Edit {
  std::map<std::string, std::optional<gguf::Value>> kv;
  std::set<std::string> drop;
  std::map<std::string, std::vector<int64_t>> reshape;  // F32 zeros of this shape
  std::map<std::string, std::vector<int64_t>> add;      // F32 zeros
};

Status Rewrite(const std::string& in, const std::string& out, const Edit& e) {
  std::unique_ptr<gguf::GgufFile> f;
  STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(Env::Default(), in, &f));
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f->metadata())
    if (!e.kv.count(kv.key)) w.SetValue(kv.key, kv.value);
  for (const auto& [key, v] : e.kv)
    if (v) w.SetValue(key, *v);
  auto zeros = [](uint8_t* dst, uint64_t n) {
    std::fill(dst, dst + n, 0);
    return Status::Ok();
  };
  for (const gguf::TensorInfo& t : f->tensors()) {
    if (e.drop.count(t.name)) continue;
    if (auto r = e.reshape.find(t.name); r != e.reshape.end()) {
      STRATA_RETURN_IF_ERROR(w.AddTensor(t.name, DType::kF32, r->second, zeros));
      continue;
    }
    std::vector<int64_t> ne(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims);
    STRATA_RETURN_IF_ERROR(w.AddTensor(t.name, t.tensor.type, ne, t.tensor.data));
  }
  for (const auto& [name, ne] : e.add) STRATA_RETURN_IF_ERROR(w.AddTensor(name, DType::kF32, ne, zeros));
  return w.Write(Env::Default(), out);
}

Status TryLoad(const std::string& path, std::unique_ptr<Model>* m = nullptr) {
  ModelLoadOptions o;
  o.path = path;
  std::unique_ptr<Model> local;
  return Model::Load(Env::Default(), o, m != nullptr ? m : &local);
}

struct ArchCase {
  Arch arch;
  int head_dim;  // 0: n_embd / n_head
};

// n_embd 64, 4 heads (head_dim 16, or 24 when given), 2 KV heads, n_ff 96, vocab 300.
class ArchFileTest : public ::testing::TestWithParam<ArchCase> {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    base_ = dir_ + "/base.gguf";
    SynthSpec s;
    s.arch = GetParam().arch;
    s.head_dim = GetParam().head_dim;
    s.n_layer = 2;
    s.n_embd = 64;
    s.n_ff = 96;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_vocab = 300;
    s.n_ctx = 64;
    s.type = DType::kF32;
    s.weights = SynthWeights::kConformance;
    s.longrope = s.arch == Arch::kPhi3;
    s.n_ctx_orig = s.longrope ? 32 : 0;
    ASSERT_TRUE(SynthesizeModel(Env::Default(), s, base_, 1).ok());
    a_ = ArchName(s.arch);
  }
  int HeadDim() const { return GetParam().head_dim > 0 ? GetParam().head_dim : 16; }
  // The status of loading base_ with edit e applied.
  Status LoadEdited(const Edit& e) {
    const std::string path = dir_ + "/edited.gguf";
    const Status w = Rewrite(base_, path, e);
    EXPECT_TRUE(w.ok()) << w.ToString();
    return TryLoad(path);
  }
  std::string Key(const char* k) const { return a_ + "." + k; }

  std::string dir_, base_, a_;
};

TEST_P(ArchFileTest, LoadsWithItsArchitecture) {
  std::unique_ptr<Model> m;
  ASSERT_TRUE(TryLoad(base_, &m).ok());
  EXPECT_EQ(m->hparams().arch, GetParam().arch);
  EXPECT_EQ(m->hparams().head_dim, HeadDim());
  EXPECT_EQ(m->hparams().rope_type, Traits(GetParam().arch).rope_type);
}

TEST_P(ArchFileTest, MissingRequiredMetadataIsNamed) {
  for (const char* k : {"context_length", "embedding_length", "block_count", "attention.head_count",
                        "feed_forward_length", "attention.layer_norm_rms_epsilon"}) {
    const Status s = LoadEdited({.kv = {{Key(k), std::nullopt}}});
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << k;
    EXPECT_THAT(s.message(), HasSubstr(Key(k)));
  }
}

TEST_P(ArchFileTest, AbsurdHyperParametersAreRefused) {
  const std::vector<std::pair<const char*, gguf::Value>> cases = {
      {"embedding_length", U32(0)},
      {"embedding_length", U32(1u << 30)},
      {"block_count", U32(100000)},
      {"attention.head_count", U32(0)},
      {"attention.head_count", U32(1u << 31)},
      {"attention.head_count_kv", U32(3)},  // does not divide 4
      {"attention.head_count_kv", U32(0)},
      {"feed_forward_length", U32(0)},
      {"context_length", U32(0)},
      {"attention.key_length", U32(1u << 20)},
      {"attention.key_length", U32(HeadDim() + 2)},  // tensors no longer match
      {"rope.dimension_count", U32(HeadDim() + 2)},
      {"rope.dimension_count", U32(3)},
      {"attention.layer_norm_rms_epsilon", F32(-1.0f)},
      {"attention.layer_norm_rms_epsilon", F32(std::numeric_limits<float>::quiet_NaN())},
      {"rope.freq_base", F32(std::numeric_limits<float>::infinity())},
      {"rope.freq_base", F32(0.0f)},
      {"rope.scaling.attn_factor", F32(-1.0f)},
      {"rope.scaling.attn_factor", F32(std::numeric_limits<float>::quiet_NaN())},
      {"rope.scaling.original_context_length", U32(0)},
      {"block_count", Str("two")},
  };
  for (const auto& [k, v] : cases) {
    const Status s = LoadEdited({.kv = {{Key(k), v}}});
    EXPECT_FALSE(s.ok()) << k;
    EXPECT_NE(s.code(), StatusCode::kInternal) << k << ": " << s.ToString();
  }
}

TEST_P(ArchFileTest, FeaturesThatChangeTheMathAreRefusedByName) {
  const std::vector<std::pair<std::string, gguf::Value>> cases = {
      {"attention.head_count", U32Array({4, 4})},  // per-layer head counts
      {"feed_forward_length", U32Array({96, 96})},
      {"expert_count", U32(8)},
      {"rope.scaling.type", Str("su")},
      {"attention.value_length", U32(HeadDim() * 2)},
  };
  for (const auto& [k, v] : cases) {
    const Status s = LoadEdited({.kv = {{Key(k.c_str()), v}}});
    EXPECT_EQ(s.code(), StatusCode::kUnsupported) << k << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(Key(k.c_str())));
  }
}

// llama.cpp's rope scaling types: linear and longrope scale positions, yarn also mixes in extrapolation.
TEST_P(ArchFileTest, RopeScalingTypesLoad) {
  for (const char* type : {"none", "linear", "longrope", "yarn"}) {
    const std::string path = dir_ + "/scaled.gguf";
    ASSERT_TRUE(Rewrite(base_, path, {.kv = {{Key("rope.scaling.type"), Str(type)}, {Key("rope.scaling.factor"), F32(4.0f)}}})
                    .ok());
    std::unique_ptr<Model> m;
    const Status s = TryLoad(path, &m);
    ASSERT_TRUE(s.ok()) << type << ": " << s.ToString();
    EXPECT_EQ(m->hparams().rope_freq_scale, std::string(type) == "none" ? 1.0f : 0.25f) << type;
    EXPECT_EQ(m->hparams().rope_yarn, std::string(type) == "yarn") << type;
  }
}

TEST_P(ArchFileTest, MissingTensorsAreNamed) {
  std::vector<std::string> required = {"token_embd.weight", "output_norm.weight", "blk.1.attn_norm.weight",
                                       "blk.1.attn_output.weight", "blk.0.ffn_norm.weight", "blk.0.ffn_up.weight",
                                       "blk.1.ffn_down.weight"};
  if (GetParam().arch == Arch::kPhi3)  // fused q/k/v and gate/up
    required.insert(required.end(), {"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight"});
  else
    required.insert(required.end(),
                    {"blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.0.attn_v.weight", "blk.1.ffn_gate.weight"});
  if (Traits(GetParam().arch).qk_norm) required.insert(required.end(), {"blk.1.attn_q_norm.weight", "blk.0.attn_k_norm.weight"});
  if (Traits(GetParam().arch).post_norms)
    required.insert(required.end(), {"blk.0.post_attention_norm.weight", "blk.1.post_ffw_norm.weight"});
  for (const std::string& t : required) {
    const Status s = LoadEdited({.drop = {t}});
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << t << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(t));
  }
}

TEST_P(ArchFileTest, MisshapenTensorsAreNamed) {
  const int64_t q = 4 * HeadDim();
  std::vector<std::pair<std::string, std::vector<int64_t>>> cases = {
      {"blk.1.attn_output.weight", {64, q}}, {"blk.0.ffn_down.weight", {64, 96}},
      {"blk.1.attn_norm.weight", {63}},      {"output_norm.weight", {64, 2}},
  };
  if (!Traits(GetParam().arch).tied_output) {  // an output.weight (gemma3's synthetic files have none)
    const Edit e = GetParam().arch == Arch::kGemma3 ? Edit{.add = {{"output.weight", {64, 299}}}}
                                                    : Edit{.reshape = {{"output.weight", {64, 299}}}};
    const Status s = LoadEdited(e);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("output.weight"));
  }
  if (GetParam().arch == Arch::kPhi3) {
    cases.insert(cases.end(), {{"blk.0.attn_qkv.weight", {64, q + 4 * HeadDim() + 2}},
                               {"blk.1.attn_qkv.weight", {64, q + 4 * HeadDim(), 2}},
                               {"blk.0.ffn_up.weight", {64, 96}},  // the gate rows missing
                               {"rope_factors_long.weight", {HeadDim()}},
                               {"rope_factors_short.weight", {HeadDim() / 2, 2}}});
  } else {
    cases.insert(cases.end(), {{"blk.0.attn_q.weight", {64, q + 2}}, {"blk.0.attn_k.weight", {64, 2 * HeadDim(), 2}}});
  }
  for (const auto& [t, ne] : cases) {
    if (t == "blk.1.attn_output.weight" && q == 64) continue;  // [64, 64] is its shape
    const Status s = LoadEdited({.reshape = {{t, ne}}});
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << t << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(t));
  }
  if (GetParam().arch == Arch::kQwen2) {
    const Status s = LoadEdited({.reshape = {{"blk.0.attn_k.bias", {q}}}});
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_k.bias"));
  }
  if (GetParam().arch == Arch::kQwen3) {
    const Status s = LoadEdited({.reshape = {{"blk.1.attn_q_norm.weight", {64}}}});
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("blk.1.attn_q_norm.weight"));
  }
}

TEST_P(ArchFileTest, UnknownTensorsAreRefusedNotIgnored) {
  Status s = LoadEdited({.add = {{"blk.0.ffn_gate_inp.weight", {64, 8}}}});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.ffn_gate_inp.weight"));
  EXPECT_THAT(s.message(), HasSubstr("mixture-of-experts"));
  s = LoadEdited({.add = {{"blk.1.attn_sinks.weight", {4}}}});
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("blk.1.attn_sinks.weight"));
  // rope_freqs.weight is a llama tensor, the LongRoPE factors phi3's.
  if (GetParam().arch != Arch::kLlama) {
    s = LoadEdited({.add = {{"rope_freqs.weight", {HeadDim() / 2}}}});
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_THAT(s.message(), HasSubstr("rope_freqs.weight"));
  }
  // gemma's output is always token_embd: an output.weight would be ignored.
  if (Traits(GetParam().arch).tied_output) {
    s = LoadEdited({.add = {{"output.weight", {64, 300}}}});
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_THAT(s.message(), HasSubstr("output.weight"));
  }
  if (GetParam().arch != Arch::kPhi3) {
    s = LoadEdited({.add = {{"rope_factors_long.weight", {HeadDim() / 2}}}});
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_THAT(s.message(), HasSubstr("rope_factors_long.weight"));
  } else {
    // phi3's gate is part of ffn_up: a separate one would be ignored.
    s = LoadEdited({.add = {{"blk.1.ffn_gate.weight", {64, 96}}}});
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_THAT(s.message(), HasSubstr("blk.1.ffn_gate.weight"));
  }
}

TEST_P(ArchFileTest, TruncatedFilesFailCleanly) {
  std::string bytes;
  ASSERT_TRUE(Env::Default()->ReadFile(base_, UINT64_MAX, &bytes).ok());
  const std::string path = dir_ + "/truncated.gguf";
  for (size_t n : {size_t{0}, size_t{3}, size_t{24}, bytes.size() / 10, bytes.size() / 2, bytes.size() - 1}) {
    ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, std::string_view(bytes).substr(0, n)).ok());
    const Status s = TryLoad(path);
    EXPECT_FALSE(s.ok()) << n;
    EXPECT_NE(s.code(), StatusCode::kInternal) << n << ": " << s.ToString();
  }
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchFileTest,
                         ::testing::Values(ArchCase{Arch::kLlama, 0}, ArchCase{Arch::kQwen2, 0},
                                           ArchCase{Arch::kQwen3, 24}, ArchCase{Arch::kPhi3, 0},
                                           ArchCase{Arch::kGemma, 24}, ArchCase{Arch::kGemma2, 24},
                                           ArchCase{Arch::kGemma3, 24}),
                         [](const auto& info) { return std::string(ArchName(info.param.arch)); });

TEST(ArchTest, MixtureOfExpertsArchitecturesAreRefusedByName) {
  for (const char* name : {"mixtral", "qwen2moe", "qwen3moe"}) {
    Arch a;
    const Status s = ParseArch(name, &a);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported);
    EXPECT_THAT(s.message(), HasSubstr(name));
    EXPECT_THAT(s.message(), HasSubstr("mixture of experts"));
  }
  Arch a;
  const Status s = ParseArch("falcon", &a);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("'falcon' is not supported (supported: llama, qwen2, qwen3"));
  ASSERT_TRUE(ParseArch("qwen2", &a).ok());
  EXPECT_EQ(a, Arch::kQwen2);
}

// The last logits of tokens decoded in one context of n_ctx positions.
std::vector<float> LastLogits(const Model& m, const std::vector<int32_t>& tokens, int32_t n_ctx = 64) {
  ContextParams p;
  p.n_ctx = n_ctx;
  p.n_threads = 2;
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::Create(m, p, &ctx).ok());
  if (!ctx) return {};
  EXPECT_TRUE(ctx->Decode(tokens, LogitsMode::kLast).ok());
  return std::vector<float>(ctx->logits(), ctx->logits() + m.hparams().n_vocab);
}

class Phi3FileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    SynthSpec s;
    s.arch = Arch::kPhi3;
    s.n_layer = 2;
    s.n_embd = 64;
    s.n_ff = 96;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.n_vocab = 300;
    s.n_ctx = 256;
    s.longrope = true;
    s.n_ctx_orig = 64;
    s.weights = SynthWeights::kConformance;
    ASSERT_TRUE(SynthesizeModel(Env::Default(), s, dir_ + "/phi3.gguf", 1).ok());
  }
  std::string dir_;
};

// llama.cpp builds phi3's attention over n_embd rows.
TEST_F(Phi3FileTest, HeadDimensionMustSpanTheEmbedding) {
  ASSERT_TRUE(Rewrite(dir_ + "/phi3.gguf", dir_ + "/kl.gguf", {.kv = {{"phi3.attention.key_length", U32(24)}, {"phi3.attention.value_length", U32(24)}}}).ok());
  const Status s = TryLoad(dir_ + "/kl.gguf");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("phi3.attention.key_length"));
}

// phi3.attention.sliding_window is not applied, as llama.cpp does not apply it.
TEST_F(Phi3FileTest, SlidingWindowKeyIsNotApplied) {
  ASSERT_TRUE(Rewrite(dir_ + "/phi3.gguf", dir_ + "/swa.gguf", {.kv = {{"phi3.attention.sliding_window", U32(4)}}}).ok());
  std::unique_ptr<Model> a, b;
  ASSERT_TRUE(TryLoad(dir_ + "/phi3.gguf", &a).ok());
  ASSERT_TRUE(TryLoad(dir_ + "/swa.gguf", &b).ok());
  const std::vector<int32_t> tokens = {1, 40, 41, 299, 7, 8, 9, 10, 11, 12};
  EXPECT_EQ(LastLogits(*a, tokens), LastLogits(*b, tokens));
}

// Factors divide the angles: zeros (or NaN, negative) are refused by name.
TEST_F(Phi3FileTest, NonPositiveRopeFactorsAreRefused) {
  ASSERT_TRUE(Rewrite(dir_ + "/phi3.gguf", dir_ + "/zeros.gguf", {.reshape = {{"rope_factors_short.weight", {8}}}}).ok());
  const Status s = TryLoad(dir_ + "/zeros.gguf");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("rope_factors_short.weight"));
}

// LongRoPE: the short factors up to the original context, the long ones beyond.
TEST_F(Phi3FileTest, LongRopePicksFactorsByContext) {
  std::unique_ptr<Model> m;
  ASSERT_TRUE(TryLoad(dir_ + "/phi3.gguf", &m).ok());
  const ModelWeights& w = m->weights();
  ASSERT_NE(w.rope_factors_long.data, nullptr);
  ASSERT_NE(w.rope_factors_short.data, nullptr);
  EXPECT_EQ(RopeFactorsFor(m->hparams(), w, 64).data, w.rope_factors_short.data);
  EXPECT_EQ(RopeFactorsFor(m->hparams(), w, 65).data, w.rope_factors_long.data);
  const std::vector<int32_t> tokens = {1, 40, 41, 299, 7, 8, 9, 10, 11, 12};
  EXPECT_NE(LastLogits(*m, tokens, 64), LastLogits(*m, tokens, 65));
  EXPECT_EQ(LastLogits(*m, tokens, 65), LastLogits(*m, tokens, 256));
}

// gemma2's and gemma3's hyper-parameters with llama.cpp's defaults and the file's overrides.
class GemmaHParamsTest : public ::testing::Test {
 protected:
  // The hyper-parameters of a 6-layer synthetic file of arch with kv changed
  // (its tensors need not match: only token_embd is read).
  Status Load(Arch arch, const std::map<std::string, std::optional<gguf::Value>>& kv, HParams* hp) {
    const std::string dir = testing::MakeTempDir(), base = dir + "/base.gguf", path = dir + "/edited.gguf";
    SynthSpec s;
    s.arch = arch;
    s.n_layer = 6;
    s.n_embd = 64;
    s.n_ff = 96;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 24;
    s.n_vocab = 300;
    s.n_ctx = 64;
    STRATA_RETURN_IF_ERROR(SynthesizeModel(Env::Default(), s, base, 1));
    STRATA_RETURN_IF_ERROR(Rewrite(base, path, {.kv = kv}));
    std::unique_ptr<gguf::GgufFile> f;
    STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(Env::Default(), path, &f));
    return LoadGgufHParams(*f, arch, hp);
  }
  Status Load(const std::map<std::string, std::optional<gguf::Value>>& kv, HParams* hp) {
    return Load(Arch::kGemma2, kv, hp);
  }
};
using Gemma2HParamsTest = GemmaHParamsTest;

TEST_F(Gemma2HParamsTest, DefaultsAreLlamaCpps) {
  HParams hp;
  ASSERT_TRUE(Load({}, &hp).ok());
  EXPECT_EQ(hp.n_swa, 4096);
  EXPECT_EQ(hp.swa_layers, (std::vector<uint8_t>{1, 0, 1, 0, 1, 0}));  // even layers slide
  EXPECT_EQ(hp.attn_softcap, 50.0f);
  EXPECT_EQ(hp.final_softcap, 30.0f);
  EXPECT_EQ(hp.attn_scale, 1.0f / std::sqrt(24.0f));  // 1/sqrt(key_length), not 1/sqrt(n_embd / n_head)
  EXPECT_EQ(hp.embd_scale, 8.0f);
  EXPECT_EQ(hp.rope_freq_base_swa, hp.rope_freq_base);
}

TEST_F(Gemma2HParamsTest, FileOverridesDefaults) {
  HParams hp;
  ASSERT_TRUE(Load({{"gemma2.attention.sliding_window", U32(7)},
                    {"gemma2.attn_logit_softcapping", F32(20.0f)},
                    {"gemma2.final_logit_softcapping", F32(0.0f)},
                    {"gemma2.rope.freq_base_swa", F32(500.0f)},
                    {"gemma2.attention.sliding_window_pattern", U32(3)}},
                   &hp)
                  .ok());
  EXPECT_EQ(hp.n_swa, 7);
  EXPECT_EQ(hp.attn_softcap, 20.0f);
  EXPECT_EQ(hp.final_softcap, 0.0f);
  EXPECT_EQ(hp.rope_freq_base_swa, 500.0f);
  EXPECT_EQ(hp.swa_layers, (std::vector<uint8_t>{1, 1, 0, 1, 1, 0}));  // il % 3 < 2
  gguf::Value flags;
  flags.type = gguf::ValueType::kArray;
  flags.elem_type = gguf::ValueType::kBool;
  for (bool b : {false, true, true, false, false, true}) {
    gguf::Value e;
    e.type = gguf::ValueType::kBool;
    e.b = b;
    flags.arr.push_back(e);
  }
  ASSERT_TRUE(Load({{"gemma2.attention.sliding_window_pattern", flags}}, &hp).ok());
  EXPECT_EQ(hp.swa_layers, (std::vector<uint8_t>{0, 1, 1, 0, 0, 1}));
}

// Gemma 2 27B scales queries by 1/sqrt(n_embd / n_head); llama.cpp knows it by its 46 layers.
TEST_F(Gemma2HParamsTest, The27BModelScalesQueriesByEmbeddingPerHead) {
  HParams hp;
  ASSERT_TRUE(Load({{"gemma2.block_count", U32(46)}}, &hp).ok());
  EXPECT_EQ(hp.attn_scale, 1.0f / std::sqrt(16.0f));
}

TEST_F(Gemma2HParamsTest, BadValuesAreNamed) {
  gguf::Value short_flags;
  short_flags.type = gguf::ValueType::kArray;
  short_flags.elem_type = gguf::ValueType::kUint32;
  short_flags.arr = {U32(1), U32(0)};
  const std::vector<std::pair<std::string, gguf::Value>> cases = {
      {"gemma2.attention.sliding_window", U32(0)},
      {"gemma2.attn_logit_softcapping", F32(-1.0f)},
      {"gemma2.final_logit_softcapping", F32(std::numeric_limits<float>::infinity())},
      {"gemma2.attention.sliding_window_pattern", short_flags},
      {"gemma2.attention.sliding_window_pattern", U32Array({1, 0, 2, 0, 1, 0})},
  };
  for (const auto& [key, v] : cases) {
    HParams hp;
    const Status s = Load({{key, v}}, &hp);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << key << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(key)) << s.ToString();
  }
}

TEST_F(GemmaHParamsTest, Gemma3DefaultsAreLlamaCpps) {
  HParams hp;
  ASSERT_TRUE(Load(Arch::kGemma3, {}, &hp).ok());
  EXPECT_TRUE(hp.swa_layers.empty());  // no window unless the file sets one
  EXPECT_EQ(hp.attn_softcap, 0.0f);
  EXPECT_EQ(hp.final_softcap, 0.0f);
  EXPECT_EQ(hp.rope_freq_base, 1e6f);
  ASSERT_TRUE(Load(Arch::kGemma3,
                   {{"gemma3.attention.sliding_window", U32(512)},
                    {"gemma3.rope.scaling.type", Str("linear")},
                    {"gemma3.rope.scaling.factor", F32(8.0f)}},
                   &hp)
                  .ok());
  EXPECT_EQ(hp.n_swa, 512);
  EXPECT_EQ(hp.swa_layers, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));  // 5 of 6
  EXPECT_EQ(hp.rope_freq_base_swa, 10000.0f);  // not rope.freq_base
  EXPECT_EQ(hp.rope_freq_scale_swa, 1.0f);     // the scaling is the global layers'
  EXPECT_EQ(hp.rope_freq_scale, 0.125f);
  ASSERT_TRUE(Load(Arch::kGemma3, {{"gemma3.block_count", U32(62)}}, &hp).ok());
  EXPECT_EQ(hp.attn_scale, 1.0f / std::sqrt(16.0f));  // 27B
  const Status s = Load(Arch::kGemma3, {{"gemma3.final_logit_softcapping", F32(-2.0f)}}, &hp);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_THAT(s.message(), HasSubstr("gemma3.final_logit_softcapping"));
}

// A fused attn_qkv ([Q | K | V] rows, as phi3 files hold it) computes exactly
// what separate attn_q/attn_k/attn_v do.
TEST(ArchTest, FusedQkvEqualsSeparateProjections) {
  const std::string dir = testing::MakeTempDir();
  SynthSpec s;
  s.arch = Arch::kQwen2;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 96;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 300;
  s.n_ctx = 64;
  s.weights = SynthWeights::kConformance;
  ASSERT_TRUE(SynthesizeModel(Env::Default(), s, dir + "/sep.gguf", 1).ok());
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), dir + "/sep.gguf", &f).ok());
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f->metadata()) w.SetValue(kv.key, kv.value);
  std::vector<std::vector<float>> fused;  // kept alive until Write
  for (const gguf::TensorInfo& t : f->tensors()) {
    const std::string& n = t.name;
    const size_t dot = n.find(".attn_");
    const std::string rest = dot == std::string::npos ? "" : n.substr(dot + 6);
    if (rest == "k.weight" || rest == "v.weight" || rest == "k.bias" || rest == "v.bias") continue;
    if (rest == "q.weight" || rest == "q.bias") {
      const std::string p = n.substr(0, dot + 6), suffix = rest.substr(1);
      std::vector<float>& buf = fused.emplace_back();
      int64_t rows = 0;
      for (const char* part : {"q", "k", "v"}) {
        const gguf::TensorInfo* x = f->FindTensor(p + part + suffix);
        const float* d = static_cast<const float*>(x->tensor.data);
        buf.insert(buf.end(), d, d + x->tensor.elements());
        rows += x->tensor.ne[1];
      }
      std::vector<int64_t> ne = suffix == ".weight" ? std::vector<int64_t>{64, rows} : std::vector<int64_t>{
                                                                                           static_cast<int64_t>(buf.size())};
      ASSERT_TRUE(w.AddTensor(p + "qkv" + suffix, DType::kF32, ne, buf.data()).ok());
      continue;
    }
    std::vector<int64_t> ne(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims);
    ASSERT_TRUE(w.AddTensor(n, t.tensor.type, ne, t.tensor.data).ok());
  }
  ASSERT_TRUE(w.Write(Env::Default(), dir + "/fused.gguf").ok());
  auto logits = [](const std::string& path) {
    std::unique_ptr<Model> m;
    EXPECT_TRUE(TryLoad(path, &m).ok());
    ContextParams p;
    p.n_ctx = 64;
    p.n_threads = 2;
    std::unique_ptr<Context> ctx;
    EXPECT_TRUE(Context::Create(*m, p, &ctx).ok());
    EXPECT_TRUE(ctx->Decode(std::vector<int32_t>{1, 40, 41, 299, 7}, LogitsMode::kLast).ok());
    return std::vector<float>(ctx->logits(), ctx->logits() + 300);
  };
  EXPECT_EQ(logits(dir + "/sep.gguf"), logits(dir + "/fused.gguf"));
}

}  // namespace
}  // namespace strata
