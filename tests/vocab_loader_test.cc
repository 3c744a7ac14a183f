// Loading vocabularies from GGUF metadata (built in memory here, so every
// field can be made hostile) and from llama2.c tokenizer.bin files (in a
// MemEnv).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Serializes GGUF v3 metadata (no tensors) the way llama.cpp's writer does.
class GgufBytes {
 public:
  GgufBytes& Str(const std::string& key, const std::string& v) {
    Key(key, 8);
    String(v);
    return Count();
  }
  GgufBytes& U32(const std::string& key, uint32_t v) {
    Key(key, 4);
    Raw(v);
    return Count();
  }
  GgufBytes& I32(const std::string& key, int32_t v) {
    Key(key, 5);
    Raw(v);
    return Count();
  }
  GgufBytes& Bool(const std::string& key, bool v) {
    Key(key, 7);
    Raw(static_cast<uint8_t>(v));
    return Count();
  }
  GgufBytes& Strs(const std::string& key, const std::vector<std::string>& v) {
    Array(key, 8, v.size());
    for (const auto& s : v) String(s);
    return Count();
  }
  GgufBytes& F32s(const std::string& key, const std::vector<float>& v) {
    Array(key, 6, v.size());
    for (float f : v) Raw(f);
    return Count();
  }
  GgufBytes& I32s(const std::string& key, const std::vector<int32_t>& v) {
    Array(key, 5, v.size());
    for (int32_t i : v) Raw(i);
    return Count();
  }

  std::string Build() const {
    std::string out;
    auto put = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(uint32_t{0x46554747});
    put(uint32_t{3});
    put(uint64_t{0});
    put(n_kv_);
    return out + body_;
  }

 private:
  template <class T>
  void Raw(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void String(const std::string& s) {
    Raw(static_cast<uint64_t>(s.size()));
    body_ += s;
  }
  void Key(const std::string& key, uint32_t type) {
    String(key);
    Raw(type);
  }
  void Array(const std::string& key, uint32_t elem_type, size_t n) {
    Key(key, 9);
    Raw(elem_type);
    Raw(static_cast<uint64_t>(n));
  }
  GgufBytes& Count() {
    ++n_kv_;
    return *this;
  }

  std::string body_;
  uint64_t n_kv_ = 0;
};

// A minimal valid llama vocabulary: <unk> <s> </s> ▁ a ▁a.
GgufBytes LlamaMetadata() {
  GgufBytes g;
  g.Str("tokenizer.ggml.model", "llama")
      .Strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a"})
      .F32s("tokenizer.ggml.scores", {0, 0, 0, -5, -5, -1})
      .I32s("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  return g;
}

Status Load(const GgufBytes& g, std::unique_ptr<Vocab>* vocab, std::string* storage) {
  *storage = g.Build();
  std::unique_ptr<gguf::GgufFile> file;
  STRATA_RETURN_IF_ERROR(
      gguf::GgufFile::Parse(reinterpret_cast<const uint8_t*>(storage->data()), storage->size(), &file));
  return Vocab::FromGguf(*file, vocab);
}

Status LoadStatus(const GgufBytes& g) {
  std::unique_ptr<Vocab> vocab;
  std::string storage;
  return Load(g, &vocab, &storage);
}

TEST(GgufVocabLoaderTest, AppliesLlamaDefaults) {
  std::unique_ptr<Vocab> v;
  std::string storage;
  ASSERT_TRUE(Load(LlamaMetadata(), &v, &storage).ok());
  EXPECT_EQ(v->model_name(), "llama");
  EXPECT_EQ(v->pre_name(), "default");
  EXPECT_EQ(v->bos(), 1);
  EXPECT_EQ(v->eos(), 2);
  EXPECT_TRUE(v->add_bos());
  EXPECT_FALSE(v->add_eos());
  EXPECT_TRUE(v->add_space_prefix());
  EXPECT_THAT(v->Encode("a", true, false), ElementsAre(1, 5));
}

TEST(GgufVocabLoaderTest, HonoursFlagsAndIds) {
  GgufBytes g = LlamaMetadata();
  g.Bool("tokenizer.ggml.add_space_prefix", false)
      .Bool("tokenizer.ggml.add_bos_token", false)
      .Bool("tokenizer.ggml.add_eos_token", true)
      .U32("tokenizer.ggml.eos_token_id", 3)
      .U32("tokenizer.ggml.padding_token_id", 0xFFFFFFFF);  // "none", as stories260K.gguf writes it
  std::unique_ptr<Vocab> v;
  std::string storage;
  ASSERT_TRUE(Load(g, &v, &storage).ok());
  EXPECT_FALSE(v->add_space_prefix());
  EXPECT_EQ(v->eos(), 3);
  EXPECT_TRUE(v->IsEog(3));
  EXPECT_THAT(v->Encode("a", true, false), ElementsAre(4, 3));
}

TEST(GgufVocabLoaderTest, RejectsHostileMetadataWithClearErrors) {
  struct Case {
    std::string what;
    std::function<void(GgufBytes&)> edit;
    StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"bos out of range", [](GgufBytes& g) { g.U32("tokenizer.ggml.bos_token_id", 6); }, StatusCode::kCorrupt,
       "BOS token id 6"},
      {"negative unk", [](GgufBytes& g) { g.I32("tokenizer.ggml.unknown_token_id", -5); }, StatusCode::kCorrupt,
       "tokenizer.ggml.unknown_token_id"},
      {"id of wrong type", [](GgufBytes& g) { g.Str("tokenizer.ggml.eos_token_id", "2"); }, StatusCode::kCorrupt,
       "is not an integer"},
      {"flag of wrong type", [](GgufBytes& g) { g.U32("tokenizer.ggml.add_bos_token", 1); }, StatusCode::kCorrupt,
       "is not a bool"},
      {"pre of wrong type", [](GgufBytes& g) { g.U32("tokenizer.ggml.pre", 1); }, StatusCode::kCorrupt,
       "is not a string"},
  };
  for (const Case& c : cases) {
    GgufBytes g = LlamaMetadata();
    c.edit(g);
    const Status s = LoadStatus(g);
    EXPECT_EQ(s.code(), c.code) << c.what << ": " << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.what;
  }
}

TEST(GgufVocabLoaderTest, RejectsBrokenTokenTables) {
  GgufBytes short_scores;
  short_scores.Str("tokenizer.ggml.model", "llama")
      .Strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"})
      .F32s("tokenizer.ggml.scores", {0, 0});
  EXPECT_THAT(LoadStatus(short_scores).message(), HasSubstr("2 token scores for 3 tokens"));

  GgufBytes bad_type;
  bad_type.Str("tokenizer.ggml.model", "llama")
      .Strs("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>"})
      .I32s("tokenizer.ggml.token_type", {2, 3, 99});
  EXPECT_THAT(LoadStatus(bad_type).message(), HasSubstr("unknown token type 99"));

