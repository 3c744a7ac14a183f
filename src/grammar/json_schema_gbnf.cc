#include "grammar/json_schema_gbnf.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "grammar/gbnf_text.h"
#include "grammar/grammar.h"
#include "grammar/regex_gbnf.h"

namespace strata::grammar {
namespace {

using json = nlohmann::ordered_json;

constexpr uint32_t kMaxCount = 2000;                    // GBNF's largest repetition count
constexpr int64_t kMaxInteger = 9999999999999999;       // 16 digits

// Rules the schema's rules are built from (llama.cpp's primitives), added
// with their dependencies on first use. Generated rules are named after the
// caller's name (root-..., tool-...) or ref-..., never like these.
struct Builtin {
  const char* name;
  const char* body;
  std::vector<const char*> deps;
};
const Builtin kBuiltins[] = {
    {"space", R"(| " " | "\n"{1,2} [ \t]{0,20})", {}},
    {"boolean", R"("true" | "false")", {}},
    {"null", R"("null")", {}},
    {"integral-part", R"([0] | [1-9] [0-9]{0,15})", {}},
    {"decimal-part", R"([0-9]{1,16})", {}},
    {"number", R"("-"? integral-part ("." decimal-part)? ([eE] [-+]? integral-part)?)", {"integral-part", "decimal-part"}},
    {"integer", R"("-"? integral-part)", {"integral-part"}},
    {"char", R"([^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))", {}},
    {"plain-char", R"([^"\\\x00-\x1F])", {}},
    {"string", R"("\"" char* "\"")", {"char"}},
    {"value", "object | array | string | number | boolean | null",
     {"object", "array", "string", "number", "boolean", "null"}},
    {"object", R"("{" space ( string ":" space value ("," space string ":" space value)* )? space "}")",
     {"space", "string", "value"}},
    {"array", R"("[" space ( value ("," space value)* )? space "]")", {"space", "value"}},
    {"date", R"([1-9] [0-9]{3} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ))", {}},
    {"time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? )"
             R"(( "Z" | [+\-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))", {}},
    {"date-time", R"(date "T" time)", {"date", "time"}},
    {"uuid", R"([0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12})", {}},
};

// Assertion keywords strata cannot enforce in a grammar.
const std::set<std::string> kUnsupported = {
    "not", "if", "then", "else", "dependentSchemas", "dependentRequired", "dependencies", "uniqueItems",
    "contains", "minContains", "maxContains", "multipleOf", "minProperties", "maxProperties", "patternProperties",
    "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems", "$dynamicRef",
    "$recursiveRef"};

// Keywords that constrain the value (anything else is an annotation or unknown, and ignored).
const std::set<std::string> kConstraints = {
    "type", "const", "enum", "anyOf", "oneOf", "allOf", "$ref", "properties", "required", "additionalProperties",
    "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum"};

const char* const kStringFormats[] = {"date", "time", "date-time", "uuid"};

std::string Group(const std::string& e) { return "(" + e + ")"; }

std::string Join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i > 0 ? sep : "") + parts[i];
  return out;
}

// expr repeated min..max times (max nullopt: unbounded).
std::string Repeat(const std::string& expr, uint32_t min, std::optional<uint32_t> max) {
  if (max && *max == 0) return "";
  if (max && min == *max) return min == 1 ? expr : fmt::format("{}{{{}}}", expr, min);
  if (!max) return min == 0 ? expr + "*" : min == 1 ? expr + "+" : fmt::format("{}{{{},}}", expr, min);
  if (min == 0 && *max == 1) return expr + "?";
  return fmt::format("{}{{{},{}}}", expr, min, *max);
}

std::string DigitClass(char lo, char hi) { return lo == hi ? fmt::format("[{}]", lo) : fmt::format("[{}-{}]", lo, hi); }
std::string AnyDigits(size_t n) { return n == 1 ? "[0-9]" : fmt::format("[0-9]{{{}}}", n); }

