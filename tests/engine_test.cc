// The forward pass against references nobody here wrote: llama2.c's logits for
// stories260K, and — for arbitrary prompts — a direct transcription of
// llama2.c's forward() (scalar, token by token) over the same weights.
#include "engine/context.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "format/llama2c.h"
#include "test_util.h"

namespace strata {
namespace {

std::unique_ptr<Model> LoadModel(const std::string& rel, const std::string& tok = "") {
  ModelLoadOptions o;
  o.path = testing::SharedPath(rel);
  if (!tok.empty()) o.tokenizer_path = testing::SharedPath(tok);
  std::unique_ptr<Model> m;
  Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return m;
}

std::unique_ptr<Context> MakeContext(const Model& m, int32_t n_ctx, int32_t n_threads = 2, int32_t n_batch = 512) {
  std::unique_ptr<Context> c;
  Status s = Context::Create(m, ContextParams{n_ctx, n_batch, n_threads}, &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return c;
}

struct RefLogits {
  std::vector<int32_t> inputs;           // input token at each position
  std::vector<std::vector<float>> rows;  // logits after each position
};

RefLogits ReadRefLogits() {
  std::ifstream in(testing::SharedPath("reference/stories260K_runc_logits_once-upon-a-time.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  RefLogits r;
  for (const auto& e : j["logits"]) {
    r.inputs.push_back(e["input_token"].get<int32_t>());
    r.rows.push_back(e["values"].get<std::vector<float>>());
  }
  return r;
}

class ReferenceLogitsTest : public ::testing::TestWithParam<bool> {};

// Batch prefill of all 8 positions (every logit row kept) equals llama2.c.
TEST_P(ReferenceLogitsTest, BatchMatchesLlama2c) {
  auto m = GetParam() ? LoadModel("models/stories260K.gguf") : LoadModel("models/stories260K.bin", "models/tok512.bin");
  ASSERT_TRUE(m);
  RefLogits ref = ReadRefLogits();
  ASSERT_EQ(ref.inputs.size(), 8u);
  auto ctx = MakeContext(*m, 64);
  ASSERT_TRUE(ctx->Decode(ref.inputs, LogitsMode::kAll).ok());
  for (size_t p = 0; p < ref.rows.size(); ++p)
    for (int i = 0; i < m->hparams().n_vocab; ++i)
      ASSERT_NEAR(ctx->logits(static_cast<int32_t>(p))[i], ref.rows[p][i], 1e-4) << "pos " << p << " id " << i;
}

// Token-by-token decoding (1 thread, batch size 1) gives the same logits.
TEST_P(ReferenceLogitsTest, TokenByTokenMatchesLlama2c) {
  auto m = GetParam() ? LoadModel("models/stories260K.gguf") : LoadModel("models/stories260K.bin", "models/tok512.bin");
  ASSERT_TRUE(m);
  RefLogits ref = ReadRefLogits();
  auto ctx = MakeContext(*m, 64, 1, 1);
  for (size_t p = 0; p < ref.rows.size(); ++p) {
    ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&ref.inputs[p], 1), LogitsMode::kLast).ok());
    for (int i = 0; i < m->hparams().n_vocab; ++i) ASSERT_NEAR(ctx->logits()[i], ref.rows[p][i], 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, ReferenceLogitsTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "gguf" : "llama2c_bin"; });

// llama2.c's forward(), transcribed naively: the oracle for arbitrary prompts.
class NaiveLlama2c {
 public:
  explicit NaiveLlama2c(const Llama2cFile& f) : f_(f), c_(f.config()) {
    const int kv_dim = c_.kv_dim();
    key_cache_.assign(static_cast<size_t>(c_.n_layers) * c_.seq_len * kv_dim, 0);
    value_cache_ = key_cache_;
  }

  std::vector<float> Forward(int token, int pos) {
    const int dim = c_.dim, hs = c_.head_size(), kv_dim = c_.kv_dim(), kv_mul = c_.n_heads / c_.n_kv_heads;
    std::vector<float> x(W("token_embd.weight") + token * dim, W("token_embd.weight") + (token + 1) * dim);
    std::vector<float> xb(dim), q(dim), k(kv_dim), v(kv_dim), att(pos + 1), hb(c_.hidden_dim), hb2(c_.hidden_dim);
    for (int l = 0; l < c_.n_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      RmsNorm(xb.data(), x.data(), W(b + "attn_norm.weight"), dim);
      MatMul(q.data(), xb.data(), W(b + "attn_q.weight"), dim, dim);
      MatMul(k.data(), xb.data(), W(b + "attn_k.weight"), dim, kv_dim);
      MatMul(v.data(), xb.data(), W(b + "attn_v.weight"), dim, kv_dim);
      for (int i = 0; i < dim; i += 2) {
        const int head_dim = i % hs;
        const float freq = 1.0f / std::pow(10000.0f, head_dim / static_cast<float>(hs));
        const float val = pos * freq, fcr = std::cos(val), fci = std::sin(val);
        for (int vi = 0; vi < (i < kv_dim ? 2 : 1); ++vi) {
          float* vec = vi == 0 ? q.data() : k.data();
          const float v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }
      const size_t loff = static_cast<size_t>(l) * c_.seq_len * kv_dim;
      std::copy(k.begin(), k.end(), key_cache_.begin() + loff + pos * kv_dim);
      std::copy(v.begin(), v.end(), value_cache_.begin() + loff + pos * kv_dim);
      for (int h = 0; h < c_.n_heads; ++h) {
        const float* qh = q.data() + h * hs;
        for (int t = 0; t <= pos; ++t) {
          const float* kh = key_cache_.data() + loff + t * kv_dim + (h / kv_mul) * hs;
          float score = 0;
          for (int i = 0; i < hs; ++i) score += qh[i] * kh[i];
          att[t] = score / std::sqrt(static_cast<float>(hs));
        }
        Softmax(att.data(), pos + 1);
        float* out = xb.data() + h * hs;
        std::fill(out, out + hs, 0.0f);
        for (int t = 0; t <= pos; ++t) {
          const float* vh = value_cache_.data() + loff + t * kv_dim + (h / kv_mul) * hs;
          for (int i = 0; i < hs; ++i) out[i] += att[t] * vh[i];
        }
      }
      std::vector<float> xb2(dim);
      MatMul(xb2.data(), xb.data(), W(b + "attn_output.weight"), dim, dim);
      for (int i = 0; i < dim; ++i) x[i] += xb2[i];
      RmsNorm(xb.data(), x.data(), W(b + "ffn_norm.weight"), dim);
      MatMul(hb.data(), xb.data(), W(b + "ffn_gate.weight"), dim, c_.hidden_dim);
      MatMul(hb2.data(), xb.data(), W(b + "ffn_up.weight"), dim, c_.hidden_dim);
      for (int i = 0; i < c_.hidden_dim; ++i) hb[i] = hb[i] * (1.0f / (1.0f + std::exp(-hb[i]))) * hb2[i];
      MatMul(xb.data(), hb.data(), W(b + "ffn_down.weight"), c_.hidden_dim, dim);
      for (int i = 0; i < dim; ++i) x[i] += xb[i];
    }
    RmsNorm(x.data(), x.data(), W("output_norm.weight"), dim);
    const float* cls = f_.FindTensor("output.weight") ? W("output.weight") : W("token_embd.weight");
    std::vector<float> logits(c_.vocab_size);
    MatMul(logits.data(), x.data(), cls, dim, c_.vocab_size);
    return logits;
  }

 private:
  const float* W(const std::string& name) const { return static_cast<const float*>(f_.FindTensor(name)->data); }
  static void RmsNorm(float* o, const float* x, const float* w, int n) {
    float ss = 0;
    for (int j = 0; j < n; ++j) ss += x[j] * x[j];
    ss = 1.0f / std::sqrt(ss / n + 1e-5f);
    for (int j = 0; j < n; ++j) o[j] = w[j] * (ss * x[j]);
  }
  static void Softmax(float* x, int n) {
    float max = x[0];
    for (int i = 1; i < n; ++i) max = std::max(max, x[i]);
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += x[i] = std::exp(x[i] - max);
    for (int i = 0; i < n; ++i) x[i] /= sum;
  }
  static void MatMul(float* out, const float* x, const float* w, int n, int d) {
    for (int i = 0; i < d; ++i) {
      float val = 0;
      for (int j = 0; j < n; ++j) val += w[i * n + j] * x[j];
      out[i] = val;
    }
  }

  const Llama2cFile& f_;
  Llama2cConfig c_;
  std::vector<float> key_cache_, value_cache_;
};

int Argmax(const float* x, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

// Random prompts (random token ids, random lengths) through our batched
// prefill + greedy decode vs the naive oracle: every logit within 1e-4 and
// the same greedy tokens.
TEST(EngineTest, ArbitraryPromptsMatchNaiveLlama2c) {
  std::unique_ptr<Llama2cFile> file;
  ASSERT_TRUE(Llama2cFile::Open(Env::Default(), testing::SharedPath("models/stories260K.bin"), &file).ok());
  auto model = LoadModel("models/stories260K.gguf");
  ASSERT_TRUE(model);
  const int n_vocab = model->hparams().n_vocab;
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 6; ++trial) {
    const int n_prompt = 1 + static_cast<int>(rng() % 40), n_gen = 24;
    std::vector<int32_t> prompt = {1};
    for (int i = 1; i < n_prompt; ++i) prompt.push_back(3 + static_cast<int32_t>(rng() % (n_vocab - 3)));
    NaiveLlama2c naive(*file);
    std::vector<float> ref;
    for (int p = 0; p < n_prompt; ++p) ref = naive.Forward(prompt[p], p);
    auto ctx = MakeContext(*model, 256, 2, 1 + static_cast<int32_t>(rng() % 16));
    ASSERT_TRUE(ctx->Decode(prompt, LogitsMode::kLast).ok());
    for (int g = 0; g < n_gen; ++g) {
      for (int i = 0; i < n_vocab; ++i) ASSERT_NEAR(ctx->logits()[i], ref[i], 1e-4) << "trial " << trial << " gen " << g;
      int32_t next = Argmax(ctx->logits(), n_vocab);
      ASSERT_EQ(next, Argmax(ref.data(), n_vocab));
      ref = naive.Forward(next, n_prompt + g);
      ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok());
    }
  }
}

TEST(EngineTest, FailedDecodeLeavesSequenceUnchanged) {
  auto model = LoadModel("models/stories260K.gguf");
  ASSERT_TRUE(model);
  auto ctx = MakeContext(*model, 8);
  std::vector<int32_t> five = {1, 403, 407, 261, 378};
  ASSERT_TRUE(ctx->Decode(five, LogitsMode::kLast).ok());
  std::vector<float> before(ctx->logits(), ctx->logits() + model->hparams().n_vocab);
  EXPECT_EQ(ctx->Decode(five, LogitsMode::kLast).code(), StatusCode::kResourceExhausted);  // 10 > 8
  std::vector<int32_t> bad = {5, 100000};
  EXPECT_EQ(ctx->Decode(bad, LogitsMode::kLast).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ctx->n_past(), 5);
  // Continuing after the failures equals continuing without them.
  auto fresh = MakeContext(*model, 8);
  ASSERT_TRUE(fresh->Decode(five, LogitsMode::kLast).ok());
  int32_t t = 42;
  ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  ASSERT_TRUE(fresh->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  for (int i = 0; i < model->hparams().n_vocab; ++i) ASSERT_EQ(ctx->logits()[i], fresh->logits()[i]);
}

TEST(EngineTest, TruncateRollsBack) {
  auto model = LoadModel("models/stories260K.gguf");
  ASSERT_TRUE(model);
  auto ctx = MakeContext(*model, 32);
  std::vector<int32_t> a = {1, 403, 407};
  std::vector<int32_t> b = {261, 378, 99};
  ASSERT_TRUE(ctx->Decode(a, LogitsMode::kLast).ok());
  ASSERT_TRUE(ctx->Decode(b, LogitsMode::kLast).ok());
  std::vector<float> want(ctx->logits(), ctx->logits() + model->hparams().n_vocab);
  ctx->Truncate(3);
  std::vector<int32_t> c = {7, 8};
  ASSERT_TRUE(ctx->Decode(c, LogitsMode::kLast).ok());
  ctx->Truncate(3);
  ASSERT_TRUE(ctx->Decode(b, LogitsMode::kLast).ok());
  for (int i = 0; i < model->hparams().n_vocab; ++i) ASSERT_NEAR(ctx->logits()[i], want[i], 1e-6);
}

TEST(EngineTest, MissingTensorIsAClearError) {
  ModelLoadOptions o;
  o.path = testing::SharedPath("vocab/ggml-vocab-llama-spm.gguf");  // vocabulary only, no tensors
  std::unique_ptr<Model> m;
  Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s.ToString();
}

TEST(EngineTest, BinWithoutTokenizerIsAClearError) {
  ModelLoadOptions o;
  o.path = testing::SharedPath("models/stories260K.bin");
  std::unique_ptr<Model> m;
  Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--tokenizer"), std::string::npos);
}

}  // namespace
}  // namespace strata
