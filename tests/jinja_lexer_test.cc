// The Jinja lexer: whitespace control as transformers configures jinja2
// (trim_blocks, lstrip_blocks, no trailing newline), raw blocks, comments,
// literals. Expectations are what Python's jinja2 renders.
#include <gtest/gtest.h>

#include "jinja/lexer.h"
#include "jinja_test_util.h"

namespace strata::jinja {
namespace {

using test::Case;
using test::Render;

constexpr Case kWhitespaceCases[] = {
    {"Hello {{ name }}!", "{\"name\": \"world\"}", "Hello world!"},
    {"a\n", "", "a"},
    {"a\n\n", "", "a\n"},
    {"a\r\nb\rc", "", "a\nb\nc"},
    {"{% if true %}\nyes\n{% endif %}\nafter", "", "yes\nafter"},
    {"  {% if true %}\n  x\n  {% endif %}\n", "", "  x\n"},
    {"  {%+ if true %}x{% endif %}", "", "  x"},
    {"{% if true +%}\nx{% endif %}", "", "\nx"},
    {"a  {%- if true %}b{% endif -%}  \n  c", "", "abc"},
    {"a  {{- 'b' -}}  c", "", "abc"},
    {"a\n  {{ 'b' }}\nc", "", "a\n  b\nc"},
    {"a {# comment #}\nb\n  {# own line #}\nc", "", "a b\nc"},
    {"a {#- strip -#} b", "", "ab"},
    {"{% raw %}{{ x }}{% if %}{% endraw %}", "", "{{ x }}{% if %}"},
    {"x {%- raw %} {{ y }} {% endraw -%} z", "", "x {{ y }} z"},
    {"{{ 'it''s' }}|{{ \"a\" 'b' }}", "", "its|ab"},
    {"{{ '\\n\\t\\\\\\'\\\"\\x41\\u00e9\\U0001F600\\101\\q' }}", "", "\n\t\\'\"Aé😀A\\q"},
    {"{{ 1_000 + 0x10 + 0o7 + 0b11 }}|{{ 1.5e2 }}|{{ 2E-3 }}", "", "1026|150.0|0.002"},
    {"{{ {'a': {'b': 1}} }}", "", "{'a': {'b': 1}}"},
    {"{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}", "", "12"},
    {"　{%- if true %}x{% endif %}", "", "x"},
};

TEST(JinjaLexerTest, WhitespaceAndLiteralsMatchPython) {
  for (const Case& c : kWhitespaceCases) test::ExpectCase(c);
}

TEST(JinjaLexerTest, TokensCarryTheirLines) {
  std::vector<Token> tokens;
  ASSERT_TRUE(Tokenize("a\n{{ x +\n 'two\nlines' }}\n{% if y %}", LexerOptions(), &tokens).ok());
  ASSERT_GE(tokens.size(), 9u);
  EXPECT_EQ(tokens[0].type, TokenType::kData);
  EXPECT_EQ(tokens[0].value, "a\n");
  EXPECT_EQ(tokens[1].type, TokenType::kVariableBegin);
  EXPECT_EQ(tokens[1].line, 2);
  EXPECT_EQ(tokens[2].value, "x");
  EXPECT_EQ(tokens[3].value, "+");
  EXPECT_EQ(tokens[4].type, TokenType::kString);
  EXPECT_EQ(tokens[4].value, "two\nlines");
  EXPECT_EQ(tokens[4].line, 3);
  EXPECT_EQ(tokens[5].type, TokenType::kVariableEnd);
  EXPECT_EQ(tokens[5].line, 4);
  EXPECT_EQ(tokens[6].type, TokenType::kData);  // "\n" after }} (trim_blocks applies to %} only)
  EXPECT_EQ(tokens[7].type, TokenType::kBlockBegin);
  EXPECT_EQ(tokens[7].line, 5);
  EXPECT_EQ(tokens.back().type, TokenType::kEof);
}

TEST(JinjaLexerTest, NumbersAndOperators) {
  std::vector<Token> tokens;
  ASSERT_TRUE(Tokenize("{{ 1_000 0x1F 0o17 0b101 1.5 2e3 a.1 x//y**z != ~ }}", LexerOptions(), &tokens).ok());
  EXPECT_EQ(tokens[1].integer, 1000);
  EXPECT_EQ(tokens[2].integer, 31);
  EXPECT_EQ(tokens[3].integer, 15);
  EXPECT_EQ(tokens[4].integer, 5);
  EXPECT_EQ(tokens[5].type, TokenType::kFloat);
  EXPECT_DOUBLE_EQ(tokens[5].real, 1.5);
  EXPECT_DOUBLE_EQ(tokens[6].real, 2000.0);
  // "a.1": the 1 after a dot is an integer subscript, not a float.
  EXPECT_EQ(tokens[8].value, ".");
  EXPECT_EQ(tokens[9].type, TokenType::kInteger);
  EXPECT_EQ(tokens[11].value, "//");
  EXPECT_EQ(tokens[13].value, "**");
  EXPECT_EQ(tokens[15].value, "!=");
  EXPECT_EQ(tokens[16].value, "~");
}

TEST(JinjaLexerTest, MalformedInputNamesTheLine) {
  EXPECT_EQ(Render("ok\n{# never closed"), "ERROR: line 2: Missing end of comment tag");
  EXPECT_EQ(Render("{% raw %} never closed"), "ERROR: line 1: Missing end of raw directive");
  EXPECT_EQ(Render("\n\n{{ a ! b }}"), "ERROR: line 3: unexpected char '!'");
  EXPECT_EQ(Render("{{ (a] }}"), "ERROR: line 1: unexpected ']', expected ')'");
  EXPECT_EQ(Render("{{ a) }}"), "ERROR: line 1: unexpected ')'");
  EXPECT_EQ(Render("{{ '\\x4' }}"), "ERROR: line 1: truncated \\xXX escape");
  EXPECT_EQ(Render("{{ '\\U00110000' }}"), "ERROR: line 1: illegal Unicode character");
  EXPECT_EQ(Render("{{ 99999999999999999999 }}"), "ERROR: line 1: integer literal too large");
  EXPECT_EQ(Render("{{ 'unterminated }}"), "ERROR: line 1: unexpected char \"'\"");
  EXPECT_EQ(Render("{{ x"), "ERROR: line 1: unexpected end of template, expected 'end of print statement'");
}

}  // namespace
}  // namespace strata::jinja