// Decimal strings from a to b, both of one length (leading zeros allowed after the first digit).
std::string SameLength(const std::string& a, const std::string& b) {
  if (a == b) return GbnfLiteral(a);
  size_t i = 0;
  while (a[i] == b[i]) ++i;
  const std::string prefix = i > 0 ? GbnfLiteral(a.substr(0, i)) + " " : "";
  const std::string x = a.substr(i), y = b.substr(i);
  const size_t tail = x.size() - 1;
  if (tail == 0) return prefix + DigitClass(x[0], y[0]);
  const bool x_zeros = x.find_first_not_of('0', 1) == std::string::npos;
  const bool y_nines = y.find_first_not_of('9', 1) == std::string::npos;
  if (x_zeros && y_nines) return prefix + DigitClass(x[0], y[0]) + " " + AnyDigits(tail);
  std::vector<std::string> alts;
  if (!x_zeros) alts.push_back(GbnfLiteral(x.substr(0, 1)) + " " + Group(SameLength(x.substr(1), std::string(tail, '9'))));
  const char first = static_cast<char>(x[0] + (x_zeros ? 0 : 1)), last = static_cast<char>(y[0] - (y_nines ? 0 : 1));
  if (first <= last) alts.push_back(DigitClass(first, last) + " " + AnyDigits(tail));
  if (!y_nines) alts.push_back(GbnfLiteral(y.substr(0, 1)) + " " + Group(SameLength(std::string(tail, '0'), y.substr(1))));
  return prefix + Group(Join(alts, " | "));
}

// Integers from a to b written without leading zeros. REQUIRES: 0 <= a <= b.
std::string IntRange(int64_t a, int64_t b) {
  const std::string sa = std::to_string(a), sb = std::to_string(b);
  std::vector<std::string> alts;
  for (size_t len = sa.size(); len <= sb.size(); ++len) {
    const std::string lo = len == sa.size() ? sa : "1" + std::string(len - 1, '0');
    const std::string hi = len == sb.size() ? sb : std::string(len, '9');
    alts.push_back(SameLength(lo, hi));
  }
  return alts.size() == 1 ? alts[0] : Group(Join(alts, " | "));
}

// A trie of strings by code point, for the keys an object's extra properties may not use.
struct KeyTrie {
  std::map<uint32_t, size_t> children;
  bool terminal = false;
};

class Converter {
 public:
  Converter(const json& root, GbnfRules* rules) : root_(root), rules_(*rules) {}

  // The expression for the whole schema; its rules are named name, name-...
  Status Convert(const std::string& name, std::string* expr) { return Visit(root_, "#", name, 0, expr); }

 private:
  static Status Fail(const std::string& path, const std::string& what) {
    return Status::InvalidArgument(fmt::format("at {}: {}", path, what));
  }

  // A built-in rule by name, added (with what it needs) on first use.
 public:
  std::string Use(const std::string& name) {
    if (rules_.Has(name)) return name;
    for (const Builtin& b : kBuiltins) {
      if (name != b.name) continue;
      rules_.Set(name, b.body);
      for (const char* dep : b.deps) Use(dep);
    }
    return name;
  }

 private:
  static const json* Get(const json& s, const char* key) {
    const auto it = s.find(key);
    return it == s.end() ? nullptr : &*it;
  }

