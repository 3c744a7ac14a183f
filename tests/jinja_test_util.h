// Helpers for the Jinja interpreter's tests.
#pragma once

#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "jinja/template.h"

namespace strata::jinja::test {

// The instant strftime_now sees in tests (2024-07-26 10:30:00.25 UTC), the
// same the Python reference renderer is given.
inline constexpr double kNowSeconds = 1721989800.25;

inline TemplateOptions TestOptions() {
  TemplateOptions o;
  o.clock = [] {
    return std::chrono::system_clock::time_point(
        std::chrono::microseconds(static_cast<int64_t>(kNowSeconds * 1e6)));
  };
  return o;
}

// The rendering, or "RAISED: message" for raise_exception(), or
// "ERROR: line N: message" for any other failure (parse errors included).
inline std::string Render(std::string_view source, std::string_view variables_json = "{}",
                          const TemplateOptions& options = TestOptions()) {
  std::unique_ptr<Template> t;
  if (Status s = Template::Parse(source, options, &t); !s.ok()) return "ERROR: " + s.message();
  const auto variables = nlohmann::ordered_json::parse(variables_json.empty() ? "{}" : variables_json);
  std::string out;
  RenderError e;
  if (Status s = t->Render(variables, &out, &e); !s.ok())
    return (e.kind == RenderError::Kind::kRaised ? "RAISED: " + e.message : "ERROR: " + s.message());
  return out;
}

// A template, its variables (JSON, may be empty) and what Python's jinja2
// renders (or "RAISED: message", or "ERROR: ..." for a failure of any kind).
struct Case {
  const char* source;
  const char* variables;
  const char* expected;
};

inline void ExpectCase(const Case& c) {
  const std::string got = Render(c.source, c.variables);
  const std::string_view expected = c.expected;
  if (expected.starts_with("ERROR: ")) {
    EXPECT_TRUE(got.starts_with("ERROR: ")) << "template: " << c.source << "\ngot: " << got;
  } else {
    EXPECT_EQ(got, expected) << "template: " << c.source;
  }
}

}  // namespace strata::jinja::test
