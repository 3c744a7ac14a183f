// Property test beyond the fixed vectors: a few hundred random strings
// (ASCII, multi-byte UTF-8, emoji and ZWJ sequences, whitespace runs, digits,
// control characters, special-looking text) must encode exactly as the real
// SentencePiece library encodes them, for two different vocabularies, and
// must decode back to themselves.
//
// The oracle is Debian's python3-sentencepiece run through /usr/bin/python3
// (scripts/setup.sh installs it). The tests skip if that module is missing,
// unless STRATA_REQUIRE_SENTENCEPIECE=1 (scripts/test.sh sets it): then they fail.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata {
namespace {

using ::strata::testing::RunCommand;
using ::strata::testing::SharedPath;

constexpr const char* kPython = "/usr/bin/python3";

// Alphabets the generator draws characters from.
const std::vector<std::vector<std::string>>& Alphabets() {
  static const std::vector<std::vector<std::string>> kAlphabets = {
      {"a", "b", "e", "t", "h", "o", "n", "s", "T", "A", "Z", "q", "x", "y"},
      {"0", "1", "2", "3", "7", "9", "42", "2024", "3.14"},
      {" ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "    "},
      {".", ",", "!", "?", "'", "\"", "-", "(", ")", "<", ">", "/", "#", "@", "_", "~", "`", "\\"},
      {"é", "ü", "ñ", "ß", "Ä", "ø", "е", "щ", "Б", "λ", "Ω", "ا", "ש", "ก", "ᏸ"},
      {"日", "本", "語", "中", "文", "한", "국", "ア", "の", "龥", "ힰ"},
      {"🦙", "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "𝄞", "🀄", "\U0010FFFD"},
      {"\x01", "\x7f", "\u00a0", "\u200b", "\u2028", "\u2581", "\ufeff", "e\u0301"},
      {"<s>", "</s>", "<unk>", "<0x41>", "Hello", " world", "Once upon a time", "the"},
  };
  return kAlphabets;
}

std::vector<std::string> RandomTexts(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  const auto& alphabets = Alphabets();
  std::vector<std::string> texts = {"", " ", "Hello world", " leading", "trailing ", "\n"};
  while (static_cast<int>(texts.size()) < count) {
    // Bias each string towards a couple of alphabets so words form.
    const size_t a = rng() % alphabets.size();
    const size_t b = rng() % alphabets.size();
    const int length = 1 + static_cast<int>(rng() % 24);
    std::string text;
    for (int i = 0; i < length; ++i) {
      const uint32_t r = rng() % 10;
      const auto& alphabet = r < 4 ? alphabets[a] : r < 7 ? alphabets[b] : alphabets[rng() % alphabets.size()];
      text += alphabet[rng() % alphabet.size()];
    }
    texts.push_back(std::move(text));
  }
  return texts;
}

bool SentencePieceRequired() {
  const char* e = std::getenv("STRATA_REQUIRE_SENTENCEPIECE");
  return e != nullptr && *e != '\0' && std::string_view(e) != "0";
}

// Encodes texts with SentencePiece (no BOS/EOS) via the Python bindings.
// Returns false if the oracle is unavailable.
//
// tok512.model leaves its normalizer at SentencePiece's default of collapsing
// whitespace runs (remove_extra_whitespaces); neither llama2.c nor llama.cpp
// does that, and tokenizer.bin / GGUF do not record it. The script therefore
// sets the flag to false in the model bytes (NormalizerSpec is ModelProto
// field 3, the flag its field 4) before loading; the pieces, scores and merge
// algorithm under test are SentencePiece's own.
bool OracleEncode(const std::string& model, const std::vector<std::string>& texts,
                  std::vector<std::vector<TokenId>>* ids) {
  if (RunCommand({kPython, "-c", "import sentencepiece"}).exit_code != 0) return false;
  const std::string script = R"(
import json, sys, sentencepiece as spm
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1; r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i
def enc_varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7f) | (0x80 if n > 0x7f else 0)); n >>= 7
        if not n: return bytes(out)
def fields(b):
    i = 0
    while i < len(b):
        start = i; k, i = varint(b, i); f, w = k >> 3, k & 7
        if w == 0: _, i = varint(b, i)
        elif w == 2: n, i = varint(b, i); i += n
        elif w == 5: i += 4
        elif w == 1: i += 8
        else: raise ValueError('wire type %d' % w)
        yield f, w, b[start:i]
def payload(raw):
    _, i = varint(raw, 0); _, i = varint(raw, i); return raw[i:]
model = open(sys.argv[1], 'rb').read()
out = []
for f, w, raw in fields(model):
    if f == 3 and w == 2:
        spec = b''.join(r for ff, _, r in fields(payload(raw)) if ff != 4) + bytes([0x20, 0x00])
        raw = bytes([0x1a]) + enc_varint(len(spec)) + spec
    out.append(raw)
sp = spm.SentencePieceProcessor(model_proto=b''.join(out))
json.dump([sp.encode(t) for t in json.load(sys.stdin)], sys.stdout)
)";
  const auto result = RunCommand({kPython, "-c", script, model}, nlohmann::json(texts).dump());
  EXPECT_EQ(result.exit_code, 0) << result.err;
  *ids = nlohmann::json::parse(result.out).get<std::vector<std::vector<TokenId>>>();
  return true;
}

