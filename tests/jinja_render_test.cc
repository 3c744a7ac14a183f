// The Jinja renderer: expressions with Python's semantics, statements with
// jinja2's scoping, macros, loops, errors. Table expectations are what
// Python's jinja2 renders in transformers' environment.
#include <gtest/gtest.h>

#include "jinja_test_util.h"

namespace strata::jinja {
namespace {

using test::Case;
using test::Render;

constexpr Case kExpressionCases[] = {
    {"{{ 1 + 2 * 3 - 4 / 2 }}|{{ (1 + 2) * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ -2 ** 2 }}", "", "5.0|9|3|-4|1|2|-2|1024|0.5|4"},
    {"{{ 1 / 2 }}|{{ 4 / 2 }}|{{ 7.5 % 2 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 1e-5 }}|{{ 0.0001 }}|{{ 123456789.0 }}|{{ -0.0 }}|{{ 1.5e300 * 1e10 }}", "", "0.5|2.0|1.5|0.30000000000000004|1e+20|1e+16|1000000000000000.0|1e-05|0.0001|123456789.0|-0.0|inf"},
    {"{{ true + 1 }}|{{ 'a' * true }}|{{ 'ab' * 3 }}|{{ 3 * 'ab' }}|{{ 'ab' * -1 }}|{{ [1, 2] * 2 }}", "", "2|a|ababab|ababab||[1, 2, 1, 2]"},
    {"{{ 'a' ~ 1 ~ none ~ [1] ~ true ~ 2.0 }}|{{ x ~ 'y' }}", "", "a1None[1]True2.0|y"},
    {"{{ 'a' + 'b' }}|{{ [1, 2] + [3] }}|{{ (1,) + (2,) }}", "", "ab|[1, 2, 3]|(1, 2)"},
    {"{{ 1 == 1.0 }}{{ true == 1 }}{{ '1' == 1 }}{{ [1] == [1.0] }}{{ none == none }}{{ x == y }}{{ [1] == (1,) }}{{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }}{{ x == none }}", "", "TrueTrueFalseTrueTrueTrueFalseTrueFalse"},
    {"{{ 1 < 2 < 3 }}{{ 3 > 2 > 4 }}{{ 1 != 2 }}{{ 'a' < 'b' }}{{ 'é' > 'z' }}{{ [1, 2] < [1, 3] }}{{ 2 >= 2 }}{{ 1 <= 0 }}", "", "TrueFalseTrueTrueTrueTrueTrueFalse"},
    {"{{ 'a' in 'abc' }}{{ 'd' not in 'abc' }}{{ 1 in [1, 2] }}{{ 'k' in {'k': 1} }}{{ 1 in x }}{{ (1, 2) in [(1, 2)] }}", "", "TrueTrueTrueTrueFalseTrue"},
    {"{{ not 1 == 2 }}{{ not none }}{{ '' or 'default' }}|{{ 'a' and 'b' }}|{{ 0 and 1 }}|{{ none or 0 }}|{{ [] or {} }}", "", "TrueTruedefault|b|0|0|{}"},
    {"{{ 'yes' if [] else 'no' }}|{{ 'yes' if [0] else 'no' }}|{{ 'a' if false }}|{{ 1 if x is defined else 2 if y is defined else 3 }}", "", "no|yes||3"},
    {"{{ none }}|{{ true }}|{{ false }}|{{ True }}|{{ None }}|{{ x }}|{{ [1, 'a', none, true, 2.5, {'k': 'v'}] }}|{{ (1,) }}|{{ ('a', 'b') }}|{{ () }}|{{ {} }}", "", "None|True|False|True|None||[1, 'a', None, True, 2.5, {'k': 'v'}]|(1,)|('a', 'b')|()|{}"},
    {"{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', '\\n\\t\\x00\\x7f\\u200b\\u00e9\\\\'] }}", "", "[\"it's\", 'say \"hi\"', 'both \\' \"', '\\n\\t\\x00\\x7f\\u200bé\\\\']"},
    {"{{ 'héllo'[1] }}|{{ 'héllo'[-1] }}|{{ 'héllo'[1:3] }}|{{ 'héllo'[::-1] }}|{{ 'abc'[10:] }}|{{ 'abcdef'[::2] }}|{{ 'abcdef'[-2:] }}|{{ 'abc'[:-1] }}", "", "é|o|él|olléh||ace|ef|ab"},
    {"{{ [1, 2, 3, 4][1:3] }}|{{ [1, 2, 3][::-1] }}|{{ [1, 2, 3][::-2] }}|{{ [1, 2][5:] }}|{{ (1, 2, 3)[1:] }}|{{ range(10)[2:8:3] }}|{{ [1, 2, 3][-1] }}", "", "[2, 3]|[3, 2, 1]|[3, 1]|[]|(2, 3)|range(2, 8, 3)|3"},
    {"{{ m.content }}|{{ m['content'] }}|{{ m.get('role') }}|{{ m.missing }}|{{ m['missing'] }}|{{ l[0] }}|{{ l[5] }}|{{ l.0 }}", "{\"m\": {\"role\": \"user\", \"content\": \"hi\"}, \"l\": [\"a\"]}", "hi|hi|user|||a||a"},
    {"{{ d.items is callable }}|{{ d['items'] }}|{{ d.keys is defined }}|{{ d.values() }}", "{\"d\": {\"items\": 1, \"k\": 2}}", "True|1|True|dict_values([1, 2])"},
    {"{% set t = (1, 2) %}{{ t[0] }}{{ t|length }}{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, %}{{ c }}", "", "1212(1,)"},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a }}{{ b }}{% endfor %}|{% for k, v in {'x': 1}.items() %}{{ k }}={{ v }}{% endfor %}", "", "1234|x=1"},
    {"{{ {'a': 1}.items() }}|{{ {'a': 1}.keys() }}|{{ {'a': 1}.values() }}|{{ {'a': 1}.items()|list }}", "", "dict_items([('a', 1)])|dict_keys(['a'])|dict_values([1])|[('a', 1)]"},
    {"{{ 'x'|safe + '<y>' }}|{{ '<y>' + 'x'|safe }}|{{ ('<a>'|safe) ~ '<b>' }}|{{ '<&>'|e }}|{{ ('<a>'|safe)|e }}|{{ '<a>'|forceescape }}|{{ ('%s'|safe) % '<b>' }}|{{ ('<a>'|safe).upper() }}|{{ ('a'|safe).replace('a', '<') }}", "", "x&lt;y&gt;|&lt;y&gt;x|<a><b>|&lt;&amp;&gt;|<a>|&lt;a&gt;|&lt;b&gt;|<A>|&lt;"},
    {"{{ '%s-%d' % ('a', 3) }}|{{ '%5.2f|%-4d|%s|%r|%x|%%' % (3.14159, 42, none, 'q', 255) }}|{{ '%(a)s' % {'a': 1} }}|{{ '%s' % [1, 'a'] }}|{{ '%05.1f' % 2.25 }}|{{ '%c' % 65 }}", "", "a-3| 3.14|42  |None|'q'|ff|%|1|[1, 'a']|002.2|A"},
};

