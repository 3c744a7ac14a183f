// Structured output over HTTP on the bundled stories260K model: JSON Schemas
// through response_format / json_schema / guided_json on both endpoints at
// temperature 1 over many seeds — every completed output parses and
// validates (Debian's python3-jsonschema); GBNF grammars, guided_regex and
// guided_choice; streaming under a grammar.
#include <gtest/gtest.h>

#include <regex>

#include "json_schema_cases.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using json = nlohmann::ordered_json;

json Post(httplib::Client& c, const std::string& path, const json& body) {
  auto r = c.Post(path, body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body);
}

std::string TextOf(const json& choice) {
  return choice.contains("text") ? choice["text"].get<std::string>() : choice["message"]["content"].get<std::string>();
}

TEST(ServerStructuredOutput, SchemaOutputsValidateAtTemperatureOne) {
  ServerHarness h;
  auto c = h.Client();
  json cases = json::array();
  std::vector<std::string> names;
  int stopped = 0, total = 0;
  const std::vector<Case>& schemas = SchemaCases();
  for (size_t i = 0; i < schemas.size(); ++i) {
    const json schema = json::parse(schemas[i].schema);
    // The ways to ask for a schema, in turn, on both endpoints.
    json body = {{"max_tokens", 400}, {"temperature", 1.0}, {"seed", 1000 + 16 * i}, {"n", 16}};
    switch (i % 4) {
      case 0: body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "s"}, {"schema", schema}}}}; break;
      case 1: body["json_schema"] = schema; break;
      case 2: body["guided_json"] = schema; break;
      case 3: body["guided_json"] = schema.dump(); break;
    }
    const bool chat = i % 2 == 1;
    if (chat) body["messages"] = {{{"role", "user"}, {"content", "Write it."}}};
    else body["prompt"] = "Once upon a time";
    const json r = Post(*c, chat ? "/v1/chat/completions" : "/v1/completions", body);
    ASSERT_EQ(r["choices"].size(), 16u) << schemas[i].name;
    for (const json& choice : r["choices"]) {
      ++total;
      if (choice["finish_reason"] != "stop") continue;  // cut off at max_tokens: a prefix
      ++stopped;
      cases.push_back({{"schema", schema}, {"text", TextOf(choice)}});
      names.push_back(schemas[i].name);
    }
  }
  const std::vector<std::string> results = PythonValidate(cases);
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < results.size(); ++i)
    EXPECT_EQ(results[i], "") << names[i] << ": " << cases[i]["text"].get<std::string>();
  // Most finish within max_tokens (a tiny model writes long strings now and then).
  EXPECT_GE(stopped * 10, total * 8) << stopped << " of " << total << " finished";
  std::printf("structured output: %d of %d outputs finished, all valid\n", stopped, total);
}

TEST(ServerStructuredOutput, GbnfRegexAndChoice) {
  ServerHarness h;
  auto c = h.Client();
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    json base = std::string(path) == "/v1/completions" ? json{{"prompt", "Once upon a time"}}
                                                      : json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
    base.update({{"max_tokens", 60}, {"temperature", 1.0}, {"seed", 5}, {"n", 6}});
    json g = base;
    g["grammar"] = "root ::= (\"yes\" | \"no\") \", because \" [a-z ]{1,20} \".\"";
    for (const json& choice : Post(*c, path, g)["choices"]) {
      EXPECT_EQ(choice["finish_reason"], "stop");
      EXPECT_TRUE(std::regex_match(TextOf(choice), std::regex("(yes|no), because [a-z ]{1,20}\\."))) << TextOf(choice);
    }
    json re = base;
    re["guided_regex"] = R"(\d{3}-[A-Z]{2}(x|y)?)";
    for (const json& choice : Post(*c, path, re)["choices"]) {
      EXPECT_EQ(choice["finish_reason"], "stop");
      EXPECT_TRUE(std::regex_match(TextOf(choice), std::regex(R"(\d{3}-[A-Z]{2}(x|y)?)"))) << TextOf(choice);
    }
    json choice_req = base;
    choice_req["guided_choice"] = {"red", "green", "blue sky"};
    for (const json& choice : Post(*c, path, choice_req)["choices"]) {
      const std::string t = TextOf(choice);
      EXPECT_TRUE(t == "red" || t == "green" || t == "blue sky") << t;
    }
    json obj = base;
    obj["response_format"] = {{"type", "json_object"}};
    obj["max_tokens"] = 300;
    for (const json& choice : Post(*c, path, obj)["choices"]) {
      if (choice["finish_reason"] != "stop") continue;
      const json v = json::parse(TextOf(choice), nullptr, false);
      EXPECT_TRUE(v.is_object()) << TextOf(choice);
    }
    // response_format text is no constraint.
    json text = base;
    text["response_format"] = {{"type", "text"}};
    EXPECT_EQ(Post(*c, path, text)["choices"].size(), 6u);
  }
}

TEST(ServerStructuredOutput, StreamingUnderAGrammarEqualsWhole) {
  ServerHarness h;
  auto c = h.Client();
  json body = {{"prompt", "Once upon a time"}, {"max_tokens", 80}, {"temperature", 1.0}, {"seed", 11},
               {"guided_json", {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}, {"b", {{"enum", {"x", "y"}}}}}},
                                {"required", {"a", "b"}}}}};
  const std::string whole = TextOf(Post(*c, "/v1/completions", body)["choices"][0]);
  body["stream"] = true;
  auto r = c->Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  std::string streamed;
  std::istringstream lines(r->body);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("data: ") || line == "data: [DONE]") continue;
    const json chunk = json::parse(line.substr(6));
    streamed += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(streamed, whole);
  EXPECT_TRUE(json::parse(whole, nullptr, false).is_object()) << whole;
}

}  // namespace
}  // namespace strata::testing
