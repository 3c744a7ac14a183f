// Filters (builtins.h): jinja2.filters as the sandbox exposes them, with
// transformers' tojson. Filters jinja2 has but chat templates do not use
// (groupby, batch, slice, wordwrap, urlize, random, ...) are refused by name.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "jinja/builtins.h"
#include "core/utf8.h"
#include "jinja/json_dumps.h"
#include "jinja/py_string.h"
#include "jinja/py_unicode.h"
#include "jinja/renderer.h"

namespace strata::jinja {
namespace {

using Args = std::vector<Value>;

// jinja2's soft_str: strings (and Markup) as they are, else str(v).
Status SoftStr(Renderer& r, const Value& v, Value* out) {
  if (v.is_string()) {
    *out = v;
    return Status::Ok();
  }
  std::string s;
  STRATA_RETURN_IF_ERROR(r.Str(v, &s));
  *out = Value::String(std::move(s));
  return Status::Ok();
}

// A string result that stays Markup if its source was.
Value Like(const Value& source, std::string s) {
  return source.is_markup() ? Value::Markup(std::move(s)) : Value::String(std::move(s));
}

Status RequireInt(Renderer& r, const Value& v, std::string_view what, int64_t* out) {
  if (!v.is_int() && !v.is_bool())
    return r.Raise(fmt::format("'{}' must be an integer, not {}", what, TypeName(v)));
  *out = v.integer();
  return Status::Ok();
}

// len(v) as Python computes it.
Status Length(Renderer& r, const Value& v, int64_t* out) {
  switch (v.type()) {
    case Value::Type::kUndefined: *out = 0; return Status::Ok();
    case Value::Type::kString: *out = static_cast<int64_t>(py::Length(v.str())); return Status::Ok();
    case Value::Type::kDict: *out = static_cast<int64_t>(v.dict().entries.size()); return Status::Ok();
    case Value::Type::kSeq:
      if (v.seq().kind != SeqKind::kIterator) {
        *out = static_cast<int64_t>(v.seq().items.size());
        return Status::Ok();
      }
      break;
    default: break;
  }
  return r.Raise(fmt::format("object of type '{}' has no len()", TypeName(v)));
}

// make_attrgetter: "a.b.0" looks up a, then b, then item 0.
Status GetPath(Renderer& r, const Value& item, const Value& attribute, const Value* default_value, Value* out) {
  *out = item;
  if (attribute.is_none()) return Status::Ok();
  std::vector<Value> parts;
  if (attribute.is_string()) {
    for (const std::string& p : py::Split(attribute.str(), std::string("."), -1)) {
      const bool digits = !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; });
      parts.push_back(digits ? Value::Int(std::strtoll(p.c_str(), nullptr, 10)) : Value::String(p));
    }
  } else {
    parts.push_back(attribute);
  }
  for (const Value& part : parts) {
    STRATA_RETURN_IF_ERROR(r.GetItem(*out, part, out));
    if (default_value != nullptr && out->is_undefined()) *out = *default_value;
  }
  return Status::Ok();
}

// ignore_case: strings lower-cased for case-insensitive comparisons.
Value IgnoreCase(const Value& v) { return v.is_string() ? Value::String(py::Lower(v.str())) : v; }

// Sorts values by keys with Python's sorted() (stable; TypeError on
// incomparable keys).
Status SortBy(Renderer& r, std::vector<Value>* values, std::vector<Value>* keys, bool reverse) {
  std::vector<size_t> order(values->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Status error;
  const int depth = r.limits().max_value_depth;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    bool less = false;
    Status s = reverse ? Less((*keys)[b], (*keys)[a], depth, &less) : Less((*keys)[a], (*keys)[b], depth, &less);
    if (!s.ok() && error.ok()) error = s;
    return less;
  });
  STRATA_RETURN_IF_ERROR(error);
  std::vector<Value> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back((*values)[i]);
  *values = std::move(sorted);
  return Status::Ok();
}

Status DoDefault(Renderer&, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("default", a, {{"default_value", Value::String("")}, {"boolean", Value::Bool(false)}}, &p));
  *out = v.is_undefined() || (Truthy(p[1]) && !Truthy(v)) ? p[0] : v;
  return Status::Ok();
}

Status DoJoin(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("join", a, {{"d", Value::String("")}, {"attribute", Value::None()}}, &p));
  std::vector<Value> items;
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  std::string sep, s;
  STRATA_RETURN_IF_ERROR(r.Str(p[0], &sep));
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (!p[1].is_none()) STRATA_RETURN_IF_ERROR(GetPath(r, items[i], p[1], nullptr, &item));
    if (i > 0) s += sep;
    STRATA_RETURN_IF_ERROR(r.Str(item, &s));
    STRATA_RETURN_IF_ERROR(r.ChargeString(s.size()));
  }
  *out = Value::String(std::move(s));
  return Status::Ok();
}

