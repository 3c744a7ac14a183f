// Methods (builtins.h): the str, dict, list and tuple methods templates call,
// with Python's semantics. ImmutableSandboxedEnvironment refuses the
// mutators of list (append, extend, insert, remove, reverse, sort) and dict
// (pop, popitem, setdefault, update, clear): reading such an attribute gives
// an Undefined that fails with a SecurityError once used. list.pop and
// list.clear are not on the sandbox's list, so they work and mutate.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "jinja/builtins.h"
#include "jinja/objects.h"
#include "jinja/py_string.h"
#include "jinja/renderer.h"

namespace strata::jinja {
namespace {

using Args = std::vector<Value>;
using MethodFn = Status (*)(Renderer&, const Value& self, CallArgs&, Value*);

struct Method {
  std::string_view name;
  MethodFn fn;
};

// A string result that is Markup when self is; Markup's wrapped methods
// escape their string arguments first.
Value Like(const Value& self, std::string s) {
  return self.is_markup() ? Value::Markup(std::move(s)) : Value::String(std::move(s));
}

std::string ArgText(const Value& self, const Value& arg) {
  return self.is_markup() && !arg.is_markup() ? py::HtmlEscape(arg.str()) : arg.str();
}

Status OptionalStr(Renderer& r, const Value& self, const Value& v, std::string_view what,
                   std::optional<std::string>* out) {
  if (v.is_none()) return Status::Ok();
  if (!v.is_string()) return r.Raise(fmt::format("{} must be None or a string, not {}", what, TypeName(v)));
  *out = ArgText(self, v);
  return Status::Ok();
}

Status OptionalIndex(Renderer& r, const Value& v, std::optional<int64_t>* out) {
  if (v.is_none()) return Status::Ok();
  if (!v.is_int() && !v.is_bool()) return r.Raise("slice indices must be integers or None");
  *out = v.integer();
  return Status::Ok();
}

Status RequireStr(Renderer& r, const Value& v, std::string_view what) {
  if (!v.is_string()) return r.Raise(fmt::format("{} must be str, not {}", what, TypeName(v)));
  return Status::Ok();
}

Status RequireInt(Renderer& r, const Value& v, int64_t* out) {
  if (!v.is_int() && !v.is_bool())
    return r.Raise(fmt::format("'{}' object cannot be interpreted as an integer", TypeName(v)));
  *out = v.integer();
  return Status::Ok();
}

// ---- str

Status StripImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, bool left, bool right) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("strip", a, {{"chars", Value::None()}}, &p));
  std::optional<std::string> chars;
  STRATA_RETURN_IF_ERROR(OptionalStr(r, self, p[0], "strip arg", &chars));
  *out = Like(self, py::Strip(self.str(), chars, left, right));
  return Status::Ok();
}
Status Strip(Renderer& r, const Value& s, CallArgs& a, Value* o) { return StripImpl(r, s, a, o, true, true); }
Status LStrip(Renderer& r, const Value& s, CallArgs& a, Value* o) { return StripImpl(r, s, a, o, true, false); }
Status RStrip(Renderer& r, const Value& s, CallArgs& a, Value* o) { return StripImpl(r, s, a, o, false, true); }

Status SplitImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, bool reverse) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("split", a, {{"sep", Value::None()}, {"maxsplit", Value::Int(-1)}}, &p));
  std::optional<std::string> sep;
  STRATA_RETURN_IF_ERROR(OptionalStr(r, self, p[0], "sep", &sep));
  if (sep && sep->empty()) return r.Raise("empty separator");
  int64_t maxsplit = -1;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[1], &maxsplit));
  const std::vector<std::string> parts =
      reverse ? py::RSplit(self.str(), sep, maxsplit) : py::Split(self.str(), sep, maxsplit);
  STRATA_RETURN_IF_ERROR(r.ChargeItems(parts.size()));
  std::vector<Value> items;
  for (const std::string& part : parts) items.push_back(Like(self, part));
  *out = Value::List(std::move(items));
  return Status::Ok();
}
Status Split(Renderer& r, const Value& s, CallArgs& a, Value* o) { return SplitImpl(r, s, a, o, false); }
Status RSplit(Renderer& r, const Value& s, CallArgs& a, Value* o) { return SplitImpl(r, s, a, o, true); }