  Status Visit(const json& s, const std::string& path, const std::string& name, int depth, std::string* out) {
    if (depth > kMaxSchemaDepth) return Fail(path, fmt::format("the schema nests deeper than {} levels", kMaxSchemaDepth));
    if (s.is_boolean()) {
      if (!s.get<bool>()) return Fail(path, "the schema false matches nothing");
      *out = Use("value");
      return Status::Ok();
    }
    if (!s.is_object()) return Fail(path, "a schema must be an object or a boolean");
    for (const auto& [key, value] : s.items()) {
      if (kUnsupported.count(key) > 0 && !(key == "uniqueItems" && value == false))
        return Fail(path, fmt::format("'{}' is not supported", key));
    }
    if (const json* ref = Get(s, "$ref")) {
      STRATA_RETURN_IF_ERROR(OnlyBeside(s, "$ref", path));
      return Ref(*ref, path, depth, out);
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (const json* alts = Get(s, key)) {
        STRATA_RETURN_IF_ERROR(OnlyBeside(s, key, path));
        return Alternatives(*alts, path + "/" + key, name, depth, out);
      }
    }
    if (const json* all = Get(s, "allOf")) return AllOf(s, *all, path, name, depth, out);
    if (const json* c = Get(s, "const")) {
      *out = GbnfLiteral(c->dump());
      return Status::Ok();
    }
    if (const json* e = Get(s, "enum")) {
      if (!e->is_array() || e->empty()) return Fail(path, "'enum' must be a non-empty array");
      std::vector<std::string> alts;
      for (const json& v : *e) alts.push_back(GbnfLiteral(v.dump()));
      *out = Group(Join(alts, " | "));
      return Status::Ok();
    }
    const json* type = Get(s, "type");
    if (type != nullptr && type->is_array()) {
      if (type->empty()) return Fail(path, "'type' must not be an empty array");
      std::vector<std::string> alts;
      for (const json& t : *type) {
        json one = s;
        one["type"] = t;
        STRATA_RETURN_IF_ERROR(Visit(one, path, name, depth + 1, &alts.emplace_back()));
      }
      *out = Group(Join(alts, " | "));
      return Status::Ok();
    }
    if (type != nullptr && !type->is_string()) return Fail(path, "'type' must be a string or an array of strings");
    std::string t = type != nullptr ? type->get<std::string>() : Inferred(s);
    if (t == "object") return Object(s, path, name, depth, out);
    if (t == "array") return Array(s, path, name, depth, out);
    if (t == "string") return String(s, path, out);
    if (t == "integer" || t == "number") return Numeric(s, path, t == "integer", out);
    if (t == "boolean" || t == "null") {
      *out = Use(t);
      return Status::Ok();
    }
    if (t.empty()) {
      *out = Use("value");
      return Status::Ok();
    }
    return Fail(path, fmt::format("unknown type '{}'", t));
  }

  // The type a schema without "type" describes by its keywords ("" for any value).
  static std::string Inferred(const json& s) {
    for (const char* k : {"properties", "required", "additionalProperties"})
      if (s.contains(k)) return "object";
    for (const char* k : {"items", "prefixItems", "minItems", "maxItems"})
      if (s.contains(k)) return "array";
    for (const char* k : {"pattern", "minLength", "maxLength", "format"})
      if (s.contains(k)) return "string";
    for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
      if (s.contains(k)) return "number";
    return "";
  }

  // A keyword that decides the value alone: no other constraint may sit beside it.
  static Status OnlyBeside(const json& s, const char* keyword, const std::string& path) {
    for (const auto& [key, value] : s.items())
      if (key != keyword && kConstraints.count(key) > 0)
        return Fail(path, fmt::format("'{}' beside '{}' is not supported", key, keyword));
    return Status::Ok();
  }

  Status Ref(const json& ref, const std::string& path, int depth, std::string* out) {
    if (!ref.is_string()) return Fail(path, "'$ref' must be a string");
    const std::string r = ref.get<std::string>();
    if (const auto it = refs_.find(r); it != refs_.end()) {
      *out = it->second;
      return Status::Ok();
    }
    if (r.empty() || r[0] != '#')
      return Fail(path, fmt::format("'$ref' {} is not supported: only references into the same schema (#/...)", r));
    const json* target = nullptr;
    try {
      target = &root_.at(json::json_pointer(r.substr(1)));
    } catch (const json::exception&) {
      return Fail(path, fmt::format("'$ref' {} points at nothing in the schema", r));
    }
    const std::string rule = rules_.Reserve("ref-" + r.substr(r.rfind('/') + 1));
    refs_[r] = rule;  // before visiting: a recursive schema refers back to this rule
    std::string body;
    STRATA_RETURN_IF_ERROR(Visit(*target, r, rule, depth + 1, &body));
    rules_.Set(rule, body);
    *out = rule;
    return Status::Ok();
  }