Status DoIndent(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("indent", a, {{"width", Value::Int(4)}, {"first", Value::Bool(false)},
                                                {"blank", Value::Bool(false)}}, &p));
  std::string indention;
  if (p[0].is_string()) {
    indention = p[0].str();
  } else {
    int64_t width = 0;
    STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], "width", &width));
    STRATA_RETURN_IF_ERROR(r.ChargeString(static_cast<size_t>(std::max<int64_t>(0, width))));
    indention.assign(static_cast<size_t>(std::max<int64_t>(0, width)), ' ');
  }
  Value s;
  STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
  const std::vector<std::string> lines = py::SplitLines(s.str() + "\n", false);
  std::string rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) rv += "\n";
    if (i > 0 && (Truthy(p[2]) || !lines[i].empty())) rv += indention;
    rv += lines[i];
    STRATA_RETURN_IF_ERROR(r.ChargeString(rv.size()));
  }
  if (Truthy(p[1])) rv = indention + rv;
  *out = Like(s, std::move(rv));
  return Status::Ok();
}

Status DoTojson(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("tojson", a, {{"ensure_ascii", Value::Bool(false)}, {"indent", Value::None()},
                                                {"separators", Value::None()}, {"sort_keys", Value::Bool(false)}},
                                  &p));
  JsonDumpsOptions o;
  o.ensure_ascii = Truthy(p[0]);
  if (p[1].is_string()) {
    o.indent = p[1].str();
  } else if (p[1].is_int() || p[1].is_bool()) {
    const int64_t n = std::clamp<int64_t>(p[1].integer(), 0, 4096);
    o.indent = std::string(static_cast<size_t>(n), ' ');
  } else if (!p[1].is_none()) {
    return r.Raise(fmt::format("tojson: indent must be an integer or a string, not {}", TypeName(p[1])));
  }
  if (!p[2].is_none()) {
    std::vector<Value> seps;
    STRATA_RETURN_IF_ERROR(r.Iterate(p[2], &seps));
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string())
      return r.Raise("tojson: separators must be a pair of strings");
    o.item_separator = seps[0].str();
    o.key_separator = seps[1].str();
  }
  o.sort_keys = Truthy(p[3]);
  std::string s;
  STRATA_RETURN_IF_ERROR(JsonDumps(v, o, r.limits().max_value_depth, &s));
  STRATA_RETURN_IF_ERROR(r.ChargeString(s.size()));
  *out = Value::String(std::move(s));
  return Status::Ok();
}

// select / reject / selectattr / rejectattr.
Status DoSelect(Renderer& r, const Value& v, CallArgs& a, bool attr, bool keep_if, Value* out) {
  std::vector<Value> kept;
  if (Truthy(v)) {
    size_t off = 0;
    Value attribute;
    if (attr) {
      if (a.positional.empty()) return r.Raise("Missing parameter for attribute name");
      attribute = a.positional[0];
      off = 1;
    }
    const bool has_test = a.positional.size() > off;
    std::string test_name;
    if (has_test) {
      if (!a.positional[off].is_string()) return r.Raise("a test name must be a string");
      test_name = a.positional[off].str();
    }
    CallArgs test_args;
    test_args.positional.assign(a.positional.begin() + std::min(a.positional.size(), off + 1), a.positional.end());
    test_args.keywords = a.keywords;
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
    for (const Value& item : items) {
      Value x = item;
      if (attr) STRATA_RETURN_IF_ERROR(GetPath(r, item, attribute, nullptr, &x));
      bool pass = false;
      if (has_test) {
        STRATA_RETURN_IF_ERROR(r.CallTest(test_name, x, test_args, &pass));
      } else {
        pass = Truthy(x);
      }
      if (pass == keep_if) kept.push_back(item);
    }
  }
  *out = Value::Iterator(std::move(kept), "generator");
  return Status::Ok();
}

Status DoMap(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  std::vector<Value> mapped;
  if (Truthy(v)) {
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
    const bool by_attribute =
        a.positional.empty() && std::any_of(a.keywords.begin(), a.keywords.end(),
                                            [](const auto& kw) { return kw.first == "attribute"; });
    if (by_attribute) {
      Args p;
      STRATA_RETURN_IF_ERROR(BindArgs("map", a, {{"attribute", std::nullopt}, {"default", Value::None()}}, &p));
      const Value* default_value = p[1].is_none() ? nullptr : &p[1];
      for (const Value& item : items) {
        Value x;
        STRATA_RETURN_IF_ERROR(GetPath(r, item, p[0], default_value, &x));
        mapped.push_back(std::move(x));
      }
    } else {
      if (a.positional.empty()) return r.Raise("map requires a filter argument");
      if (!a.positional[0].is_string()) return r.Raise("map: the filter name must be a string");
      const std::string name = a.positional[0].str();
      CallArgs filter_args;
      filter_args.positional.assign(a.positional.begin() + 1, a.positional.end());
      filter_args.keywords = a.keywords;
      for (const Value& item : items) {
        Value x;
        STRATA_RETURN_IF_ERROR(r.CallFilter(name, item, filter_args, &x));
        mapped.push_back(std::move(x));
      }
    }
  }
  *out = Value::Iterator(std::move(mapped), "generator");
  return Status::Ok();
}