Status SplitLines(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("splitlines", a, {{"keepends", Value::Bool(false)}}, &p));
  const std::vector<std::string> lines = py::SplitLines(self.str(), Truthy(p[0]));
  STRATA_RETURN_IF_ERROR(r.ChargeItems(lines.size()));
  std::vector<Value> items;
  for (const std::string& line : lines) items.push_back(Like(self, line));
  *out = Value::List(std::move(items));
  return Status::Ok();
}

Status AffixImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, bool suffix) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs(suffix ? "endswith" : "startswith", a,
                                  {{"prefix", std::nullopt}, {"start", Value::None()}, {"end", Value::None()}}, &p));
  std::optional<int64_t> start, end;
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[1], &start));
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[2], &end));
  std::vector<Value> candidates;
  if (p[0].is_string()) {
    candidates.push_back(p[0]);
  } else if (p[0].is_seq() && p[0].seq().kind == SeqKind::kTuple) {
    candidates = p[0].seq().items;
  } else {
    return r.Raise(fmt::format("{} first arg must be str or a tuple of str, not {}",
                               suffix ? "endswith" : "startswith", TypeName(p[0])));
  }
  std::string_view s = self.str();
  std::u32string window;
  if (start || end) {
    const std::u32string u = py::Decode(s);
    const auto n = static_cast<int64_t>(u.size());
    int64_t b = start.value_or(0), e = end.value_or(n);
    if (b < 0) b = std::max<int64_t>(0, b + n);
    if (e < 0) e = std::max<int64_t>(0, e + n);
    e = std::min(e, n);
    if (b > n) {
      *out = Value::Bool(false);
      return Status::Ok();
    }
    window = b < e ? u.substr(static_cast<size_t>(b), static_cast<size_t>(e - b)) : std::u32string();
  }
  const std::string windowed = (start || end) ? py::Encode(window) : std::string(s);
  for (const Value& c : candidates) {
    STRATA_RETURN_IF_ERROR(RequireStr(r, c, "tuple element"));
    if (suffix ? windowed.ends_with(c.str()) : windowed.starts_with(c.str())) {
      *out = Value::Bool(true);
      return Status::Ok();
    }
  }
  *out = Value::Bool(false);
  return Status::Ok();
}
Status StartsWith(Renderer& r, const Value& s, CallArgs& a, Value* o) { return AffixImpl(r, s, a, o, false); }
Status EndsWith(Renderer& r, const Value& s, CallArgs& a, Value* o) { return AffixImpl(r, s, a, o, true); }

Status ReplaceMethod(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("replace", a, {{"old", std::nullopt}, {"new", std::nullopt}, {"count", Value::Int(-1)}}, &p));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[0], "replace() argument 1"));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[1], "replace() argument 2"));
  int64_t count = -1;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[2], &count));
  const std::string old_s = ArgText(self, p[0]), new_s = ArgText(self, p[1]);
  // Bound the result before building it.
  if (!new_s.empty()) {
    const int64_t hits = py::Count(self.str(), old_s, std::nullopt, std::nullopt);
    const int64_t n = count < 0 ? hits : std::min(hits, count);
    STRATA_RETURN_IF_ERROR(r.ChargeString(self.str().size() + static_cast<size_t>(n) * new_s.size()));
  }
  *out = Like(self, py::Replace(self.str(), old_s, new_s, count));
  return Status::Ok();
}

template <std::string (*F)(std::string_view)>
Status CaseMethod(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  if (!a.positional.empty() || !a.keywords.empty()) return r.Raise("this method takes no arguments");
  *out = Like(self, F(self.str()));
  return Status::Ok();
}

Status FindImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, bool reverse, bool raise) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("find", a, {{"sub", std::nullopt}, {"start", Value::None()}, {"end", Value::None()}}, &p));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[0], "substring"));
  std::optional<int64_t> start, end;
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[1], &start));
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[2], &end));
  const int64_t i = py::Find(self.str(), p[0].str(), start, end, reverse);
  if (i < 0 && raise) return r.Raise("substring not found");
  *out = Value::Int(i);
  return Status::Ok();
}
Status FindM(Renderer& r, const Value& s, CallArgs& a, Value* o) { return FindImpl(r, s, a, o, false, false); }
Status RFindM(Renderer& r, const Value& s, CallArgs& a, Value* o) { return FindImpl(r, s, a, o, true, false); }
Status IndexM(Renderer& r, const Value& s, CallArgs& a, Value* o) { return FindImpl(r, s, a, o, false, true); }
Status RIndexM(Renderer& r, const Value& s, CallArgs& a, Value* o) { return FindImpl(r, s, a, o, true, true); }