  Status Alternatives(const json& alts, const std::string& path, const std::string& name, int depth, std::string* out) {
    if (!alts.is_array() || alts.empty()) return Fail(path, "must be a non-empty array of schemas");
    std::vector<std::string> exprs;
    for (size_t i = 0; i < alts.size(); ++i)
      STRATA_RETURN_IF_ERROR(
          Visit(alts[i], fmt::format("{}/{}", path, i), fmt::format("{}-{}", name, i), depth + 1, &exprs.emplace_back()));
    *out = Group(Join(exprs, " | "));
    return Status::Ok();
  }

  // allOf: one part is that part; several are merged when each is an object schema.
  Status AllOf(const json& s, const json& all, const std::string& path, const std::string& name, int depth,
               std::string* out) {
    if (!all.is_array() || all.empty()) return Fail(path + "/allOf", "must be a non-empty array of schemas");
    json merged = s;
    merged.erase("allOf");
    for (size_t i = 0; i < all.size(); ++i) {
      const std::string part_path = fmt::format("{}/allOf/{}", path, i);
      const json* part = &all[i];
      for (int hops = 0; part->is_object() && part->contains("$ref") && hops < kMaxSchemaDepth; ++hops) {
        const json& r = (*part)["$ref"];
        if (!r.is_string() || r.get<std::string>().empty() || r.get<std::string>()[0] != '#')
          return Fail(part_path, "'$ref' must point into the same schema (#/...)");
        try {
          part = &root_.at(json::json_pointer(r.get<std::string>().substr(1)));
        } catch (const json::exception&) {
          return Fail(part_path, fmt::format("'$ref' {} points at nothing in the schema", r.get<std::string>()));
        }
      }
      if (all.size() == 1 && merged.size() == 0) return Visit(*part, part_path, name, depth + 1, out);
      if (!part->is_object() || (Inferred(*part) != "object" && part->value("type", json()) != "object"))
        return Fail(part_path, "allOf is supported for object schemas only");
      for (const auto& [key, value] : part->items()) {
        if (key == "properties") {
          if (!value.is_object()) return Fail(part_path, "'properties' must be an object");
          for (const auto& [k, v] : value.items()) merged["properties"][k] = v;
        } else if (key == "required") {
          if (!value.is_array()) return Fail(part_path, "'required' must be an array of strings");
          for (const json& k : value) merged["required"].push_back(k);
        } else if (kConstraints.count(key) > 0 && key != "type") {
          if (merged.contains(key) && merged[key] != value)
            return Fail(part_path, fmt::format("'{}' differs between allOf parts", key));
          merged[key] = value;
        }
      }
    }
    merged["type"] = "object";
    return Visit(merged, path, name, depth + 1, out);
  }