  GgufBytes tokens_not_strings;
  tokens_not_strings.Str("tokenizer.ggml.model", "llama").I32s("tokenizer.ggml.tokens", {1, 2, 3});
  EXPECT_EQ(LoadStatus(tokens_not_strings).code(), StatusCode::kCorrupt);

  GgufBytes no_tokens;
  no_tokens.Str("tokenizer.ggml.model", "llama");
  EXPECT_THAT(LoadStatus(no_tokens).message(), HasSubstr("tokenizer.ggml.tokens"));

  GgufBytes no_merges;
  no_merges.Str("tokenizer.ggml.model", "gpt2").Strs("tokenizer.ggml.tokens", {"a", "b"});
  EXPECT_THAT(LoadStatus(no_merges).message(), HasSubstr("tokenizer.ggml.merges"));

  GgufBytes bad_merge;
  bad_merge.Str("tokenizer.ggml.model", "gpt2")
      .Strs("tokenizer.ggml.tokens", {"a", "b"})
      .Strs("tokenizer.ggml.merges", {"a b"});
  EXPECT_THAT(LoadStatus(bad_merge).message(), HasSubstr("merges[0] 'a b'"));
}

TEST(GgufVocabLoaderTest, ReportsMissingAndUnsupportedTokenizers) {
  GgufBytes none;
  none.Str("general.name", "weights only");
  EXPECT_EQ(LoadStatus(none).code(), StatusCode::kNotFound);

  GgufBytes t5;
  t5.Str("tokenizer.ggml.model", "t5").Strs("tokenizer.ggml.tokens", {"a"});
  const Status s = LoadStatus(t5);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("'t5'"));

  GgufBytes pre;
  pre.Str("tokenizer.ggml.model", "gpt2")
      .Str("tokenizer.ggml.pre", "klingon")
      .Strs("tokenizer.ggml.tokens", {"a"})
      .Strs("tokenizer.ggml.merges", {});
  EXPECT_THAT(LoadStatus(pre).message(), HasSubstr("'klingon'"));
}