constexpr Case kStatementCases[] = {
    {"{% set x = 0 %}{% for i in [1, 2] %}[{{ x }}]{% set x = i %}({{ x }}){% endfor %}{{ x }}", "", "[0](1)[0](2)0"},
    {"{% for i in [1, 2] %}[{{ y }}]{% set y = i %}{% endfor %}{{ y }}", "", "[][]"},
    {"{% if true %}{% set x = 5 %}{% endif %}{{ x }}", "", "5"},
    {"{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% if i == 1 %}{% set x = 7 %}{% endif %}{% endfor %}{{ x }}", "", "111"},
    {"{% set ns = namespace(a=1, b=[]) %}{% for i in [1, 2] %}{% set ns.a = ns.a + i %}{% set ns.b = ns.b + [i] %}{% endfor %}{{ ns.a }}{{ ns.b }}{{ ns.c }}", "", "4[1, 2]"},
    {"{% set ns = namespace() %}{% set ns.found = false %}{% for m in ['a', 'b'] %}{% if m == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}", "", "True"},
    {"{% set x %}{% set y = 1 %}a{{ 1 + 1 }}{% endset %}{{ y }}|{{ x }}|{% set z | upper %}up{% endset %}{{ z }}", "", "|a2|UP"},
    {"{% filter upper %}{% set z = 2 %}abc{% endfilter %}{{ z }}|{% filter trim | title %}  two words  {% endfilter %}", "", "ABC|Two Words"},
    {"{% set a = 5 %}{% with a = 1, b = a %}{{ a }}{{ b }}{% set w = 1 %}{% endwith %}{{ a }}{{ w }}", "", "155"},
    {"{% macro m() %}{{ x }}{% endmacro %}{% set x = 3 %}{{ m() }}|{% set x = 4 %}{{ m() }}", "", "3|4"},
    {"{% macro m() %}{% set z = 1 %}{{ z }}{% endmacro %}{{ m() }}{{ z }}", "", "1"},
    {"{% macro m(a, b=a, c='c') %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 2) }}|{{ m(1, c=3) }}|{{ m(a=0) }}|{{ m() }}", "", "11c|12c|113|00c|c"},
    {"{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, x=3) }}", "", "1|(2,)|{'x': 3}"},
    {"{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}in{% endcall %}|{% macro n(x) %}{{ caller(x * 2) }}{% endmacro %}{% call(v) n(4) %}v={{ v }}{% endcall %}", "", "[in]|v=8"},
    {"{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}", "", "54321"},
    {"{% macro f() %}x{% endmacro %}{{ f.name }}{{ f.arguments }}{{ f }}", "", "f()<Macro 'f'>"},
    {"{% for i in range(3) %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.depth }}|{% endfor %}", "", "1032TrueFalse31|2121FalseFalse31|3210FalseTrue31|"},
    {"{% for x in 'abc' %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle(1, 2) }}{% endfor %}|{% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% endfor %}", "", "b1ac2b1|TrueFalseTrue"},
    {"{% for i in range(10) %}{% if i == 4 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}", "", "023"},
    {"{% for i in [] %}x{% else %}empty{% endfor %}|{% for i in [1, 2, 3, 4] if i is even %}{{ i }}{{ loop.index }}/{{ loop.length }}{% else %}none{% endfor %}|{% for i in [1] if false %}{% else %}filtered{% endfor %}", "", "empty|21/242/2|filtered"},
    {"{% for x in [[1, [2, [3]]], [4]] recursive %}<{{ x[0] }}:{{ loop.depth }}{% if x[1] is defined %}{{ loop(x[1:]) }}{% endif %}>{% endfor %}", "", "<1:1<2:2<3:3>>><4:1>"},
    {"{% for i in [1, 2] %}{% for j in [3, 4] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}", "", "121122"},
    {"{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %}|{% for x in none_var %}x{% endfor %}", "", "ba|[h][é]|"},
    {"{% set g = [1, 2, 3]|select('odd') %}{% for a in g %}{{ a }}{% endfor %}|{% for a in g %}{{ a }}{% endfor %}|{{ g is iterable }}", "", "13||True"},
    {"{% block content %}in block {% set b = 1 %}{% endblock %}{{ b }}|{% generation %}gen{% endgeneration %}", "", "in block |gen"},
    {"{% print 'a', 1 %}|{% set l = [1, 2, 3] %}{{ l.pop(0) }}{{ l }}{% set _ = l.pop() %}{{ l }}{{ l.clear() }}{{ l }}", "", "a1|1[2, 3][2]None[]"},
    {"{% if x %}a{% elif y %}b{% elif z %}c{% else %}d{% endif %}", "{\"z\": 1}", "c"},
    {"{% set c = cycler('odd', 'even') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}{% set j = joiner('|') %}{{ j() }}a{{ j() }}b{{ j() }}", "", "oddevenoddevena|b|"},
    {"{{ dict(a=1, b=2) }}{{ dict({'x': 1}, y=2) }}{{ namespace(a=1) }}{{ range(3) }}{{ range(1, 6, 2)|list }}{{ range(5, 0, -2)|list }}{{ range(0)|list }}", "", "{'a': 1, 'b': 2}{'x': 1, 'y': 2}<Namespace {'a': 1}>range(0, 3)[1, 3, 5][5, 3, 1][]"},
};