  Status Object(const json& s, const std::string& path, const std::string& name, int depth, std::string* out) {
    const json* props = Get(s, "properties");
    if (props != nullptr && !props->is_object()) return Fail(path, "'properties' must be an object");
    std::set<std::string> required;
    std::vector<std::string> required_order;
    if (const json* req = Get(s, "required")) {
      if (!req->is_array()) return Fail(path, "'required' must be an array of strings");
      for (const json& k : *req) {
        if (!k.is_string()) return Fail(path, "'required' must be an array of strings");
        if (required.insert(k.get<std::string>()).second) required_order.push_back(k.get<std::string>());
      }
    }
    const bool has_props = props != nullptr && !props->empty();
    // Extra properties: none, any value (a null schema pointer) or values of a schema.
    bool extra = !has_props;
    const json* extra_schema = nullptr;
    if (const json* a = Get(s, "additionalProperties")) {
      if (a->is_boolean()) {
        extra = a->get<bool>();
      } else if (a->is_object()) {
        extra = true;
        extra_schema = a;
      } else {
        return Fail(path, "'additionalProperties' must be a boolean or a schema");
      }
    }
    if (!has_props && required.empty() && extra && extra_schema == nullptr) {
      *out = Use("object");
      return Status::Ok();
    }
    const std::string space = Use("space");
    std::vector<std::string> req_kvs, opt_kvs;
    std::vector<std::string> names;
    if (props != nullptr) {
      for (const auto& [key, schema] : props->items()) {
        std::string value;
        const std::string sub = name + "-" + key;
        STRATA_RETURN_IF_ERROR(Visit(schema, path + "/properties/" + key, sub, depth + 1, &value));
        const std::string kv = rules_.Add(sub + "-kv", GbnfLiteral(json(key).dump()) + " space \":\" space " + value);
        (required.count(key) > 0 ? req_kvs : opt_kvs).push_back(kv);
        names.push_back(key);
      }
    }
    for (const std::string& key : required_order) {
      if (props != nullptr && props->contains(key)) continue;
      req_kvs.push_back(
          rules_.Add(name + "-" + key + "-kv", GbnfLiteral(json(key).dump()) + " space \":\" space " + Use("value")));
      names.push_back(key);
    }
    std::string extra_kv;
    if (extra) {
      std::string value = Use("value");
      if (extra_schema != nullptr)
        STRATA_RETURN_IF_ERROR(Visit(*extra_schema, path + "/additionalProperties", name + "-extra", depth + 1, &value));
      const std::string key = names.empty() ? Use("string") : KeyNotIn(names, name + "-extra-key");
      extra_kv = rules_.Add(name + "-extra-kv", key + " space \":\" space " + value);
    }
    std::string body = "\"{\" " + space;
    for (size_t i = 0; i < req_kvs.size(); ++i) body += (i > 0 ? " \",\" space " : " ") + req_kvs[i];
    if (!opt_kvs.empty() || extra) {
      // Any ordered subset of the optional properties, then any number of extra ones:
      // rest[j] ::= ( "," space opt[j] )? rest[j+1], the last rest the extra ones.
      const std::string tail = extra ? "( \",\" space " + extra_kv + " )*" : "";
      std::vector<std::string> rest(opt_kvs.size() + 1);
      rest[opt_kvs.size()] = tail;
      for (size_t j = opt_kvs.size(); j-- > 1;) {  // rest[0] would follow nothing
        std::string r = "( \",\" space " + opt_kvs[j] + " )?" + (rest[j + 1].empty() ? "" : " " + rest[j + 1]);
        rest[j] = j + 1 == opt_kvs.size() && !extra ? r : rules_.Add(name + "-rest", r);
      }
      std::vector<std::string> alts;
      for (size_t i = 0; i < opt_kvs.size(); ++i)
        alts.push_back(opt_kvs[i] + (rest[i + 1].empty() ? "" : " " + rest[i + 1]));
      if (extra) alts.push_back(extra_kv + " " + tail);
      const std::string any = Group(Join(alts, " | "));
      body += req_kvs.empty() ? " " + any + "?" : " ( \",\" space " + any + " )?";
    }
    body += " space \"}\"";
    *out = rules_.Add(name, body);
    return Status::Ok();
  }