Status CountM(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("count", a, {{"sub", std::nullopt}, {"start", Value::None()}, {"end", Value::None()}}, &p));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[0], "substring"));
  std::optional<int64_t> start, end;
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[1], &start));
  STRATA_RETURN_IF_ERROR(OptionalIndex(r, p[2], &end));
  *out = Value::Int(py::Count(self.str(), p[0].str(), start, end));
  return Status::Ok();
}

Status JoinM(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("join", a, {{"iterable", std::nullopt}}, &p));
  std::vector<Value> items;
  STRATA_RETURN_IF_ERROR(r.Iterate(p[0], &items));
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].is_string())
      return r.Raise(fmt::format("sequence item {}: expected str instance, {} found", i, TypeName(items[i])));
    if (i > 0) s += self.str();
    s += ArgText(self, items[i]);
    STRATA_RETURN_IF_ERROR(r.ChargeString(s.size()));
  }
  *out = Like(self, std::move(s));
  return Status::Ok();
}

Status PadImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, int align) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("center", a, {{"width", std::nullopt}, {"fillchar", Value::String(" ")}}, &p));
  int64_t width = 0;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], &width));
  if (!p[1].is_string() || py::Length(p[1].str()) != 1)
    return r.Raise("The fill character must be exactly one character long");
  STRATA_RETURN_IF_ERROR(r.ChargeString(static_cast<size_t>(std::clamp<int64_t>(width, 0, INT32_MAX)) * 4));
  *out = Like(self, py::Pad(self.str(), width, p[1].str(), align));
  return Status::Ok();
}
Status Center(Renderer& r, const Value& s, CallArgs& a, Value* o) { return PadImpl(r, s, a, o, 0); }
Status LJust(Renderer& r, const Value& s, CallArgs& a, Value* o) { return PadImpl(r, s, a, o, -1); }
Status RJust(Renderer& r, const Value& s, CallArgs& a, Value* o) { return PadImpl(r, s, a, o, 1); }

Status ZFill(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("zfill", a, {{"width", std::nullopt}}, &p));
  int64_t width = 0;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], &width));
  STRATA_RETURN_IF_ERROR(r.ChargeString(static_cast<size_t>(std::clamp<int64_t>(width, 0, INT32_MAX))));
  const std::string& s = self.str();
  const int64_t len = static_cast<int64_t>(py::Length(s));
  if (width <= len) {
    *out = self;
    return Status::Ok();
  }
  const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
  std::string z = sign ? s.substr(0, 1) : "";
  z.append(static_cast<size_t>(width - len), '0');
  z += sign ? s.substr(1) : s;
  *out = Like(self, std::move(z));
  return Status::Ok();
}

Status PartitionImpl(Renderer& r, const Value& self, CallArgs& a, Value* out, bool reverse) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("partition", a, {{"sep", std::nullopt}}, &p));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[0], "sep"));
  const std::string sep = ArgText(self, p[0]);
  if (sep.empty()) return r.Raise("empty separator");
  const std::string& s = self.str();
  const size_t hit = reverse ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    *out = reverse ? Value::Tuple({Like(self, ""), Like(self, ""), self})
                   : Value::Tuple({self, Like(self, ""), Like(self, "")});
  } else {
    *out = Value::Tuple({Like(self, s.substr(0, hit)), Like(self, sep), Like(self, s.substr(hit + sep.size()))});
  }
  return Status::Ok();
}
Status Partition(Renderer& r, const Value& s, CallArgs& a, Value* o) { return PartitionImpl(r, s, a, o, false); }
Status RPartition(Renderer& r, const Value& s, CallArgs& a, Value* o) { return PartitionImpl(r, s, a, o, true); }

Status RemoveAffix(Renderer& r, const Value& self, CallArgs& a, Value* out, bool suffix) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs(suffix ? "removesuffix" : "removeprefix", a, {{"affix", std::nullopt}}, &p));
  STRATA_RETURN_IF_ERROR(RequireStr(r, p[0], "argument"));
  const std::string& s = self.str();
  const std::string affix = ArgText(self, p[0]);
  if (!suffix && s.starts_with(affix)) {
    *out = Like(self, s.substr(affix.size()));
  } else if (suffix && !affix.empty() && s.ends_with(affix)) {
    *out = Like(self, s.substr(0, s.size() - affix.size()));
  } else {
    *out = self;
  }
  return Status::Ok();
}
Status RemovePrefix(Renderer& r, const Value& s, CallArgs& a, Value* o) { return RemoveAffix(r, s, a, o, false); }
Status RemoveSuffix(Renderer& r, const Value& s, CallArgs& a, Value* o) { return RemoveAffix(r, s, a, o, true); }

