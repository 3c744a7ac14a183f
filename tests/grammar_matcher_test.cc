// The grammar matcher over the bundled model's vocabulary: what texts a
// grammar matches (byte by byte, UTF-8 decoded strictly), that the allowed
// tokens it reports by walking the token trie are exactly the tokens Accept
// takes, token elements, end of generation, and the stack bound.
#include "grammar/grammar_matcher.h"

#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "engine/sampler.h"

#include "grammar_test_util.h"

namespace strata::grammar {
namespace {

using testing::AcceptBytes;
using testing::Allowed;
using testing::ByteTokens;
using testing::Matches;
using testing::MatcherFor;

// A JSON grammar (RFC 8259 values, no leading/trailing whitespace).
constexpr const char* kJson = R"(
root   ::= value
value  ::= object | array | string | number | "true" | "false" | "null"
object ::= "{" ws ( member ( "," ws member )* )? "}"
member ::= string ws ":" ws value ws
array  ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} ) )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
ws     ::= [ \t\n]*
)";

TEST(GrammarMatcher, MatchesWholeTextsOnly) {
  EXPECT_TRUE(Matches(kJson, R"({"a": [1, -2.5e3, true, null], "b": {"c": "d\n\u00e9"}})"));
  EXPECT_TRUE(Matches(kJson, "[]"));
  EXPECT_TRUE(Matches(kJson, "\"\""));
  EXPECT_FALSE(Matches(kJson, "{\"a\": 1"));        // a prefix: accepted so far, cannot end
  EXPECT_FALSE(Matches(kJson, "{\"a\": 01}"));      // refused at the second digit
  EXPECT_FALSE(Matches(kJson, "[1,]"));
  EXPECT_FALSE(Matches(kJson, "\"\x01\""));
  EXPECT_FALSE(Matches(kJson, "\"\\x\""));
  EXPECT_FALSE(Matches(kJson, "tru"));
  EXPECT_FALSE(Matches(kJson, "truee"));
}

TEST(GrammarMatcher, PrefixIsAcceptedButCannotEnd) {
  auto m = MatcherFor(kJson);
  EXPECT_TRUE(AcceptBytes(*m, "{\"a\": 1"));
  EXPECT_FALSE(m->CanEnd());
  EXPECT_TRUE(AcceptBytes(*m, "}"));
  EXPECT_TRUE(m->CanEnd());
}

TEST(GrammarMatcher, RefusedTokenLeavesTheStateAlone) {
  auto m = MatcherFor("root ::= \"ab\"");
  EXPECT_TRUE(AcceptBytes(*m, "a"));
  EXPECT_FALSE(m->Accept(ByteTokens()['x']));
  EXPECT_TRUE(AcceptBytes(*m, "b"));
  EXPECT_TRUE(m->CanEnd());
}

TEST(GrammarMatcher, RepetitionCounts) {
  const char* g = "root ::= [0-9]{2,4} \"x\"{0,2}";
  EXPECT_FALSE(Matches(g, "1"));
  EXPECT_TRUE(Matches(g, "12"));
  EXPECT_TRUE(Matches(g, "1234xx"));
  EXPECT_FALSE(Matches(g, "12345"));
  EXPECT_FALSE(Matches(g, "12xxx"));
  EXPECT_TRUE(Matches("root ::= (\"ab\" | \"c\")+", "abcab"));
  EXPECT_FALSE(Matches("root ::= (\"ab\" | \"c\")+", ""));
  EXPECT_TRUE(Matches("root ::= \"a\"?", ""));
}

TEST(GrammarMatcher, Utf8IsDecodedStrictly) {
  const char* hiragana = "root ::= [ぁ-ゟ]+";
  EXPECT_TRUE(Matches(hiragana, "あいう"));
  EXPECT_FALSE(Matches(hiragana, "ア"));                 // katakana: outside the class
  EXPECT_FALSE(Matches("root ::= .", "\xC0\x81"));       // overlong 'A'
  EXPECT_FALSE(Matches("root ::= .", "\xE0\x80\x81"));   // overlong
  EXPECT_FALSE(Matches("root ::= .", "\xED\xA0\x80"));   // a surrogate
  EXPECT_FALSE(Matches("root ::= .", "\xF4\x90\x80\x80"));  // beyond U+10FFFF
  EXPECT_FALSE(Matches("root ::= .", "\x80"));           // a stray continuation byte
  EXPECT_TRUE(Matches("root ::= .", "\xF0\x9F\x98\x80"));   // U+1F600
  EXPECT_TRUE(Matches("root ::= [^a]", "\xC3\xA9"));     // é
}

