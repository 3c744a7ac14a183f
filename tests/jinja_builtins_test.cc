// The Jinja builtins: filters, tests, str/dict/list methods and globals,
// including transformers' tojson (Python's json.dumps) and strftime_now.
// Table expectations are what Python's jinja2 renders.
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>

#include "jinja_test_util.h"

namespace strata::jinja {
namespace {

using test::Case;
using test::Render;

constexpr Case kBuiltinCases[] = {
    {"{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}{{ [3, 1, 2]|sort(reverse=true) }}{{ [{'n': 'b', 'a': 2}, {'n': 'a', 'a': 1}]|sort(attribute='n')|map(attribute='a')|list }}", "", "[1, 2, 3]['A', 'b', 'c']['A', 'b', 'c'][3, 2, 1][1, 2]"},
    {"{{ {'b': 1, 'A': 2}|dictsort }}{{ {'b': 1, 'a': 2}|dictsort(by='value') }}{{ {'b': 1, 'a': 2}|dictsort(reverse=true) }}", "", "[('A', 2), ('b', 1)][('b', 1), ('a', 2)][('b', 1), ('a', 2)]"},
    {"{{ [1, 1, 2, 'a', 'A']|unique|list }}{{ [1, 2, 3]|sum }}{{ [{'p': 1.5}, {'p': 2}]|sum(attribute='p') }}{{ [1, 2, 3]|max }}{{ ['a', 'B']|min }}{{ []|max }}", "", "[1, 2, 'a']63.53a"},
    {"{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}{{ 'abc'|first }}{{ []|first }}{{ (1, 2)|last }}", "", "13a2"},
    {"{{ 'hello world'|title }}|{{ 'hello-WORLD (x)'|title }}|{{ 'hELLO'|capitalize }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'ß'|upper }}|{{ 'ÉCOLE'|lower }}", "", "Hello World|Hello-World (X)|Hello|AB|ab|SS|école"},
    {"{{ '  x  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ '\\u3000 x\\n'|trim }}|{{ 1|trim }}|{{ none|string }}|{{ 1.0|string }}|{{ [1]|string }}", "", "x|a|x|1|None|1.0|[1]"},
    {"{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='> ', blank=true) }}|{{ 'one'|indent(first=true) }}", "", "a\n    b\n\n    c|  a\n  b|a\n> \n> b|    one"},
    {"{{ 'abc'|replace('b', 'X') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ 'abc'.replace('', '-') }}|{{ 1|replace(1, 2) }}", "", "aXc|bba|-a-b-c-|2"},
    {"{{ {'a': [1, 2.5, 'é', none, true, false]}|tojson }}|{{ {'a': 1}|tojson(indent=2) }}|{{ [1, {'b': []}, {}]|tojson(indent=4) }}|{{ 'q\"\\\\\\n\\t\\u2028\\x7f\\x01'|tojson }}", "", "{\"a\": [1, 2.5, \"é\", null, true, false]}|{\n  \"a\": 1\n}|[\n    1,\n    {\n        \"b\": []\n    },\n    {}\n]|\"q\\\"\\\\\\n\\t \177\\u0001\""},
    {"{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ {'a': 'é'}|tojson(ensure_ascii=true) }}|{{ [1, 2]|tojson(separators=(',', ':')) }}|{{ '😀'|tojson(ensure_ascii=true) }}|{{ {1: 'a', 2.5: 'b', true: 'c', none: 'd'}|tojson }}|{{ (1, 2)|tojson }}|{{ 1e100|tojson }}|{{ [1]|tojson(indent='--') }}", "", "{\"a\": 2, \"b\": 1}|{\"a\": \"\\u00e9\"}|[1,2]|\"\\ud83d\\ude00\"|{\"1\": \"c\", \"2.5\": \"b\", \"null\": \"d\"}|[1, 2]|1e+100|[\n--1\n]"},
    {"{{ tools|tojson }}", "{\"tools\": [{\"name\": \"f\", \"parameters\": {\"z\": 1, \"a\": {\"type\": \"string\"}}}]}", "[{\"name\": \"f\", \"parameters\": {\"z\": 1, \"a\": {\"type\": \"string\"}}}]"},
    {"{{ [1, 2, 3]|select('odd')|list }}{{ [1, 2, 3]|reject('odd')|list }}{{ [0, 1, '']|select|list }}{{ [{'a': 1}, {'a': 2}, {}]|selectattr('a')|list }}{{ [{'a': 1}, {'b': 2}]|selectattr('a', 'defined')|list }}{{ [{'r': 'x'}, {'r': 'y'}]|rejectattr('r', 'equalto', 'x')|list }}", "", "[1, 3][2][1][{'a': 1}, {'a': 2}][{'a': 1}][{'r': 'y'}]"},
    {"{{ [1, 2]|map('string')|join(',') }}|{{ [{'a': {'b': 1}}]|map(attribute='a.b')|list }}|{{ [{}]|map(attribute='x', default='d')|list }}|{{ [[1, 2]]|map(attribute='1')|list }}|{{ ['a', 'b']|map('upper')|list }}", "", "1,2|[1]|['d']|[2]|['A', 'B']"},
    {"{{ [1, 2]|join }}|{{ [1, 2]|join(', ') }}|{{ [{'n': 'a'}, {'n': 'b'}]|join('-', attribute='n') }}|{{ 'abc'|join('.') }}", "", "12|1, 2|a-b|a.b.c"},
    {"{{ x|default('d') }}|{{ ''|default('d') }}|{{ ''|default('d', true) }}|{{ none|default('d') }}|{{ x|d('e') }}|{{ false|default('f', boolean=true) }}", "", "d||d|None|e|f"},
    {"{{ '3'|int + 1 }}|{{ '3.7'|int }}|{{ 'x'|int }}|{{ 'x'|int(5) }}|{{ 3.9|int }}|{{ '0x1f'|int(base=16) }}|{{ ' 12 '|int }}|{{ '1_0'|int }}|{{ '3.5'|float }}|{{ 'a'|float }}|{{ 2|float }}|{{ ' -1e3 '|float }}", "", "4|3|0|5|3|31|12|10|3.5|0.0|2.0|-1000.0"},
    {"{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}|{{ 2.1|round(0, 'ceil') }}|{{ 2.9|round(method='floor') }}|{{ 5|round }}|{{ 1234.5|round(-2) }}", "", "2.0|4.0|2.67|3.0|2.0|5|1200.0"},
    {"{{ -3|abs }}|{{ (-2.5)|abs }}|{{ [1, 2]|length }}|{{ {'a': 1}|length }}|{{ x|length }}|{{ 'abc'|count }}|{{ 'héllo😀'|length }}", "", "3|2.5|2|1|0|3|6"},
    {"{{ 'x'|center(5) }}|{{ 'ab'|center(5) }}|{{ 'abc'.center(6, '*') }}|{{ 'a'.ljust(3, '.') }}|{{ 'a'.rjust(3) }}|{{ '42'.zfill(5) }}|{{ '-42'.zfill(5) }}", "", "  x  |  ab |*abc**|a..|  a|00042|-0042"},
    {"{{ 'a long sentence here'|truncate(10) }}|{{ 'a long sentence here that goes on'|truncate(10, true) }}|{{ 'short'|truncate(10) }}|{{ 'abcdefghijklmnop'|truncate(10, end='!', leeway=0) }}", "", "a long...|a long ...|short|abcdefghi!"},
    {"{{ [1, 2, 3]|reverse|list }}|{{ 'abc'|reverse }}|{{ (1, 2)|reverse|list }}|{{ {'a': 1, 'b': 2}|reverse|list }}|{{ [1, 2]|select|reverse }}", "", "[3, 2, 1]|cba|[2, 1]|['b', 'a']|[2, 1]"},
    {"{{ [1, 2]|list }}{{ 'ab'|list }}{{ {'a': 1}|list }}{{ {'a': 1}|items|list }}{{ x|items|list }}{{ (1, 2)|list }}", "", "[1, 2]['a', 'b']['a'][('a', 1)][][1, 2]"},
    {"{{ '%s, %s!'|format('Hello', 'World') }}|{{ '%(a)s'|format(a=1) }}|{{ 'x'|attr('upper') is callable }}|{{ {'k': 1}|attr('k') }}|{{ 'a'|safe }}", "", "Hello, World!|1|True||a"},
    {"{{ x is none }}{{ none is none }}{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is iterable }}{{ x is iterable }}{{ 'a' is sequence }}{{ {} is sequence }}{{ [1]|select is sequence }}", "", "FalseTrueTrueTrueTrueFalseTrueTrueTrueTrueFalseTrueTrueTrueFalse"},
    {"{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}{{ true is boolean }}{{ 3 is odd }}{{ 3 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is equalto 'a' }}{{ 1 is eq 1 }}{{ 2 is gt 1 }}{{ 2 is lt 1 }}{{ 1 is ge 1 }}{{ 1 is in [1] }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'aBc' is lower }}", "", "TrueFalseTrueFalseTrueTrueFalseTrueTrueTrueTrueFalseTrueTrueTrueTrueFalse"},
    {"{{ x is callable }}{{ range is callable }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ 'nope' is filter }}{{ x is undefined }}{{ none is sameas none }}{{ x is defined }}{{ {}.k is defined }}{{ ('a'|safe) is escaped }}", "", "TrueTrueTrueTrueFalseTrueTrueFalseFalseTrue"},
    {"{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('x', 'lo')) }}{{ 'Hello'.startswith('l', 2) }}{{ 'Hello'.find('l') }}{{ 'Hello'.rfind('l') }}{{ 'Hello'.count('l') }}{{ 'Hello'.index('e') }}{{ 'héllo'.find('l') }}", "", "TrueTrueTrue23212"},
    {"{{ 'a b  c'.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}{{ ' a b '.rsplit(None, 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ '  '.split() }}{{ 'a\\nb\\r\\nc'.splitlines() }}{{ 'a\\nb'.splitlines(true) }}", "", "['a', 'b', 'c']['a', 'b', '', 'c']['a', 'b,c'][' a', 'b']['a,b', 'c'][]['a', 'b', 'c']['a\\n', 'b']"},
    {"{{ '  x  '.strip() }}|{{ '--x--'.lstrip('-') }}|{{ '--x--'.rstrip('-') }}|{{ 'xyzax'.strip('xz') }}|{{ 'a-b-c'.partition('-') }}{{ 'a-b-c'.rpartition('-') }}{{ 'a'.partition('-') }}", "", "x|x--|--x|yza|('a', '-', 'b-c')('a-b', '-', 'c')('a', '', '')"},
    {"{{ 'prefix_x'.removeprefix('prefix_') }}|{{ 'x.py'.removesuffix('.py') }}|{{ 'AbC'.swapcase() }}|{{ 'hello world'.title() }}|{{ \"they're bill's\".title() }}|{{ 'hELLO'.capitalize() }}|{{ 'ǆa'.title() }}|{{ 'İ'.lower()|length }}|{{ 'ﬁ'.upper() }}", "", "x|x|aBc|Hello World|They'Re Bill'S|Hello|ǅa|2|FI"},
    {"{{ ', '.join(['a', 'b']) }}|{{ ''.join('abc') }}|{{ {'a': 1}.get('a') }}|{{ {'a': 1}.get('b') }}|{{ {'a': 1}.get('b', 2) }}|{{ {'a': 1}.copy() }}|{{ [1, 2, 3].index(2) }}|{{ [1, 2, 2].count(2) }}|{{ (1, 2).index(2) }}|{{ [1].copy() }}", "", "a, b|abc|1|None|2|{'a': 1}|1|2|1|[1]"},
    {"{{ '{:>5}|{:<5}|{:^5}|{:05d}|{:.2f}|{:,}|{!r}|{a[b]}|{:x}|{:+d}|{:e}|{:.1%}|{:g}'.format('a', 'b', 'c', 42, 3.14159, 1234567, 'q', 255, 5, 1.5, 0.25, 0.00001, a={'b': 'z'}) }}|{{ '{0}{1}{0}'.format('x', 'y') }}", "", "    a|b    |  c  |00042|3.14|1,234,567|'q'|z|ff|+5|1.500000e+00|25.0%|1e-05|xyx"},
    {"{{ '{name} is {0}'.format(1, name='x') }}|{{ '{}'.format(none) }}|{{ '{{}}'.format() }}|{{ '{m.role}'.format(m={'role': 'user'}) }}|{{ '{:*^9}'.format('mid') }}", "", "x is 1|None|{}|user|***mid***"},
    {"{{ strftime_now('%Y-%m-%d %H:%M:%S %A %B %d %b %j %f %z%Z%%') }}|{{ strftime_now('%d %b %Y') }}", "", "2024-07-26 10:30:00 Friday July 26 Jul 208 250000 %|26 Jul 2024"},
    {"{{ '{}{0}'.format(1) }}", "", "ERROR: ValueError: cannot switch from manual field specification to automatic field numbering"},
};

class JinjaBuiltinsTest : public ::testing::Test {
 protected:
  // strftime_now reads local time: pin the zone the expectations assume.
  void SetUp() override {
    const char* tz = std::getenv("TZ");
    saved_tz_ = tz != nullptr ? std::optional<std::string>(tz) : std::nullopt;
    setenv("TZ", "UTC", 1);
    tzset();
  }
  void TearDown() override {
    if (saved_tz_) {
      setenv("TZ", saved_tz_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }

 private:
  std::optional<std::string> saved_tz_;
};

TEST_F(JinjaBuiltinsTest, MatchPython) {
  for (const Case& c : kBuiltinCases) test::ExpectCase(c);
}

TEST_F(JinjaBuiltinsTest, UnknownFiltersAndTestsFailWhenUsed) {
  EXPECT_EQ(Render("{% if false %}{{ x|nope }}{% endif %}ok"), "ok");
  EXPECT_EQ(Render("{{ x|nope }}"), "ERROR: line 1: No filter named 'nope'.");
  EXPECT_EQ(Render("{{ x is nope }}"), "ERROR: line 1: No test named 'nope'.");
  EXPECT_EQ(Render("{{ [1]|groupby('x') }}"), "ERROR: line 1: the filter 'groupby' is not supported");
}

TEST_F(JinjaBuiltinsTest, TojsonRefusesWhatJsonCannotHold) {
  EXPECT_EQ(Render("{{ missing|tojson }}"), "ERROR: line 1: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(Render("{{ namespace()|tojson }}"), "ERROR: line 1: Object of type Namespace is not JSON serializable");
  EXPECT_EQ(Render("{{ {(1, 2): 3}|tojson }}"), "ERROR: line 1: keys must be str, int, float, bool or None, not tuple");
  EXPECT_EQ(Render("{{ {'b': 1, 2: 3}|tojson(sort_keys=true) }}"),
            "ERROR: line 1: '<' not supported between instances of 'int' and 'str'");
}

TEST_F(JinjaBuiltinsTest, TojsonKeepsInsertionOrderOfInput) {
  // Variables keep their JSON order, as Python's json.loads does.
  EXPECT_EQ(Render("{{ tool|tojson }}", R"({"tool": {"z": 1, "a": 2, "m": {"y": [], "b": null}}})"),
            R"({"z": 1, "a": 2, "m": {"y": [], "b": null}})");
}

TEST_F(JinjaBuiltinsTest, StrftimeNowReadsTheInjectedClock) {
  EXPECT_EQ(Render("{{ strftime_now('%d %b %Y') }}"), "26 Jul 2024");
  EXPECT_EQ(Render("{{ strftime_now('%Y-%m-%dT%H:%M:%S.%f') }}"), "2024-07-26T10:30:00.250000");
  EXPECT_EQ(Render("{{ strftime_now(1) }}"), "ERROR: line 1: strftime() argument 1 must be str");
}

TEST_F(JinjaBuiltinsTest, RangeIsLimitedLikeTheSandbox) {
  EXPECT_EQ(Render("{{ range(100000)|length }}"), "100000");
  EXPECT_EQ(Render("{{ range(100001) }}"),
            "ERROR: line 1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_EQ(Render("{{ range(-9223372036854775807, 9223372036854775807) }}"),
            "ERROR: line 1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  EXPECT_EQ(Render("{{ range(0, 10, 0) }}"), "ERROR: line 1: range() arg 3 must not be zero");
}

}  // namespace
}  // namespace strata::jinja
