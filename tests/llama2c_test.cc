// llama2.c .bin reader: the shared stories260K checkpoint (checked against
// its GGUF conversion) and crafted files with known layouts.
#include "format/llama2c.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "format/gguf.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

// A checkpoint whose i-th weight float has the value i, so a tensor's first
// element tells where in the file it points.
std::string MakeCheckpoint(std::array<int32_t, 7> header, size_t n_floats) {
  std::string s(reinterpret_cast<const char*>(header.data()), sizeof header);
  for (size_t k = 0; k < n_floats; ++k) {
    const float x = static_cast<float>(k);
    s.append(reinterpret_cast<const char*>(&x), sizeof x);
  }
  return s;
}

Status ParseBytes(const std::string& s, std::unique_ptr<Llama2cFile>* out) {
  return Llama2cFile::Parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), out);
}

Status ParseBytes(const std::string& s) {
  std::unique_ptr<Llama2cFile> f;
  return ParseBytes(s, &f);
}

float First(const Llama2cFile& f, const std::string& name) {
  const Tensor* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  return t == nullptr ? -1.0f : *static_cast<const float*>(t->data);
}

// dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads (head size 2, kv_dim 4),
// vocab 10 (negative: untied), seq_len 3. Float offsets of each section:
//   emb 0, rms_att 80, wq 96, wk 224, wv 288, wo 352, rms_ffn 480, w1 496,
//   w2 688, w3 880, rms_final 1072, freq_cis 1080 (6), wcls 1086 (80) -> 1166.
constexpr std::array<int32_t, 7> kUntied = {8, 12, 2, 4, 2, -10, 3};
constexpr std::array<int32_t, 7> kTied = {8, 12, 2, 4, 2, 10, 3};
constexpr size_t kUntiedFloats = 1166;
constexpr size_t kTiedFloats = 1086;
constexpr size_t kTiedFloatsNoFreq = 1080;

TEST(Llama2cTest, MapsEveryTensorOfAnUntiedCheckpoint) {
  const std::string bytes = MakeCheckpoint(kUntied, kUntiedFloats);
  std::unique_ptr<Llama2cFile> f;
  Status s = ParseBytes(bytes, &f);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const Llama2cConfig& c = f->config();
  EXPECT_EQ(c.dim, 8);
  EXPECT_EQ(c.hidden_dim, 12);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.vocab_size, 10);
  EXPECT_EQ(c.seq_len, 3);
  EXPECT_FALSE(c.shared_classifier);
  EXPECT_EQ(c.head_size(), 2);
  EXPECT_EQ(c.kv_dim(), 4);
  EXPECT_EQ(f->tensors().size(), 2u + 9u * 2u + 1u);

  EXPECT_EQ(First(*f, "token_embd.weight"), 0);
  EXPECT_EQ(First(*f, "blk.0.attn_norm.weight"), 80);
  EXPECT_EQ(First(*f, "blk.1.attn_norm.weight"), 88);
  EXPECT_EQ(First(*f, "blk.1.attn_q.weight"), 96 + 64);
  EXPECT_EQ(First(*f, "blk.1.attn_k.weight"), 224 + 32);
  EXPECT_EQ(First(*f, "blk.1.attn_v.weight"), 288 + 32);
  EXPECT_EQ(First(*f, "blk.1.attn_output.weight"), 352 + 64);
  EXPECT_EQ(First(*f, "blk.1.ffn_norm.weight"), 480 + 8);
  EXPECT_EQ(First(*f, "blk.1.ffn_gate.weight"), 496 + 96);
  EXPECT_EQ(First(*f, "blk.1.ffn_down.weight"), 688 + 96);
  EXPECT_EQ(First(*f, "blk.1.ffn_up.weight"), 880 + 96);
  EXPECT_EQ(First(*f, "output_norm.weight"), 1072);
  EXPECT_EQ(First(*f, "output.weight"), 1086);

  auto ne = [&](const std::string& name) { return f->FindTensor(name)->ne; };
  using Ne = std::array<int64_t, 4>;
  EXPECT_EQ(ne("token_embd.weight"), (Ne{8, 10, 1, 1}));
  EXPECT_EQ(ne("blk.0.attn_norm.weight"), (Ne{8, 1, 1, 1}));
  EXPECT_EQ(ne("blk.0.attn_q.weight"), (Ne{8, 8, 1, 1}));
  EXPECT_EQ(ne("blk.0.attn_k.weight"), (Ne{8, 4, 1, 1}));
  EXPECT_EQ(ne("blk.0.attn_v.weight"), (Ne{8, 4, 1, 1}));
  EXPECT_EQ(ne("blk.0.attn_output.weight"), (Ne{8, 8, 1, 1}));
  EXPECT_EQ(ne("blk.0.ffn_gate.weight"), (Ne{8, 12, 1, 1}));
  EXPECT_EQ(ne("blk.0.ffn_down.weight"), (Ne{12, 8, 1, 1}));
  EXPECT_EQ(ne("blk.0.ffn_up.weight"), (Ne{8, 12, 1, 1}));
  EXPECT_EQ(ne("output.weight"), (Ne{8, 10, 1, 1}));
  for (const NamedTensor& t : f->tensors()) EXPECT_EQ(t.tensor.type, DType::kF32) << t.name;
  EXPECT_EQ(f->FindTensor("blk.2.attn_q.weight"), nullptr);
}

TEST(Llama2cTest, TiedCheckpointHasNoOutputAndMayOmitFreqTables) {
  for (size_t n : {kTiedFloats, kTiedFloatsNoFreq}) {
    std::unique_ptr<Llama2cFile> f;
    ASSERT_TRUE(ParseBytes(MakeCheckpoint(kTied, n), &f).ok()) << n;
    EXPECT_TRUE(f->config().shared_classifier);
    EXPECT_EQ(f->FindTensor("output.weight"), nullptr);
    EXPECT_EQ(f->tensors().size(), 20u);
  }
}