// format(value, spec): Python's format mini-language for str, int, float:
// [[fill]align][sign][#][0][width][,|_][.precision][type].
Status FormatSpec(Renderer& r, const Value& v, std::string_view spec, std::string* out) {
  if (spec.empty()) return r.Str(v, out);
  size_t i = 0;
  std::string fill = " ";
  char align = 0, sign = '-', type = 0, grouping = 0;
  bool zero = false, alternate = false;
  int64_t width = -1, precision = -1;
  auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (spec.size() >= 2 && is_align(spec[1]) && static_cast<unsigned char>(spec[0]) < 0x80) {
    fill = spec.substr(0, 1);
    align = spec[1];
    i = 2;
  } else if (!spec.empty() && is_align(spec[0])) {
    align = spec[0];
    i = 1;
  }
  if (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == ' ')) sign = spec[i++];
  if (i < spec.size() && spec[i] == '#') alternate = true, ++i;
  if (i < spec.size() && spec[i] == '0') zero = true, ++i;
  auto digits = [&](int64_t* n) {
    if (i >= spec.size() || !std::isdigit(static_cast<unsigned char>(spec[i]))) return;
    *n = 0;
    while (i < spec.size() && std::isdigit(static_cast<unsigned char>(spec[i])))
      *n = std::min<int64_t>(*n * 10 + (spec[i++] - '0'), 1 << 16);
  };
  digits(&width);
  if (i < spec.size() && (spec[i] == ',' || spec[i] == '_')) grouping = spec[i++];
  if (i < spec.size() && spec[i] == '.') {
    ++i;
    precision = 0;
    digits(&precision);
  }
  if (i < spec.size()) type = spec[i++];
  if (i != spec.size()) return r.Raise(fmt::format("Invalid format specifier '{}'", spec));
  std::string body;
  if (v.is_string() && (type == 0 || type == 's')) {
    body = v.str();
    if (precision >= 0) body = py::Encode(py::Decode(body).substr(0, static_cast<size_t>(precision)));
    if (align == 0) align = '<';
  } else if (v.is_number() && !v.is_float() && (type == 0 || type == 'd' || type == 'x' || type == 'X' ||
                                                type == 'o' || type == 'b' || type == 'c')) {
    const int64_t n = v.integer();
    const uint64_t mag = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
    if (type == 'x') body = fmt::format("{:x}", mag);
    else if (type == 'X') body = fmt::format("{:X}", mag);
    else if (type == 'o') body = fmt::format("{:o}", mag);
    else if (type == 'b') body = fmt::format("{:b}", mag);
    else body = std::to_string(mag);
    if (grouping != 0 && (type == 0 || type == 'd')) {
      std::string grouped;
      for (size_t k = 0; k < body.size(); ++k) {
        if (k > 0 && (body.size() - k) % 3 == 0) grouped.push_back(grouping);
        grouped.push_back(body[k]);
      }
      body = grouped;
    }
    if (alternate && type != 0 && type != 'd') body = std::string("0") + type + body;
    const std::string sign_text = n < 0 ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
    if (zero && align == 0) {
      fill = "0";
      align = '=';
    }
    if (align == '=') {
      const int64_t pad = width - static_cast<int64_t>(sign_text.size() + body.size());
      std::string padding;
      for (int64_t k = 0; k < pad; ++k) padding += fill;
      *out += sign_text + padding + body;
      return Status::Ok();
    }
    body = sign_text + body;
    if (align == 0) align = '>';
  } else if (v.is_number() && (type == 0 || type == 'f' || type == 'F' || type == 'e' || type == 'E' ||
                               type == 'g' || type == 'G' || type == '%')) {
    double x = v.real();
    if (type == '%') x *= 100;
    const int p = static_cast<int>(precision < 0 ? 6 : std::min<int64_t>(precision, 100));
    char buf[512];
    if (type == 0 && precision < 0) {
      body = v.is_float() ? FloatRepr(x) : std::to_string(v.integer());
    } else {
      const char c = type == 0 ? 'g' : type == '%' ? 'f' : type;
      std::snprintf(buf, sizeof buf, fmt::format("%{}{}.{}{}", sign == '+' ? "+" : sign == ' ' ? " " : "",
                                                 alternate ? "#" : "", p, c).c_str(), x);
      body = buf;
      if (type == '%') body += "%";
    }
    if (zero && align == 0) {
      fill = "0";
      align = '=';
    }
    if (align == '=') {
      const bool has_sign = !body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ');
      const std::string s = has_sign ? body.substr(0, 1) : "";
      const std::string rest = has_sign ? body.substr(1) : body;
      std::string padding;
      for (int64_t k = static_cast<int64_t>(body.size()); k < width; ++k) padding += fill;
      *out += s + padding + rest;
      return Status::Ok();
    }
    if (align == 0) align = '>';
  } else {
    return r.Raise(fmt::format("Unknown format code '{}' for object of type '{}'", type ? type : ' ', TypeName(v)));
  }
  const int64_t pad = std::max<int64_t>(0, width - static_cast<int64_t>(py::Length(body)));
  const int64_t left = align == '<' ? 0 : align == '>' ? pad : pad / 2;
  for (int64_t k = 0; k < left; ++k) *out += fill;
  *out += body;
  for (int64_t k = left; k < pad; ++k) *out += fill;
  return Status::Ok();
}