Status DoUnique(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("unique", a, {{"case_sensitive", Value::Bool(false)}, {"attribute", Value::None()}}, &p));
  std::vector<Value> items, kept;
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  DictData seen;
  for (const Value& item : items) {
    Value key;
    STRATA_RETURN_IF_ERROR(GetPath(r, item, p[1], nullptr, &key));
    if (!Truthy(p[0])) key = IgnoreCase(key);
    if (!HashKey(key)) return r.Raise(fmt::format("unhashable type: '{}'", TypeName(key)));
    if (seen.Find(key) != nullptr) continue;
    STRATA_RETURN_IF_ERROR(seen.Set(key, Value::None()));
    kept.push_back(item);
  }
  *out = Value::Iterator(std::move(kept), "generator");
  return Status::Ok();
}

Status DoSort(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("sort", a, {{"reverse", Value::Bool(false)}, {"case_sensitive", Value::Bool(false)},
                                              {"attribute", Value::None()}}, &p));
  std::vector<Value> items, keys;
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  std::vector<Value> attributes;
  if (p[2].is_string()) {
    for (const std::string& s : py::Split(p[2].str(), std::string(","), -1)) attributes.push_back(Value::String(s));
  } else {
    attributes.push_back(p[2]);
  }
  for (const Value& item : items) {
    std::vector<Value> key;
    for (const Value& attr : attributes) {
      Value k;
      STRATA_RETURN_IF_ERROR(GetPath(r, item, attr, nullptr, &k));
      key.push_back(Truthy(p[1]) ? k : IgnoreCase(k));
    }
    keys.push_back(Value::List(std::move(key)));
  }
  STRATA_RETURN_IF_ERROR(SortBy(r, &items, &keys, Truthy(p[0])));
  *out = Value::List(std::move(items));
  return Status::Ok();
}

Status DoDictsort(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("dictsort", a, {{"case_sensitive", Value::Bool(false)}, {"by", Value::String("key")},
                                                  {"reverse", Value::Bool(false)}}, &p));
  if (!p[1].is_string() || (p[1].str() != "key" && p[1].str() != "value"))
    return r.Raise("You can only sort by either \"key\" or \"value\"");
  if (!v.is_dict()) return r.Raise(fmt::format("'{}' object has no attribute 'items'", TypeName(v)));
  const size_t pos = p[1].str() == "key" ? 0 : 1;
  std::vector<Value> items, keys;
  for (const auto& [k, value] : v.dict().entries) {
    items.push_back(Value::Tuple({k, value}));
    keys.push_back(Truthy(p[0]) ? (pos == 0 ? k : value) : IgnoreCase(pos == 0 ? k : value));
  }
  STRATA_RETURN_IF_ERROR(SortBy(r, &items, &keys, Truthy(p[2])));
  *out = Value::List(std::move(items));
  return Status::Ok();
}

Status DoMinMax(Renderer& r, const Value& v, CallArgs& a, bool max, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs(max ? "max" : "min", a, {{"case_sensitive", Value::Bool(false)},
                                                            {"attribute", Value::None()}}, &p));
  std::vector<Value> items;
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  if (items.empty()) {
    *out = Value::Undefined("No aggregated item, sequence was empty.");
    return Status::Ok();
  }
  size_t best = 0;
  Value best_key;
  for (size_t i = 0; i < items.size(); ++i) {
    Value key;
    STRATA_RETURN_IF_ERROR(GetPath(r, items[i], p[1], nullptr, &key));
    if (!Truthy(p[0])) key = IgnoreCase(key);
    bool better = i == 0;
    if (!better) {
      STRATA_RETURN_IF_ERROR(max ? Less(best_key, key, r.limits().max_value_depth, &better)
                                 : Less(key, best_key, r.limits().max_value_depth, &better));
    }
    if (better) {
      best = i;
      best_key = key;
    }
  }
  *out = items[best];
  return Status::Ok();
}