TEST(JinjaRenderTest, ExpressionsMatchPython) {
  for (const Case& c : kExpressionCases) test::ExpectCase(c);
}

TEST(JinjaRenderTest, StatementsMatchPython) {
  for (const Case& c : kStatementCases) test::ExpectCase(c);
}

TEST(JinjaRenderTest, UndefinedPrintsEmptyButFailsWhenUsed) {
  EXPECT_EQ(Render("[{{ missing }}]{% for x in missing %}x{% endfor %}{{ missing|length }}{{ missing is defined }}"),
            "[]0False");
  EXPECT_EQ(Render("{{ missing.attr }}"), "ERROR: line 1: 'missing' is undefined");
  EXPECT_EQ(Render("{{ missing['k'] }}"), "ERROR: line 1: 'missing' is undefined");
  EXPECT_EQ(Render("{{ missing + 1 }}"), "ERROR: line 1: 'missing' is undefined");
  EXPECT_EQ(Render("{{ missing() }}"), "ERROR: line 1: 'missing' is undefined");
  EXPECT_EQ(Render("{{ missing < 1 }}"), "ERROR: line 1: 'missing' is undefined");
  // An attribute a dict lacks is Undefined; using it names the dict.
  EXPECT_EQ(Render("[{{ m.x }}]", R"({"m": {}})"), "[]");
  EXPECT_EQ(Render("{{ m.x.y }}", R"({"m": {}})"), "ERROR: line 1: 'dict object' has no attribute 'x'");
  EXPECT_EQ(Render("[{{ n.x }}]", R"({"n": null})"), "[]");
  EXPECT_EQ(Render("{{ n.x.y }}", R"({"n": null})"), "ERROR: line 1: 'None' has no attribute 'x'");
}