TEST(GrammarMatcher, PartialCharacterAllowsOnlyCompletionsTheGrammarTakes) {
  // あ is E3 81 82; ア is E3 82 A2; the class holds hiragana only.
  auto m = MatcherFor("root ::= [ぁ-ゟ]");
  ASSERT_TRUE(AcceptBytes(*m, "\xE3"));
  const auto mask = m->AllowedTokens();
  EXPECT_TRUE(Allowed(mask, ByteTokens()[0x81]));
  EXPECT_TRUE(Allowed(mask, ByteTokens()[0x82]));  // ゠-ゟ (U+30A0..) start E3 82 A0
  EXPECT_FALSE(Allowed(mask, ByteTokens()[0x83]));
  EXPECT_FALSE(Allowed(mask, ByteTokens()['a']));
  EXPECT_FALSE(m->CanEnd());
  EXPECT_FALSE(Allowed(mask, testing::Stories260K().vocab().eos()));
}

TEST(GrammarMatcher, EndOfGenerationOnlyWhenTheGrammarCanEnd) {
  const int32_t eos = testing::Stories260K().vocab().eos();
  auto m = MatcherFor("root ::= \"a\" \"b\"?");
  EXPECT_FALSE(Allowed(m->AllowedTokens(), eos));
  EXPECT_FALSE(m->Accept(eos));
  ASSERT_TRUE(AcceptBytes(*m, "a"));
  EXPECT_TRUE(Allowed(m->AllowedTokens(), eos));
  EXPECT_TRUE(Allowed(m->AllowedTokens(), ByteTokens()['b']));
  ASSERT_TRUE(AcceptBytes(*m, "b"));
  // Only the end is left: nothing but end-of-generation tokens.
  const auto mask = m->AllowedTokens();
  for (int32_t t = 0; t < testing::Stories260K().vocab().n_tokens(); ++t)
    EXPECT_EQ(Allowed(mask, t), testing::Stories260K().vocab().IsEog(t)) << t;
  EXPECT_TRUE(m->Accept(eos));
}

TEST(GrammarMatcher, MultiByteTokensAreMatchedByTheirText) {
  const Vocab& v = testing::Stories260K().vocab();
  // Some token whose piece is more than one character, e.g. " the".
  int32_t word = -1;
  for (int32_t t = 0; t < v.n_tokens() && word < 0; ++t)
    if (v.TokenToPiece(t) == " the") word = t;
  ASSERT_GE(word, 0);
  auto m = MatcherFor("root ::= (\" the\" | \" then\")+");
  EXPECT_TRUE(Allowed(m->AllowedTokens(), word));
  ASSERT_TRUE(m->Accept(word));
  EXPECT_TRUE(m->CanEnd());
  // " the" may go on to " then"; " they" is no word of the grammar.
  EXPECT_FALSE(m->Accept(ByteTokens()['y']));
  EXPECT_TRUE(AcceptBytes(*m, "n"));
  EXPECT_TRUE(m->CanEnd());
  EXPECT_TRUE(AcceptBytes(*m, " the"));
}

// AllowedTokens (the trie walk) agrees with Accept on every token, along
// random walks through the grammar's allowed tokens.
TEST(GrammarMatcher, AllowedTokensAreExactlyWhatAcceptTakes) {
  const Vocab& v = testing::Stories260K().vocab();
  std::mt19937 rng(7);
  for (const char* gbnf : {kJson, "root ::= [ぁ-ゟa-z ]+ \"。\"", "root ::= (\" the\" | \"cat\" [0-9]{1,3})+ \".\""}) {
    const auto g = testing::ParsedGrammar(gbnf);
    for (int walk = 0; walk < 3; ++walk) {
      auto m = MatcherFor(g);
      std::vector<int32_t> history;
      for (int step = 0; step < 20; ++step) {
        const auto mask = m->AllowedTokens();
        std::vector<int32_t> allowed;
        for (int32_t t = 0; t < v.n_tokens(); ++t) {
          auto probe = MatcherFor(g);
          for (const int32_t h : history) ASSERT_TRUE(probe->Accept(h));
          ASSERT_EQ(m->Allows(t), Allowed(mask, t)) << gbnf << " token " << t;
          const bool takes = probe->Accept(t);
          ASSERT_EQ(Allowed(mask, t), takes) << gbnf << " token " << t << " '" << v.TokenToPiece(t) << "' after "
                                             << history.size() << " tokens";
          if (takes && !v.IsEog(t)) allowed.push_back(t);
        }
        if (allowed.empty()) break;
        const int32_t next = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        ASSERT_TRUE(m->Accept(next));
        history.push_back(next);
      }
    }
  }
}

TEST(GrammarMatcher, StatesAreReused) {
  auto m = MatcherFor(kJson);
  ASSERT_TRUE(AcceptBytes(*m, "{\"key\": \""));
  m->AllowedTokens();
  const size_t states = m->n_states();
  // Inside a string every character leads back to the same state: no new states, the same mask.
  ASSERT_TRUE(AcceptBytes(*m, "abcdefgh"));
  m->AllowedTokens();
  EXPECT_EQ(m->n_states(), states);
}

