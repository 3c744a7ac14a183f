// A template is untrusted input: every way to make the interpreter work,
// allocate or recurse without bound ends in a clear error, never a crash or
// a hang.
#include <gtest/gtest.h>
#include <pthread.h>

#include <string>

#include "jinja_test_util.h"

namespace strata::jinja {
namespace {

using test::Render;

std::string Repeat(std::string_view s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

bool Failed(const std::string& result, std::string_view what) {
  return result.starts_with("ERROR: ") && result.find(what) != std::string::npos;
}

TEST(JinjaLimitsTest, DeepSourceNestingIsASyntaxError) {
  EXPECT_PRED2(Failed, Render("{{ " + Repeat("(", 100000) + "1" + Repeat(")", 100000) + " }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render(Repeat("{% if true %}", 20000)), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ " + Repeat("not ", 100000) + "x }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ " + Repeat("-", 100000) + "1 }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ " + Repeat("[", 100000) + Repeat("]", 100000) + " }}"), "nested too deeply");
  // Chains nest too (((0 + 1) + 1) + ...): bounded like any nesting.
  EXPECT_EQ(Render("{{ 0" + Repeat(" + 1", 150) + " }}"), "150");
  EXPECT_PRED2(Failed, Render("{{ 0" + Repeat(" + 1", 200000) + " }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ x" + Repeat(".a", 200000) + " }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ x" + Repeat("|trim", 200000) + " }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render("{{ x" + Repeat(" if x", 200000) + " }}"), "nested too deeply");
  // Comparisons and concatenations are flat.
  EXPECT_EQ(Render("{{ 'a'" + Repeat(" ~ 'a'", 10000) + " }}").size(), 10001u);
}

TEST(JinjaLimitsTest, RecursionIsBounded) {
  EXPECT_PRED2(Failed, Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "calls nested deeper than the limit");
  EXPECT_PRED2(Failed, Render("{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}"),
               "calls nested deeper than the limit");
  // Legitimate recursion within the limit works.
  EXPECT_EQ(Render("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ n }}{% endif %}{% endmacro %}{{ f(50)|length }}"),
            "91");
}

// Expressions nested inside recursive macros: the evaluation's own depth is
// bounded, so even a 1 MiB stack holds it.
TEST(JinjaLimitsTest, EvaluationDepthIsBounded) {
  const std::string source = "{% macro f(n) %}{% if n > 0 %}{{ " + Repeat("-", 180) +
                             "(f(n - 1)|length) }}{% endif %}{% endmacro %}{{ f(99)|length }}";
  std::string result;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  pthread_t thread;
  struct Job {
    const std::string* source;
    std::string* result;
  } job{&source, &result};
  ASSERT_EQ(pthread_create(
                &thread, &attr,
                [](void* arg) -> void* {
                  auto* j = static_cast<Job*>(arg);
                  *j->result = Render(*j->source);
                  return nullptr;
                },
                &job),
            0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  EXPECT_PRED2(Failed, result, "template evaluation nested deeper than the limit (1000)");
}

TEST(JinjaLimitsTest, WorkIsBounded) {
  EXPECT_PRED2(Failed, Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
               "work limit");
  TemplateOptions small = test::TestOptions();
  small.limits.max_steps = 1000;
  EXPECT_PRED2(Failed, Render("{% for i in range(2000) %}{% endfor %}", "{}", small), "work limit");
  EXPECT_EQ(Render("{% for i in range(20) %}{% endfor %}ok", "{}", small), "ok");
}

TEST(JinjaLimitsTest, SizesAreBoundedBeforeAllocating) {
  EXPECT_PRED2(Failed, Render("{{ 'x' * 1000000000000 }}"), "string longer than the limit");
  EXPECT_PRED2(Failed, Render("{{ [1, 2] * 1000000000000 }}"), "sequence longer than the limit");
  EXPECT_PRED2(Failed, Render("{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}"
                              "{% endfor %}"),
               "string longer than the limit");
  EXPECT_PRED2(Failed, Render("{% set ns = namespace(s='xy') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}"
                              "{% endfor %}"),
               "string longer than the limit");
  EXPECT_PRED2(Failed, Render("{{ 'ab'|replace('', 'x' * 10000000) }}"), "string longer than the limit");
  EXPECT_PRED2(Failed, Render("{{ ''.center(1000000000000) }}"), "string longer than the limit");
  EXPECT_PRED2(Failed, Render("{{ 'x'|indent(1000000000000) }}"), "string longer than the limit");
  TemplateOptions small = test::TestOptions();
  small.limits.max_string_bytes = 1000;
  EXPECT_PRED2(Failed, Render("{% for i in range(100) %}0123456789abcdef{% endfor %}", "{}", small),
               "output longer than the limit");
  EXPECT_PRED2(Failed, Render("{% macro m() %}{% for i in range(100) %}0123456789abcdef{% endfor %}{% endmacro %}"
                              "{% set s = m() %}",
                              "{}", small),
               "output longer than the limit");
}

TEST(JinjaLimitsTest, DeepValuesAreBounded) {
  const std::string nest =
      "{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}{% endfor %}";
  EXPECT_PRED2(Failed, Render(nest + "{{ ns.v }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render(nest + "{{ ns.v|tojson }}"), "nested too deeply");
  EXPECT_PRED2(Failed, Render(nest + "{{ ns.v == ns.v[0] }}"), "nested too deeply");
  // Building ever deeper values is refused where they are stored, so they
  // can never outgrow the recursion that prints, compares or frees them.
  EXPECT_PRED2(Failed, Render("{% set ns = namespace(v=[]) %}{% for i in range(100000) %}{% set ns.v = [ns.v] %}"
                              "{% endfor %}"),
               "values nested too deeply");
  EXPECT_PRED2(Failed, Render("{% macro f(n, acc) %}{% if n %}{{ f(n - 1, [[[[acc]]]]) }}{% endif %}{% endmacro %}"
                              "{{ f(99, 0) }}"),
               "values nested too deeply");
  EXPECT_PRED2(Failed, Render("{% set ns = namespace(v=()) %}{% for i in range(100000) %}{% set ns.v = {'k': (ns.v,)} %}"
                              "{% endfor %}"),
               "values nested too deeply");
  // A namespace holding itself: printing stops at the depth limit.
  EXPECT_PRED2(Failed, Render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}"), "nested too deeply");
  // Deep JSON variables are refused before rendering.
  const std::string deep = Repeat("[", 10000) + Repeat("]", 10000);
  EXPECT_PRED2(Failed, Render("{{ x }}", R"({"x": )" + deep + "}"), "nested too deeply");
}

TEST(JinjaLimitsTest, SourceIsCheckedFirst) {
  TemplateOptions small = test::TestOptions();
  small.max_source_bytes = 10;
  EXPECT_EQ(Render("0123456789a", "{}", small), "ERROR: template is 11 bytes, larger than the limit (10)");
  EXPECT_EQ(Render("bad \xC3\x28 utf-8"), "ERROR: template is not valid UTF-8");
  EXPECT_EQ(Render("surrogate \xED\xA0\x80"), "ERROR: template is not valid UTF-8");
}

}  // namespace
}  // namespace strata::jinja
