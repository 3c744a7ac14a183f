#include "jinja/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "jinja/py_string.h"

namespace strata::jinja {
namespace {

Status TooDeep() { return Status::ResourceExhausted("values nested too deeply"); }

Status JoinRepr(const std::vector<Value>& items, int depth, std::string* out) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out->append(", ");
    STRATA_RETURN_IF_ERROR(Repr(items[i], depth - 1, out));
  }
  return Status::Ok();
}

Status SeqStr(const SeqData& s, int depth, std::string* out) {
  switch (s.kind) {
    case SeqKind::kList:
      out->push_back('[');
      STRATA_RETURN_IF_ERROR(JoinRepr(s.items, depth, out));
      out->push_back(']');
      return Status::Ok();
    case SeqKind::kTuple:
      out->push_back('(');
      STRATA_RETURN_IF_ERROR(JoinRepr(s.items, depth, out));
      if (s.items.size() == 1) out->push_back(',');
      out->push_back(')');
      return Status::Ok();
    case SeqKind::kRange:
      out->append(s.range_step == 1 ? fmt::format("range({}, {})", s.range_start, s.range_stop)
                                    : fmt::format("range({}, {}, {})", s.range_start, s.range_stop, s.range_step));
      return Status::Ok();
    case SeqKind::kIterator:
      out->append(fmt::format("<{} object>", s.iterator_name));
      return Status::Ok();
    case SeqKind::kDictItems:
    case SeqKind::kDictKeys:
    case SeqKind::kDictValues:
      out->append(s.kind == SeqKind::kDictItems ? "dict_items([" : s.kind == SeqKind::kDictKeys ? "dict_keys(["
                                                                                                : "dict_values([");
      STRATA_RETURN_IF_ERROR(JoinRepr(s.items, depth, out));
      out->append("])");
      return Status::Ok();
  }
  return Status::Ok();
}

Status DictStr(const DictData& d, int depth, std::string* out) {
  out->push_back('{');
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (i > 0) out->append(", ");
    STRATA_RETURN_IF_ERROR(Repr(d.entries[i].first, depth - 1, out));
    out->append(": ");
    STRATA_RETURN_IF_ERROR(Repr(d.entries[i].second, depth - 1, out));
  }
  out->push_back('}');
  return Status::Ok();
}

}  // namespace

Value Value::Undefined(std::string hint) {
  Value v;
  v.str_ = std::move(hint);
  return v;
}

Value Value::None() {
  Value v;
  v.type_ = Type::kNone;
  return v;
}

Value Value::Bool(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.scalar_.b = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.type_ = Type::kInt;
  v.scalar_.i = i;
  return v;
}

Value Value::Float(double f) {
  Value v;
  v.type_ = Type::kFloat;
  v.scalar_.f = f;
  return v;
}

Value Value::String(std::string s) {
  Value v;
  v.type_ = Type::kString;
  v.str_ = std::move(s);
  return v;
}

Value Value::Markup(std::string s) {
  Value v = String(std::move(s));
  v.markup_ = true;
  return v;
}

Value Value::Seq(std::shared_ptr<SeqData> seq) {
  int deepest = 0;
  for (const Value& item : seq->items) deepest = std::max(deepest, item.depth());
  seq->depth = deepest + 1;
  Value v;
  v.type_ = Type::kSeq;
  v.heap_ = std::move(seq);
  return v;
}

Value Value::List(std::vector<Value> items) {
  auto s = std::make_shared<SeqData>();
  s->items = std::move(items);
  return Seq(std::move(s));
}

Value Value::Tuple(std::vector<Value> items) {
  auto s = std::make_shared<SeqData>();
  s->kind = SeqKind::kTuple;
  s->items = std::move(items);
  return Seq(std::move(s));
}

Value Value::Iterator(std::vector<Value> items, std::string name) {
  auto s = std::make_shared<SeqData>();
  s->kind = SeqKind::kIterator;
  s->items = std::move(items);
  s->iterator_name = std::move(name);
  return Seq(std::move(s));
}

Value Value::Dict(std::shared_ptr<DictData> dict) {
  int deepest = 0;
  for (const auto& [key, value] : dict->entries) deepest = std::max({deepest, key.depth(), value.depth()});
  dict->depth = deepest + 1;
  Value v;
  v.type_ = Type::kDict;
  v.heap_ = std::move(dict);
  return v;
}

Value Value::Object(std::shared_ptr<class Object> object) {
  Value v;
  v.type_ = Type::kObject;
  v.heap_ = std::move(object);
  return v;
}

int Value::depth() const {
  if (type_ == Type::kSeq) return seq().depth;
  if (type_ == Type::kDict) return dict().depth;
  return 0;
}

