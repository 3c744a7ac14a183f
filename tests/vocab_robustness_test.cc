// Hostile and large input on the shared vocabularies: random bytes (invalid
// UTF-8 included) never crash and, where the tokenizer is lossless, decode
// back to themselves; random valid text round-trips through every vocabulary;
// 10 kB of text encodes in milliseconds.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/utf8.h"
#include "format/gguf.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

using ::strata::testing::SharedPath;

const Vocab& SharedVocab(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Vocab>> cache;  // loading is the slow part
  auto& slot = cache[name];
  if (slot == nullptr) {
    std::unique_ptr<gguf::GgufFile> file;
    const std::string path = SharedPath("vocab/ggml-vocab-" + name + ".gguf");
    Status s = gguf::GgufFile::Open(Env::Default(), path, &file);
    if (s.ok()) s = Vocab::FromGguf(*file, &slot);
    if (!s.ok()) ADD_FAILURE() << path << ": " << s.ToString();
  }
  return *slot;
}

std::string RandomBytes(std::mt19937* rng, size_t max_len) {
  std::string s(1 + (*rng)() % max_len, '\0');
  for (char& c : s) {
    // Mostly bytes that build or break UTF-8 sequences, some ASCII.
    const uint32_t r = (*rng)() % 4;
    c = static_cast<char>(r == 0 ? 0x20 + (*rng)() % 0x60 : 0x80 + (*rng)() % 0x80);
  }
  return s;
}

std::string RandomText(std::mt19937* rng) {
  static const std::vector<std::string> kAtoms = {
      "the", " cat", "  ", "\n", "\t", "\r\n", "   \n", "123", "4567", " 89", "'s", "'LL", "don't", "!!", "...",
      "(x)", "é", "Ä", "ß", "ø", "щ", "λ", "日本", "한", "🦙", "👍🏽", "👨‍👩‍👧", "\u00a0", "\u3000", "\u200b", "x\u0301",
      "<|endoftext|>", "<s>", "[PAD50277]", "     ", "ℂ", "Ω", "＃", "２０", "?!", "`", "$5"};
  std::string s;
  const size_t n = 1 + (*rng)() % 16;
  for (size_t i = 0; i < n; ++i) s += kAtoms[(*rng)() % kAtoms.size()];
  return s;
}

class SharedVocabRobustnessTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedVocabRobustnessTest, RandomBytesNeverCrash) {
  const Vocab& vocab = SharedVocab(GetParam());
  std::mt19937 rng(42);
  for (int i = 0; i < 300; ++i) {
    const std::string bytes = RandomBytes(&rng, 48);
    for (bool parse_special : {false, true}) {
      const std::vector<TokenId> ids = vocab.Encode(bytes, true, parse_special);
      for (TokenId id : ids) ASSERT_TRUE(id >= 0 && id < vocab.n_tokens());
      (void)vocab.Decode(ids);
    }
  }
}

class SharedVocabRoundTripTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SharedVocabRoundTripTest, RandomTextRoundTrips) {
  const Vocab& vocab = SharedVocab(GetParam());
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    const std::string text = RandomText(&rng);
    ASSERT_TRUE(utf8::IsValid(text));
    EXPECT_EQ(vocab.Decode(vocab.Encode(text, true, false)), text) << "'" << text << "'";
  }
}

// A long text (10 kB) encodes in one piece and decodes back; speed is measured
// by benchmarks, not here.
TEST_P(SharedVocabRoundTripTest, TenKilobytesRoundTrip) {
  const Vocab& vocab = SharedVocab(GetParam());
  std::mt19937 rng(99);
  std::string text;
  while (text.size() < 10000) text += RandomText(&rng);
  const std::vector<TokenId> ids = vocab.Encode(text, false, false);
  EXPECT_GT(ids.size(), 1000u);
  EXPECT_EQ(vocab.Decode(ids), text);
}

std::string ParamName(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) c = c == '-' ? '_' : c;
  return name;
}

INSTANTIATE_TEST_SUITE_P(SharedVocabs, SharedVocabRobustnessTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "refact", "deepseek-llm",
                                           "bert-bge"),
                         ParamName);
// WordPiece (bert-bge) lower-cases and drops whitespace, so it is not here.
INSTANTIATE_TEST_SUITE_P(SharedVocabs, SharedVocabRoundTripTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "refact", "deepseek-llm"),
                         ParamName);

// Random bytes are their own encoding wherever every byte has a token that
// renders as that byte: SentencePiece byte fallback and byte-level BPE with
// all 256 byte tokens (falcon and refact lack the bytes UTF-8 never uses).
TEST(SharedVocabLosslessTest, RandomBytesRoundTrip) {
  for (const std::string name : {"llama-spm", "gpt-2"}) {
    const Vocab& vocab = SharedVocab(name);
    std::mt19937 rng(3);
    for (int i = 0; i < 300; ++i) {
      const std::string bytes = RandomBytes(&rng, 48);
      if (bytes.find("\xE2\x96\x81") != std::string::npos) continue;  // '▁' decodes as ' '
      EXPECT_EQ(vocab.Decode(vocab.Encode(bytes, false, false)), bytes) << name << " #" << i;
    }
  }
}

}  // namespace
}  // namespace strata
