// StreamDecoder: token-by-token output is always complete UTF-8.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

std::unique_ptr<Vocab> LlamaSpm() {
  std::unique_ptr<gguf::GgufFile> file;
  Status s = gguf::GgufFile::Open(Env::Default(), testing::SharedPath("vocab/ggml-vocab-llama-spm.gguf"), &file);
  std::unique_ptr<Vocab> vocab;
  if (s.ok()) s = Vocab::FromGguf(*file, &vocab);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return vocab;
}

TokenId ByteToken(const Vocab& v, const char* text) {
  for (TokenId id = 0; id < v.n_tokens(); ++id) {
    if (v.token_text(id) == text) return id;
  }
  ADD_FAILURE() << text;
  return -1;
}

TEST(VocabStreamDecoderTest, HoldsBackACharacterSplitAcrossByteTokens) {
  auto v = LlamaSpm();
  ASSERT_NE(v, nullptr);
  // 🦙 is not in the vocabulary: it encodes as its four bytes.
  const std::vector<TokenId> ids = v->Encode("🦙!", true, false);
  ASSERT_GE(ids.size(), 6u);
  StreamDecoder decoder(*v);
  std::vector<std::string> outputs;
  TokenId prev = -1;
  for (TokenId id : ids) {
    outputs.push_back(decoder.Push(id, prev));
    prev = id;
  }
  std::string joined;
  for (const auto& o : outputs) joined += o;
  joined += decoder.Flush();
  EXPECT_EQ(joined, "🦙!");
  // The emoji appears whole, in one Push, and nothing before it is partial.
  int with_emoji = 0;
  for (const auto& o : outputs) {
    if (o.find("🦙") != std::string::npos) ++with_emoji;
    EXPECT_TRUE(o.empty() || o.find("🦙") != std::string::npos || o == "!") << o;
  }
  EXPECT_EQ(with_emoji, 1);
}

TEST(VocabStreamDecoderTest, StripsTheLeadingSpaceAfterBosLikeDecode) {
  auto v = LlamaSpm();
  ASSERT_NE(v, nullptr);
  const std::vector<TokenId> ids = v->Encode("Hello world", true, false);
  StreamDecoder decoder(*v);
  std::string out;
  TokenId prev = -1;
  for (TokenId id : ids) {
    out += decoder.Push(id, prev);
    prev = id;
  }
  EXPECT_EQ(out + decoder.Flush(), "Hello world");
  EXPECT_EQ(out, v->Decode(ids));
}

TEST(VocabStreamDecoderTest, InvalidAndUnfinishedSequencesBecomeReplacementCharacters) {
  auto v = LlamaSpm();
  ASSERT_NE(v, nullptr);
  const TokenId a = ByteToken(*v, "<0x41>");
  const TokenId lead = ByteToken(*v, "<0xE2>");
  const TokenId cont = ByteToken(*v, "<0x82>");
  const TokenId stray = ByteToken(*v, "<0xBF>");
  StreamDecoder decoder(*v);
  EXPECT_EQ(decoder.Push(stray, a), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.Push(lead, stray), "");
  EXPECT_EQ(decoder.Push(cont, lead), "");
  // 'A' cannot continue E2 82: both held bytes are invalid, 'A' comes through.
  EXPECT_EQ(decoder.Push(a, cont), "\xEF\xBF\xBD\xEF\xBF\xBD" "A");
  EXPECT_EQ(decoder.Push(lead, a), "");
  EXPECT_EQ(decoder.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.Flush(), "");
}

}  // namespace
}  // namespace strata
