// JSON Schemas of the structured-output tests (nested objects, arrays,
// enums, required/optional, string formats, bounded numbers, $ref
// recursion, ...), each with instances its grammar must take and refuse;
// and their validation by Debian's python3-jsonschema.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace strata::testing {

struct Case {
  const char* name;
  const char* schema;
  std::vector<const char*> valid;    // the grammar takes these
  std::vector<const char*> invalid;  // and refuses these
};

inline const std::vector<Case>& SchemaCases() {
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

// Runs tests/grammar/validate_json.py over (schema, text) pairs: one "" (valid) or error per pair.
inline std::vector<std::string> PythonValidate(const nlohmann::ordered_json& cases) {
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
    const nlohmann::ordered_json r = nlohmann::ordered_json::parse(line);
    results.push_back(r["ok"].get<bool>() ? "" : r["error"].get<std::string>());
  }
  return results;
}

}  // namespace strata::testing