TEST(Llama2cTest, EveryTruncationFailsNamingTheMissingPart) {
  const std::string bytes = MakeCheckpoint(kUntied, kUntiedFloats);
  for (size_t n = 0; n < bytes.size(); ++n) {
    Status s = ParseBytes(bytes.substr(0, n));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << n << ": " << s.ToString();
  }
  EXPECT_THAT(ParseBytes(bytes.substr(0, 20)).message(), HasSubstr("header"));
  EXPECT_THAT(ParseBytes(bytes.substr(0, 28 + 700 * 4)).message(), HasSubstr("w2 needs bytes"));
  EXPECT_THAT(ParseBytes(bytes.substr(0, 28 + 1083 * 4)).message(), HasSubstr("freq_cis"));
  EXPECT_THAT(ParseBytes(bytes.substr(0, bytes.size() - 4)).message(), HasSubstr("wcls"));
  // A tied checkpoint may stop right after rms_final, but not inside the tables.
  const std::string tied = MakeCheckpoint(kTied, kTiedFloats);
  for (size_t n = 0; n < tied.size(); ++n) {
    if (n == 28 + kTiedFloatsNoFreq * 4) continue;
    EXPECT_EQ(ParseBytes(tied.substr(0, n)).code(), StatusCode::kCorrupt) << n;
  }
}

TEST(Llama2cTest, RejectsTrailingBytes) {
  EXPECT_THAT(ParseBytes(MakeCheckpoint(kUntied, kUntiedFloats + 1)).message(), HasSubstr("unexpected"));
  EXPECT_THAT(ParseBytes(MakeCheckpoint(kTied, kTiedFloats + 1)).message(), HasSubstr("unexpected"));
}

TEST(Llama2cTest, RejectsBadHeaders) {
  const std::vector<std::pair<std::array<int32_t, 7>, std::string>> cases = {
      {{0, 12, 2, 4, 2, 10, 3}, "dim = 0"},
      {{8, -12, 2, 4, 2, 10, 3}, "hidden_dim = -12"},
      {{8, 12, 0, 4, 2, 10, 3}, "n_layers = 0"},
      {{8, 12, 2, 4, 2, 0, 3}, "vocab_size = 0"},
      {{8, 12, 2, 4, 2, INT32_MIN, 3}, "vocab_size"},
      {{8, 12, 2, 4, 2, 10, 1 << 30}, "seq_len"},
      {{1 << 30, 1 << 30, 1 << 30, 1, 1, 1 << 30, 1}, "dim"},
      {{8, 12, 2, 3, 3, 10, 3}, "does not divide dim"},
      {{8, 12, 2, 4, 3, 10, 3}, "does not divide n_heads"},
      {{8, 12, 2, 8, 8, 10, 3}, "odd"},
  };
  for (const auto& [header, message] : cases) {
    Status s = ParseBytes(MakeCheckpoint(header, 64));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << message;
    EXPECT_THAT(s.message(), HasSubstr(message));
  }
  // Large but valid sizes fail on the file size, without allocating.
  Status s = ParseBytes(MakeCheckpoint({1 << 20, 1 << 20, 1 << 20, 1, 1, 1 << 20, 1 << 20}, 64));
  EXPECT_THAT(s.message(), HasSubstr("token_embedding_table needs bytes"));
}

TEST(Llama2cTest, Stories260KMatchesItsGgufConversion) {
  std::unique_ptr<Llama2cFile> bin;
  Status s = Llama2cFile::Open(Env::Default(), testing::SharedPath("models/stories260K.bin"), &bin);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const Llama2cConfig& c = bin->config();
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.seq_len, 512);
  EXPECT_TRUE(c.shared_classifier);
  EXPECT_EQ(bin->tensors().size(), 47u);

  std::unique_ptr<gguf::GgufFile> gg;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), testing::SharedPath("models/stories260K.gguf"), &gg).ok());
  for (const NamedTensor& t : bin->tensors()) {
    const gguf::TensorInfo* g = gg->FindTensor(t.name);
    ASSERT_NE(g, nullptr) << t.name;
    EXPECT_EQ(g->tensor.type, t.tensor.type) << t.name;
    ASSERT_EQ(g->tensor.ne, t.tensor.ne) << t.name;
    EXPECT_EQ(std::memcmp(g->tensor.data, t.tensor.data, g->nbytes), 0) << t.name;
  }
  // The GGUF stores the tied classifier explicitly, as a copy of the embeddings.
  const gguf::TensorInfo* out = gg->FindTensor("output.weight");
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(std::memcmp(out->tensor.data, bin->FindTensor("token_embd.weight")->data, out->nbytes), 0);
}

TEST(Llama2cTest, OpenUsesTheEnvAndNamesThePath) {
  std::unique_ptr<Env> env = NewMemEnv();
  std::unique_ptr<Llama2cFile> f;
  EXPECT_EQ(Llama2cFile::Open(env.get(), "/m.bin", &f).code(), StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(env.get(), "/m.bin", MakeCheckpoint(kTied, kTiedFloats)).ok());
  ASSERT_TRUE(Llama2cFile::Open(env.get(), "/m.bin", &f).ok());
  EXPECT_EQ(First(*f, "output_norm.weight"), 1072);
  ASSERT_TRUE(WriteFileAtomic(env.get(), "/short.bin", MakeCheckpoint(kTied, 10)).ok());
  Status s = Llama2cFile::Open(env.get(), "/short.bin", &f);
  EXPECT_THAT(s.message(), HasSubstr("/short.bin: file truncated"));
}

}  // namespace
}  // namespace strata