  // A JSON string of plain characters (no escapes) that is none of names.
  std::string KeyNotIn(const std::vector<std::string>& names, const std::string& rule) {
    std::vector<KeyTrie> trie(1);
    const CharClass plain = CharClass::Of({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, true);
    for (const std::string& n : names) {
      std::vector<uint32_t> cps;
      bool producible = true;
      for (size_t i = 0; i < n.size();) {
        uint32_t cp = 0;
        const size_t len = Utf8Char(n, i, &cp);
        if (!plain.Contains(cp)) producible = false;
        cps.push_back(cp);
        i += len;
      }
      if (!producible) continue;  // a plain key can never equal it
      size_t node = 0;
      for (const uint32_t cp : cps) {
        auto it = trie[node].children.find(cp);
        if (it == trie[node].children.end()) {
          trie.emplace_back();
          it = trie[node].children.emplace(cp, trie.size() - 1).first;
        }
        node = it->second;
      }
      trie[node].terminal = true;
    }
    const std::string any = Use("plain-char");
    std::vector<std::string> node_rules(trie.size());
    for (size_t i = trie.size(); i-- > 0;) {
      std::vector<std::string> alts;
      if (!trie[i].terminal) alts.push_back("");
      std::vector<std::pair<uint32_t, uint32_t>> stop = {{0, 0x1F}, {'"', '"'}, {'\\', '\\'}};
      for (const auto& [cp, child] : trie[i].children) {
        alts.push_back(GbnfClass({{cp, cp}}) + " " + node_rules[child]);
        stop.emplace_back(cp, cp);
      }
      alts.push_back(GbnfClass(CharClass::Of(stop, true).ranges) + " " + any + "*");
      node_rules[i] = rules_.Add(rule, Join(alts, " | "));
    }
    return "\"\\\"\" " + node_rules[0] + " \"\\\"\"";
  }

  // Decodes the UTF-8 character at text[i] (text is valid: it came from a JSON parser).
  static size_t Utf8Char(const std::string& text, size_t i, uint32_t* cp) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t v = len == 1 ? c : c & (0x3Fu >> (len - 1));
    for (size_t k = 1; k < len && i + k < text.size(); ++k) v = v << 6 | (static_cast<unsigned char>(text[i + k]) & 0x3Fu);
    *cp = v;
    return len;
  }

  // A count keyword (minItems, maxLength, ...): a non-negative integer.
  static Status Count(const json& s, const char* key, const std::string& path, std::optional<uint64_t>* out) {
    const json* v = Get(s, key);
    if (v == nullptr) return Status::Ok();
    if (!v->is_number_integer() || (!v->is_number_unsigned() && v->get<int64_t>() < 0))
      return Fail(path, fmt::format("'{}' must be a non-negative integer", key));
    *out = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    return Status::Ok();
  }

  // min..max of a minX/maxX pair as GBNF counts (max above kMaxCount acts as kMaxCount).
  static Status Counts(const json& s, const char* min_key, const char* max_key, const std::string& path,
                       uint32_t* min, std::optional<uint32_t>* max) {
    std::optional<uint64_t> lo, hi;
    STRATA_RETURN_IF_ERROR(Count(s, min_key, path, &lo));
    STRATA_RETURN_IF_ERROR(Count(s, max_key, path, &hi));
    if (lo && *lo > kMaxCount) return Fail(path, fmt::format("'{}' above {} is not supported", min_key, kMaxCount));
    if (lo && hi && *lo > *hi) return Fail(path, fmt::format("'{}' is above '{}'", min_key, max_key));
    *min = static_cast<uint32_t>(lo.value_or(0));
    if (hi) *max = static_cast<uint32_t>(std::min<uint64_t>(*hi, kMaxCount));
    return Status::Ok();
  }