// str.format through jinja2's SandboxedFormatter: {} {0} {name} {a.b[0]}
// fields resolved with the sandbox's getattr/getitem, !r/!s/!a, a format spec.
Status FormatM(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  const std::string& f = self.str();
  std::string result;
  size_t auto_index = 0;
  int numbering = 0;  // 1: automatic {} fields, 2: manual {0} fields; Python refuses a mix
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') {
        result.push_back('}');
        ++i;
        continue;
      }
      return r.Raise("Single '}' encountered in format string");
    }
    if (c != '{') {
      result.push_back(c);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      result.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) return r.Raise("Single '{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1);
    if (field.find('{') != std::string::npos) return r.Raise("nested format fields are not supported");
    i = close;
    std::string spec;
    char conversion = 0;
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      spec = field.substr(colon + 1);
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size()) return r.Raise("expected ':' after conversion specifier");
      conversion = field[bang + 1];
      field.resize(bang);
    }
    // The first part: an index, a name, or empty (automatic numbering).
    size_t end = field.find_first_of(".[");
    const std::string first = field.substr(0, end);
    Value v;
    if (first.empty() || std::all_of(first.begin(), first.end(), [](char ch) { return std::isdigit(ch); })) {
      const int mode = first.empty() ? 1 : 2;
      if (numbering != 0 && numbering != mode)
        return r.Raise(mode == 1 ? "cannot switch from manual field specification to automatic field numbering"
                                 : "cannot switch from automatic field numbering to manual field specification");
      numbering = mode;
      const size_t index = first.empty() ? auto_index++ : std::strtoull(first.c_str(), nullptr, 10);
      if (index >= a.positional.size())
        return r.Raise(fmt::format("Replacement index {} out of range for positional args tuple", index));
      v = a.positional[index];
    } else {
      const auto it = std::find_if(a.keywords.begin(), a.keywords.end(),
                                   [&](const auto& kw) { return kw.first == first; });
      if (it == a.keywords.end()) return r.Raise(fmt::format("KeyError: '{}'", first));
      v = it->second;
    }
    while (end != std::string::npos && end < field.size()) {
      if (field[end] == '.') {
        const size_t next = field.find_first_of(".[", end + 1);
        STRATA_RETURN_IF_ERROR(r.GetAttr(v, field.substr(end + 1, next - end - 1), &v));
        end = next;
      } else {
        const size_t rb = field.find(']', end);
        if (rb == std::string::npos) return r.Raise("Missing ']' in format string");
        const std::string key = field.substr(end + 1, rb - end - 1);
        const bool digits = !key.empty() && std::all_of(key.begin(), key.end(), [](char ch) { return std::isdigit(ch); });
        STRATA_RETURN_IF_ERROR(
            r.GetItem(v, digits ? Value::Int(std::strtoll(key.c_str(), nullptr, 10)) : Value::String(key), &v));
        end = rb + 1;
      }
    }
    if (conversion == 'r' || conversion == 'a') {
      std::string rep;
      STRATA_RETURN_IF_ERROR(Repr(v, r.limits().max_value_depth, &rep));
      v = Value::String(std::move(rep));
    } else if (conversion == 's') {
      std::string s;
      STRATA_RETURN_IF_ERROR(r.Str(v, &s));
      v = Value::String(std::move(s));
    } else if (conversion != 0) {
      return r.Raise(fmt::format("Unknown conversion specifier {}", conversion));
    }
    if (v.is_undefined() && !spec.empty()) return r.Raise("unsupported format string passed to Undefined.__format__");
    std::string piece;
    STRATA_RETURN_IF_ERROR(FormatSpec(r, v, spec, &piece));
    result += self.is_markup() && !v.is_markup() ? py::HtmlEscape(piece) : piece;
    STRATA_RETURN_IF_ERROR(r.ChargeString(result.size()));
  }
  *out = Like(self, std::move(result));
  return Status::Ok();
}

