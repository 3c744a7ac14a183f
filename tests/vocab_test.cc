// Behaviour of the "llama" (SentencePiece) and "gpt2" (byte-level BPE)
// tokenizers on small hand-built vocabularies, and the validation MakeVocab
// applies to every vocabulary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "vocab/byte_level_codec.h"
#include "vocab/byte_token.h"
#include "vocab/vocab.h"
#include "vocab/vocab_spec.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// "▁" (U+2581), SentencePiece's space.
const std::string S = "\xE2\x96\x81";

struct Piece {
  std::string text;
  float score = 0;
  TokenType type = TokenType::kNormal;
};

// A llama vocabulary: <unk>, <s>, </s>, optionally the 256 byte tokens, then pieces.
VocabSpec SpmSpec(const std::vector<Piece>& pieces, bool byte_tokens = true) {
  VocabSpec spec;
  spec.model = "llama";
  auto add = [&](std::string text, float score, TokenType type) {
    spec.tokens.push_back(std::move(text));
    spec.scores.push_back(score);
    spec.types.push_back(type);
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  if (byte_tokens) {
    for (int b = 0; b < 256; ++b) add(ByteTokenText(static_cast<uint8_t>(b)), 0, TokenType::kByte);
  }
  for (const Piece& p : pieces) add(p.text, p.score, p.type);
  spec.unk = 0;
  spec.bos = 1;
  spec.eos = 2;
  spec.add_bos = true;
  spec.add_space_prefix = true;
  return spec;
}

std::unique_ptr<Vocab> Make(VocabSpec spec) {
  std::unique_ptr<Vocab> vocab;
  Status s = MakeVocab(spec, &vocab);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return vocab;
}

// Id of the token spelled text (test vocabularies are small).
TokenId Id(const Vocab& v, const std::string& text) {
  for (TokenId id = 0; id < v.n_tokens(); ++id) {
    if (v.token_text(id) == text) return id;
  }
  ADD_FAILURE() << "no token '" << text << "'";
  return -1;
}

TokenId ByteId(const Vocab& v, uint8_t b) { return Id(v, ByteTokenText(b)); }

std::unique_ptr<Vocab> SmallSpm() {
  return Make(SpmSpec({{S, -10}, {"a", -10}, {"b", -10}, {"c", -10}, {S + "a", -1}, {"ab", -0.5f}, {"bc", -0.2f},
                       {"abc", -3}, {"aa", -1}, {"<tool>", 0, TokenType::kUserDefined},
                       {"<ctl>", 0, TokenType::kControl}, {"<|im_end|>", 0, TokenType::kNormal}}));
}

TEST(SpmVocabTest, MergesTheHighestScoringPairFirst) {
  auto v = SmallSpm();
  // "▁abc": "bc" (-0.2) beats "ab" (-0.5) and "▁a" (-1); then "▁a"; "▁abc" is no token.
  EXPECT_THAT(v->Encode("abc", false, false), ElementsAre(Id(*v, S + "a"), Id(*v, "bc")));
}

TEST(SpmVocabTest, EqualScoresMergeLeftmostFirst) {
  auto v = SmallSpm();
  EXPECT_THAT(v->Encode(" aaa", false, false),
              ElementsAre(Id(*v, S), Id(*v, S + "a"), Id(*v, "aa")));
}

TEST(SpmVocabTest, SpacesBecomeSpaceMarksWithOnePrefixed) {
  auto v = SmallSpm();
  EXPECT_THAT(v->Encode("a a", false, false), ElementsAre(Id(*v, S + "a"), Id(*v, S + "a")));
  EXPECT_THAT(v->Encode("", false, false), ElementsAre());
  EXPECT_THAT(v->Encode("", true, false), ElementsAre(1));
}

TEST(SpmVocabTest, UnknownCharactersAndInvalidUtf8FallBackToBytes) {
  auto v = SmallSpm();
  EXPECT_THAT(v->Encode("\xC3\xA9", false, false), ElementsAre(Id(*v, S), ByteId(*v, 0xC3), ByteId(*v, 0xA9)));
  const std::string invalid = "a\xFF\xC3(b\xE2\x82";
  const std::vector<TokenId> ids = v->Encode(invalid, false, false);
  EXPECT_THAT(ids, ElementsAre(Id(*v, S + "a"), ByteId(*v, 0xFF), ByteId(*v, 0xC3), ByteId(*v, '('), Id(*v, "b"),
                               ByteId(*v, 0xE2), ByteId(*v, 0x82)));
  EXPECT_EQ(v->Decode(ids), invalid);
}

TEST(SpmVocabTest, WithoutByteTokensUnknownCharactersBecomeUnk) {
  auto v = Make(SpmSpec({{S, -1}, {"a", -1}}, /*byte_tokens=*/false));
  EXPECT_THAT(v->Encode("a\xC3\xA9" "a", false, false), ElementsAre(Id(*v, S), Id(*v, "a"), 0, Id(*v, "a")));
}

TEST(SpmVocabTest, AddSpecialAddsBosAndEosAsFlagged) {
  VocabSpec spec = SpmSpec({{S + "a", -1}});
  spec.add_eos = true;
  auto v = Make(spec);
  EXPECT_THAT(v->Encode("a", true, false), ElementsAre(1, Id(*v, S + "a"), 2));
  EXPECT_THAT(v->Encode("a", false, false), ElementsAre(Id(*v, S + "a")));
}

TEST(SpmVocabTest, ControlTokensParseOnlyWhenAskedUserDefinedAlways) {
  auto v = SmallSpm();
  const TokenId ctl = Id(*v, "<ctl>");
  const TokenId tool = Id(*v, "<tool>");
  // A special token restarts the text: the fragment after it gets a '▁' too.
  EXPECT_THAT(v->Encode("a<ctl>a", false, true), ElementsAre(Id(*v, S + "a"), ctl, Id(*v, S + "a")));
  const std::vector<TokenId> literal = v->Encode("a<ctl>a", false, false);
  EXPECT_THAT(literal, ::testing::Not(::testing::Contains(ctl)));
  EXPECT_EQ(v->Decode(literal), "a<ctl>a");
  EXPECT_THAT(v->Encode("<tool>a", false, false), ElementsAre(tool, Id(*v, S + "a")));
  EXPECT_THAT(v->Encode("<s>", false, true), ElementsAre(1));
}

TEST(SpmVocabTest, LongerSpecialTokensSplitFirst) {
  auto v = Make(SpmSpec({{S + "a", -1}, {"<t>", 0, TokenType::kUserDefined}, {"<t><t>", 0, TokenType::kUserDefined}}));
  EXPECT_THAT(v->Encode("<t><t><t>", false, false), ElementsAre(Id(*v, "<t><t>"), Id(*v, "<t>")));
}

TEST(SpmVocabTest, Phi3SpecialTokensSwallowFollowingWhitespace) {
  // llama.cpp gives Phi-3's added tokens (general.name "Phi3") rstrip, except
  // <unk>, <s> and <|endoftext|>.
  VocabSpec spec = SpmSpec({{S, -5}, {S + "a", -1}, {"<|end|>", 0, TokenType::kUserDefined}});
  spec.general_name = "Phi3";
  auto phi3 = Make(spec);
  const TokenId a = Id(*phi3, S + "a");
  const TokenId end = Id(*phi3, "<|end|>");
  EXPECT_THAT(phi3->Encode("a<|end|> \n a", false, true), ElementsAre(a, end, a));
  EXPECT_THAT(phi3->Encode("a<s> a", false, true), ElementsAre(a, 1, Id(*phi3, S), a));
  spec.general_name = "llama";
  auto plain = Make(spec);
  EXPECT_THAT(plain->Encode("a<|end|> a", false, true), ElementsAre(a, end, Id(*plain, S), a));
}

TEST(SpmVocabTest, PiecesRenderPerTokenType) {
  auto v = SmallSpm();
  EXPECT_EQ(v->TokenToPiece(Id(*v, S + "a")), " a");
  EXPECT_EQ(v->TokenToPiece(ByteId(*v, 0x0A)), "\n");
  EXPECT_EQ(v->TokenToPiece(Id(*v, "<tool>")), "<tool>");
  EXPECT_EQ(v->TokenToPiece(1), "");
  EXPECT_EQ(v->TokenToPiece(1, /*render_special=*/true), "<s>");
  EXPECT_EQ(v->TokenToPiece(0), "");
  EXPECT_EQ(v->TokenToPiece(-1), "");
  EXPECT_EQ(v->TokenToPiece(v->n_tokens()), "");
  EXPECT_EQ(v->token_text(v->n_tokens()), "");
}

TEST(SpmVocabTest, DecodeStripsTheLeadingSpaceAtStartAndAfterBos) {
  auto v = SmallSpm();
  const TokenId a = Id(*v, S + "a");
  EXPECT_EQ(v->Decode({a, a}), "a a");
  EXPECT_EQ(v->Decode({1, a, a}), "a a");
  EXPECT_EQ(v->Decode({Id(*v, "b"), a}), "b a");
  EXPECT_EQ(v->DecodePiece(a, 1), "a");
  EXPECT_EQ(v->DecodePiece(a, Id(*v, "b")), " a");
  EXPECT_EQ(v->Decode({}), "");
}

TEST(SpmVocabTest, EndOfGenerationTokensIncludeEosAndEotTexts) {
  auto v = SmallSpm();
  EXPECT_TRUE(v->IsEog(2));
  // llama.cpp treats "<|im_end|>" as EOG and control whatever its declared type.
  EXPECT_TRUE(v->IsEog(Id(*v, "<|im_end|>")));
  EXPECT_EQ(v->token_type(Id(*v, "<|im_end|>")), TokenType::kControl);
  EXPECT_FALSE(v->IsEog(1));
  EXPECT_FALSE(v->IsEog(-1));
  EXPECT_FALSE(v->IsEog(v->n_tokens()));
}

// A byte-level BPE vocabulary over all 256 byte characters plus merges.
VocabSpec BpeSpec(const std::vector<std::string>& merges, const std::vector<std::string>& extra = {}) {
  ByteLevelCodec codec;
  VocabSpec spec;
  spec.model = "gpt2";
  spec.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(codec.Encode(static_cast<uint8_t>(b)));
  for (const std::string& m : merges) {
    const size_t space = m.find(' ');
    spec.tokens.push_back(m.substr(0, space) + m.substr(space + 1));
  }
  for (const std::string& e : extra) spec.tokens.push_back(e);
  spec.merges = merges;
  return spec;
}

TEST(BpeVocabTest, MergesByRankAndMapsBytes) {
  // h e l l o: "l l" (rank 0), then "h e" (1), then "he ll" (2) -> hell o.
  // " world" is its own piece: "Ġ w" (3), then "o r" (4).
  auto v = Make(BpeSpec({"l l", "h e", "he ll", "Ġ w", "o r"}));
  EXPECT_THAT(v->Encode("hello world", false, false),
              ElementsAre(Id(*v, "hell"), Id(*v, "o"), Id(*v, "Ġw"), Id(*v, "or"), Id(*v, "l"), Id(*v, "d")));
  EXPECT_EQ(v->Decode(v->Encode("hello world", false, false)), "hello world");
  EXPECT_EQ(v->TokenToPiece(Id(*v, "Ġw")), " w");
}

TEST(BpeVocabTest, PreTokenizerKeepsPiecesApart) {
  // "o Ġ" could merge across the word boundary but pieces are encoded alone.
  auto v = Make(BpeSpec({"o Ġ"}));
  EXPECT_THAT(v->Encode("o o", false, false), ElementsAre(Id(*v, "o"), Id(*v, "Ġ"), Id(*v, "o")));
}

TEST(BpeVocabTest, InvalidUtf8IsEncodedBytewise) {
  auto v = Make(BpeSpec({"l l"}));
  const std::string text = "a\xFF\xC3 ll\xE2\x82";
  const std::vector<TokenId> ids = v->Encode(text, false, false);
  EXPECT_EQ(v->Decode(ids), text);
  EXPECT_THAT(ids, ::testing::Contains(Id(*v, "ll")));
}

TEST(BpeVocabTest, IgnoreMergesEmitsWholeTokens) {
  // "abc" is a token that the merges cannot build ("b c" then "a bc" would).
  VocabSpec spec = BpeSpec({"a b"}, {"abc"});
  spec.pre = "llama-bpe";
  spec.ignore_merges = true;
  auto v = Make(spec);
  EXPECT_THAT(v->Encode("abc", false, false), ElementsAre(Id(*v, "abc")));
  spec.ignore_merges = false;
  auto plain = Make(spec);
  EXPECT_THAT(plain->Encode("abc", false, false), ElementsAre(Id(*plain, "ab"), Id(*plain, "c")));
}

TEST(BpeVocabTest, UserDefinedTokensRenderAsTheirText) {
  VocabSpec spec = BpeSpec({}, {"  ", "<|endoftext|>"});
  spec.types.assign(spec.tokens.size(), TokenType::kNormal);
  spec.types[256] = TokenType::kUserDefined;
  spec.types[257] = TokenType::kControl;
  auto v = Make(spec);
  EXPECT_THAT(v->Encode("a  b", false, false), ElementsAre(Id(*v, "a"), 256, Id(*v, "b")));
  EXPECT_EQ(v->TokenToPiece(256), "  ");
  EXPECT_THAT(v->Encode("<|endoftext|>", false, true), ElementsAre(257));
  EXPECT_TRUE(v->IsEog(257));
}

// A "bert" vocabulary: [PAD] [UNK] [CLS] [SEP], then pieces ('▁' = word start).
std::unique_ptr<Vocab> SmallWpm(const std::vector<std::string>& pieces) {
  VocabSpec spec;
  spec.model = "bert";
  spec.tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  spec.types.assign(4, TokenType::kControl);
  for (const std::string& p : pieces) {
    spec.tokens.push_back(p);
    spec.types.push_back(TokenType::kNormal);
  }
  spec.pad = 0;
  spec.unk = 1;
  spec.bos = 2;
  spec.sep = 3;
  spec.add_bos = true;
  spec.add_sep = true;
  spec.add_space_prefix = true;
  spec.lowercase = true;
  return Make(spec);
}

TEST(WpmVocabTest, SpellsWordsGreedilyAndFramesWithClsSep) {
  auto v = SmallWpm({S + "un", S + "unaff", "aff", "able", S + "!", S + "cafe"});
  EXPECT_THAT(v->Encode("unaffable", false, false), ElementsAre(Id(*v, S + "unaff"), Id(*v, "able")));
  EXPECT_THAT(v->Encode("Unaffable!", true, false),
              ElementsAre(2, Id(*v, S + "unaff"), Id(*v, "able"), Id(*v, S + "!"), 3));
  EXPECT_EQ(v->Decode(v->Encode("unaffable !", false, false)), "unaffable !");
}

TEST(WpmVocabTest, NormalizesLikeBert) {
  const std::string zhong = "\xE4\xB8\xAD";  // U+4E2D, an ideograph
  auto v = SmallWpm({S + "cafe", S + "ab", S + zhong, S + "x"});
  // Lower-cased, accents stripped (NFD, then no \p{Mn}), format characters dropped.
  EXPECT_THAT(v->Encode("CAF\xC3\x89", false, false), ElementsAre(Id(*v, S + "cafe")));
  EXPECT_THAT(v->Encode("a\xE2\x80\x8B" "b", false, false), ElementsAre(Id(*v, S + "ab")));
  // Ideographs are words of their own; any whitespace (here U+3000) separates.
  EXPECT_THAT(v->Encode("x" + zhong + "x\xE3\x80\x80x", false, false),
              ElementsAre(Id(*v, S + "x"), Id(*v, S + zhong), Id(*v, S + "x"), Id(*v, S + "x")));
}

TEST(WpmVocabTest, UnspellableAndOverlongWordsBecomeUnk) {
  auto v = SmallWpm({S + "a", "a"});
  EXPECT_THAT(v->Encode("ab a", false, false), ElementsAre(1, Id(*v, S + "a")));
  EXPECT_EQ(v->Encode(std::string(100, 'a'), false, false).size(), 100u);
  EXPECT_THAT(v->Encode(std::string(101, 'a'), false, false), ElementsAre(1));
  EXPECT_THAT(v->Encode("\xFF\xFE", false, false), ElementsAre());
}

Status MakeStatus(VocabSpec spec) {
  std::unique_ptr<Vocab> vocab;
  return MakeVocab(spec, &vocab);
}

void ExpectCorrupt(const VocabSpec& spec, const std::string& what) {
  const Status s = MakeStatus(spec);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr(what));
}

