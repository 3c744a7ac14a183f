// The GBNF parser: structure of what it builds, llama.cpp's example grammars
// (from the peer's source bundle), and an error naming line and column for
// every kind of bad input.
#include "grammar/gbnf_parser.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "grammar_test_util.h"

namespace strata::grammar {
namespace {

Grammar MustParse(std::string_view text, const GbnfOptions& options = {}) {
  Grammar g;
  const Status s = ParseGbnf(text, options, &g);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << text;
  return g;
}

std::string ErrorOf(std::string_view text, const GbnfOptions& options = {}) {
  Grammar g;
  const Status s = ParseGbnf(text, options, &g);
  EXPECT_FALSE(s.ok()) << text;
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << text;
  return s.message();
}

// A rule's body as text: c(lo-hi,...) for classes, r(name), t(id), !t(id), | and ;.
std::string Body(const Grammar& g, const std::string& rule) {
  uint32_t r = 0;
  while (r < g.rule_names.size() && g.rule_names[r] != rule) ++r;
  if (r == g.rule_names.size()) return "no rule " + rule;
  std::ostringstream out;
  for (uint32_t p = g.rule_start[r];; ++p) {
    const Element& e = g.elements[p];
    switch (e.kind) {
      case ElementKind::kEnd: out << ";"; return out.str();
      case ElementKind::kAlt: out << "| "; break;
      case ElementKind::kRule: out << "r(" << g.rule_names[e.value] << ") "; break;
      case ElementKind::kToken: out << "t(" << e.value << ") "; break;
      case ElementKind::kNotToken: out << "!t(" << e.value << ") "; break;
      case ElementKind::kChars: {
        out << "c(";
        const CharClass& c = g.classes[e.value];
        for (size_t i = 0; i < c.ranges.size(); ++i) {
          if (i > 0) out << ",";
          out << std::hex << c.ranges[i].first;
          if (c.ranges[i].second != c.ranges[i].first) out << "-" << c.ranges[i].second;
          out << std::dec;
        }
        out << ") ";
        break;
      }
    }
  }
}

TEST(GbnfParser, RulesAlternativesLiteralsAndClasses) {
  const Grammar g = MustParse("root ::= \"ab\" [b-d] | x\nx ::= [^\"\\\\] . | \n");
  EXPECT_EQ(g.rule_names[g.root], "root");
  EXPECT_EQ(Body(g, "root"), "c(61) c(62) c(62-64) | r(x) ;");
  // [^"\\] is the complement of {", \}; "." is every code point; the last alternative is empty.
  EXPECT_EQ(Body(g, "x"), "c(0-21,23-5b,5d-10ffff) c(0-10ffff) | ;");
}

TEST(GbnfParser, EscapesAndUtf8) {
  const Grammar g = MustParse(R"(root ::= "\x41\u00e9\U0001F600\t\r\n\\\"\[\]\-" [ぁ-ゟ])");
  EXPECT_EQ(Body(g, "root"), "c(41) c(e9) c(1f600) c(9) c(d) c(a) c(5c) c(22) c(5b) c(5d) c(2d) c(3041-309f) ;");
}

TEST(GbnfParser, DashAtTheEndOfAClassIsLiteral) {
  EXPECT_EQ(Body(MustParse("root ::= [-+] [a-]"), "root"), "c(2b,2d) c(2d,61) ;");
}

TEST(GbnfParser, ClassesAreNormalized) {
  const Grammar g = MustParse("root ::= [c-fa-db] [^\\x00-\\U0010FFFF] [^]");
  EXPECT_EQ(Body(g, "root"), "c(61-66) c() c(0-10ffff) ;");
  const CharClass& c = g.classes[g.elements[0].value];
  EXPECT_TRUE(c.Contains('a'));
  EXPECT_TRUE(c.Contains('f'));
  EXPECT_FALSE(c.Contains('g'));
  EXPECT_TRUE(c.Intersects('f', 'z'));
  EXPECT_FALSE(c.Intersects('g', 'z'));
}

TEST(GbnfParser, RepetitionsExpandToNestedOptionals) {
  // S{2,4}: S S R2, R2 ::= S R1 | "", R1 ::= S | "".
  const Grammar g = MustParse("root ::= \"a\"{2,4}");
  EXPECT_EQ(Body(g, "root"), "c(61) c(61) r(root_2) ;");
  EXPECT_EQ(Body(g, "root_2"), "c(61) r(root_1) | ;");
  EXPECT_EQ(Body(g, "root_1"), "c(61) | ;");
  // A literal repeats whole, as in llama.cpp: "ab"* is (ab)*.
  EXPECT_EQ(Body(MustParse("root ::= \"ab\"*"), "root_1"), "c(61) c(62) r(root_1) | ;");
  EXPECT_EQ(Body(MustParse("root ::= x+\nx ::= \"x\""), "root"), "r(x) r(root_2) ;");
  EXPECT_EQ(Body(MustParse("root ::= x?\nx ::= \"x\""), "root_2"), "r(x) | ;");
  EXPECT_EQ(Body(MustParse("root ::= [0-9]{3}"), "root"), "c(30-39) c(30-39) c(30-39) ;");
  EXPECT_EQ(Body(MustParse("root ::= \"a\"{0}"), "root"), ";");
  EXPECT_EQ(Body(MustParse("root ::= \"a\" { 1 , } \"b\""), "root"), "c(61) r(root_1) c(62) ;");
}

TEST(GbnfParser, NewlinesEndARuleOutsideParentheses) {
  const Grammar g = MustParse(
      "# comment\r\n"
      "root ::=\n"
      "  x (\"a\"\n"
      "   | \"b\") |\n"
      "  y  # trailing comment\n"
      "x ::= \"x\"\n"
      "y ::= \"y\"");
  EXPECT_EQ(Body(g, "root"), "r(x) r(root_2) | r(y) ;");
  EXPECT_EQ(Body(g, "root_2"), "c(61) | c(62) ;");
}

TEST(GbnfParser, Tokens) {
  GbnfOptions o;
  o.n_vocab = 100;
  o.token_of_text = [](std::string_view text) -> std::optional<int32_t> {
    if (text == "<think>") return 42;
    return std::nullopt;
  };
  EXPECT_EQ(Body(MustParse("root ::= <[7]> !<[8]> <think> !<think>", o), "root"), "t(7) !t(8) t(42) !t(42) ;");
  EXPECT_EQ(ErrorOf("root ::= <[100]>", o), "line 1, column 10: token id 100 is not in the vocabulary (100 tokens)");
  EXPECT_EQ(ErrorOf("root ::= <nope>", o), "line 1, column 10: '<nope>' is not exactly one token of the vocabulary");
  EXPECT_EQ(ErrorOf("root ::= <think>"), "line 1, column 10: token '<think>' needs a vocabulary to be resolved; use <[id]>");
  EXPECT_EQ(ErrorOf("root ::= !\"a\""), "line 1, column 11: expected '<' after '!', found '\"'");
  EXPECT_EQ(ErrorOf("root ::= <[12"), "line 1, column 14: expected ']>' after the token id, found the end of the grammar");
  EXPECT_EQ(ErrorOf("root ::= <abc"), "line 1, column 10: the token reference is not closed with '>'");
}

TEST(GbnfParser, ErrorsNameLineAndColumn) {
  const std::pair<const char*, const char*> cases[] = {
      {"root ::= foo", "line 1, column 10: rule 'foo' is used but never defined"},
      {"root ::= \"abc", "line 1, column 14: the string literal is not closed"},
      {"root ::= [abc", "line 1, column 10: the character class is not closed"},
      {"root ::= x\nx ::= (\"a\"\n  \"b\"", "line 3, column 6: expected ')' to close the group opened at line 2, column 7, "
                                          "found the end of the grammar"},
      {"root := x", "line 1, column 6: expected '::=' after the rule name 'root', found ':'"},
      {"::= x", "line 1, column 1: expected a rule name, found ':'"},
      {"x ::= \"a\"", "the grammar has no 'root' rule"},
      {"root ::= \"a\"{3,2}", "line 1, column 18: the repetition {3,2} has its maximum below its minimum"},
      {"root ::= \"a\"{2001}", "line 1, column 14: a repetition count is at most 2000"},
      {"root ::= \"a\"{1,99999999999999999999999}", "line 1, column 16: a repetition count is at most 2000"},
      {"root ::= \"a\"{x}", "line 1, column 14: expected a number in the repetition, found 'x'"},
      {"root ::= \"a\"{1;", "line 1, column 15: expected ',' or '}' in the repetition, found ';'"},
      {"root ::= \"a\"{1,2", "line 1, column 17: expected '}' to close the repetition, found the end of the grammar"},
      {"root ::= *", "line 1, column 10: '*' has nothing before it to repeat"},
      {"root ::= \"\\q\"", "line 1, column 11: unknown escape (\\x \\u \\U \\t \\r \\n \\\\ \\\" \\[ \\] \\- are known)"},
      {"root ::= \"\\x4\"", "line 1, column 14: expected 2 hex digits after \\x, found '\"'"},
      {"root ::= \"\\U00110000\"", "line 1, column 11: U+110000 is beyond the last code point U+10FFFF"},
      {"root ::= [z-a]", "line 1, column 11: the range U+007A-U+0061 is reversed"},
      {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' is defined twice (first at line 1, column 1)"},
      {"root ::= \"\xff\"", "line 1, column 11: invalid UTF-8"},
      {"root ::= \"é\" )", "line 1, column 14: expected the end of the line after rule 'root', found ')'"},
      {"root ::= \"a\" \x01", "line 1, column 14: expected the end of the line after rule 'root', found U+0001"},
      {"root ::= \"\\", "line 1, column 11: the grammar ends inside an escape"},
  };
  for (const auto& [text, message] : cases) EXPECT_EQ(ErrorOf(text), message) << text;
}

TEST(GbnfParser, LeftRecursionIsRefused) {
  EXPECT_EQ(ErrorOf("root ::= root \"a\" | \"b\""),
            "rule 'root' is left-recursive (it can start with itself), which GBNF does not support");
  // Through a nullable prefix and an indirection.
  EXPECT_EQ(ErrorOf("root ::= x\nx ::= \"a\"? y\ny ::= \"\" x \"b\""),
            "rule 'x' is left-recursive (it can start with itself), which GBNF does not support");
  // Right and middle recursion are fine.
  MustParse("root ::= \"(\" root \")\" | \"a\" root | \"\"");
}

TEST(GbnfParser, SizeAndDepthAreBounded) {
  std::string deep = "root ::= " + std::string(kMaxNesting + 1, '(') + "\"a\"" + std::string(kMaxNesting + 1, ')');
  EXPECT_EQ(ErrorOf(deep), "line 1, column 266: groups nest deeper than 256 levels");
  MustParse("root ::= " + std::string(kMaxNesting, '(') + "\"a\"" + std::string(kMaxNesting, ')'));
  const std::string wide = "root ::= \"" + std::string(1000, 'a') + "\"{2000}";
  EXPECT_NE(ErrorOf(wide).find("expands to more than 1048576 elements"), std::string::npos);
  EXPECT_EQ(ErrorOf(std::string(kMaxGbnfBytes + 1, ' ')), "the grammar has 4194305 bytes; at most 4194304 are accepted");
  // Repetitions of groups stay small: a group is one reference.
  MustParse("root ::= ((\"a\"{1000}){1000}){1000}");
}

TEST(GbnfParser, LlamaCppExampleGrammars) {
  const std::string dir = testing::LlamaCppGrammarsDir();
  if (dir.empty()) {
    if (testing::PeerSourceRequired()) FAIL() << "llama.cpp's grammars are not available (bench/install_llamacpp.sh)";
    GTEST_SKIP() << "llama.cpp's source bundle is not installed (bench/install_llamacpp.sh)";
  }
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".gbnf") continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    Grammar g;
    const Status s = ParseGbnf(text.str(), {}, &g);
    EXPECT_TRUE(s.ok()) << entry.path() << ": " << s.ToString();
    ++n;
  }
  EXPECT_GE(n, 8);  // arithmetic, c, chess, english, japanese, json, json_arr, list
}

}  // namespace
}  // namespace strata::grammar
