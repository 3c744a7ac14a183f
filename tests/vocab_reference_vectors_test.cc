// Acceptance vectors from reference implementations, all under shared/:
//  - llama.cpp's vocab test vectors (vocab/ggml-vocab-*.gguf.inp/.out, made
//    with HF tokenizers): ids without BOS/EOS, specials not parsed;
//  - the Llama-2 tokenizer vectors of llama2.c's test.c (with BOS) and of
//    llama.cpp's test-tokenizer-0-llama (without), on the llama2.c-format
//    tokenizer.bin;
//  - stories260K: tok512.bin and the GGUF's own vocabulary agree, and match
//    llama2.c's run.c prompt encoding.
// Every text must also survive decode(encode(text)).
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

using ::strata::testing::SharedPath;

std::string ReadAll(const std::string& path) {
  std::string data;
  Status s = Env::Default()->ReadFile(path, UINT64_MAX, &data);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return data;
}

std::unique_ptr<Vocab> LoadGgufVocab(const std::string& path) {
  std::unique_ptr<gguf::GgufFile> file;
  Status s = gguf::GgufFile::Open(Env::Default(), path, &file);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  if (!s.ok()) return nullptr;
  std::unique_ptr<Vocab> vocab;
  s = Vocab::FromGguf(*file, &vocab);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  return vocab;
}

std::unique_ptr<Vocab> LoadLlama2cVocab(const std::string& path) {
  std::unique_ptr<Vocab> vocab;
  Status s = Vocab::FromLlama2cFile(Env::Default(), path, &vocab);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  return vocab;
}

// The .inp format: texts, each followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> SplitInputs(const std::string& data) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t hit; (hit = data.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    texts.push_back(data.substr(pos, hit - pos));
  }
  return texts;
}

std::vector<std::vector<TokenId>> ParseOutputs(const std::string& data) {
  std::vector<std::vector<TokenId>> out;
  std::istringstream lines(data);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream ids(line);
    std::vector<TokenId> row;
    for (TokenId id; ids >> id;) row.push_back(id);
    out.push_back(std::move(row));
  }
  return out;
}

class GgmlVocabVectorsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgmlVocabVectorsTest, EncodesLikeReferenceAndRoundTrips) {
  const std::string base = SharedPath("vocab/ggml-vocab-" + GetParam() + ".gguf");
  std::unique_ptr<Vocab> vocab = LoadGgufVocab(base);
  ASSERT_NE(vocab, nullptr);
  const std::vector<std::string> texts = SplitInputs(ReadAll(base + ".inp"));
  const std::vector<std::vector<TokenId>> expected = ParseOutputs(ReadAll(base + ".out"));
  ASSERT_EQ(texts.size(), expected.size());
  ASSERT_GT(texts.size(), 40u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<TokenId> ids = vocab->Encode(texts[i], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, expected[i]) << "text #" << i << ": '" << texts[i] << "'";
    // WordPiece lower-cases and drops whitespace: only the others are lossless.
    if (vocab->model_name() != "bert") EXPECT_EQ(vocab->Decode(ids), texts[i]) << "text #" << i;
  }
}

INSTANTIATE_TEST_SUITE_P(SharedVocabs, GgmlVocabVectorsTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "refact", "deepseek-llm",
                                           "bert-bge"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) c = c == '-' ? '_' : c;
                           return name;
                         });

TEST(VocabReferenceTest, EverySharedVocabularyLoads) {
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"baichuan", "llama"},     {"bert-bge", "bert"}, {"deepseek-llm", "gpt2"}, {"falcon", "gpt2"},
      {"gpt-2", "gpt2"},         {"gpt-neox", "gpt2"}, {"llama-spm", "llama"},   {"mpt", "gpt2"},
      {"phi-3", "llama"},        {"refact", "gpt2"},
  };
  for (const auto& [name, model] : expected) {
    std::unique_ptr<Vocab> vocab = LoadGgufVocab(SharedPath("vocab/ggml-vocab-" + name + ".gguf"));
    ASSERT_NE(vocab, nullptr) << name;
    EXPECT_EQ(vocab->model_name(), model) << name;
    const std::vector<TokenId> ids = vocab->Encode("Hello, world! 123", true, true);
    EXPECT_GE(ids.size(), 3u) << name;
  }
}