TEST(GrammarMatcher, TokenElements) {
  const Vocab& v = testing::Stories260K().vocab();
  const int32_t bos = v.bos();  // a control token: no text, reachable only as a token element
  auto m = MatcherFor("root ::= <[" + std::to_string(bos) + "]> \"a\" !<[" + std::to_string(ByteTokens()['b']) + "]>");
  auto mask = m->AllowedTokens();
  for (int32_t t = 0; t < v.n_tokens(); ++t) EXPECT_EQ(Allowed(mask, t), t == bos) << t;
  ASSERT_TRUE(m->Accept(bos));
  ASSERT_TRUE(AcceptBytes(*m, "a"));
  mask = m->AllowedTokens();
  EXPECT_FALSE(Allowed(mask, ByteTokens()['b']));
  EXPECT_TRUE(Allowed(mask, ByteTokens()['c']));
  EXPECT_TRUE(Allowed(mask, bos));
  EXPECT_FALSE(Allowed(mask, v.eos()));
  EXPECT_TRUE(m->Accept(ByteTokens()['c']));
  EXPECT_TRUE(m->CanEnd());
  // A token element naming an id beyond the vocabulary is refused when the matcher is made.
  auto g = std::make_shared<Grammar>();
  ASSERT_TRUE(ParseGbnf("root ::= <[600]>", {}, g.get()).ok());
  std::unique_ptr<GrammarMatcher> bad;
  EXPECT_EQ(GrammarMatcher::Create(g, testing::Stories260KTrie(), &bad).message(),
            "the grammar names token 600; the vocabulary has 512 tokens");
}

TEST(GrammarMatcher, AmbiguityBeyondTheStackBoundIsReported) {
  // After n a's the parse could close with any of 2^n strings of b/c, each
  // under 4 tops (the two "a" alternatives, "b", "c"): 2^(n+2) stacks.
  auto m = MatcherFor("root ::= s\ns ::= \"a\" s \"b\" | \"a\" s \"c\" | \"\"");
  int accepted = 0;
  while (accepted < 20 && m->Accept(ByteTokens()['a'])) ++accepted;
  EXPECT_EQ(accepted, 6);  // 2^8 = 256 = kMaxStacks
  EXPECT_FALSE(m->Accept(ByteTokens()['a']));
  EXPECT_TRUE(m->overflowed());
}

}  // namespace
}  // namespace strata::grammar

namespace strata {
namespace {

// Under a grammar the sampler draws from the allowed tokens only; whether it
// finds the best ones by probing (a state met for the first time) or from
// the state's mask, the same tokens come out for the same seed.
TEST(GrammarSampling, ProbingAndMaskPickTheSameTokens) {
  const Vocab& v = testing::Stories260K().vocab();
  const auto g = testing::ParsedGrammar(R"(
root   ::= "{" ws "\"a\":" ws ( [0-9]+ | "\"" [^"\\]{0,12} "\"" ) ( "," ws "\"b\":" ws ("true" | "false") )? ws "}"
ws     ::= [ \n]{0,3}
)");
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (const auto& [temperature, top_k, penalty] :
       std::vector<std::tuple<float, int, float>>{{0.0f, 0, 1.0f}, {1.0f, 40, 1.0f}, {0.8f, 5, 1.3f}, {1.0f, 0, 1.0f}}) {
    int probed = 0;  // steps where the probing sampler did without the mask
    for (uint64_t seed = 0; seed < 6; ++seed) {
      SamplerParams p;
      p.temperature = temperature;
      p.top_k = top_k;
      p.repeat_penalty = penalty;
      p.seed = seed;
      Sampler probing(p), masked(p);
      probing.set_grammar(testing::MatcherFor(g));
      masked.set_grammar(testing::MatcherFor(g));
      std::string text;
      for (int step = 0; step < 80; ++step) {
        std::vector<float> logits(static_cast<size_t>(v.n_tokens()));
        for (float& x : logits) x = normal(rng);
        masked.grammar()->AllowedTokens();  // the mask is known: Sample uses it
        const int32_t a = probing.Sample(logits.data(), v.n_tokens());
        probed += probing.grammar()->HasAllowedTokens() ? 0 : 1;
        const int32_t b = masked.Sample(logits.data(), v.n_tokens());
        ASSERT_EQ(a, b) << "step " << step << " seed " << seed << " after '" << text << "'";
        ASSERT_GE(a, 0);
        ASSERT_TRUE(testing::Allowed(masked.grammar()->AllowedTokens(), a));
        if (v.IsEog(a)) break;
        ASSERT_TRUE(probing.Accept(a));
        ASSERT_TRUE(masked.Accept(a));
        text += v.TokenToPiece(a);
      }
    }
    if (temperature <= 0 || top_k > 0) EXPECT_GT(probed, 0) << "top_k " << top_k;
  }
}

}  // namespace
}  // namespace strata