TEST(GgufVocabLoaderTest, Llama3PreTokenizerAddsBosByDefault) {
  GgufBytes g;
  g.Str("tokenizer.ggml.model", "gpt2")
      .Str("tokenizer.ggml.pre", "llama-bpe")
      .Strs("tokenizer.ggml.tokens", {"a", "b", "ab", "<|begin_of_text|>"})
      .Strs("tokenizer.ggml.merges", {"a b"})
      .I32s("tokenizer.ggml.token_type", {1, 1, 1, 3})
      .U32("tokenizer.ggml.bos_token_id", 3);
  std::unique_ptr<Vocab> v;
  std::string storage;
  ASSERT_TRUE(Load(g, &v, &storage).ok());
  EXPECT_TRUE(v->add_bos());
  EXPECT_FALSE(v->add_space_prefix());
  EXPECT_THAT(v->Encode("ab", true, false), ElementsAre(3, 2));
}

// llama2.c tokenizer.bin bytes: max_token_length, then (score, len, bytes) per token.
std::string Llama2cBytes(int32_t max_len, const std::vector<std::pair<float, std::string>>& tokens) {
  std::string out(reinterpret_cast<const char*>(&max_len), 4);
  for (const auto& [score, text] : tokens) {
    const auto len = static_cast<int32_t>(text.size());
    out.append(reinterpret_cast<const char*>(&score), 4);
    out.append(reinterpret_cast<const char*>(&len), 4);
    out += text;
  }
  return out;
}

Status LoadLlama2c(const std::string& bytes, std::unique_ptr<Vocab>* vocab) {
  std::unique_ptr<Env> env = NewMemEnv();
  STRATA_RETURN_IF_ERROR(WriteFileAtomic(env.get(), "/tok.bin", bytes));
  return Vocab::FromLlama2cFile(env.get(), "/tok.bin", vocab);
}

TEST(Llama2cVocabLoaderTest, RestoresSentencePieceSpellings) {
  std::unique_ptr<Vocab> v;
  const Status s =
      LoadLlama2c(Llama2cBytes(6, {{0, "<unk>"}, {0, "\n<s>\n"}, {0, "\n</s>\n"}, {0, "<0x41>"}, {-1, " a"}}), &v);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(v->token_text(1), "<s>");
  EXPECT_EQ(v->token_text(2), "</s>");
  EXPECT_EQ(v->token_text(4), "\xE2\x96\x81" "a");
  EXPECT_EQ(v->token_type(0), TokenType::kUnknown);
  EXPECT_EQ(v->token_type(1), TokenType::kControl);
  EXPECT_EQ(v->token_type(3), TokenType::kByte);
  EXPECT_EQ(v->token_type(4), TokenType::kNormal);
  EXPECT_THAT(v->Encode("a", true, false), ElementsAre(1, 4));
  EXPECT_EQ(v->TokenToPiece(3), "A");
}

TEST(Llama2cVocabLoaderTest, RejectsTruncatedAndInconsistentFiles) {
  const std::string good = Llama2cBytes(5, {{0, "<unk>"}, {0, "<s>"}, {0, "</s>"}});
  std::unique_ptr<Vocab> v;
  EXPECT_TRUE(LoadLlama2c(good, &v).ok());
  for (size_t cut : {size_t{0}, size_t{3}, size_t{6}, good.size() - 1}) {
    const Status s = LoadLlama2c(good.substr(0, cut), &v);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << cut << ": " << s.ToString();
  }
  EXPECT_THAT(LoadLlama2c(Llama2cBytes(2, {{0, "<unk>"}}), &v).message(), HasSubstr("max_token_length=2"));
  EXPECT_THAT(LoadLlama2c(Llama2cBytes(-1, {}), &v).message(), HasSubstr("not positive"));
  EXPECT_THAT(LoadLlama2c(Llama2cBytes(9, {{0, "<unk>"}, {0, "<s>"}}), &v).message(), HasSubstr("fewer than"));
  std::string huge = Llama2cBytes(1 << 30, {});
  const int32_t len = 1 << 30;
  huge.append(4, '\0');
  huge.append(reinterpret_cast<const char*>(&len), 4);
  EXPECT_THAT(LoadLlama2c(huge, &v).message(), HasSubstr("runs past the end"));
  std::unique_ptr<Env> env = NewMemEnv();
  EXPECT_EQ(Vocab::FromLlama2cFile(env.get(), "/missing.bin", &v).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