Status DoSum(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("sum", a, {{"attribute", Value::None()}, {"start", Value::Int(0)}}, &p));
  std::vector<Value> items;
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  Value total = p[1];
  for (const Value& item : items) {
    Value x;
    STRATA_RETURN_IF_ERROR(GetPath(r, item, p[0], nullptr, &x));
    if (total.is_string()) return r.Raise("sum() can't sum strings [use ''.join(seq) instead]");
    if (!(total.is_number() && x.is_number()) && !(total.is_seq() && x.is_seq()))
      return r.Raise(fmt::format("unsupported operand type(s) for +: '{}' and '{}'", TypeName(total), TypeName(x)));
    if (total.is_number()) {
      const bool ints = !total.is_float() && !x.is_float();
      int64_t s = 0;
      if (ints && __builtin_add_overflow(total.integer(), x.integer(), &s)) return r.Raise("integer overflow");
      total = ints ? Value::Int(s) : Value::Float(total.real() + x.real());
    } else {
      if (total.seq().kind != x.seq().kind) return r.Raise("can only concatenate sequences of the same type");
      std::vector<Value> joined = total.seq().items;
      joined.insert(joined.end(), x.seq().items.begin(), x.seq().items.end());
      STRATA_RETURN_IF_ERROR(r.ChargeItems(joined.size()));
      total = total.seq().kind == SeqKind::kTuple ? Value::Tuple(std::move(joined)) : Value::List(std::move(joined));
    }
  }
  *out = total;
  return Status::Ok();
}

Status DoReverse(Renderer& r, const Value& v, Value* out) {
  if (v.is_string()) {
    std::u32string u = py::Decode(v.str());
    std::reverse(u.begin(), u.end());
    *out = Like(v, py::Encode(u));
    return Status::Ok();
  }
  std::vector<Value> items;
  std::string name = "reversed";
  if (v.is_seq()) {
    switch (v.seq().kind) {
      case SeqKind::kList: name = "list_reverseiterator"; break;
      case SeqKind::kRange: name = "range_iterator"; break;
      case SeqKind::kIterator: {
        // Not reversible: jinja2 reverses a list of it instead.
        STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
        std::reverse(items.begin(), items.end());
        *out = Value::List(std::move(items));
        return Status::Ok();
      }
      case SeqKind::kDictItems: name = "dict_reverseitemiterator"; break;
      case SeqKind::kDictKeys: name = "dict_reversekeyiterator"; break;
      case SeqKind::kDictValues: name = "dict_reversevalueiterator"; break;
      default: break;
    }
  } else if (v.is_dict()) {
    name = "dict_reversekeyiterator";
  } else if (!v.is_undefined()) {
    return r.Raise("argument must be iterable");
  }
  STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
  std::reverse(items.begin(), items.end());
  *out = Value::Iterator(std::move(items), name);
  return Status::Ok();
}

Status DoItems(Renderer& r, const Value& v, Value* out) {
  std::vector<Value> pairs;
  if (!v.is_undefined()) {
    if (!v.is_dict()) return r.Raise("Can only get item pairs from a mapping.");
    for (const auto& [k, value] : v.dict().entries) pairs.push_back(Value::Tuple({k, value}));
  }
  *out = Value::Iterator(std::move(pairs), "generator");
  return Status::Ok();
}

// Python's float(str): surrounding whitespace, underscores between digits,
// inf/nan spellings.
bool ParseFloat(const std::string& text, double* out) {
  const std::string s = py::Strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return false;
      continue;
    }
    clean.push_back(s[i]);
  }
  if (clean.empty()) return false;
  const std::string lower = py::Lower(clean);
  const std::string body = lower[0] == '+' || lower[0] == '-' ? lower.substr(1) : lower;
  if (body == "inf" || body == "infinity" || body == "nan") {
    const double x = body == "nan" ? NAN : INFINITY;
    *out = lower[0] == '-' ? -x : x;
    return true;
  }
  for (char c : body)
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != '+' && c != '-') return false;
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  return end == clean.c_str() + clean.size();
}

// Python's int(str, base) for base 10 (the int filter's default).
bool ParseInt(const std::string& text, int64_t base, int64_t* out) {
  std::string s = py::Strip(text, std::nullopt, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.erase(0, 1);
  }
  if (base == 0 || base == 16 || base == 8 || base == 2) {
    if (s.size() > 2 && s[0] == '0') {
      const char p = static_cast<char>(s[1] | 0x20);
      const int64_t prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
      if (prefixed != 0 && (base == 0 || base == prefixed)) {
        base = prefixed;
        s.erase(0, 2);
        if (!s.empty() && s[0] == '_') s.erase(0, 1);
      }
    }
    if (base == 0) base = 10;
  }
  if (s.empty() || base < 2 || base > 36) return false;
  int64_t value = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_' && i > 0 && i + 1 < s.size() && s[i - 1] != '_') continue;
    const char c = static_cast<char>(s[i] | 0x20);
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return false;
    if (__builtin_mul_overflow(value, base, &value) || __builtin_add_overflow(value, d, &value)) return false;
  }
  *out = negative ? -value : value;
  return true;
}

