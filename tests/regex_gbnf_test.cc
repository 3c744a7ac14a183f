// Regex -> GBNF: full matches of the supported subset, and each unsupported
// feature refused by name and position.
#include "grammar/regex_gbnf.h"

#include <gtest/gtest.h>

#include "grammar_test_util.h"

namespace strata::grammar {
namespace {

bool FullMatch(const char* regex, const std::string& text) {
  std::string gbnf;
  const Status s = RegexGrammar(regex, &gbnf);
  EXPECT_TRUE(s.ok()) << regex << ": " << s.ToString();
  return s.ok() && testing::Matches(gbnf, text);
}

std::string ErrorOf(const char* regex) {
  std::string gbnf;
  const Status s = RegexGrammar(regex, &gbnf);
  EXPECT_FALSE(s.ok()) << regex;
  return s.message();
}

TEST(RegexGbnf, FullMatchesOfTheSubset) {
  EXPECT_TRUE(FullMatch(R"(\d{3}-\d{4})", "555-1234"));
  EXPECT_FALSE(FullMatch(R"(\d{3}-\d{4})", "555-123"));
  EXPECT_TRUE(FullMatch("^(yes|no)$", "yes"));
  EXPECT_FALSE(FullMatch("^(yes|no)$", "yesno"));
  EXPECT_TRUE(FullMatch("[a-c]+x?", "abcab"));
  EXPECT_TRUE(FullMatch("[^a-c]*", "xyz!"));
  EXPECT_FALSE(FullMatch("[^a-c]*", "xaz"));
  EXPECT_TRUE(FullMatch(R"((?:ab)+?\.(?<ext>txt|md))", "abab.md"));
  EXPECT_TRUE(FullMatch(R"((?P<n>\w+)\s\S)", "hello_1 x"));
  EXPECT_TRUE(FullMatch("a.c", "a\xC3\xA9" "c"));
  EXPECT_FALSE(FullMatch("a.c", "a\nc"));
  EXPECT_TRUE(FullMatch(R"(\x41\u00e9[\d\-]{2,}\[\])", "Aé1-2[]"));
  EXPECT_TRUE(FullMatch("a{2}b{1,}c{0,1}", "aabbb"));
  EXPECT_TRUE(FullMatch("(a|)b", "b"));
  EXPECT_TRUE(FullMatch("", ""));
}

TEST(RegexGbnf, JsonStringTargetEscapesWhatJsonEscapes) {
  RegexGbnf r;
  ASSERT_TRUE(RegexToGbnf(R"(a"b\\c\n[\t"])", RegexTarget::kJsonString, &r).ok());
  const std::string gbnf = "root ::= " + r.expr + "\n";
  EXPECT_TRUE(testing::Matches(gbnf, R"(a\"b\\c\n\t)"));
  EXPECT_TRUE(testing::Matches(gbnf, R"(a\"b\\c\n\")"));
  EXPECT_FALSE(testing::Matches(gbnf, "a\"b\\c\n\t"));
}

TEST(RegexGbnf, UnsupportedFeaturesAreNamed) {
  EXPECT_EQ(ErrorOf(R"((a)\1)"), "a backreference \\1 (at position 3 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("a(?=b)"), "lookahead (at position 1 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("(?<!a)b"), "lookbehind (at position 0 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("(?>a)"), "an atomic group (at position 0 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("(?i)a"), "an inline flag or other (? construct (at position 0 of the regex) is not supported");
  EXPECT_EQ(ErrorOf(R"(\bword)"), "a word boundary \\b (at position 0 of the regex) is not supported");
  EXPECT_EQ(ErrorOf(R"(\p{L})"), "a Unicode property class \\p (at position 0 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("a*+"), "a possessive quantifier (at position 2 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("a^b"), "'^' after the start of the pattern (at position 1 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("a$b"), "'$' before the end of the pattern (at position 1 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("[[:alpha:]]"), "a POSIX class [:...:] (at position 1 of the regex) is not supported");
  EXPECT_EQ(ErrorOf("(ab"), "'(' is not closed at position 3 of the regex");
  EXPECT_EQ(ErrorOf("ab)"), "')' has no '(' to close at position 2 of the regex");
  EXPECT_EQ(ErrorOf("[ab"), "'[' is not closed at position 0 of the regex");
  EXPECT_EQ(ErrorOf("*a"), "'*' has nothing before it to repeat at position 0 of the regex");
  EXPECT_EQ(ErrorOf("a{2,1}"), "the repetition's maximum is below its minimum at position 6 of the regex");
  EXPECT_EQ(ErrorOf("a{3001}"), "a repetition count is at most 2000 at position 6 of the regex");
  EXPECT_EQ(ErrorOf("a{x}"), "expected a number in the repetition at position 2 of the regex");
  EXPECT_EQ(ErrorOf("[z-a]"), "the class range is reversed at position 4 of the regex");
  EXPECT_EQ(ErrorOf(R"(\q)"), "unknown escape \\q at position 0 of the regex");
  EXPECT_EQ(ErrorOf("a\\"), "the regex ends with a lone backslash at position 2 of the regex");
  EXPECT_EQ(ErrorOf("\xff"), "the regex is not valid UTF-8");
  std::string deep(101, '(');
  EXPECT_EQ(ErrorOf(deep.c_str()), "groups nest deeper than 100 levels at position 100 of the regex");
}

}  // namespace
}  // namespace strata::grammar