void ExpectMatchesOracle(const Vocab& vocab, const std::string& oracle_model, uint32_t seed) {
  const std::vector<std::string> texts = RandomTexts(300, seed);
  std::vector<std::vector<TokenId>> expected;
  if (!OracleEncode(oracle_model, texts, &expected)) {
    if (SentencePieceRequired()) FAIL() << "STRATA_REQUIRE_SENTENCEPIECE=1 but " << kPython
                                        << " lacks the sentencepiece module: install python3-sentencepiece (scripts/setup.sh)";
    GTEST_SKIP() << kPython << " lacks the sentencepiece module";
  }
  ASSERT_EQ(expected.size(), texts.size());
  int mismatches = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<TokenId> ids = vocab.Encode(texts[i], /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, expected[i]) << "text #" << i << ": '" << texts[i] << "'";
    mismatches += ids != expected[i];
    // '▁' in the input is indistinguishable from a space once encoded.
    if (texts[i].find("\u2581") == std::string::npos) {
      EXPECT_EQ(vocab.Decode(ids), texts[i]) << "text #" << i;
    }
    // With BOS the ids are the same after it, and decoding is unchanged.
    std::vector<TokenId> with_bos = vocab.Encode(texts[i], /*add_special=*/true, /*parse_special=*/false);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos[0], vocab.bos());
    EXPECT_EQ(std::vector<TokenId>(with_bos.begin() + 1, with_bos.end()), ids);
    EXPECT_EQ(vocab.Decode(with_bos), vocab.Decode(ids));
  }
  EXPECT_EQ(mismatches, 0);
}

std::unique_ptr<Vocab> LoadLlama2c(const std::string& rel) {
  std::unique_ptr<Vocab> vocab;
  Status s = Vocab::FromLlama2cFile(Env::Default(), SharedPath(rel), &vocab);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return vocab;
}

TEST(TokenizerSentencePiecePropertyTest, Llama2TokenizerBinMatchesSentencePiece) {
  auto vocab = LoadLlama2c("tokenizers/llama2-tokenizer.bin");
  ASSERT_NE(vocab, nullptr);
  ExpectMatchesOracle(*vocab, SharedPath("tokenizers/llama2-tokenizer.model"), 1234);
}

TEST(TokenizerSentencePiecePropertyTest, Tok512BinMatchesSentencePiece) {
  auto vocab = LoadLlama2c("models/tok512.bin");
  ASSERT_NE(vocab, nullptr);
  ExpectMatchesOracle(*vocab, SharedPath("tokenizers/tok512.model"), 5678);
}

TEST(TokenizerSentencePiecePropertyTest, LlamaSpmGgufMatchesSentencePiece) {
  std::unique_ptr<gguf::GgufFile> file;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), SharedPath("vocab/ggml-vocab-llama-spm.gguf"), &file).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::FromGguf(*file, &vocab).ok());
  ExpectMatchesOracle(*vocab, SharedPath("tokenizers/llama2-tokenizer.model"), 91011);
}

}  // namespace
}  // namespace strata