TEST(VocabReferenceTest, Llama2TokenizerMatchesLlama2cTestVectors) {
  std::unique_ptr<Vocab> vocab = LoadLlama2cVocab(SharedPath("tokenizers/llama2-tokenizer.bin"));
  ASSERT_NE(vocab, nullptr);
  EXPECT_EQ(vocab->n_tokens(), 32000);
  const auto cases = nlohmann::json::parse(ReadAll(SharedPath("reference/llama2_tokenizer_vectors_karpathy_test_c.json")));
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<TokenId> expected = c["ids_with_bos"];
    const std::vector<TokenId> ids = vocab->Encode(text, /*add_special=*/true, /*parse_special=*/false);
    EXPECT_EQ(ids, expected) << "'" << text << "'";
    EXPECT_EQ(vocab->Decode(ids), text);
  }
}

TEST(VocabReferenceTest, Llama2TokenizerMatchesLlamaCppTestVectors) {
  std::unique_ptr<Vocab> vocab = LoadLlama2cVocab(SharedPath("tokenizers/llama2-tokenizer.bin"));
  ASSERT_NE(vocab, nullptr);
  const auto cases =
      nlohmann::json::parse(ReadAll(SharedPath("reference/llama2_tokenizer_vectors_llamacpp_test-tokenizer-0-llama.json")));
  ASSERT_FALSE(cases.empty());
  for (const auto& c : cases) {
    const std::string text = c["text"];
    const std::vector<TokenId> expected = c["ids"];
    const std::vector<TokenId> ids = vocab->Encode(text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, expected) << "'" << text << "'";
    EXPECT_EQ(vocab->Decode(ids), text);
  }
}

TEST(VocabReferenceTest, Llama2cTokenizerEqualsGgufVocabulary) {
  std::unique_ptr<Vocab> bin = LoadLlama2cVocab(SharedPath("models/tok512.bin"));
  std::unique_ptr<Vocab> gguf = LoadGgufVocab(SharedPath("models/stories260K.gguf"));
  ASSERT_NE(bin, nullptr);
  ASSERT_NE(gguf, nullptr);
  ASSERT_EQ(bin->n_tokens(), 512);
  ASSERT_EQ(gguf->n_tokens(), 512);
  for (TokenId id = 0; id < 512; ++id) {
    EXPECT_EQ(bin->token_text(id), gguf->token_text(id)) << id;
    EXPECT_EQ(bin->token_type(id), gguf->token_type(id)) << id;
  }
  EXPECT_EQ(bin->bos(), gguf->bos());
  EXPECT_EQ(bin->eos(), gguf->eos());
  EXPECT_EQ(bin->add_bos(), gguf->add_bos());
  EXPECT_EQ(bin->add_space_prefix(), gguf->add_space_prefix());
  for (const std::string text : {"Once upon a time", "", " ", "Hello,  world!\n\tTabs", "naïve café 🦙 日本語",
                                 "Lily and Ben went to the park. They saw a big dog."}) {
    EXPECT_EQ(bin->Encode(text, true, false), gguf->Encode(text, true, false)) << "'" << text << "'";
  }
}

TEST(VocabReferenceTest, Stories260KPromptMatchesRunC) {
  const std::vector<TokenId> expected = {1, 403, 407, 261, 378};
  std::unique_ptr<Vocab> vocabs[] = {LoadLlama2cVocab(SharedPath("models/tok512.bin")),
                                     LoadGgufVocab(SharedPath("models/stories260K.gguf"))};
  for (const auto& vocab : vocabs) {
    ASSERT_NE(vocab, nullptr);
    EXPECT_EQ(vocab->Encode("Once upon a time", true, false), expected);
    EXPECT_EQ(vocab->Decode(expected), "Once upon a time");
  }
}

}  // namespace
}  // namespace strata