TEST(VocabValidationTest, RejectsInconsistentTables) {
  VocabSpec dup = SpmSpec({{"x", 0}, {"x", 0}});
  ExpectCorrupt(dup, "appears twice");
  VocabSpec scores = SpmSpec({{"x", 0}});
  scores.scores.pop_back();
  ExpectCorrupt(scores, "scores for");
  VocabSpec types = SpmSpec({{"x", 0}});
  types.types.push_back(TokenType::kNormal);
  ExpectCorrupt(types, "types for");
  VocabSpec nan = SpmSpec({{"x", std::nanf("")}});
  ExpectCorrupt(nan, "NaN");
  VocabSpec byte = SpmSpec({{"<0xZZ>", 0, TokenType::kByte}});
  ExpectCorrupt(byte, "<0xXX>");
  VocabSpec empty;
  empty.model = "llama";
  ExpectCorrupt(empty, "no tokens");
}

TEST(VocabValidationTest, RejectsSpecialIdsOutsideTheVocabulary) {
  VocabSpec bos = SpmSpec({});
  bos.bos = static_cast<TokenId>(bos.tokens.size());
  ExpectCorrupt(bos, "BOS token id");
  VocabSpec eot = SpmSpec({});
  eot.eot = -7;
  ExpectCorrupt(eot, "EOT token id");
  VocabSpec flag = SpmSpec({});
  flag.bos = -1;
  ExpectCorrupt(flag, "add_bos_token");
}

TEST(VocabValidationTest, RejectsMergesThatDoNotNameTokens) {
  VocabSpec no_space = BpeSpec({});
  no_space.merges = {"ab"};
  ExpectCorrupt(no_space, "not of the form");
  VocabSpec unknown = BpeSpec({});
  unknown.merges = {"a zz"};
  ExpectCorrupt(unknown, "names a token that is not in the vocabulary");
  VocabSpec result = BpeSpec({});
  result.merges = {"a b"};
  ExpectCorrupt(result, "merged token is not in the vocabulary");
}

TEST(VocabValidationTest, NamesUnsupportedModelsAndPreTokenizers) {
  VocabSpec t5 = SpmSpec({});
  t5.model = "t5";
  Status s = MakeStatus(t5);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("'t5'"));
  VocabSpec pre = BpeSpec({});
  pre.pre = "klingon";
  s = MakeStatus(pre);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("'klingon'"));
}

}  // namespace
}  // namespace strata