Status DoInt(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("int", a, {{"default", Value::Int(0)}, {"base", Value::Int(10)}}, &p));
  if (v.is_int() || v.is_bool()) {
    *out = Value::Int(v.integer());
    return Status::Ok();
  }
  double f = 0;
  if (v.is_float()) {
    f = v.real();
  } else if (v.is_string()) {
    int64_t i = 0;
    if ((p[1].is_int() && ParseInt(v.str(), p[1].integer(), &i))) {
      *out = Value::Int(i);
      return Status::Ok();
    }
    if (!ParseFloat(v.str(), &f)) {
      *out = p[0];
      return Status::Ok();
    }
  } else {
    *out = p[0];
    return Status::Ok();
  }
  if (std::isnan(f)) {
    *out = p[0];
    return Status::Ok();
  }
  if (std::isinf(f) || std::fabs(f) >= 9.2e18) return r.Raise("cannot convert float infinity to integer");
  *out = Value::Int(static_cast<int64_t>(f));
  return Status::Ok();
}

Status DoFloat(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("float", a, {{"default", Value::Float(0.0)}}, &p));
  double f = 0;
  if (v.is_number()) {
    *out = Value::Float(v.real());
  } else if (v.is_string() && ParseFloat(v.str(), &f)) {
    *out = Value::Float(f);
  } else {
    *out = p[0];
  }
  return Status::Ok();
}

Status DoRound(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("round", a, {{"precision", Value::Int(0)}, {"method", Value::String("common")}}, &p));
  int64_t precision = 0;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], "precision", &precision));
  const std::string method = p[1].is_string() ? p[1].str() : "";
  if (method != "common" && method != "ceil" && method != "floor")
    return r.Raise("method must be common, ceil or floor");
  if (!v.is_number()) return r.Raise(fmt::format("type {} doesn't define __round__ method", TypeName(v)));
  if (method == "common" && !v.is_float()) {
    *out = Value::Int(v.integer());  // round(int, n >= 0) is the int itself
    if (precision < 0) return r.Raise("round: negative precision of an integer is not supported");
    return Status::Ok();
  }
  precision = std::clamp<int64_t>(precision, -300, 300);
  const double x = v.real();
  if (method == "common") {
    if (!std::isfinite(x) || precision > 17) {
      *out = Value::Float(x);
      return Status::Ok();
    }
    // Correctly rounded, half to even on the exact binary value, as
    // Python's round() does.
    char buf[512];
    if (precision >= 0) {
      std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
      *out = Value::Float(std::strtod(buf, nullptr));
    } else {
      const double scale = std::pow(10.0, static_cast<double>(-precision));
      *out = Value::Float(std::nearbyint(x / scale) * scale);
    }
    return Status::Ok();
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  *out = Value::Float((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  return Status::Ok();
}

Status DoTruncate(Renderer& r, const Value& v, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("truncate", a, {{"length", Value::Int(255)}, {"killwords", Value::Bool(false)},
                                                  {"end", Value::String("...")}, {"leeway", Value::None()}}, &p));
  int64_t length = 0, leeway = 5;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], "length", &length));
  if (!p[3].is_none()) STRATA_RETURN_IF_ERROR(RequireInt(r, p[3], "leeway", &leeway));
  Value s, end;
  STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
  STRATA_RETURN_IF_ERROR(SoftStr(r, p[2], &end));
  const std::u32string u = py::Decode(s.str());
  const auto end_len = static_cast<int64_t>(py::Length(end.str()));
  if (length < end_len) return r.Raise("expected length >= len(end), got " + std::to_string(length));
  if (leeway < 0) return r.Raise("expected leeway >= 0, got " + std::to_string(leeway));
  if (static_cast<int64_t>(u.size()) <= length + leeway) {
    *out = s;
    return Status::Ok();
  }
  std::string head = py::Encode(std::u32string_view(u).substr(0, static_cast<size_t>(length - end_len)));
  if (!Truthy(p[1])) head = py::RSplit(head, std::string(" "), 1)[0];
  *out = Value::String(head + end.str());
  return Status::Ok();
}

// jinja2's title filter: words start after [-\s({[<] runs.
std::string JinjaTitle(std::string_view s) {
  const std::u32string u = py::Decode(s);
  std::string out;
  bool word_start = true;
  for (char32_t c : u) {
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || unicode::IsSpace(c);
    const std::string ch = py::Encode(std::u32string(1, c));
    if (sep) {
      out += ch;
      word_start = true;
    } else {
      out += word_start ? py::Upper(ch) : py::Lower(ch);
      word_start = false;
    }
  }
  return out;
}

Status DoEscape(Renderer& r, const Value& v, bool force, Value* out) {
  if (v.is_markup() && !force) {
    *out = v;
    return Status::Ok();
  }
  std::string s;
  STRATA_RETURN_IF_ERROR(r.Str(v, &s));
  *out = Value::Markup(py::HtmlEscape(s));
  return Status::Ok();
}