TEST(JinjaRenderTest, RaiseExceptionIsTheTemplatesOwnError) {
  EXPECT_EQ(Render("ok\n{% if true %}\n  {{ raise_exception('Roles must alternate') }}\n{% endif %}"),
            "RAISED: Roles must alternate");
  std::unique_ptr<Template> t;
  ASSERT_TRUE(Template::Parse("line one\n{{ raise_exception('bad ' ~ n) }}", test::TestOptions(), &t).ok());
  std::string out;
  RenderError e;
  const Status s = t->Render(nlohmann::ordered_json{{"n", 7}}, &out, &e);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "line 2: bad 7");
  EXPECT_EQ(e.kind, RenderError::Kind::kRaised);
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.message, "bad 7");
}

TEST(JinjaRenderTest, ErrorsNameTheirLine) {
  EXPECT_EQ(Render("a\nb\n{% for x in 5 %}{% endfor %}"), "ERROR: line 3: 'int' object is not iterable");
  EXPECT_EQ(Render("{% if true %}\n{{ 'a' + 1 }}\n{% endif %}"),
            "ERROR: line 2: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(Render("{% macro m() %}\n\n{{ 1 // 0 }}{% endmacro %}\n{{ m() }}"),
            "ERROR: line 3: integer division or modulo by zero");
  EXPECT_EQ(Render("{% for a, b in [[1, 2, 3]] %}{% endfor %}"), "ERROR: line 1: too many values to unpack (expected 2)");
  EXPECT_EQ(Render("{% set x = 1 %}{% set x.a = 2 %}"), "ERROR: line 1: cannot assign attribute on non-namespace object");
  EXPECT_EQ(Render("{{ 'x'() }}"), "ERROR: line 1: 'str' object is not callable");
  EXPECT_EQ(Render("[{{ {}[[1]] }}]"), "[]");  // the sandbox's getitem swallows the TypeError
  EXPECT_EQ(Render("{{ {[1]: 2} }}"), "ERROR: line 1: unhashable type: 'list'");
  EXPECT_EQ(Render("{{ {}[1:] }}"), "ERROR: line 1: unhashable type: 'slice'");
  EXPECT_EQ(Render("{{ [1][::0] }}"), "ERROR: line 1: slice step cannot be zero");
  // A key that is a tuple holding a slice fits no object: undefined, as jinja2 gives.
  EXPECT_EQ(Render("[{{ 'abc'[::, 1] }}][{{ [1, 2][1:, 0] }}][{{ {}[:2, 0] }}]"), "[][][]");
  EXPECT_EQ(Render("{{ ('abc'[::, 1]) is defined }}"), "False");
  EXPECT_EQ(Render("{{ 'abc'[::, 1] + 'x' }}"),
            "ERROR: line 1: str object has no element (slice(None, None, None), 1)");
}

TEST(JinjaRenderTest, SyntaxErrorsNameTheirLine) {
  EXPECT_EQ(Render("{% if x %}\n{% for y in z %}\n{% endif %}"),
            "ERROR: line 3: Encountered unknown tag 'endif'. Jinja was looking for the following tags: 'endfor' or 'else'.");
  EXPECT_EQ(Render("{% if x %}never closed"), "ERROR: line 1: unexpected end of template; looking for 'elif' or 'else' or 'endif'");
  EXPECT_EQ(Render("\n{% do x %}"), "ERROR: line 2: Encountered unknown tag 'do'.");
  EXPECT_EQ(Render("{% break %}"), "ERROR: line 1: 'break' outside of a loop");
  EXPECT_EQ(Render("{% include 'x.html' %}"),
            "ERROR: line 1: 'include' is not supported: a chat template cannot load other templates");
  EXPECT_EQ(Render("{% macro m(a=1, b) %}{% endmacro %}"), "ERROR: line 1: non-default argument follows default argument");
  EXPECT_EQ(Render("{{ 1 + }}"), "ERROR: line 1: unexpected 'end of print statement'");
  EXPECT_EQ(Render("{% set 1 = 2 %}"), "ERROR: line 1: can't assign to this expression");
  EXPECT_EQ(Render("{{ x is defined is defined }}"), "ERROR: line 1: You cannot chain multiple tests with is");
}

TEST(JinjaRenderTest, MacroArgumentsAreCheckedLikePython) {
  EXPECT_EQ(Render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
            "ERROR: line 1: macro 'm' takes not more than 1 argument(s)");
  EXPECT_EQ(Render("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}"), "ERROR: line 1: macro 'm' takes no keyword argument 'b'");
  EXPECT_EQ(Render("{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}"), "[]");
}

TEST(JinjaRenderTest, SandboxRefusesMutators) {
  // jinja2's ImmutableSandboxedEnvironment: reading the attribute is fine,
  // using it is a SecurityError; list.pop is not on its list.
  EXPECT_EQ(Render("{% set l = [1] %}{% set f = l.append %}ok"), "ok");
  EXPECT_EQ(Render("{% set l = [1] %}{{ l.append(2) }}"),
            "ERROR: line 1: access to attribute 'append' of 'list' object is unsafe.");
  EXPECT_EQ(Render("{% set d = {'a': 1} %}{{ d.update({}) }}"),
            "ERROR: line 1: access to attribute 'update' of 'dict' object is unsafe.");
  EXPECT_EQ(Render("{% set l = [1, 2] %}{{ l.pop() }}{{ l }}"), "2[1]");
}

TEST(JinjaRenderTest, GeneratorsAreOnePassAndHaveNoLength) {
  EXPECT_EQ(Render("{{ [1, 2]|select|length }}"), "ERROR: line 1: object of type 'generator' has no len()");
  EXPECT_EQ(Render("{{ ([1, 2]|select)[0] }}|{{ ([1, 2]|select|list)[0] }}"), "|1");
  EXPECT_EQ(Render("{{ [1]|select is sequence }}{{ [1]|select is iterable }}{{ []|select|list }}"), "FalseTrue[]");
  EXPECT_EQ(Render("{{ [1]|select|tojson }}"), "ERROR: line 1: Object of type generator is not JSON serializable");
}

TEST(JinjaRenderTest, ARenderIsReentrant) {
  std::unique_ptr<Template> t;
  ASSERT_TRUE(Template::Parse("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}"
                              "{{ ns.n }}",
                              test::TestOptions(), &t)
                  .ok());
  for (int i = 0; i < 3; ++i) {
    std::string out;
    ASSERT_TRUE(t->Render(nlohmann::ordered_json{{"messages", {1, 2, 3}}}, &out).ok());
    EXPECT_EQ(out, "3");
  }
}

}  // namespace
}  // namespace strata::jinja