constexpr Method kStrMethods[] = {
    {"strip", Strip},           {"lstrip", LStrip},
    {"rstrip", RStrip},         {"split", Split},
    {"rsplit", RSplit},         {"splitlines", SplitLines},
    {"startswith", StartsWith}, {"endswith", EndsWith},
    {"replace", ReplaceMethod}, {"lower", CaseMethod<py::Lower>},
    {"upper", CaseMethod<py::Upper>}, {"title", CaseMethod<py::Title>},
    {"capitalize", CaseMethod<py::Capitalize>}, {"swapcase", CaseMethod<py::SwapCase>},
    {"casefold", CaseMethod<py::Lower>}, {"find", FindM},
    {"rfind", RFindM},          {"index", IndexM},
    {"rindex", RIndexM},        {"count", CountM},
    {"join", JoinM},            {"center", Center},
    {"ljust", LJust},           {"rjust", RJust},
    {"zfill", ZFill},           {"partition", Partition},
    {"rpartition", RPartition}, {"removeprefix", RemovePrefix},
    {"removesuffix", RemoveSuffix}, {"format", FormatM},
};

// ---- dict

Status DictView(Renderer& r, const Value& self, CallArgs& a, Value* out, SeqKind kind) {
  if (!a.positional.empty() || !a.keywords.empty()) return r.Raise("this method takes no arguments");
  auto view = std::make_shared<SeqData>();
  view->kind = kind;
  STRATA_RETURN_IF_ERROR(r.ChargeItems(self.dict().entries.size()));
  for (const auto& [k, v] : self.dict().entries)
    view->items.push_back(kind == SeqKind::kDictItems ? Value::Tuple({k, v}) : kind == SeqKind::kDictKeys ? k : v);
  *out = Value::Seq(std::move(view));
  return Status::Ok();
}
Status Items(Renderer& r, const Value& s, CallArgs& a, Value* o) { return DictView(r, s, a, o, SeqKind::kDictItems); }
Status Keys(Renderer& r, const Value& s, CallArgs& a, Value* o) { return DictView(r, s, a, o, SeqKind::kDictKeys); }
Status Values(Renderer& r, const Value& s, CallArgs& a, Value* o) { return DictView(r, s, a, o, SeqKind::kDictValues); }

Status Get(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  if (!a.keywords.empty() || a.positional.empty() || a.positional.size() > 2)
    return r.Raise("get expected 1 or 2 positional arguments");
  if (!HashKey(a.positional[0])) return r.Raise(fmt::format("unhashable type: '{}'", TypeName(a.positional[0])));
  const Value* v = self.dict().Find(a.positional[0]);
  *out = v != nullptr ? *v : a.positional.size() == 2 ? a.positional[1] : Value::None();
  return Status::Ok();
}

Status DictCopy(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  if (!a.positional.empty() || !a.keywords.empty()) return r.Raise("copy() takes no arguments");
  STRATA_RETURN_IF_ERROR(r.ChargeItems(self.dict().entries.size()));
  *out = Value::Dict(std::make_shared<DictData>(self.dict()));
  return Status::Ok();
}

constexpr Method kDictMethods[] = {
    {"items", Items}, {"keys", Keys}, {"values", Values}, {"get", Get}, {"copy", DictCopy},
};
constexpr std::string_view kDictMutators[] = {"pop", "popitem", "setdefault", "update", "clear"};

// ---- list and tuple

