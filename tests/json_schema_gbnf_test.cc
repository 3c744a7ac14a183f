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

namespace strata::grammar {
namespace {

using json = nlohmann::ordered_json;
using testing::ByteTokens;

struct Case {
  const char* name;
  const char* schema;
  std::vector<const char*> valid;    // the grammar takes these
  std::vector<const char*> invalid;  // and refuses these
};

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {"string", R"({"type": "string"})", {R"("")", R"("a\"b\\c\u00e9")", R"("日本")"}, {R"("a)", R"(1)", "\"\x01\""}},
      {"integer", R"({"type": "integer"})", {"0", "-12", "1234567890"}, {"01", "1.5", "-", "1e3"}},
      {"number", R"({"type": "number"})", {"0", "-1.25", "3e10", "2.5E-3"}, {".5", "1.", "--1"}},
      {"boolean-null", R"({"type": ["boolean", "null"]})", {"true", "false", "null"}, {"0", "\"true\""}},
      {"enum", R"({"enum": ["red", "green", 3, null, {"a": [1]}]})", {R"("red")", "3", "null", R"({"a":[1]})"},
       {R"("blue")", "4", R"({"a": [1]})"}},
      {"const", R"({"const": "fixed"})", {R"("fixed")"}, {R"("fixe")", R"("fixedd")"}},
      {"object-required-optional",
       R"({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
           "email": {"type": "string"}}, "required": ["name"]})",
       {R"({"name": "a"})", R"({"name": "a", "age": 3})", R"({"name": "a", "email": "x"})",
        R"({"name": "a", "age": 3, "email": "x"})", R"({ "name":"a" })"},
       {R"({})", R"({"age": 3})", R"({"name": "a", "other": 1})", R"({"name": "a", "email": "x", "age": 3})"}},
      {"nested",
       R"({"type": "object", "properties": {"user": {"type": "object", "properties": {"id": {"type": "integer"},
           "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["id", "tags"]}},
           "required": ["user"], "additionalProperties": false})",
       {R"({"user": {"id": 1, "tags": []}})", R"({"user": {"id": 1, "tags": ["a", "b"]}})"},
       {R"({"user": {"id": 1}})", R"({"user": {"tags": [], "id": 1}})"}},
      {"array-bounds", R"({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3})",
       {"[1, 2]", "[1,2,3]"}, {"[]", "[1]", "[1, 2, 3, 4]"}},
      {"array-any", R"({"type": "array"})", {"[]", R"([1, "a", {"b": null}])"}, {"[1,]"}},
      {"string-length", R"({"type": "string", "minLength": 2, "maxLength": 4})", {R"("ab")", R"("abcd")", R"("\n\t")"},
       {R"("a")", R"("abcde")"}},
      {"date", R"({"type": "string", "format": "date"})", {R"("2024-02-28")"}, {R"("2024-13-01")", R"("24-01-01")"}},
      {"date-time", R"({"type": "string", "format": "date-time"})", {R"("2024-01-05T10:20:30Z")", R"("2024-01-05T10:20:30.5+02:00")"},
       {R"("2024-01-05 10:20:30Z")"}},
      {"uuid", R"({"type": "string", "format": "uuid"})", {R"("123e4567-e89b-12d3-a456-426614174000")"}, {R"("123e4567")"}},
      {"integer-bounds", R"({"type": "integer", "minimum": -15, "maximum": 120})", {"-15", "-1", "0", "7", "99", "120"},
       {"-16", "121", "200", "-100"}},
      {"integer-exclusive", R"({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})", {"1", "9"},
       {"0", "10", "-1"}},
      {"number-bounds", R"({"type": "number", "minimum": 0, "maximum": 2.5})", {"0", "0.75", "1.999", "2"},
       {"-0.5", "2.5", "3", "1e1"}},
      {"number-negative", R"({"type": "number", "minimum": -3, "maximum": -1})", {"-3", "-2.5", "-1.5"},
       {"-0.5", "-3.5", "0", "-4"}},
      {"pattern", R"({"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"})", {R"("AB-123")"}, {R"("AB-12")", R"("ab-123")"}},
      {"pattern-search", R"({"type": "string", "pattern": "[0-9]"})", {R"("a 4!")", R"("5")"}, {R"("dog")"}},
      {"anyof", R"({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]})", {"5", R"("ab")"},
       {R"("abc")", "true"}},
      {"ref-recursive",
       R"({"$defs": {"node": {"type": "object", "properties": {"value": {"type": "integer"},
           "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["value"]}},
           "$ref": "#/$defs/node"})",
       {R"({"value": 1})", R"({"value": 1, "children": [{"value": 2, "children": []}]})"}, {R"({"children": []})"}},
      {"additional-schema", R"({"type": "object", "additionalProperties": {"type": "integer"}})", {R"({})", R"({"a": 1, "b": 2})"},
       {R"({"a": "x"})"}},
      {"additional-beside-properties",
       R"({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"], "additionalProperties": {"type": "boolean"}})",
       {R"({"id": 1})", R"({"id": 1, "ok": true, "idx": false})"}, {R"({"id": 1, "id": true})", R"({"id": 1, "x": 2})"}},
      {"allof", R"({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
           {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]})",
       {R"({"a": 1, "b": true})"}, {R"({"a": 1})"}},
      {"prefix-items", R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": false})",
       {R"(["a", 1])"}, {R"([1, "a"])", R"(["a", 1, 2])"}},
      {"nullable-oneof", R"({"type": "object", "properties": {"x": {"oneOf": [{"type": "number"}, {"type": "null"}]}},
           "required": ["x"]})", {R"({"x": null})", R"({"x": 2.5})"}, {R"({"x": "a"})"}},
      {"any", R"({})", {R"({"a": [1, 2.5, "x", null, true]})", "[]", "3"}, {"{", "nan"}},
  };
  return cases;
}

std::string GbnfOf(const char* schema) {
  std::string gbnf;
  const Status s = JsonSchemaGrammar(json::parse(schema), &gbnf);
  EXPECT_TRUE(s.ok()) << s.ToString() << "\n" << schema;
  return gbnf;
}

TEST(JsonSchemaGbnf, TakesValidInstancesRefusesInvalidOnes) {
  for (const Case& c : Cases()) {
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

// Runs tests/grammar/validate_json.py over (schema, text) pairs: one "" (valid) or error per pair.
std::vector<std::string> PythonValidate(const json& cases) {
  const std::string path = std::string(STRATA_BINARY_DIR) + "/schema-cases-" + std::to_string(getpid()) + ".json";
  std::ofstream(path) << cases.dump();
  const std::string command = "/usr/bin/python3 " STRATA_SOURCE_DIR "/tests/grammar/validate_json.py " + path;
  FILE* p = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while (p != nullptr && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = p != nullptr ? pclose(p) : -1;
  std::remove(path.c_str());
  EXPECT_EQ(rc, 0) << "python3-jsonschema is needed (apt-get install python3-jsonschema; scripts/setup.sh does)";
  std::vector<std::string> results;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const json r = json::parse(line);
    results.push_back(r["ok"].get<bool>() ? "" : r["error"].get<std::string>());
  }
  return results;
}

TEST(JsonSchemaGbnf, GeneratedTextsValidate) {
  std::mt19937 rng(2024);
  json cases = json::array();
  std::vector<std::string> names;
  for (const Case& c : Cases()) {
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