  Status Array(const json& s, const std::string& path, const std::string& name, int depth, std::string* out) {
    uint32_t min = 0;
    std::optional<uint32_t> max;
    STRATA_RETURN_IF_ERROR(Counts(s, "minItems", "maxItems", path, &min, &max));
    const std::string space = Use("space");
    const json* items = Get(s, "items");
    const json* tuple = Get(s, "prefixItems");
    if (tuple == nullptr && items != nullptr && items->is_array()) tuple = items;  // draft 4's tuple form
    if (tuple != nullptr) {
      // Exactly the first min(n, maxItems) of the listed items.
      if (!tuple->is_array()) return Fail(path, "'prefixItems' must be an array of schemas");
      const size_t n = std::min<size_t>(tuple->size(), max.value_or(UINT32_MAX));
      if (min > n) return Fail(path, "'minItems' beyond the listed prefixItems is not supported");
      std::string body = "\"[\" " + space;
      for (size_t i = 0; i < n; ++i) {
        std::string item;
        STRATA_RETURN_IF_ERROR(
            Visit((*tuple)[i], fmt::format("{}/prefixItems/{}", path, i), fmt::format("{}-{}", name, i), depth + 1, &item));
        body += (i > 0 ? " \",\" space " : " ") + item;
      }
      *out = rules_.Add(name, body + " space \"]\"");
      return Status::Ok();
    }
    std::string item = Use("value");
    if (items != nullptr) STRATA_RETURN_IF_ERROR(Visit(*items, path + "/items", name + "-item", depth + 1, &item));
    std::string body = "\"[\" " + space;
    if (!max || *max > 0) {
      const std::string more = Repeat("( \",\" space " + item + " )", min > 0 ? min - 1 : 0,
                                      max ? std::optional<uint32_t>(*max - 1) : std::nullopt);
      const std::string list = item + (more.empty() ? "" : " " + more);
      body += min == 0 ? " ( " + list + " )?" : " " + list;
    }
    *out = rules_.Add(name, body + " space \"]\"");
    return Status::Ok();
  }

  Status String(const json& s, const std::string& path, std::string* out) {
    const std::string quote = "\"\\\"\"";
    if (const json* p = Get(s, "pattern")) {
      if (!p->is_string()) return Fail(path, "'pattern' must be a string");
      if (s.contains("minLength") || s.contains("maxLength"))
        return Fail(path, "'pattern' with 'minLength' or 'maxLength' is not supported");
      RegexGbnf r;
      if (Status st = RegexToGbnf(p->get<std::string>(), RegexTarget::kJsonString, &r); !st.ok())
        return Fail(path, "'pattern': " + st.message());
      // JSON Schema patterns search the string: unanchored ends take any characters.
      const std::string any = Use("char") + "*";
      *out = quote + (r.anchored_start ? " " : " " + any + " ") + Group(r.expr) + (r.anchored_end ? " " : " " + any + " ") +
             quote;
      return Status::Ok();
    }
    if (const json* f = Get(s, "format")) {
      if (!f->is_string()) return Fail(path, "'format' must be a string");
      for (const char* known : kStringFormats) {
        if (*f != known) continue;
        if (s.contains("minLength") || s.contains("maxLength"))
          return Fail(path, fmt::format("'format' {} with 'minLength' or 'maxLength' is not supported", known));
        *out = quote + " " + Use(known) + " " + quote;
        return Status::Ok();
      }
    }
    uint32_t min = 0;
    std::optional<uint32_t> max;
    STRATA_RETURN_IF_ERROR(Counts(s, "minLength", "maxLength", path, &min, &max));
    if (min == 0 && !max) {
      *out = Use("string");
      return Status::Ok();
    }
    const std::string chars = Repeat(Use("char"), min, max);
    *out = quote + (chars.empty() ? "" : " " + chars) + " " + quote;
    return Status::Ok();
  }

  // A bound keyword's value, or nullopt; draft 4's boolean exclusive* qualify minimum/maximum.
  static Status Bound(const json& s, const char* key, const std::string& path, std::optional<double>* out) {
    const json* v = Get(s, key);
    if (v == nullptr || v->is_boolean()) return Status::Ok();
    if (!v->is_number()) return Fail(path, fmt::format("'{}' must be a number", key));
    *out = v->get<double>();
    return Status::Ok();
  }