// Filters jinja2 has that strata does not implement.
bool IsUnsupported(std::string_view name) {
  static constexpr std::string_view kNames[] = {"batch",  "filesizeformat", "groupby",   "pprint",
                                                "random", "slice",          "striptags", "urlencode",
                                                "urlize", "wordcount",      "wordwrap",  "xmlattr"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

}  // namespace

Status ApplyFilter(Renderer& r, std::string_view name, const Value& v, CallArgs& a, Value* out) {
  STRATA_RETURN_IF_ERROR(r.Charge(1));
  auto no_args = [&]() -> Status {
    if (!a.positional.empty() || !a.keywords.empty())
      return r.Raise(fmt::format("{}() takes no arguments", name));
    return Status::Ok();
  };
  auto string_op = [&](auto op) -> Status {
    STRATA_RETURN_IF_ERROR(no_args());
    Value s;
    STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
    *out = Like(s, op(s.str()));
    return Status::Ok();
  };
  if (name == "default" || name == "d") return DoDefault(r, v, a, out);
  if (name == "tojson") return DoTojson(r, v, a, out);
  if (name == "length" || name == "count") {
    STRATA_RETURN_IF_ERROR(no_args());
    int64_t n = 0;
    STRATA_RETURN_IF_ERROR(Length(r, v, &n));
    *out = Value::Int(n);
    return Status::Ok();
  }
  if (name == "trim") {
    Args p;
    STRATA_RETURN_IF_ERROR(BindArgs("trim", a, {{"chars", Value::None()}}, &p));
    Value s;
    STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
    std::optional<std::string> chars;
    if (p[0].is_string()) chars = p[0].str();
    *out = Like(s, py::Strip(s.str(), chars, true, true));
    return Status::Ok();
  }
  if (name == "string") {
    STRATA_RETURN_IF_ERROR(no_args());
    return SoftStr(r, v, out);
  }
  if (name == "upper") return string_op([](const std::string& s) { return py::Upper(s); });
  if (name == "lower") return string_op([](const std::string& s) { return py::Lower(s); });
  if (name == "capitalize") return string_op([](const std::string& s) { return py::Capitalize(s); });
  if (name == "title") return string_op([](const std::string& s) { return JinjaTitle(s); });
  if (name == "join") return DoJoin(r, v, a, out);
  if (name == "items") {
    STRATA_RETURN_IF_ERROR(no_args());
    return DoItems(r, v, out);
  }
  if (name == "list") {
    STRATA_RETURN_IF_ERROR(no_args());
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
    *out = Value::List(std::move(items));
    return Status::Ok();
  }
  if (name == "first" || name == "last") {
    STRATA_RETURN_IF_ERROR(no_args());
    if (name == "last" && v.is_seq() && v.seq().kind == SeqKind::kIterator)
      return r.Raise(fmt::format("'{}' object is not reversible", TypeName(v)));
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(r.Iterate(v, &items));
    if (items.empty()) {
      *out = Value::Undefined(fmt::format("No {} item, sequence was empty.", name));
    } else {
      *out = name == "first" ? items.front() : items.back();
    }
    return Status::Ok();
  }
  if (name == "map") return DoMap(r, v, a, out);
  if (name == "select") return DoSelect(r, v, a, false, true, out);
  if (name == "reject") return DoSelect(r, v, a, false, false, out);
  if (name == "selectattr") return DoSelect(r, v, a, true, true, out);
  if (name == "rejectattr") return DoSelect(r, v, a, true, false, out);
  if (name == "unique") return DoUnique(r, v, a, out);
  if (name == "sort") return DoSort(r, v, a, out);
  if (name == "dictsort") return DoDictsort(r, v, a, out);
  if (name == "min" || name == "max") return DoMinMax(r, v, a, name == "max", out);
  if (name == "sum") return DoSum(r, v, a, out);
  if (name == "reverse") {
    STRATA_RETURN_IF_ERROR(no_args());
    return DoReverse(r, v, out);
  }
  if (name == "replace") {
    Args p;
    STRATA_RETURN_IF_ERROR(BindArgs("replace", a, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::None()}}, &p));
    std::string s, old_s, new_s;
    STRATA_RETURN_IF_ERROR(r.Str(v, &s));
    STRATA_RETURN_IF_ERROR(r.Str(p[0], &old_s));
    STRATA_RETURN_IF_ERROR(r.Str(p[1], &new_s));
    int64_t count = -1;
    if (!p[2].is_none()) STRATA_RETURN_IF_ERROR(RequireInt(r, p[2], "count", &count));
    std::string result = py::Replace(s, old_s, new_s, count);
    STRATA_RETURN_IF_ERROR(r.ChargeString(result.size()));
    *out = Value::String(std::move(result));
    return Status::Ok();
  }
  if (name == "indent") return DoIndent(r, v, a, out);
  if (name == "center") {
    Args p;
    STRATA_RETURN_IF_ERROR(BindArgs("center", a, {{"width", Value::Int(80)}}, &p));
    int64_t width = 0;
    STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], "width", &width));
    STRATA_RETURN_IF_ERROR(r.ChargeString(static_cast<size_t>(std::clamp<int64_t>(width, 0, INT32_MAX))));
    Value s;
    STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
    *out = Like(s, py::Pad(s.str(), width, " ", 0));
    return Status::Ok();
  }
  if (name == "truncate") return DoTruncate(r, v, a, out);
  if (name == "int") return DoInt(r, v, a, out);
  if (name == "float") return DoFloat(r, v, a, out);
  if (name == "round") return DoRound(r, v, a, out);
  if (name == "abs") {
    STRATA_RETURN_IF_ERROR(no_args());
    if (v.is_float()) {
      *out = Value::Float(std::fabs(v.real()));
    } else if (v.is_int() || v.is_bool()) {
      if (v.integer() == INT64_MIN) return r.Raise("integer overflow");
      *out = Value::Int(v.integer() < 0 ? -v.integer() : v.integer());
    } else {
      return r.Raise(fmt::format("bad operand type for abs(): '{}'", TypeName(v)));
    }
    return Status::Ok();
  }
  if (name == "attr") {
    Args p;
    STRATA_RETURN_IF_ERROR(BindArgs("attr", a, {{"name", std::nullopt}}, &p));
    if (!p[0].is_string()) return r.Raise("attribute name must be string");
    if (v.is_undefined()) return r.Raise(v.undefined_hint());
    if (LookupMethod(v, p[0].str(), out)) return Status::Ok();
    if (v.is_object() && v.object().GetAttr(p[0].str(), out)) return Status::Ok();
    *out = Value::Undefined(fmt::format("'{} object' has no attribute '{}'", TypeName(v), p[0].str()));
    return Status::Ok();
  }
  if (name == "format") {
    if (!a.positional.empty() && !a.keywords.empty())
      return r.Raise("can't handle positional and keyword arguments at the same time");
    Value s;
    STRATA_RETURN_IF_ERROR(SoftStr(r, v, &s));
    Value args_value;
    if (!a.keywords.empty()) {
      auto d = std::make_shared<DictData>();
      for (const auto& [k, x] : a.keywords) d->Set(k, x);
      args_value = Value::Dict(std::move(d));
    } else {
      args_value = Value::Tuple(a.positional);
    }
    return PercentFormat(r, s, args_value, out);
  }
  if (name == "safe") {
    STRATA_RETURN_IF_ERROR(no_args());
    std::string s;
    STRATA_RETURN_IF_ERROR(r.Str(v, &s));
    *out = Value::Markup(std::move(s));
    return Status::Ok();
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    STRATA_RETURN_IF_ERROR(no_args());
    return DoEscape(r, v, name == "forceescape", out);
  }
  if (IsUnsupported(name)) return r.Raise(fmt::format("the filter '{}' is not supported", name));
  return r.Raise(fmt::format("No filter named '{}'.", name));
}

