// JSON Schema to GBNF: a grammar every output of which is JSON text valid
// against the schema (for the subset below), with llama.cpp's conventions
// (json-schema-to-grammar): whitespace only where `space` allows it (none
// around the whole value), properties in the schema's order with the
// required ones first, and "additionalProperties" false unless the schema
// says otherwise or lists no properties.
//
// Supported: type (a name or a list), const, enum, anyOf / oneOf (any one of
// them: oneOf's exclusivity is not enforced), allOf (merged when every part
// is an object schema), $ref to a JSON pointer in the same document
// ("#/$defs/...", "#/definitions/...", recursion included); objects:
// properties, required (a required name without a schema takes any value),
// additionalProperties (false, true or a schema; extra keys are plain
// strings); arrays: items, prefixItems (then exactly those items),
// minItems, maxItems; strings: minLength, maxLength, pattern (the regex
// subset of regex_gbnf.h, searched for unless anchored), format date,
// time, date-time and uuid (other formats are ignored); integers and
// numbers: minimum, maximum, exclusiveMinimum, exclusiveMaximum.
//
// Where the grammar is narrower than the schema (outputs stay valid):
// integers and integral parts have at most 16 digits and bounded numbers
// no exponent; a number's bounds are rounded inward to integers and a
// fraction is not generated at an integral bound (at most 2.5 allows 1.9
// and 2, not 2.3); maxLength and maxItems above 2000 act as 2000; dates
// have days 01-28; extra object keys are written without escapes.
//
// Refused (kInvalidArgument naming the keyword and where it is, e.g.
// "at #/properties/tags: 'uniqueItems' is not supported"): assertions not
// listed above (not, if/then/else, uniqueItems, contains, multipleOf,
// min/maxProperties, patternProperties, propertyNames, dependent*,
// unevaluated*), a $ref outside the document, constraint keywords beside
// $ref or anyOf/oneOf, unsatisfiable bounds, minLength or minItems above
// 2000, schemas nested deeper than kMaxSchemaDepth.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "grammar/gbnf_text.h"

namespace strata::grammar {

inline constexpr int kMaxSchemaDepth = 64;

[[nodiscard]] Status JsonSchemaGrammar(const nlohmann::ordered_json& schema, std::string* gbnf);

// The schema as rules added to *rules (named name, name-..., and the shared
// primitives), for a grammar that embeds several schemas; *expr matches a
// valid value. REQUIRES: name is none of the primitives' names (space,
// value, string, ...) nor starts with "ref-".
[[nodiscard]] Status JsonSchemaRules(const nlohmann::ordered_json& schema, const std::string& name, GbnfRules* rules,
                                     std::string* expr);

// Adds llama.cpp's primitive rule `name` (space, value, object, array,
// string, char, number, integer, boolean, null) and what it needs to
// *rules; returns name.
std::string JsonPrimitive(const std::string& name, GbnfRules* rules);

// Any JSON object (response_format {"type": "json_object"}).
std::string JsonObjectGrammar();

// Exactly one of the strings (vLLM's guided_choice). REQUIRES: !choices.empty().
std::string ChoiceGrammar(const std::vector<std::string>& choices);

}  // namespace strata::grammar
