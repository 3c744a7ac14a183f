#include "model/synth.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/quantize.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

SynthSpec SmallSpec(DType type) {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 160;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 300;
  s.n_ctx = 256;
  s.type = type;
  s.seed = 7;
  return s;
}

std::unique_ptr<gguf::GgufFile> OpenOrDie(Env* env, const std::string& path) {
  std::unique_ptr<gguf::GgufFile> f;
  Status s = gguf::GgufFile::Open(env, path, &f);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return f;
}

std::string ReadAll(const std::string& path) {
  std::string bytes;
  EXPECT_TRUE(Env::Default()->ReadFile(path, UINT64_MAX, &bytes).ok()) << path;
  return bytes;
}

class SynthTypeTest : public ::testing::TestWithParam<DType> {
 protected:
  std::string dir_ = testing::MakeTempDir();
};

TEST_P(SynthTypeTest, WritesTheAskedModel) {
  const SynthSpec spec = SmallSpec(GetParam());
  const std::string path = dir_ + "/m.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, path, 2).ok());
  auto f = OpenOrDie(Env::Default(), path);
  ASSERT_TRUE(f);

  EXPECT_EQ(f->GetString("general.architecture"), "llama");
  EXPECT_TRUE(f->GetString("general.name").has_value());
  EXPECT_EQ(f->GetInt("general.file_type"), static_cast<int64_t>(*LlamaFileType(spec.type)));
  EXPECT_EQ(f->GetInt("llama.context_length"), 256);
  EXPECT_EQ(f->GetInt("llama.embedding_length"), 64);
  EXPECT_EQ(f->GetInt("llama.block_count"), 2);
  EXPECT_EQ(f->GetInt("llama.feed_forward_length"), 160);
  EXPECT_EQ(f->GetInt("llama.attention.head_count"), 4);
  EXPECT_EQ(f->GetInt("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f->GetInt("llama.rope.dimension_count"), 16);
  EXPECT_EQ(f->GetInt("llama.vocab_size"), 300);
  EXPECT_FLOAT_EQ(*f->GetFloat("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_FLOAT_EQ(*f->GetFloat("llama.rope.freq_base"), 10000.0f);
  EXPECT_EQ(f->GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f->GetString("tokenizer.ggml.pre"), "default");
  EXPECT_EQ(f->GetInt("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f->GetInt("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f->GetInt("tokenizer.ggml.unknown_token_id"), 0);
  EXPECT_EQ(f->GetBool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f->GetBool("tokenizer.ggml.add_eos_token"), false);

  auto tokens = f->GetStringArray("tokenizer.ggml.tokens");
  auto scores = f->GetFloatArray("tokenizer.ggml.scores");
  auto types = f->GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(tokens && scores && types);
  ASSERT_EQ(tokens->size(), 300u);
  ASSERT_EQ(scores->size(), 300u);
  ASSERT_EQ(types->size(), 300u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[1], "<s>");
  EXPECT_EQ((*tokens)[2], "</s>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[3 + 0x0A], "<0x0A>");
  EXPECT_EQ((*tokens)[258], "<0xFF>");
  EXPECT_EQ((*tokens)[259], "\xE2\x96\x81");
  EXPECT_EQ((*types)[0], 2);
  EXPECT_EQ((*types)[1], 3);
  EXPECT_EQ((*types)[2], 3);
  for (int i = 3; i < 259; ++i) EXPECT_EQ((*types)[i], 6) << i;
  for (int i = 259; i < 300; ++i) EXPECT_EQ((*types)[i], 1) << i;
  for (size_t i = 1; i < scores->size(); ++i) EXPECT_LE((*scores)[i], (*scores)[i - 1]) << i;
  EXPECT_EQ(std::set<std::string>(tokens->begin(), tokens->end()).size(), tokens->size());

  // Tensors: names, types and ggml shapes.
  const DType t = spec.type;
  std::vector<std::tuple<std::string, DType, std::array<int64_t, 2>>> want = {{"token_embd.weight", t, {64, 300}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    want.push_back({p + "attn_norm.weight", DType::kF32, {64, 1}});
    want.push_back({p + "attn_q.weight", t, {64, 64}});
    want.push_back({p + "attn_k.weight", t, {64, 32}});
    want.push_back({p + "attn_v.weight", t, {64, 32}});
    want.push_back({p + "attn_output.weight", t, {64, 64}});
    want.push_back({p + "ffn_norm.weight", DType::kF32, {64, 1}});
    want.push_back({p + "ffn_gate.weight", t, {64, 160}});
    want.push_back({p + "ffn_up.weight", t, {64, 160}});
    want.push_back({p + "ffn_down.weight", t, {160, 64}});
  }
  want.push_back({"output_norm.weight", DType::kF32, {64, 1}});
  want.push_back({"output.weight", t, {64, 300}});
  ASSERT_EQ(f->tensors().size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const gguf::TensorInfo& ti = f->tensors()[i];
    const auto& [name, type, ne] = want[i];
    EXPECT_EQ(ti.name, name);
    EXPECT_EQ(ti.tensor.type, type) << name;
    EXPECT_EQ(ti.n_dims, ne[1] == 1 ? 1u : 2u) << name;
    EXPECT_EQ(ti.tensor.ne[0], ne[0]) << name;
    EXPECT_EQ(ti.tensor.ne[1], ne[1]) << name;
  }
}

TEST_P(SynthTypeTest, WeightsAreSmallCenteredAndVaried) {
  SynthSpec spec = SmallSpec(GetParam());
  spec.n_embd = 256;
  spec.n_ff = 512;
  const std::string path = dir_ + "/m.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, path, 2).ok());
  auto f = OpenOrDie(Env::Default(), path);
  ASSERT_TRUE(f);
  for (const char* name : {"blk.0.ffn_up.weight", "blk.1.ffn_up.weight", "output.weight"}) {
    const Tensor& w = f->FindTensor(name)->tensor;
    std::vector<float> row(static_cast<size_t>(w.cols()));
    double sum = 0, sum2 = 0, amax = 0;
    for (int64_t r = 0; r < w.rows(); ++r) {
      kernels::DequantizeRow(w.type, w.row(r), row.data(), w.cols());
      for (float x : row) {
        ASSERT_TRUE(std::isfinite(x));
        sum += x;
        sum2 += static_cast<double>(x) * x;
        amax = std::max(amax, std::fabs(static_cast<double>(x)));
      }
    }
    const double n = static_cast<double>(w.elements());
    const double mean = sum / n, std = std::sqrt(sum2 / n - mean * mean);
    EXPECT_LT(std::fabs(mean), 0.001) << name;
    EXPECT_NEAR(std, 0.02, 0.001) << name;
    EXPECT_LT(amax, 0.1) << name;
  }
  // Different matrices are different draws.
  const gguf::TensorInfo* a = f->FindTensor("blk.0.ffn_up.weight");
  const gguf::TensorInfo* b = f->FindTensor("blk.1.ffn_up.weight");
  EXPECT_NE(std::memcmp(a->tensor.data, b->tensor.data, a->nbytes), 0);
  const Tensor& norm = f->FindTensor("blk.1.ffn_norm.weight")->tensor;
  for (int64_t i = 0; i < norm.elements(); ++i) EXPECT_EQ(static_cast<const float*>(norm.data)[i], 1.0f);
}

TEST_P(SynthTypeTest, SameSpecSameBytesWhateverTheThreads) {
  const SynthSpec spec = SmallSpec(GetParam());
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, dir_ + "/a.gguf", 1).ok());
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, dir_ + "/b.gguf", 3).ok());
  SynthSpec other = spec;
  other.seed = 8;
  ASSERT_TRUE(SynthesizeModel(Env::Default(), other, dir_ + "/c.gguf", 2).ok());
  const std::string a = ReadAll(dir_ + "/a.gguf");
  EXPECT_EQ(a, ReadAll(dir_ + "/b.gguf"));
  const std::string c = ReadAll(dir_ + "/c.gguf");
  EXPECT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
}

INSTANTIATE_TEST_SUITE_P(Types, SynthTypeTest,
                         ::testing::Values(DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(SynthTest, VocabLoadsAndEncodes) {
  SynthSpec spec = SmallSpec(DType::kQ8_0);
  spec.n_vocab = 2000;
  const std::string path = testing::MakeTempDir() + "/m.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, path, 2).ok());
  auto f = OpenOrDie(Env::Default(), path);
  ASSERT_TRUE(f);
  std::unique_ptr<Vocab> vocab;
  Status s = Vocab::FromGguf(*f, &vocab);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(vocab->n_tokens(), 2000);
  EXPECT_EQ(vocab->bos(), 1);
  EXPECT_EQ(vocab->eos(), 2);
  for (const char* text : {"hello world", "The 3 cats, quietly!", "caf\xC3\xA9 \xE2\x82\xAC"}) {
    std::vector<TokenId> ids = vocab->Encode(text, /*add_special=*/true, /*parse_special=*/false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1) << text;
    EXPECT_EQ(vocab->Decode(ids), text);
  }
  // Merges make words out of multi-letter pieces, not single letters.
  std::vector<TokenId> ids = vocab->Encode("hello world", false, false);
  EXPECT_LT(ids.size(), std::string("hello world").size());
  for (TokenId id : ids) EXPECT_EQ(vocab->token_type(id), TokenType::kNormal) << id;
  // Characters outside the vocabulary fall back to byte tokens.
  ids = vocab->Encode("\xE2\x82\xAC", false, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_THAT(std::vector<TokenId>(ids.end() - 3, ids.end()), ::testing::ElementsAre(3 + 0xE2, 3 + 0x82, 3 + 0xAC));
}

TEST(SynthTest, VocabPiecesAreUniqueAndReachable) {
  const std::vector<std::string> tokens = SynthVocabTokens(32000);
  ASSERT_EQ(tokens.size(), 32000u);
  std::set<std::string> seen;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ASSERT_TRUE(seen.insert(tokens[i]).second) << "duplicate " << tokens[i];
    if (i < 259) continue;
    // Every piece longer than one character extends an earlier piece by one character.
    size_t last_char = tokens[i].size() - 1;
    while (last_char > 0 && (static_cast<unsigned char>(tokens[i][last_char]) & 0xC0) == 0x80) --last_char;
    const std::string prefix = tokens[i].substr(0, last_char);
    if (!prefix.empty()) {
      EXPECT_TRUE(seen.count(prefix)) << tokens[i] << " lacks prefix " << prefix;
    }
  }
  // A prefix of the list is the smaller vocabulary.
  const std::vector<std::string> small = SynthVocabTokens(300);
  EXPECT_TRUE(std::equal(small.begin(), small.end(), tokens.begin()));
}

TEST(SynthTest, RejectsInvalidSpecs) {
  const std::vector<std::pair<std::string, std::function<void(SynthSpec&)>>> cases = {
      {"n_layer", [](SynthSpec& s) { s.n_layer = 0; }},
      {"n_layer", [](SynthSpec& s) { s.n_layer = 1 << 20; }},
      {"n_embd", [](SynthSpec& s) { s.n_embd = -64; }},
      {"n_ff", [](SynthSpec& s) { s.n_ff = 0; }},
      {"n_head", [](SynthSpec& s) { s.n_head = 0; }},
      {"n_head_kv", [](SynthSpec& s) { s.n_head_kv = 0; }},
      {"n_head_kv", [](SynthSpec& s) { s.n_head_kv = 8; }},  // more than n_head
      {"n_ctx", [](SynthSpec& s) { s.n_ctx = 0; }},
      {"n_vocab", [](SynthSpec& s) { s.n_vocab = 259; }},
      {"n_vocab", [](SynthSpec& s) { s.n_vocab = 1 << 30; }},
      {"not a multiple of n_head", [](SynthSpec& s) { s.n_head = 3; s.n_head_kv = 1; }},
      {"not a multiple of n_head_kv", [](SynthSpec& s) { s.n_head_kv = 3; }},
      {"even", [](SynthSpec& s) { s.n_head = 64; s.n_head_kv = 64; }},  // head_dim 1
      {"multiples of 32", [](SynthSpec& s) { s.n_ff = 100; }},
      {"multiples of 32", [](SynthSpec& s) { s.n_embd = 48; s.n_head = 4; }},
      {"allowed: f32, f16, bf16, q8_0, q4_0", [](SynthSpec& s) { s.type = DType::kQ4_K; }},
  };
  const std::string path = testing::MakeTempDir() + "/m.gguf";
  for (const auto& [needle, mutate] : cases) {
    SynthSpec spec = SmallSpec(DType::kQ8_0);
    mutate(spec);
    Status s = SynthesizeModel(Env::Default(), spec, path, 1);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_THAT(s.message(), HasSubstr(needle));
  }
  EXPECT_FALSE(Env::Default()->FileExists(path));
  // The same non-multiple-of-32 widths are fine unquantized.
  SynthSpec f16 = SmallSpec(DType::kF16);
  f16.n_ff = 100;
  EXPECT_TRUE(ValidateSynthSpec(f16).ok());
  EXPECT_EQ(SynthesizeModel(Env::Default(), SmallSpec(DType::kF32), path, 0).code(), StatusCode::kInvalidArgument);
}

// ---- through the CLI ----

TEST(SynthCliTest, WritesAModel) {
  const std::string path = testing::MakeTempDir() + "/m.gguf";
  testing::CommandResult r = testing::RunCommand({testing::CliPath(), "synth", path, "--layers", "3", "--embd", "128",
                                                  "--ff", "256", "--heads", "8", "--kv-heads", "2", "--vocab", "500",
                                                  "--type", "q4_0", "--ctx", "512", "--seed", "99", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto f = OpenOrDie(Env::Default(), path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->GetInt("llama.block_count"), 3);
  EXPECT_EQ(f->GetInt("llama.context_length"), 512);
  EXPECT_EQ(f->GetInt("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f->GetInt("general.file_type"), 2);
  EXPECT_EQ(f->FindTensor("blk.2.attn_k.weight")->tensor.type, DType::kQ4_0);
  EXPECT_EQ(f->FindTensor("blk.2.attn_k.weight")->tensor.ne[1], 32);

  // Same arguments through the library: same bytes.
  SynthSpec spec{3, 128, 256, 8, 2, 500, 512, DType::kQ4_0, 99};
  const std::string lib = testing::MakeTempDir() + "/m.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, lib, 1).ok());
  EXPECT_EQ(ReadAll(path), ReadAll(lib));
}

TEST(SynthCliTest, InvalidSpecFailsWithOneLine) {
  const std::string path = testing::MakeTempDir() + "/m.gguf";
  std::vector<std::string> argv = {testing::CliPath(), "synth", path, "--layers", "2", "--embd", "64",
                                   "--ff", "128", "--heads", "5", "--kv-heads", "1", "--vocab", "300",
                                   "--type", "q8_0"};
  testing::CommandResult r = testing::RunCommand(argv);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("n_head"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  argv[10] = "4";
  argv.back() = "q5_1";
  r = testing::RunCommand(argv);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("f32, f16, bf16, q8_0, q4_0"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(Env::Default()->FileExists(path));
}

TEST(SynthCliTest, Help) {
  testing::CommandResult r = testing::RunCommand({testing::CliPath(), "synth", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--layers", "--embd", "--ff", "--heads", "--kv-heads", "--vocab", "--type", "--ctx",
                          "--seed", "--threads"})
    EXPECT_THAT(r.out, HasSubstr(opt));
}

}  // namespace
}  // namespace strata