// ---- printf-style formatting

namespace {

struct Spec {
  std::string flags;
  int64_t width = -1, precision = -1;
  char conversion = 0;
};

Status FormatOne(Renderer& r, const Spec& spec, const Value& arg, bool markup, std::string* out) {
  const char c = spec.conversion;
  std::string body;
  if (c == 's' || c == 'r' || c == 'a') {
    if (c == 's') {
      STRATA_RETURN_IF_ERROR(r.Str(arg, &body));
    } else {
      STRATA_RETURN_IF_ERROR(Repr(arg, r.limits().max_value_depth, &body));
    }
    if (markup && !(c == 's' && arg.is_markup())) body = py::HtmlEscape(body);
    if (spec.precision >= 0) {
      const std::u32string u = py::Decode(body);
      if (static_cast<int64_t>(u.size()) > spec.precision)
        body = py::Encode(std::u32string_view(u).substr(0, static_cast<size_t>(spec.precision)));
    }
    const bool left = spec.flags.find('-') != std::string::npos;
    *out += py::Pad(body, spec.width, " ", left ? -1 : 1);
    return Status::Ok();
  }
  if (c == 'c') {
    if (arg.is_string() && py::Length(arg.str()) == 1) {
      body = arg.str();
    } else if (arg.is_int() && arg.integer() >= 0 && arg.integer() <= 0x10FFFF) {
      utf8::Append(static_cast<uint32_t>(arg.integer()), &body);
    } else {
      return r.Raise("%c requires an int or a unicode character");
    }
    *out += py::Pad(body, spec.width, " ", spec.flags.find('-') != std::string::npos ? -1 : 1);
    return Status::Ok();
  }
  if (!arg.is_number())
    return r.Raise(fmt::format("%{} format: a {} is required, not {}", c,
                               c == 'x' || c == 'X' || c == 'o' ? "integer" : "real number", TypeName(arg)));
  std::string cfmt = "%" + spec.flags;
  if (spec.width >= 0) cfmt += std::to_string(std::min<int64_t>(spec.width, 4096));
  if (spec.precision >= 0) cfmt += "." + std::to_string(std::min<int64_t>(spec.precision, 512));
  std::vector<char> buf(8192);
  if (c == 'd' || c == 'i' || c == 'u' || c == 'x' || c == 'X' || c == 'o') {
    if ((c == 'x' || c == 'X' || c == 'o') && arg.is_float())
      return r.Raise(fmt::format("%{} format: an integer is required, not float", c));
    if (arg.is_float() && !std::isfinite(arg.real())) return r.Raise("cannot convert float to integer");
    const long long i = arg.is_float() ? static_cast<long long>(arg.real()) : arg.integer();
    cfmt += "ll";
    cfmt += c == 'u' || c == 'i' ? 'd' : c;
    std::snprintf(buf.data(), buf.size(), cfmt.c_str(), i);
  } else if (c == 'e' || c == 'E' || c == 'f' || c == 'F' || c == 'g' || c == 'G') {
    cfmt += c;
    std::snprintf(buf.data(), buf.size(), cfmt.c_str(), arg.real());
  } else {
    return r.Raise(fmt::format("unsupported format character '{}'", c));
  }
  *out += buf.data();
  return Status::Ok();
}

}  // namespace

