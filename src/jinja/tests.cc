// Tests (builtins.h): jinja2.tests, `x is name(args)`.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "jinja/builtins.h"
#include "jinja/py_string.h"
#include "jinja/py_unicode.h"
#include "jinja/renderer.h"

namespace strata::jinja {
namespace {

// str.islower() / str.isupper(): some cased character, none of the other case.
bool CaseIs(std::string_view s, bool lower) {
  bool cased = false;
  for (char32_t c : py::Decode(s)) {
    if (!unicode::IsCased(c)) continue;
    std::u32string mapped;
    if (lower) {
      unicode::AppendLower(c, &mapped);
    } else {
      unicode::AppendUpper(c, &mapped);
    }
    if (mapped.size() != 1 || mapped[0] != c) return false;
    cased = true;
  }
  return cased;
}

bool IsKnownFilter(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "abs",    "attr",    "capitalize", "center", "count",   "d",          "default", "dictsort", "e",
      "escape", "first",   "float",      "forceescape", "format", "indent", "int",     "items",    "join",
      "last",   "length",  "list",       "lower",  "map",     "max",        "min",     "reject",   "rejectattr",
      "replace", "reverse", "round",     "safe",   "select",  "selectattr", "sort",    "string",   "sum",
      "title",  "tojson",  "trim",       "truncate", "unique", "upper"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

bool IsKnownTest(std::string_view name);

}  // namespace

Status ApplyTest(Renderer& r, std::string_view name, const Value& v, CallArgs& a, bool* out) {
  STRATA_RETURN_IF_ERROR(r.Charge(1));
  auto one = [&](Value* arg) -> Status {
    std::vector<Value> p;
    STRATA_RETURN_IF_ERROR(BindArgs(name, a, {{"other", std::nullopt}}, &p));
    *arg = p[0];
    return Status::Ok();
  };
  auto none = [&]() -> Status {
    if (!a.positional.empty() || !a.keywords.empty()) return r.Raise(fmt::format("{}() takes no arguments", name));
    return Status::Ok();
  };
  if (name == "defined" || name == "undefined") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_undefined() == (name == "undefined");
    return Status::Ok();
  }
  if (name == "none") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_none();
    return Status::Ok();
  }
  if (name == "string") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_string();
    return Status::Ok();
  }
  if (name == "mapping") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_dict();
    return Status::Ok();
  }
  if (name == "iterable") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_undefined() || v.is_string() || v.is_seq() || v.is_dict() ||
           (v.is_object() && v.object().type_name() == "LoopContext");
    return Status::Ok();
  }
  if (name == "sequence") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_undefined() || v.is_string() || v.is_dict() ||
           (v.is_seq() && (v.seq().kind == SeqKind::kList || v.seq().kind == SeqKind::kTuple ||
                           v.seq().kind == SeqKind::kRange));
    return Status::Ok();
  }
  if (name == "boolean" || name == "true" || name == "false") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_bool() && (name == "boolean" || v.boolean() == (name == "true"));
    return Status::Ok();
  }
  if (name == "integer") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_int();
    return Status::Ok();
  }
  if (name == "float") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_float();
    return Status::Ok();
  }
  if (name == "number") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_number();
    return Status::Ok();
  }
  if (name == "callable") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_undefined() || (v.is_object() && v.object().callable());
    return Status::Ok();
  }
  if (name == "escaped") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_markup();
    return Status::Ok();
  }
  if (name == "lower" || name == "upper") {
    STRATA_RETURN_IF_ERROR(none());
    std::string s;
    STRATA_RETURN_IF_ERROR(r.Str(v, &s));
    *out = CaseIs(s, name == "lower");
    return Status::Ok();
  }
  if (name == "even" || name == "odd") {
    STRATA_RETURN_IF_ERROR(none());
    if (v.is_undefined()) return r.Raise(v.undefined_hint());
    if (!v.is_number())
      return r.Raise(fmt::format("unsupported operand type(s) for %: '{}' and 'int'", TypeName(v)));
    const bool even = v.is_float() ? std::fmod(v.real(), 2.0) == 0.0 : v.integer() % 2 == 0;
    *out = even == (name == "even");
    return Status::Ok();
  }
  if (name == "divisibleby") {
    Value num;
    STRATA_RETURN_IF_ERROR(one(&num));
    if (v.is_undefined()) return r.Raise(v.undefined_hint());
    if (!v.is_number() || !num.is_number())
      return r.Raise(fmt::format("unsupported operand type(s) for %: '{}' and '{}'", TypeName(v), TypeName(num)));
    if (num.is_float() || v.is_float()) {
      if (num.real() == 0) return r.Raise("float modulo");
      *out = std::fmod(v.real(), num.real()) == 0.0;
    } else {
      if (num.integer() == 0) return r.Raise("integer division or modulo by zero");
      *out = num.integer() == -1 || v.integer() % num.integer() == 0;
    }
    return Status::Ok();
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=") {
    Value other;
    STRATA_RETURN_IF_ERROR(one(&other));
    STRATA_RETURN_IF_ERROR(r.Equal(v, other, out));
    if (name == "ne" || name == "!=") *out = !*out;
    return Status::Ok();
  }
  if (name == "lt" || name == "lessthan" || name == "<" || name == "gt" || name == "greaterthan" || name == ">" ||
      name == "le" || name == "<=" || name == "ge" || name == ">=") {
    Value other;
    STRATA_RETURN_IF_ERROR(one(&other));
    if (v.is_undefined()) return r.Raise(v.undefined_hint());
    if (other.is_undefined()) return r.Raise(other.undefined_hint());
    const int depth = r.limits().max_value_depth;
    const bool lt = name == "lt" || name == "lessthan" || name == "<";
    const bool gt = name == "gt" || name == "greaterthan" || name == ">";
    if (lt) return Less(v, other, depth, out);
    if (gt) return Less(other, v, depth, out);
    bool strict = false;
    STRATA_RETURN_IF_ERROR(name == "le" || name == "<=" ? Less(other, v, depth, &strict) : Less(v, other, depth, &strict));
    *out = !strict;
    return Status::Ok();
  }
  if (name == "in") {
    std::vector<Value> p;
    STRATA_RETURN_IF_ERROR(BindArgs(name, a, {{"seq", std::nullopt}}, &p));
    const Value& seq = p[0];
    if (seq.is_string()) {
      if (!v.is_string())
        return r.Raise(fmt::format("'in <string>' requires string as left operand, not {}", TypeName(v)));
      *out = seq.str().find(v.str()) != std::string::npos;
      return Status::Ok();
    }
    if (seq.is_dict()) {
      *out = seq.dict().Find(v) != nullptr;
      return Status::Ok();
    }
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(r.Iterate(seq, &items));
    *out = false;
    for (const Value& item : items) {
      STRATA_RETURN_IF_ERROR(r.Equal(item, v, out));
      if (*out) break;
    }
    return Status::Ok();
  }
  if (name == "sameas") {
    Value other;
    STRATA_RETURN_IF_ERROR(one(&other));
    if (v.is_seq() || v.is_dict() || v.is_object()) {
      *out = v.SameObject(other);
    } else if (v.type() != other.type()) {
      *out = false;
    } else {
      STRATA_RETURN_IF_ERROR(r.Equal(v, other, out));
    }
    return Status::Ok();
  }
  if (name == "filter" || name == "test") {
    STRATA_RETURN_IF_ERROR(none());
    *out = v.is_string() && (name == "filter" ? IsKnownFilter(v.str()) : IsKnownTest(v.str()));
    return Status::Ok();
  }
  return r.Raise(fmt::format("No test named '{}'.", name));
}

namespace {

bool IsKnownTest(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "boolean", "callable", "defined", "divisibleby", "eq",     "equalto", "==",      "escaped",  "even",
      "false",   "filter",   "float",   "ge",          ">=",     "gt",      "greaterthan", ">",     "in",
      "integer", "iterable", "le",      "<=",          "lower",  "lt",      "lessthan", "<",       "mapping",
      "ne",      "!=",       "none",    "number",      "odd",    "sameas",  "sequence", "string",  "test",
      "true",    "undefined", "upper"};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

}  // namespace

}  // namespace strata::jinja
