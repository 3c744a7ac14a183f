// JSON Schema -> GBNF: for 24 schemas (nested objects, arrays, enums,
// required/optional, string formats, bounded numbers, $ref recursion, ...)
// the grammar takes hand-written valid instances and refuses invalid ones;
// texts the grammar generates on random walks all parse and validate under
// Debian's python3-jsonschema; unsupported keywords are refused by name.
#include "grammar/json_schema_gbnf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "grammar_test_util.h"
#include "json_schema_cases.h"

namespace strata::grammar {
namespace {

using json = nlohmann::ordered_json;
using testing::ByteTokens;
using testing::Case;
using testing::PythonValidate;
using testing::SchemaCases;

std::string GbnfOf(const char* schema) {
  std::string gbnf;
  const Status s = JsonSchemaGrammar(json::parse(schema), &gbnf);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << schema;
  return gbnf;
}

TEST(JsonSchemaGbnf, TakesValidInstancesRefusesInvalidOnes) {
  for (const Case& c : SchemaCases()) {
    const std::string gbnf = GbnfOf(c.schema);
    for (const char* v : c.valid) EXPECT_TRUE(testing::Matches(gbnf, v)) << c.name << ": " << v << "\n" << gbnf;
    for (const char* v : c.invalid) EXPECT_FALSE(testing::Matches(gbnf, v)) << c.name << ": " << v << "\n" << gbnf;
  }
}

// A random text the grammar allows, written with byte tokens; structural
// characters and the end are favoured so that texts finish. "" if it does
// not finish within max_bytes.
std::string RandomText(const std::shared_ptr<const Grammar>& g, std::mt19937& rng, size_t max_bytes) {
  auto m = testing::MatcherFor(g);
  const Vocab& v = testing::Stories260K().vocab();
  std::string text;
  while (text.size() < max_bytes) {
    const auto mask = m->AllowedTokens();
    std::vector<std::pair<int, double>> options;  // (byte or -1 for the end, weight)
    if (testing::Allowed(mask, v.eos())) options.emplace_back(-1, 60);
    for (int b = 0; b < 256; ++b) {
      if (!testing::Allowed(mask, ByteTokens()[b])) continue;
      const bool closing = b == '"' || b == ']' || b == '}';
      const bool digit = b >= '0' && b <= '9';
      options.emplace_back(b, closing ? 30.0 : digit ? 5.0 : b >= 0x80 ? 0.2 : 1.0);
    }
    if (options.empty()) return "";
    std::vector<double> weights;
    for (const auto& o : options) weights.push_back(o.second);
    const int pick = options[std::discrete_distribution<size_t>(weights.begin(), weights.end())(rng)].first;
    if (pick < 0) return text;
    EXPECT_TRUE(m->Accept(ByteTokens()[pick]));
    text += static_cast<char>(pick);
  }
  return "";
}

TEST(JsonSchemaGbnf, GeneratedTextsValidate) {
  std::mt19937 rng(2024);
  json cases = json::array();
  std::vector<std::string> names;
  for (const Case& c : SchemaCases()) {
    const auto g = testing::ParsedGrammar(GbnfOf(c.schema));
    ASSERT_NE(g, nullptr) << c.name;
    int finished = 0;
    for (int i = 0; i < 40; ++i) {
      const std::string text = RandomText(g, rng, 600);
      if (text.empty()) continue;
      cases.push_back({{"schema", json::parse(c.schema)}, {"text", text}});
      names.push_back(c.name);
      ++finished;
    }
    EXPECT_GE(finished, 15) << c.name << ": too few random texts finished";
  }
  const std::vector<std::string> results = PythonValidate(cases);
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < results.size(); ++i)
    EXPECT_EQ(results[i], "") << names[i] << ": " << cases[i]["text"].get<std::string>();
}

TEST(JsonSchemaGbnf, ObjectChoiceGrammars) {
  const std::string object = JsonObjectGrammar();
  EXPECT_TRUE(testing::Matches(object, R"({"a": [1, {"b": null}]})"));
  EXPECT_FALSE(testing::Matches(object, "[1]"));
  const std::string choice = ChoiceGrammar({"yes", "no", "say \"maybe\"\n"});
  EXPECT_TRUE(testing::Matches(choice, "no"));
  EXPECT_TRUE(testing::Matches(choice, "say \"maybe\"\n"));
  EXPECT_FALSE(testing::Matches(choice, "ye"));
}

TEST(JsonSchemaGbnf, UnsupportedAndInvalidSchemasAreRefusedByName) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"type": "array", "uniqueItems": true})", "at #: 'uniqueItems' is not supported"},
      {R"({"properties": {"a": {"not": {"type": "string"}}}})", "at #/properties/a: 'not' is not supported"},
      {R"({"type": "integer", "multipleOf": 3})", "at #: 'multipleOf' is not supported"},
      {R"({"$ref": "https://example.com/s.json"})",
       "at #: '$ref' https://example.com/s.json is not supported: only references into the same schema (#/...)"},
      {R"({"$ref": "#/$defs/missing"})", "at #: '$ref' #/$defs/missing points at nothing in the schema"},
      {R"({"$ref": "#/$defs/a", "type": "string", "$defs": {"a": {}}})", "at #: 'type' beside '$ref' is not supported"},
      {R"({"type": "strin"})", "at #: unknown type 'strin'"},
      {R"({"type": "integer", "minimum": 5, "maximum": 4})",
       "at #: no value satisfies the minimum and maximum (as integral bounds)"},
      {R"({"type": "string", "minLength": 5000})", "at #: 'minLength' above 2000 is not supported"},
      {R"({"type": "array", "minItems": 3, "maxItems": 2})", "at #: 'minItems' is above 'maxItems'"},
      {R"({"type": "array", "minItems": -1})", "at #: 'minItems' must be a non-negative integer"},
      {R"({"type": "string", "pattern": "(a)\\1"})",
       "at #: 'pattern': a backreference \\1 (at position 3 of the regex) is not supported"},
      {R"(false)", "at #: the schema false matches nothing"},
      {R"({"enum": []})", "at #: 'enum' must be a non-empty array"},
      {R"({"allOf": [{"type": "string"}, {"type": "integer"}]})", "at #/allOf/0: allOf is supported for object schemas only"},
      {R"(3)", "at #: a schema must be an object or a boolean"},
  };
  for (const auto& [schema, message] : cases) {
    std::string gbnf;
    const Status s = JsonSchemaGrammar(json::parse(schema), &gbnf);
    EXPECT_EQ(s.message(), message) << schema;
  }
  // Nested beyond the depth bound.
  json deep = json::object();
  for (int i = 0; i < kMaxSchemaDepth + 2; ++i) deep = json{{"type", "array"}, {"items", deep}};
  std::string gbnf;
  EXPECT_NE(JsonSchemaGrammar(deep, &gbnf).message().find("nests deeper than 64 levels"), std::string::npos);
}

TEST(JsonSchemaGbnf, LargeCountsActAsTheLargestGbnfRepetition) {
  const std::string gbnf = GbnfOf(R"({"type": "string", "maxLength": 100000})");
  EXPECT_TRUE(testing::Matches(gbnf, "\"" + std::string(2000, 'a') + "\""));
  EXPECT_FALSE(testing::Matches(gbnf, "\"" + std::string(2001, 'a') + "\""));
}

}  // namespace
}  // namespace strata::grammar