Status PercentFormat(Renderer& r, const Value& format, const Value& args, Value* out) {
  const std::string& f = format.str();
  const bool markup = format.is_markup();
  std::vector<Value> positional;
  const DictData* mapping = args.is_dict() ? &args.dict() : nullptr;
  if (args.is_seq() && args.seq().kind == SeqKind::kTuple) {
    positional = args.seq().items;
  } else {
    positional.push_back(args);
  }
  size_t next = 0;
  std::string result;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') {
      result.push_back(f[i]);
      continue;
    }
    if (++i >= f.size()) return r.Raise("incomplete format");
    Spec spec;
    const Value* arg = nullptr;
    Value keyed;
    if (f[i] == '(') {
      const size_t close = f.find(')', i);
      if (close == std::string::npos) return r.Raise("incomplete format key");
      if (mapping == nullptr) return r.Raise("format requires a mapping");
      const Value* v = mapping->Find(std::string_view(f).substr(i + 1, close - i - 1));
      if (v == nullptr) return r.Raise(fmt::format("KeyError: '{}'", f.substr(i + 1, close - i - 1)));
      keyed = *v;
      arg = &keyed;
      i = close + 1;
    }
    while (i < f.size() && std::string_view("-+ #0").find(f[i]) != std::string_view::npos) spec.flags += f[i++];
    auto number = [&](int64_t* n) -> Status {
      if (i < f.size() && f[i] == '*') {
        ++i;
        if (next >= positional.size() || !positional[next].is_int()) return r.Raise("* wants int");
        *n = positional[next++].integer();
        return Status::Ok();
      }
      if (i < f.size() && std::isdigit(static_cast<unsigned char>(f[i]))) {
        *n = 0;
        while (i < f.size() && std::isdigit(static_cast<unsigned char>(f[i])))
          *n = std::min<int64_t>(*n * 10 + (f[i++] - '0'), 1 << 20);
      }
      return Status::Ok();
    };
    STRATA_RETURN_IF_ERROR(number(&spec.width));
    if (i < f.size() && f[i] == '.') {
      ++i;
      spec.precision = 0;
      STRATA_RETURN_IF_ERROR(number(&spec.precision));
    }
    while (i < f.size() && (f[i] == 'h' || f[i] == 'l' || f[i] == 'L')) ++i;
    if (i >= f.size()) return r.Raise("incomplete format");
    spec.conversion = f[i];
    if (spec.conversion == '%') {
      result.push_back('%');
      continue;
    }
    if (arg == nullptr) {
      if (mapping != nullptr && !(args.is_seq())) {
        arg = &args;  // a dict formatted whole, as Python does for "%s" % {}
      } else {
        if (next >= positional.size()) return r.Raise("not enough arguments for format string");
        arg = &positional[next++];
      }
    }
    STRATA_RETURN_IF_ERROR(FormatOne(r, spec, *arg, markup, &result));
    STRATA_RETURN_IF_ERROR(r.ChargeString(result.size()));
  }
  if (mapping == nullptr && next < positional.size())
    return r.Raise("not all arguments converted during string formatting");
  *out = markup ? Value::Markup(std::move(result)) : Value::String(std::move(result));
  return Status::Ok();
}

}  // namespace strata::jinja