SeqData& Value::seq() const { return static_cast<SeqData&>(*heap_); }
DictData& Value::dict() const { return static_cast<DictData&>(*heap_); }
class Object& Value::object() const { return static_cast<class Object&>(*heap_); }

const Value* DictData::Find(const Value& key) const {
  const std::optional<std::string> h = HashKey(key);
  if (!h) return nullptr;
  const auto it = index.find(*h);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

const Value* DictData::Find(std::string_view key) const {
  std::string h = "S";
  h.append(key);
  const auto it = index.find(h);
  return it == index.end() ? nullptr : &entries[it->second].second;
}

Status DictData::Set(const Value& key, Value value) {
  std::optional<std::string> h = HashKey(key);
  if (!h) return Status::InvalidArgument(fmt::format("unhashable type: '{}'", TypeName(key)));
  const auto [it, inserted] = index.emplace(std::move(*h), entries.size());
  if (inserted) {
    entries.emplace_back(key, std::move(value));
  } else {
    entries[it->second].second = std::move(value);
  }
  return Status::Ok();
}

void DictData::Set(std::string_view key, Value value) {
  Status s = Set(Value::String(std::string(key)), std::move(value));
  (void)s;  // a string key is always hashable
}

Status Object::Call(Renderer&, CallArgs&, Value*) {
  return Status::InvalidArgument(fmt::format("'{}' object is not callable", type_name()));
}

Status Object::Str(int, std::string* out) const {
  out->append(fmt::format("<{} object>", type_name()));
  return Status::Ok();
}

std::string TypeName(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "Undefined";
    case Value::Type::kNone: return "NoneType";
    case Value::Type::kBool: return "bool";
    case Value::Type::kInt: return "int";
    case Value::Type::kFloat: return "float";
    case Value::Type::kString: return v.is_markup() ? "Markup" : "str";
    case Value::Type::kDict: return "dict";
    case Value::Type::kObject: return std::string(v.object().type_name());
    case Value::Type::kSeq:
      switch (v.seq().kind) {
        case SeqKind::kList: return "list";
        case SeqKind::kTuple: return "tuple";
        case SeqKind::kRange: return "range";
        case SeqKind::kIterator: return v.seq().iterator_name;
        case SeqKind::kDictItems: return "dict_items";
        case SeqKind::kDictKeys: return "dict_keys";
        case SeqKind::kDictValues: return "dict_values";
      }
  }
  return "object";
}

bool Truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone: return false;
    case Value::Type::kBool: return v.boolean();
    case Value::Type::kInt: return v.integer() != 0;
    case Value::Type::kFloat: return v.real() != 0.0;
    case Value::Type::kString: return !v.str().empty();
    case Value::Type::kSeq: return v.seq().kind == SeqKind::kIterator || !v.seq().items.empty();
    case Value::Type::kDict: return !v.dict().entries.empty();
    case Value::Type::kObject: return true;
  }
  return false;
}

std::optional<std::string> HashKey(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "U";
    case Value::Type::kNone: return "N";
    case Value::Type::kBool:
    case Value::Type::kInt: return "I" + std::to_string(v.integer());
    case Value::Type::kFloat: {
      const double f = v.real();
      if (std::trunc(f) == f && std::fabs(f) < 9.2e18) return "I" + std::to_string(static_cast<int64_t>(f));
      return "F" + FloatRepr(f);
    }
    case Value::Type::kString: return "S" + v.str();
    case Value::Type::kSeq: {
      if (v.seq().kind != SeqKind::kTuple) return std::nullopt;
      std::string key = "T";
      for (const Value& item : v.seq().items) {
        std::optional<std::string> k = HashKey(item);
        if (!k) return std::nullopt;
        key += std::to_string(k->size()) + ":" + *k;
      }
      return key;
    }
    case Value::Type::kDict: return std::nullopt;
    case Value::Type::kObject:
      return "O" + std::to_string(reinterpret_cast<uintptr_t>(&v.object()));
  }
  return std::nullopt;
}

std::string FloatRepr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f < 0 ? "-inf" : "inf";
  if (f == 0) return std::signbit(f) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: positional when the
  // decimal exponent is in [-4, 16), scientific otherwise.
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string_view sci(buf, r.ptr - buf);
  const size_t e_pos = sci.find('e');
  std::string_view mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  std::string sign;
  if (mantissa.front() == '-') {
    sign = "-";
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits.push_back(c);
  if (exponent < -4 || exponent >= 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    return out + fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  }
  std::string out = sign;
  if (exponent < 0) {
    out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
    out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(exponent) + 1) + "." + digits.substr(static_cast<size_t>(exponent) + 1);
  }
  return out;
}