Status SeqIndex(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("index", a, {{"value", std::nullopt}, {"start", Value::Int(0)},
                                               {"stop", Value::Int(INT64_MAX)}}, &p));
  const std::vector<Value>& items = self.seq().items;
  const auto n = static_cast<int64_t>(items.size());
  int64_t b = 0, e = 0;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[1], &b));
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[2], &e));
  if (b < 0) b = std::max<int64_t>(0, b + n);
  if (e < 0) e = std::max<int64_t>(0, e + n);
  for (int64_t i = b; i < std::min(e, n); ++i) {
    bool eq = false;
    STRATA_RETURN_IF_ERROR(r.Equal(items[static_cast<size_t>(i)], p[0], &eq));
    if (eq) {
      *out = Value::Int(i);
      return Status::Ok();
    }
  }
  return r.Raise("value is not in list");
}

Status SeqCount(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("count", a, {{"value", std::nullopt}}, &p));
  int64_t n = 0;
  for (const Value& item : self.seq().items) {
    bool eq = false;
    STRATA_RETURN_IF_ERROR(r.Equal(item, p[0], &eq));
    n += eq;
  }
  *out = Value::Int(n);
  return Status::Ok();
}

Status ListCopy(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  if (!a.positional.empty() || !a.keywords.empty()) return r.Raise("copy() takes no arguments");
  STRATA_RETURN_IF_ERROR(r.ChargeItems(self.seq().items.size()));
  *out = Value::List(self.seq().items);
  return Status::Ok();
}

Status Pop(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  Args p;
  STRATA_RETURN_IF_ERROR(BindArgs("pop", a, {{"index", Value::Int(-1)}}, &p));
  std::vector<Value>& items = self.seq().items;
  if (items.empty()) return r.Raise("pop from empty list");
  int64_t i = 0;
  STRATA_RETURN_IF_ERROR(RequireInt(r, p[0], &i));
  const auto n = static_cast<int64_t>(items.size());
  if (i < 0) i += n;
  if (i < 0 || i >= n) return r.Raise("pop index out of range");
  *out = items[static_cast<size_t>(i)];
  items.erase(items.begin() + i);
  return Status::Ok();
}

Status Clear(Renderer& r, const Value& self, CallArgs& a, Value* out) {
  if (!a.positional.empty() || !a.keywords.empty()) return r.Raise("clear() takes no arguments");
  self.seq().items.clear();
  *out = Value::None();
  return Status::Ok();
}

constexpr Method kListMethods[] = {
    {"index", SeqIndex}, {"count", SeqCount}, {"copy", ListCopy}, {"pop", Pop}, {"clear", Clear},
};
constexpr Method kTupleMethods[] = {{"index", SeqIndex}, {"count", SeqCount}};
constexpr std::string_view kListMutators[] = {"append", "extend", "insert", "remove", "reverse", "sort"};

template <size_t N>
const Method* FindMethod(const Method (&table)[N], std::string_view name) {
  for (const Method& m : table)
    if (m.name == name) return &m;
  return nullptr;
}

template <size_t N>
bool Contains(const std::string_view (&names)[N], std::string_view name) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

Value Unsafe(std::string_view name, std::string_view type) {
  return Value::Undefined(fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type));
}

}  // namespace

bool LookupMethod(const Value& receiver, std::string_view name, Value* out) {
  const Method* m = nullptr;
  if (receiver.is_string()) {
    m = FindMethod(kStrMethods, name);
  } else if (receiver.is_dict()) {
    if (Contains(kDictMutators, name)) {
      *out = Unsafe(name, "dict");
      return true;
    }
    m = FindMethod(kDictMethods, name);
  } else if (receiver.is_seq() && receiver.seq().kind == SeqKind::kList) {
    if (Contains(kListMutators, name)) {
      *out = Unsafe(name, "list");
      return true;
    }
    m = FindMethod(kListMethods, name);
  } else if (receiver.is_seq() && receiver.seq().kind == SeqKind::kTuple) {
    m = FindMethod(kTupleMethods, name);
  }
  if (m == nullptr) return false;
  const MethodFn fn = m->fn;
  *out = NewFunction(std::string(name), [receiver, fn](Renderer& r, CallArgs& args, Value* result) {
    STRATA_RETURN_IF_ERROR(r.Charge(1));
    return fn(r, receiver, args, result);
  });
  return true;
}

}  // namespace strata::jinja