  Status Numeric(const json& s, const std::string& path, bool integer, std::string* out) {
    std::optional<double> min, max, xmin, xmax;
    STRATA_RETURN_IF_ERROR(Bound(s, "minimum", path, &min));
    STRATA_RETURN_IF_ERROR(Bound(s, "maximum", path, &max));
    STRATA_RETURN_IF_ERROR(Bound(s, "exclusiveMinimum", path, &xmin));
    STRATA_RETURN_IF_ERROR(Bound(s, "exclusiveMaximum", path, &xmax));
    if (s.value("exclusiveMinimum", json()) == true && min) std::swap(min, xmin);
    if (s.value("exclusiveMaximum", json()) == true && max) std::swap(max, xmax);
    if (!min && !max && !xmin && !xmax) {
      *out = Use(integer ? "integer" : "number");
      return Status::Ok();
    }
    // Bounds rounded inward to integers, within what 16 digits hold.
    const double limit = static_cast<double>(kMaxInteger);
    double lo = -limit, hi = limit;
    if (min) lo = std::max(lo, std::ceil(*min));
    if (xmin) lo = std::max(lo, std::floor(*xmin) + 1);
    if (max) hi = std::min(hi, std::floor(*max));
    if (xmax) hi = std::min(hi, std::ceil(*xmax) - 1);
    if (lo > hi) return Fail(path, "no value satisfies the minimum and maximum (as integral bounds)");
    const int64_t l = static_cast<int64_t>(lo), h = static_cast<int64_t>(hi);
    const std::string frac = integer ? "" : " (\".\" [0-9]{1,16})?";
    // x in [a, b] for 0 <= a <= b: the integers, or for numbers integral parts
    // a..b-1 with a fraction and b itself without.
    auto magnitudes = [&](int64_t a, int64_t b) {
      if (integer || a == b) return IntRange(a, b);
      return Group(Group(IntRange(a, b - 1)) + frac + " | " + GbnfLiteral(std::to_string(b)));
    };
    std::vector<std::string> alts;
    if (l < 0) {
      const int64_t a = h < 0 ? -h : integer ? 1 : 0;  // the magnitude of a negative value
      if (a <= -l) alts.push_back("\"-\" " + magnitudes(a, -l));
    }
    if (h >= 0) alts.push_back(magnitudes(std::max<int64_t>(l, 0), h));
    *out = alts.size() == 1 ? alts[0] : Group(Join(alts, " | "));
    return Status::Ok();
  }

  const json& root_;
  GbnfRules& rules_;
  std::map<std::string, std::string> refs_;  // $ref -> its rule
};

}  // namespace

Status JsonSchemaGrammar(const nlohmann::ordered_json& schema, std::string* gbnf) {
  GbnfRules rules;
  std::string expr;
  STRATA_RETURN_IF_ERROR(Converter(schema, &rules).Convert("root", &expr));
  if (expr != "root") rules.Add("root", expr);
  *gbnf = rules.Text();
  return Status::Ok();
}

Status JsonSchemaRules(const nlohmann::ordered_json& schema, const std::string& name, GbnfRules* rules,
                       std::string* expr) {
  return Converter(schema, rules).Convert(name, expr);
}

std::string JsonPrimitive(const std::string& name, GbnfRules* rules) {
  json any = json::object();
  Converter c(any, rules);
  return c.Use(name);
}

std::string JsonObjectGrammar() {
  std::string gbnf;
  const Status s = JsonSchemaGrammar(json{{"type", "object"}}, &gbnf);
  (void)s;  // a fixed schema: always converts
  return gbnf;
}

std::string ChoiceGrammar(const std::vector<std::string>& choices) {
  std::vector<std::string> alts;
  for (const std::string& c : choices) alts.push_back(GbnfLiteral(c));
  return "root ::= " + Join(alts, " | ") + "\n";
}

}  // namespace strata::grammar