Status ToStr(const Value& v, int depth, std::string* out) {
  if (depth <= 0) return TooDeep();
  switch (v.type()) {
    case Value::Type::kUndefined: return Status::Ok();
    case Value::Type::kNone: out->append("None"); return Status::Ok();
    case Value::Type::kBool: out->append(v.boolean() ? "True" : "False"); return Status::Ok();
    case Value::Type::kInt: out->append(std::to_string(v.integer())); return Status::Ok();
    case Value::Type::kFloat: out->append(FloatRepr(v.real())); return Status::Ok();
    case Value::Type::kString: out->append(v.str()); return Status::Ok();
    case Value::Type::kSeq: return SeqStr(v.seq(), depth, out);
    case Value::Type::kDict: return DictStr(v.dict(), depth, out);
    case Value::Type::kObject: return v.object().Str(depth - 1, out);
  }
  return Status::Ok();
}

Status Repr(const Value& v, int depth, std::string* out) {
  if (depth <= 0) return TooDeep();
  if (v.is_undefined()) {
    out->append("Undefined");
    return Status::Ok();
  }
  if (v.is_string()) {
    if (v.is_markup()) out->append("Markup(");
    out->append(py::Repr(v.str()));
    if (v.is_markup()) out->push_back(')');
    return Status::Ok();
  }
  return ToStr(v, depth, out);
}

Status Equals(const Value& v, const Value& w, int depth, bool* out) {
  if (depth <= 0) return TooDeep();
  *out = false;
  if (v.is_number() && w.is_number()) {
    *out = v.is_float() || w.is_float() ? v.real() == w.real() : v.integer() == w.integer();
    return Status::Ok();
  }
  if (v.type() != w.type()) return Status::Ok();
  switch (v.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone: *out = true; return Status::Ok();
    case Value::Type::kString: *out = v.str() == w.str(); return Status::Ok();
    case Value::Type::kObject: *out = v.SameObject(w); return Status::Ok();
    case Value::Type::kSeq: {
      const SeqData &a = v.seq(), &b = w.seq();
      if (v.SameObject(w)) {
        *out = true;
        return Status::Ok();
      }
      if (a.kind != b.kind || a.kind == SeqKind::kIterator || a.kind == SeqKind::kDictValues) return Status::Ok();
      if (a.items.size() != b.items.size()) return Status::Ok();
      for (size_t i = 0; i < a.items.size(); ++i) {
        bool eq = false;
        STRATA_RETURN_IF_ERROR(Equals(a.items[i], b.items[i], depth - 1, &eq));
        if (!eq) return Status::Ok();
      }
      *out = true;
      return Status::Ok();
    }
    case Value::Type::kDict: {
      const DictData &a = v.dict(), &b = w.dict();
      if (a.entries.size() != b.entries.size()) return Status::Ok();
      for (const auto& [key, value] : a.entries) {
        const Value* other = b.Find(key);
        if (other == nullptr) return Status::Ok();
        bool eq = false;
        STRATA_RETURN_IF_ERROR(Equals(value, *other, depth - 1, &eq));
        if (!eq) return Status::Ok();
      }
      *out = true;
      return Status::Ok();
    }
    default: return Status::Ok();
  }
}

Status Less(const Value& v, const Value& w, int depth, bool* out) {
  if (depth <= 0) return TooDeep();
  if (v.is_number() && w.is_number()) {
    *out = v.is_float() || w.is_float() ? v.real() < w.real() : v.integer() < w.integer();
    return Status::Ok();
  }
  if (v.is_string() && w.is_string()) {
    *out = v.str() < w.str();  // UTF-8 byte order is code point order
    return Status::Ok();
  }
  if (v.is_seq() && w.is_seq() && v.seq().kind == w.seq().kind &&
      (v.seq().kind == SeqKind::kList || v.seq().kind == SeqKind::kTuple)) {
    const std::vector<Value>&a = v.seq().items, &b = w.seq().items;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      bool eq = false;
      STRATA_RETURN_IF_ERROR(Equals(a[i], b[i], depth - 1, &eq));
      if (!eq) return Less(a[i], b[i], depth - 1, out);
    }
    *out = a.size() < b.size();
    return Status::Ok();
  }
  if (v.is_undefined() || w.is_undefined()) {
    const Value& u = v.is_undefined() ? v : w;
    return Status::InvalidArgument(u.undefined_hint());
  }
  return Status::InvalidArgument(
      fmt::format("'<' not supported between instances of '{}' and '{}'", TypeName(v), TypeName(w)));
}

}  // namespace strata::jinja
