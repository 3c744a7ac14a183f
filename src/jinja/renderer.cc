#include "jinja/renderer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>

#include "jinja/builtins.h"
#include "jinja/objects.h"
#include "jinja/py_string.h"

namespace strata::jinja {
namespace {

// Work charged for defining a macro outside the top level (its frame is
// kept for the rest of the render).
constexpr uint64_t kPinnedFrameCost = 64;

// jinja2's object_type_repr, for "has no attribute" messages.
std::string TypeRepr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_object() && v.object().type_name() == "Namespace") return "jinja2.utils.Namespace object";
  return TypeName(v) + " object";
}

Value MissingAttr(const Value& obj, std::string_view name) {
  return Value::Undefined(fmt::format("'{}' has no attribute '{}'", TypeRepr(obj), name));
}

bool HoldsSlice(const Expr& key) {
  if (key.kind != Expr::Kind::kTuple) return false;
  for (const auto& item : key.items)
    if (item->kind == Expr::Kind::kSlice) return true;
  return false;
}

Status UndefinedFailure(const Value& u) {
  const std::string& hint = u.undefined_hint();
  return Status::InvalidArgument(hint.empty() ? "undefined value used" : hint);
}

bool CheckedAdd(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }
bool CheckedSub(int64_t a, int64_t b, int64_t* out) { return !__builtin_sub_overflow(a, b, out); }
bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

Status Overflow() { return Status::InvalidArgument("integer overflow (strata's integers are 64-bit)"); }

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t FloorMod(int64_t a, int64_t b) {
  int64_t m = a % b;
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

double FloatMod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

// Counts the evaluations in progress (each holds C++ stack frames).
class Nesting {
 public:
  explicit Nesting(int* depth) : depth_(depth) { ++*depth_; }
  ~Nesting() { --*depth_; }
  Nesting(const Nesting&) = delete;
  Nesting& operator=(const Nesting&) = delete;
  Status Check(int limit) const {
    if (*depth_ <= limit) return Status::Ok();
    return Status::ResourceExhausted(fmt::format("template evaluation nested deeper than the limit ({})", limit));
  }

 private:
  int* depth_;
};

// A macro ({% macro %}) or the caller of a call block.
class Macro : public Object {
 public:
  Macro(std::string name, const Stmt* def, std::weak_ptr<Frame> closure)
      : name_(std::move(name)), def_(def), closure_(std::move(closure)) {}

  std::string_view type_name() const override { return "Macro"; }
  bool callable() const override { return true; }

  bool GetAttr(std::string_view name, Value* out) const override {
    const Signature& sig = def_->signature;
    if (name == "name") {
      *out = Value::String(name_);
    } else if (name == "arguments") {
      std::vector<Value> params;
      for (const std::string& p : sig.params) params.push_back(Value::String(p));
      *out = Value::Tuple(std::move(params));
    } else if (name == "catch_kwargs" || name == "catch_varargs" || name == "caller") {
      *out = Value::Bool(name == "catch_kwargs" ? sig.catch_kwargs : name == "catch_varargs" ? sig.catch_varargs
                                                                                             : sig.uses_caller);
    } else {
      return false;
    }
    return true;
  }

  Status Str(int, std::string* out) const override {
    out->append(fmt::format("<Macro '{}'>", name_));
    return Status::Ok();
  }

  // Binds arguments as jinja2.runtime.Macro.__call__ does.
  Status Call(Renderer& r, CallArgs& args, Value* out) override {
    std::shared_ptr<Frame> closure = closure_.lock();
    if (!closure) return Status::Internal("macro called after its scope ended");
    for (const Value& v : args.positional) STRATA_RETURN_IF_ERROR(r.CheckStored(v));
    for (const auto& kw : args.keywords) STRATA_RETURN_IF_ERROR(r.CheckStored(kw.second));
    const Signature& sig = def_->signature;
    auto frame = std::make_shared<Frame>();
    frame->parent = closure;
    const size_t n_params = sig.params.size();
    std::vector<bool> bound(n_params, false);
    for (size_t i = 0; i < n_params && i < args.positional.size(); ++i) {
      frame->vars[sig.params[i]] = args.positional[i];
      bound[i] = true;
    }
    auto kwargs = std::make_shared<DictData>();
    for (auto& [key, value] : args.keywords) {
      bool matched = false;
      for (size_t i = args.positional.size(); i < n_params; ++i) {
        if (sig.params[i] == key && !bound[i]) {
          frame->vars[key] = value;
          bound[i] = matched = true;
          break;
        }
      }
      if (!matched) kwargs->Set(key, value);
    }
    if (sig.uses_caller && frame->vars.count("caller") == 0) {
      const Value* caller = kwargs->Find("caller");
      frame->vars["caller"] = caller != nullptr ? *caller : Value::Undefined("No caller defined");
      if (caller != nullptr) {
        auto rest = std::make_shared<DictData>();
        for (const auto& [k, v] : kwargs->entries)
          if (!(k.is_string() && k.str() == "caller")) STRATA_RETURN_IF_ERROR(rest->Set(k, v));
        kwargs = rest;
      }
    }
    if (sig.catch_kwargs) {
      frame->vars["kwargs"] = Value::Dict(kwargs);
    } else if (!kwargs->entries.empty()) {
      const Value& key = kwargs->entries.front().first;
      if (key.is_string() && key.str() == "caller")
        return r.Raise(fmt::format("macro '{}' was invoked with two values for the special caller argument. "
                                   "This is most likely a bug.",
                                   name_));
      return r.Raise(fmt::format("macro '{}' takes no keyword argument '{}'", name_, key.str()));
    }
    if (sig.catch_varargs) {
      std::vector<Value> extra;
      for (size_t i = n_params; i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
      frame->vars["varargs"] = Value::Tuple(std::move(extra));
    } else if (args.positional.size() > n_params) {
      return r.Raise(fmt::format("macro '{}' takes not more than {} argument(s)", name_, n_params));
    }
    // Defaults are evaluated in the macro's frame, in order, so they can
    // read the parameters bound before them.
    const size_t first_default = n_params - sig.defaults.size();
    for (size_t i = 0; i < n_params; ++i) {
      if (bound[i]) continue;
      if (i >= first_default) {
        Value v;
        STRATA_RETURN_IF_ERROR(r.Eval(*sig.defaults[i - first_default], frame, &v));
        frame->vars[sig.params[i]] = std::move(v);
      } else {
        frame->vars[sig.params[i]] = Value::Undefined(fmt::format("parameter '{}' was not provided", sig.params[i]));
      }
    }
    STRATA_RETURN_IF_ERROR(r.EnterCall());
    std::string text;
    Renderer::Control control = Renderer::Control::kNormal;
    Status s = r.Exec(def_->body, frame, &text, &control);
    r.LeaveCall();
    STRATA_RETURN_IF_ERROR(s);
    *out = Value::String(std::move(text));
    return Status::Ok();
  }

 private:
  std::string name_;
  const Stmt* def_;
  std::weak_ptr<Frame> closure_;
};

// The `loop` variable of a for loop (jinja2.runtime.LoopContext).
class Loop : public Object, public std::enable_shared_from_this<Loop> {
 public:
  Loop(std::vector<Value> items, int depth0, const Stmt* def, std::weak_ptr<Frame> frame)
      : items_(std::move(items)), depth0_(depth0), def_(def), frame_(std::move(frame)) {}

  void set_index0(size_t i) { index0_ = i; }
  const Value& item(size_t i) const { return items_[i]; }

  std::string_view type_name() const override { return "LoopContext"; }
  bool callable() const override { return true; }

  bool GetAttr(std::string_view name, Value* out) const override {
    const auto n = static_cast<int64_t>(items_.size()), i = static_cast<int64_t>(index0_);
    if (name == "index0") {
      *out = Value::Int(i);
    } else if (name == "index") {
      *out = Value::Int(i + 1);
    } else if (name == "revindex0") {
      *out = Value::Int(n - i - 1);
    } else if (name == "revindex") {
      *out = Value::Int(n - i);
    } else if (name == "first") {
      *out = Value::Bool(i == 0);
    } else if (name == "last") {
      *out = Value::Bool(i + 1 == n);
    } else if (name == "length") {
      *out = Value::Int(n);
    } else if (name == "depth0") {
      *out = Value::Int(depth0_);
    } else if (name == "depth") {
      *out = Value::Int(depth0_ + 1);
    } else if (name == "previtem") {
      *out = i > 0 ? items_[index0_ - 1] : Value::Undefined("there is no previous item");
    } else if (name == "nextitem") {
      *out = i + 1 < n ? items_[index0_ + 1] : Value::Undefined("there is no next item");
    } else if (name == "cycle") {
      auto self = std::const_pointer_cast<Loop>(shared_from_this());
      *out = NewFunction("cycle", [self](Renderer& r, CallArgs& args, Value* result) {
        if (args.positional.empty()) return r.Raise("no items for cycling given");
        *result = args.positional[self->index0_ % args.positional.size()];
        return Status::Ok();
      });
    } else if (name == "changed") {
      auto self = std::const_pointer_cast<Loop>(shared_from_this());
      *out = NewFunction("changed", [self](Renderer& r, CallArgs& args, Value* result) {
        Value now = Value::Tuple(args.positional);
        bool same = false;
        if (self->has_changed_value_) STRATA_RETURN_IF_ERROR(r.Equal(self->last_changed_, now, &same));
        self->has_changed_value_ = true;
        self->last_changed_ = std::move(now);
        *result = Value::Bool(!same);
        return Status::Ok();
      });
    } else {
      return false;
    }
    return true;
  }

  Status Str(int, std::string* out) const override {
    out->append(fmt::format("<LoopContext {}/{}>", index0_ + 1, items_.size()));
    return Status::Ok();
  }

  // loop(items) in a recursive loop: the loop body over items, one level deeper.
  Status Call(Renderer& r, CallArgs& args, Value* out) override {
    if (!def_->recursive) return r.Raise("The loop must have the 'recursive' marker to be called recursively.");
    if (args.positional.size() != 1 || !args.keywords.empty())
      return r.Raise("loop() takes exactly one argument (the items)");
    std::shared_ptr<Frame> frame = frame_.lock();
    if (!frame) return Status::Internal("loop called after its scope ended");
    STRATA_RETURN_IF_ERROR(r.EnterCall());
    std::string text;
    Status s = r.RunFor(*def_, frame, args.positional[0], depth0_ + 1, &text);
    r.LeaveCall();
    STRATA_RETURN_IF_ERROR(s);
    *out = Value::String(std::move(text));
    return Status::Ok();
  }

 private:
  std::vector<Value> items_;
  size_t index0_ = 0;
  int depth0_;
  const Stmt* def_;
  std::weak_ptr<Frame> frame_;
  bool has_changed_value_ = false;
  Value last_changed_;
};

}  // namespace

bool Namespace::GetAttr(std::string_view name, Value* out) const {
  const Value* v = attrs_.Find(name);
  if (v == nullptr) return false;
  *out = *v;
  return true;
}

Status Namespace::Str(int depth, std::string* out) const {
  out->append("<Namespace ");
  STRATA_RETURN_IF_ERROR(ToStr(Value::Dict(std::make_shared<DictData>(attrs_)), depth, out));
  out->push_back('>');
  return Status::Ok();
}

Status NativeFunction::Str(int, std::string* out) const {
  out->append(fmt::format("<built-in function {}>", name_));
  return Status::Ok();
}

Renderer::Renderer(const Limits& limits, Clock clock) : limits_(limits), clock_(std::move(clock)) {}

Renderer::~Renderer() {
  for (const std::shared_ptr<Namespace>& ns : tracked_) ns->Clear();
}

Status Renderer::Render(const Body& body, const Value& variables, std::string* out, RenderError* error) {
  root_ = std::make_shared<Frame>();
  if (variables.is_dict())
    for (const auto& [k, v] : variables.dict().entries)
      if (k.is_string()) root_->vars[k.str()] = v;
  out->clear();
  Control control = Control::kNormal;
  Status s = Exec(body, root_, out, &control);
  if (s.ok()) {
    if (error != nullptr) *error = RenderError();
    return s;
  }
  RenderError e;
  e.kind = error_kind_ != RenderError::Kind::kNone                 ? error_kind_
           : s.code() == StatusCode::kResourceExhausted ? RenderError::Kind::kLimit
                                                        : RenderError::Kind::kRuntime;
  e.line = error_line_;
  e.message = s.message();
  if (error != nullptr) *error = e;
  return Status(s.code(), fmt::format("line {}: {}", e.line, e.message));
}

Status Renderer::Charge(uint64_t units) {
  steps_ += units;
  if (steps_ > limits_.max_steps)
    return Status::ResourceExhausted(fmt::format("template exceeded its work limit ({} steps)", limits_.max_steps));
  return Status::Ok();
}

Status Renderer::ChargeString(size_t bytes) {
  if (bytes > limits_.max_string_bytes)
    return Status::ResourceExhausted(fmt::format("string longer than the limit ({} bytes)", limits_.max_string_bytes));
  return Charge(bytes / 64);
}

Status Renderer::ChargeItems(size_t items) {
  if (items > limits_.max_items)
    return Status::ResourceExhausted(fmt::format("sequence longer than the limit ({} items)", limits_.max_items));
  return Charge(items / 8);
}

Status Renderer::EnterCall() {
  if (call_depth_ >= limits_.max_call_depth)
    return Status::ResourceExhausted(fmt::format("calls nested deeper than the limit ({})", limits_.max_call_depth));
  ++call_depth_;
  return Status::Ok();
}

Status Renderer::CheckStored(const Value& v) const {
  if (v.depth() <= limits_.max_value_depth) return Status::Ok();
  return Status::ResourceExhausted(
      fmt::format("values nested too deeply (limit {} levels)", limits_.max_value_depth));
}

Status Renderer::RaiseTemplateError(std::string message) {
  error_kind_ = RenderError::Kind::kRaised;
  return Status::InvalidArgument(std::move(message));
}

Status Renderer::Raise(std::string message) { return Status::InvalidArgument(std::move(message)); }

Status Renderer::Str(const Value& v, std::string* out) { return ToStr(v, limits_.max_value_depth, out); }

Status Renderer::Equal(const Value& a, const Value& b, bool* out) {
  return Equals(a, b, limits_.max_value_depth, out);
}

Status Renderer::Append(std::string* out, std::string_view text) {
  if (out->size() + text.size() > limits_.max_string_bytes)
    return Status::ResourceExhausted(
        fmt::format("output longer than the limit ({} bytes)", limits_.max_string_bytes));
  STRATA_RETURN_IF_ERROR(Charge(text.size() / 64));
  out->append(text);
  return Status::Ok();
}

// ---- values

Status Renderer::Iterate(const Value& v, std::vector<Value>* out) {
  out->clear();
  switch (v.type()) {
    case Value::Type::kUndefined: return Status::Ok();
    case Value::Type::kSeq: {
      SeqData& s = v.seq();
      if (s.kind == SeqKind::kIterator) {
        if (s.consumed) return Status::Ok();
        s.consumed = true;
      }
      STRATA_RETURN_IF_ERROR(ChargeItems(s.items.size()));
      *out = s.items;
      return Status::Ok();
    }
    case Value::Type::kDict:
      STRATA_RETURN_IF_ERROR(ChargeItems(v.dict().entries.size()));
      for (const auto& e : v.dict().entries) out->push_back(e.first);
      return Status::Ok();
    case Value::Type::kString: {
      const std::u32string u = py::Decode(v.str());
      STRATA_RETURN_IF_ERROR(ChargeItems(u.size()));
      for (char32_t c : u) out->push_back(Value::String(py::Encode(std::u32string(1, c))));
      return Status::Ok();
    }
    default: return Raise(fmt::format("'{}' object is not iterable", TypeName(v)));
  }
}

Status Renderer::GetAttr(const Value& obj, std::string_view name, Value* out) {
  if (obj.is_undefined()) return UndefinedFailure(obj);
  if (LookupMethod(obj, name, out)) return Status::Ok();
  if (obj.is_object() && obj.object().GetAttr(name, out)) return Status::Ok();
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(name)) {
      *out = *v;
      return Status::Ok();
    }
  }
  *out = MissingAttr(obj, name);
  return Status::Ok();
}

Status Renderer::GetItem(const Value& obj, const Value& key, Value* out) {
  if (obj.is_undefined()) return UndefinedFailure(obj);
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(key)) {
      *out = *v;
      return Status::Ok();
    }
  } else if ((obj.is_seq() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    const bool is_seq = obj.is_seq();
    if (!is_seq || obj.seq().kind == SeqKind::kList || obj.seq().kind == SeqKind::kTuple ||
        obj.seq().kind == SeqKind::kRange) {
      int64_t i = key.integer();
      if (is_seq) {
        const auto n = static_cast<int64_t>(obj.seq().items.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) {
          *out = obj.seq().items[static_cast<size_t>(i)];
          return Status::Ok();
        }
      } else {
        const std::string& s = obj.str();
        if (py::IsAscii(s)) {
          const auto n = static_cast<int64_t>(s.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            *out = obj.is_markup() ? Value::Markup(s.substr(i, 1)) : Value::String(s.substr(i, 1));
            return Status::Ok();
          }
        } else {
          const std::u32string u = py::Decode(s);
          const auto n = static_cast<int64_t>(u.size());
          if (i < 0) i += n;
          if (i >= 0 && i < n) {
            std::string c = py::Encode(std::u32string(1, u[i]));
            *out = obj.is_markup() ? Value::Markup(std::move(c)) : Value::String(std::move(c));
            return Status::Ok();
          }
        }
      }
    }
  }
  if (key.is_string()) {
    // obj[name] failed: the sandbox falls back to the attribute.
    if (LookupMethod(obj, key.str(), out)) return Status::Ok();
    if (obj.is_object() && obj.object().GetAttr(key.str(), out)) return Status::Ok();
    *out = MissingAttr(obj, key.str());
    return Status::Ok();
  }
  std::string key_repr;
  STRATA_RETURN_IF_ERROR(Repr(key, limits_.max_value_depth, &key_repr));
  *out = Value::Undefined(fmt::format("{} has no element {}", TypeRepr(obj), key_repr));
  return Status::Ok();
}

// x[a:b, c]: Python builds a tuple holding a slice, which no string, sequence
// or mapping here accepts as a key, so jinja2's getitem gives undefined.
Status Renderer::EvalSliceTupleKey(const Value& obj, const Expr& key, const std::shared_ptr<Frame>& frame,
                                   Value* out) {
  std::vector<std::string> reprs;
  for (const auto& item : key.items) {
    const bool slice = item->kind == Expr::Kind::kSlice;
    std::vector<std::string> parts;
    for (const Expr* part : slice ? std::vector<const Expr*>{item->items[0].get(), item->items[1].get(),
                                                              item->items[2].get()}
                                  : std::vector<const Expr*>{item.get()}) {
      Value v = Value::None();
      if (part != nullptr) STRATA_RETURN_IF_ERROR(Eval(*part, frame, &v));
      std::string r;
      STRATA_RETURN_IF_ERROR(Repr(v, limits_.max_value_depth, &r));
      parts.push_back(std::move(r));
    }
    reprs.push_back(slice ? fmt::format("slice({})", fmt::join(parts, ", ")) : parts[0]);
  }
  if (obj.is_undefined()) return UndefinedFailure(obj);
  *out = Value::Undefined(fmt::format("{} has no element ({})", TypeRepr(obj), fmt::join(reprs, ", ")));
  return Status::Ok();
}

Status Renderer::Call(const Value& callee, CallArgs& args, Value* out) {
  if (callee.is_undefined()) return UndefinedFailure(callee);
  if (!callee.is_object() || !callee.object().callable())
    return Raise(fmt::format("'{}' object is not callable", TypeName(callee)));
  return callee.object().Call(*this, args, out);
}

Status Renderer::CallFilter(std::string_view name, const Value& value, CallArgs& args, Value* out) {
  return ApplyFilter(*this, name, value, args, out);
}

Status Renderer::CallTest(std::string_view name, const Value& value, CallArgs& args, bool* out) {
  return ApplyTest(*this, name, value, args, out);
}

// ---- operators

Status Renderer::Binary(const std::string& op, const Value& a, const Value& b, Value* out) {
  if (a.is_undefined()) return UndefinedFailure(a);
  if (b.is_undefined()) return UndefinedFailure(b);
  auto unsupported = [&] {
    return Raise(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, TypeName(a), TypeName(b)));
  };
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  if (a.is_number() && b.is_number()) {
    const int64_t x = a.integer(), y = b.integer();
    const double fx = a.real(), fy = b.real();
    int64_t r = 0;
    if (op == "+") {
      if (!ints) *out = Value::Float(fx + fy);
      else if (!CheckedAdd(x, y, &r)) return Overflow();
      else *out = Value::Int(r);
    } else if (op == "-") {
      if (!ints) *out = Value::Float(fx - fy);
      else if (!CheckedSub(x, y, &r)) return Overflow();
      else *out = Value::Int(r);
    } else if (op == "*") {
      if (!ints) *out = Value::Float(fx * fy);
      else if (!CheckedMul(x, y, &r)) return Overflow();
      else *out = Value::Int(r);
    } else if (op == "/") {
      if (fy == 0) return Raise("division by zero");
      *out = Value::Float(fx / fy);
    } else if (op == "//") {
      if (ints ? y == 0 : fy == 0) return Raise(ints ? "integer division or modulo by zero" : "float floor division by zero");
      if (ints && x == std::numeric_limits<int64_t>::min() && y == -1) return Overflow();
      *out = ints ? Value::Int(FloorDiv(x, y)) : Value::Float(std::floor(fx / fy));
    } else if (op == "%") {
      if (ints ? y == 0 : fy == 0) return Raise(ints ? "integer division or modulo by zero" : "float modulo");
      if (ints && y == -1) *out = Value::Int(0);
      else *out = ints ? Value::Int(FloorMod(x, y)) : Value::Float(FloatMod(fx, fy));
    } else if (op == "**") {
      if (ints && y >= 0) {
        int64_t acc = 1, base = x;
        for (int64_t e = y; e > 0; e >>= 1) {
          if ((e & 1) && !CheckedMul(acc, base, &acc)) return Overflow();
          if (e > 1 && !CheckedMul(base, base, &base)) return Overflow();
        }
        *out = Value::Int(acc);
      } else {
        if (fx == 0 && fy < 0) return Raise("0.0 cannot be raised to a negative power");
        *out = Value::Float(std::pow(fx, fy));
      }
    } else {
      return unsupported();
    }
    return Status::Ok();
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      STRATA_RETURN_IF_ERROR(ChargeString(a.str().size() + b.str().size()));
      if (a.is_markup()) *out = Value::Markup(a.str() + (b.is_markup() ? b.str() : py::HtmlEscape(b.str())));
      else if (b.is_markup()) *out = Value::Markup(py::HtmlEscape(a.str()) + b.str());
      else *out = Value::String(a.str() + b.str());
      return Status::Ok();
    }
    if (a.is_seq() && b.is_seq() && a.seq().kind == b.seq().kind &&
        (a.seq().kind == SeqKind::kList || a.seq().kind == SeqKind::kTuple)) {
      STRATA_RETURN_IF_ERROR(ChargeItems(a.seq().items.size() + b.seq().items.size()));
      std::vector<Value> items = a.seq().items;
      items.insert(items.end(), b.seq().items.begin(), b.seq().items.end());
      *out = a.seq().kind == SeqKind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
      return Status::Ok();
    }
    if (a.is_string()) return Raise(fmt::format("can only concatenate str (not \"{}\") to str", TypeName(b)));
    return unsupported();
  }
  if (op == "*") {
    const Value* seq = a.is_number() ? &b : &a;
    const Value* count = a.is_number() ? &a : &b;
    if (!(count->is_int() || count->is_bool())) return unsupported();
    const int64_t n = std::max<int64_t>(0, count->integer());
    if (seq->is_string()) {
      if (n != 0 && seq->str().size() > limits_.max_string_bytes / static_cast<uint64_t>(n))
        return ChargeString(limits_.max_string_bytes + 1);
      STRATA_RETURN_IF_ERROR(ChargeString(seq->str().size() * static_cast<size_t>(n)));
      std::string s;
      s.reserve(seq->str().size() * static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) s += seq->str();
      *out = seq->is_markup() ? Value::Markup(std::move(s)) : Value::String(std::move(s));
      return Status::Ok();
    }
    if (seq->is_seq() && (seq->seq().kind == SeqKind::kList || seq->seq().kind == SeqKind::kTuple)) {
      const std::vector<Value>& items = seq->seq().items;
      if (n != 0 && items.size() > limits_.max_items / static_cast<uint64_t>(n))
        return ChargeItems(limits_.max_items + 1);
      STRATA_RETURN_IF_ERROR(ChargeItems(items.size() * static_cast<size_t>(n)));
      std::vector<Value> repeated;
      for (int64_t i = 0; i < n; ++i) repeated.insert(repeated.end(), items.begin(), items.end());
      *out = seq->seq().kind == SeqKind::kList ? Value::List(std::move(repeated)) : Value::Tuple(std::move(repeated));
      return Status::Ok();
    }
    return unsupported();
  }
  if (op == "%" && a.is_string()) return PercentFormat(*this, a, b, out);
  return unsupported();
}

Status Renderer::Contains(const Value& container, const Value& item, bool* out) {
  *out = false;
  switch (container.type()) {
    case Value::Type::kUndefined: return Status::Ok();
    case Value::Type::kString:
      if (!item.is_string())
        return Raise(fmt::format("'in <string>' requires string as left operand, not {}", TypeName(item)));
      *out = container.str().find(item.str()) != std::string::npos;
      return Status::Ok();
    case Value::Type::kDict:
      if (!HashKey(item)) return Raise(fmt::format("unhashable type: '{}'", TypeName(item)));
      *out = container.dict().Find(item) != nullptr;
      return Status::Ok();
    case Value::Type::kSeq: {
      std::vector<Value> items;
      STRATA_RETURN_IF_ERROR(Iterate(container, &items));
      for (const Value& v : items) {
        STRATA_RETURN_IF_ERROR(Equal(v, item, out));
        if (*out) return Status::Ok();
      }
      return Status::Ok();
    }
    default: return Raise(fmt::format("argument of type '{}' is not iterable", TypeName(container)));
  }
}

Status Renderer::Compare(const std::string& op, const Value& a, const Value& b, bool* out) {
  if (op == "==" || op == "!=") {
    STRATA_RETURN_IF_ERROR(Equal(a, b, out));
    if (op == "!=") *out = !*out;
    return Status::Ok();
  }
  if (op == "in" || op == "notin") {
    STRATA_RETURN_IF_ERROR(Contains(b, a, out));
    if (op == "notin") *out = !*out;
    return Status::Ok();
  }
  if (a.is_undefined()) return UndefinedFailure(a);
  if (b.is_undefined()) return UndefinedFailure(b);
  const int depth = limits_.max_value_depth;
  if (op == "<") return Less(a, b, depth, out);
  if (op == ">") return Less(b, a, depth, out);
  bool strict = false;
  if (op == "<=") {
    STRATA_RETURN_IF_ERROR(Less(b, a, depth, &strict));
  } else {
    STRATA_RETURN_IF_ERROR(Less(a, b, depth, &strict));
  }
  *out = !strict;
  return Status::Ok();
}

// ---- expressions

Status Renderer::Lookup(const std::string& name, const std::shared_ptr<Frame>& frame, Value* out) {
  for (const Frame* f = frame.get(); f != nullptr; f = f->parent.get()) {
    const auto it = f->vars.find(name);
    if (it != f->vars.end()) {
      *out = it->second;
      return Status::Ok();
    }
  }
  if (LookupGlobal(name, out)) return Status::Ok();
  *out = Value::Undefined(fmt::format("'{}' is undefined", name));
  return Status::Ok();
}

Status Renderer::EvalArgs(const Expr& e, const std::shared_ptr<Frame>& frame, CallArgs* args) {
  for (const auto& a : e.args) {
    Value v;
    STRATA_RETURN_IF_ERROR(Eval(*a, frame, &v));
    args->positional.push_back(std::move(v));
  }
  for (const auto& [key, expr] : e.kwargs) {
    Value v;
    STRATA_RETURN_IF_ERROR(Eval(*expr, frame, &v));
    args->keywords.emplace_back(key, std::move(v));
  }
  if (e.dyn_args) {
    Value v;
    STRATA_RETURN_IF_ERROR(Eval(*e.dyn_args, frame, &v));
    std::vector<Value> items;
    STRATA_RETURN_IF_ERROR(Iterate(v, &items));
    args->positional.insert(args->positional.end(), items.begin(), items.end());
  }
  if (e.dyn_kwargs) {
    Value v;
    STRATA_RETURN_IF_ERROR(Eval(*e.dyn_kwargs, frame, &v));
    if (!v.is_dict()) return Raise(fmt::format("argument after ** must be a mapping, not {}", TypeName(v)));
    for (const auto& [k, value] : v.dict().entries) {
      if (!k.is_string()) return Raise("keywords must be strings");
      args->keywords.emplace_back(k.str(), value);
    }
  }
  return Status::Ok();
}

Status Renderer::EvalFilter(const Expr& e, const std::shared_ptr<Frame>& frame, const Value* operand, Value* out) {
  Value base;
  if (!e.operand) {
    base = *operand;
  } else if (e.operand->kind == Expr::Kind::kFilter) {
    STRATA_RETURN_IF_ERROR(EvalFilter(*e.operand, frame, operand, &base));
  } else {
    STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &base));
  }
  CallArgs args;
  STRATA_RETURN_IF_ERROR(EvalArgs(e, frame, &args));
  return CallFilter(e.name, base, args, out);
}

Status Renderer::Eval(const Expr& e, const std::shared_ptr<Frame>& frame, Value* out) {
  Nesting nesting(&nesting_);
  Status s = nesting.Check(limits_.max_nesting);
  if (s.ok()) s = Charge(1);
  if (s.ok()) s = EvalInner(e, frame, out);
  if (!s.ok() && error_line_ == 0) error_line_ = e.line;
  return s;
}

Status Renderer::EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame, Value* out) {
  switch (e.kind) {
    case Expr::Kind::kConst: *out = e.value; return Status::Ok();
    case Expr::Kind::kName: return Lookup(e.name, frame, out);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      STRATA_RETURN_IF_ERROR(ChargeItems(e.items.size()));
      std::vector<Value> items(e.items.size());
      for (size_t i = 0; i < e.items.size(); ++i) STRATA_RETURN_IF_ERROR(Eval(*e.items[i], frame, &items[i]));
      *out = e.kind == Expr::Kind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
      return Status::Ok();
    }
    case Expr::Kind::kDict: {
      STRATA_RETURN_IF_ERROR(ChargeItems(e.items.size() / 2));
      auto d = std::make_shared<DictData>();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k, v;
        STRATA_RETURN_IF_ERROR(Eval(*e.items[i], frame, &k));
        STRATA_RETURN_IF_ERROR(Eval(*e.items[i + 1], frame, &v));
        STRATA_RETURN_IF_ERROR(d->Set(k, std::move(v)));
      }
      *out = Value::Dict(std::move(d));
      return Status::Ok();
    }
    case Expr::Kind::kGetattr: {
      Value obj;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &obj));
      return GetAttr(obj, e.name, out);
    }
    case Expr::Kind::kGetitem: {
      Value obj;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &obj));
      if (HoldsSlice(*e.arg)) return EvalSliceTupleKey(obj, *e.arg, frame, out);
      if (e.arg->kind != Expr::Kind::kSlice) {
        Value key;
        STRATA_RETURN_IF_ERROR(Eval(*e.arg, frame, &key));
        return GetItem(obj, key, out);
      }
      // Slices are plain Python subscriptions (no sandbox fallback).
      if (obj.is_undefined()) return UndefinedFailure(obj);
      std::optional<int64_t> bounds[3];
      for (int i = 0; i < 3; ++i) {
        if (!e.arg->items[i]) continue;
        Value v;
        STRATA_RETURN_IF_ERROR(Eval(*e.arg->items[i], frame, &v));
        if (v.is_none()) continue;
        if (!v.is_int() && !v.is_bool())
          return Raise("slice indices must be integers or None or have an __index__ method");
        bounds[i] = v.integer();
      }
      const int64_t step = bounds[2].value_or(1);
      if (step == 0) return Raise("slice step cannot be zero");
      std::vector<int64_t> idx;
      if (obj.is_string()) {
        const std::u32string u = py::Decode(obj.str());
        py::SliceIndices(static_cast<int64_t>(u.size()), bounds[0], bounds[1], step, &idx);
        std::u32string sliced;
        for (int64_t i : idx) sliced.push_back(u[static_cast<size_t>(i)]);
        *out = obj.is_markup() ? Value::Markup(py::Encode(sliced)) : Value::String(py::Encode(sliced));
        return Status::Ok();
      }
      if (obj.is_seq() && (obj.seq().kind == SeqKind::kList || obj.seq().kind == SeqKind::kTuple ||
                           obj.seq().kind == SeqKind::kRange)) {
        const std::vector<Value>& items = obj.seq().items;
        py::SliceIndices(static_cast<int64_t>(items.size()), bounds[0], bounds[1], step, &idx);
        STRATA_RETURN_IF_ERROR(ChargeItems(idx.size()));
        std::vector<Value> sliced;
        sliced.reserve(idx.size());
        for (int64_t i : idx) sliced.push_back(items[static_cast<size_t>(i)]);
        if (obj.seq().kind == SeqKind::kRange) {
          // A range slice is a range: range(start + b*step, start + e*step, step*k).
          const SeqData& r = obj.seq();
          int64_t b = 0, end = 0;
          py::AdjustSlice(static_cast<int64_t>(items.size()), bounds[0], bounds[1], step, &b, &end);
          auto range = std::make_shared<SeqData>();
          range->kind = SeqKind::kRange;
          range->items = std::move(sliced);
          range->range_start = r.range_start + b * r.range_step;
          range->range_stop = r.range_start + end * r.range_step;
          range->range_step = r.range_step * step;
          *out = Value::Seq(std::move(range));
          return Status::Ok();
        }
        *out = obj.seq().kind == SeqKind::kTuple ? Value::Tuple(std::move(sliced)) : Value::List(std::move(sliced));
        return Status::Ok();
      }
      if (obj.is_dict()) return Raise("unhashable type: 'slice'");
      return Raise(fmt::format("'{}' object is not subscriptable", TypeName(obj)));
    }
    case Expr::Kind::kSlice: return Status::Internal("slice outside a subscription");
    case Expr::Kind::kCall: {
      Value callee;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &callee));
      CallArgs args;
      STRATA_RETURN_IF_ERROR(EvalArgs(e, frame, &args));
      return Call(callee, args, out);
    }
    case Expr::Kind::kFilter: return EvalFilter(e, frame, nullptr, out);
    case Expr::Kind::kTest: {
      Value v;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &v));
      CallArgs args;
      STRATA_RETURN_IF_ERROR(EvalArgs(e, frame, &args));
      bool result = false;
      STRATA_RETURN_IF_ERROR(CallTest(e.name, v, args, &result));
      *out = Value::Bool(result);
      return Status::Ok();
    }
    case Expr::Kind::kNot: {
      Value v;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &v));
      *out = Value::Bool(!Truthy(v));
      return Status::Ok();
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      Value v;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &v));
      if (v.is_undefined()) return UndefinedFailure(v);
      if (!v.is_number())
        return Raise(fmt::format("bad operand type for unary {}: '{}'", e.kind == Expr::Kind::kNeg ? '-' : '+',
                                TypeName(v)));
      if (e.kind == Expr::Kind::kPos) {
        *out = v.is_float() ? v : Value::Int(v.integer());
      } else if (v.is_float()) {
        *out = Value::Float(-v.real());
      } else {
        if (v.integer() == std::numeric_limits<int64_t>::min()) return Overflow();
        *out = Value::Int(-v.integer());
      }
      return Status::Ok();
    }
    case Expr::Kind::kBinary: {
      Value a, b;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &a));
      STRATA_RETURN_IF_ERROR(Eval(*e.arg, frame, &b));
      return Binary(e.name, a, b, out);
    }
    case Expr::Kind::kAnd:
    case Expr::Kind::kOr: {
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, out));
      if (Truthy(*out) == (e.kind == Expr::Kind::kOr)) return Status::Ok();
      return Eval(*e.arg, frame, out);
    }
    case Expr::Kind::kConcat: {
      std::string s;
      for (const auto& item : e.items) {
        Value v;
        STRATA_RETURN_IF_ERROR(Eval(*item, frame, &v));
        std::string part;
        STRATA_RETURN_IF_ERROR(Str(v, &part));
        STRATA_RETURN_IF_ERROR(ChargeString(s.size() + part.size()));
        s += part;
      }
      *out = Value::String(std::move(s));
      return Status::Ok();
    }
    case Expr::Kind::kCompare: {
      Value left;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &left));
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right;
        STRATA_RETURN_IF_ERROR(Eval(*e.items[i], frame, &right));
        bool result = false;
        STRATA_RETURN_IF_ERROR(Compare(e.ops[i], left, right, &result));
        if (!result) {
          *out = Value::Bool(false);
          return Status::Ok();
        }
        left = std::move(right);
      }
      *out = Value::Bool(true);
      return Status::Ok();
    }
    case Expr::Kind::kCondExpr: {
      Value test;
      STRATA_RETURN_IF_ERROR(Eval(*e.operand, frame, &test));
      if (Truthy(test)) return Eval(*e.items[1], frame, out);
      if (e.items[2]) return Eval(*e.items[2], frame, out);
      *out = Value::Undefined(fmt::format(
          "the inline if-expression on line {} evaluated to false and no else section was defined.", e.line));
      return Status::Ok();
    }
  }
  return Status::Internal("unknown expression");
}

// ---- statements

Status Renderer::Assign(const Expr& target, const Value& value, const std::shared_ptr<Frame>& frame) {
  STRATA_RETURN_IF_ERROR(CheckStored(value));
  switch (target.kind) {
    case Expr::Kind::kName: frame->vars[target.name] = value; return Status::Ok();
    case Expr::Kind::kTuple: {
      std::vector<Value> items;
      STRATA_RETURN_IF_ERROR(Iterate(value, &items));
      const size_t n = target.items.size();
      if (items.size() > n) return Raise(fmt::format("too many values to unpack (expected {})", n));
      if (items.size() < n)
        return Raise(fmt::format("not enough values to unpack (expected {}, got {})", n, items.size()));
      for (size_t i = 0; i < n; ++i) STRATA_RETURN_IF_ERROR(Assign(*target.items[i], items[i], frame));
      return Status::Ok();
    }
    case Expr::Kind::kGetattr: {
      Value ns;
      STRATA_RETURN_IF_ERROR(Lookup(target.operand->name, frame, &ns));
      if (!ns.is_object() || ns.object().type_name() != "Namespace")
        return Raise("cannot assign attribute on non-namespace object");
      static_cast<Namespace&>(ns.object()).Set(target.name, value);
      return Status::Ok();
    }
    default: return Status::Internal("invalid assignment target");
  }
}

Status Renderer::Exec(const Body& body, const std::shared_ptr<Frame>& frame, std::string* out, Control* control) {
  for (const auto& s : body) {
    STRATA_RETURN_IF_ERROR(ExecStmt(*s, frame, out, control));
    if (*control != Control::kNormal) return Status::Ok();
  }
  return Status::Ok();
}

Status Renderer::RunFor(const Stmt& s, const std::shared_ptr<Frame>& frame, const Value& iterable, int depth,
                        std::string* out) {
  std::vector<Value> items;
  STRATA_RETURN_IF_ERROR(Iterate(iterable, &items));
  if (s.test) {
    std::vector<Value> kept;
    for (Value& item : items) {
      auto scratch = std::make_shared<Frame>();
      scratch->parent = frame;
      STRATA_RETURN_IF_ERROR(Assign(*s.target, item, scratch));
      Value keep;
      STRATA_RETURN_IF_ERROR(Eval(*s.test, scratch, &keep));
      if (Truthy(keep)) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  Control control = Control::kNormal;
  if (items.empty()) {
    auto scope = std::make_shared<Frame>();
    scope->parent = frame;
    return Exec(s.else_body, scope, out, &control);
  }
  if (s.recursive) Pin(frame);
  const size_t n = items.size();
  auto loop = std::make_shared<Loop>(std::move(items), depth, &s, frame);
  for (size_t i = 0; i < n; ++i) {
    STRATA_RETURN_IF_ERROR(Charge(1));
    auto iteration = std::make_shared<Frame>();
    iteration->parent = frame;
    loop->set_index0(i);
    iteration->vars["loop"] = Value::Object(loop);
    STRATA_RETURN_IF_ERROR(Assign(*s.target, loop->item(i), iteration));
    STRATA_RETURN_IF_ERROR(Exec(s.body, iteration, out, &control));
    if (control == Control::kBreak) break;
    control = Control::kNormal;
  }
  return Status::Ok();
}

Status Renderer::ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out, Control* control) {
  Nesting nesting(&nesting_);
  Status st = nesting.Check(limits_.max_nesting);
  if (st.ok()) st = Charge(1);
  if (!st.ok()) {
    if (error_line_ == 0) error_line_ = s.line;
    return st;
  }
  auto child = [&frame] {
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    return f;
  };
  switch (s.kind) {
    case Stmt::Kind::kOutput:
      for (const auto& e : s.exprs) {
        if (e->kind == Expr::Kind::kConst && e->value.is_string()) {
          st = Append(out, e->value.str());
        } else {
          Value v;
          std::string text;
          st = Eval(*e, frame, &v);
          if (st.ok()) st = Str(v, &text);
          if (st.ok()) st = Append(out, text);
        }
        if (!st.ok()) break;
      }
      break;
    case Stmt::Kind::kIf: {
      Value test;
      st = Eval(*s.test, frame, &test);
      if (st.ok()) st = Exec(Truthy(test) ? s.body : s.else_body, frame, out, control);
      break;
    }
    case Stmt::Kind::kFor: {
      Value iterable;
      st = Eval(*s.iter, frame, &iterable);
      if (st.ok()) st = RunFor(s, frame, iterable, 0, out);
      break;
    }
    case Stmt::Kind::kAssign: {
      Value v;
      st = Eval(*s.expr, frame, &v);
      if (st.ok()) st = Assign(*s.target, v, frame);
      break;
    }
    case Stmt::Kind::kAssignBlock: {
      std::string text;
      Control inner = Control::kNormal;
      st = Exec(s.body, child(), &text, &inner);
      Value v = Value::String(std::move(text));
      if (st.ok() && s.expr) st = EvalFilter(*s.expr, frame, &v, &v);
      if (st.ok()) st = Assign(*s.target, v, frame);
      break;
    }
    case Stmt::Kind::kMacro: {
      if (frame != root_) {
        st = Charge(kPinnedFrameCost);
        Pin(frame);
      }
      frame->vars[s.name] = Value::Object(std::make_shared<Macro>(s.name, &s, frame));
      break;
    }
    case Stmt::Kind::kCallBlock: {
      if (frame != root_) {
        st = Charge(kPinnedFrameCost);
        Pin(frame);
      }
      Value callee, result;
      CallArgs args;
      if (st.ok()) st = Eval(*s.expr->operand, frame, &callee);
      if (st.ok()) st = EvalArgs(*s.expr, frame, &args);
      if (st.ok()) {
        args.keywords.emplace_back("caller", Value::Object(std::make_shared<Macro>("caller", &s, frame)));
        st = Call(callee, args, &result);
      }
      std::string text;
      if (st.ok()) st = Str(result, &text);
      if (st.ok()) st = Append(out, text);
      break;
    }
    case Stmt::Kind::kFilterBlock: {
      std::string text;
      Control inner = Control::kNormal;
      st = Exec(s.body, child(), &text, &inner);
      Value v = Value::String(std::move(text)), result;
      if (st.ok()) st = EvalFilter(*s.expr, frame, &v, &result);
      std::string rendered;
      if (st.ok()) st = Str(result, &rendered);
      if (st.ok()) st = Append(out, rendered);
      break;
    }
    case Stmt::Kind::kWith: {
      auto scope = child();
      std::vector<Value> values(s.exprs.size());
      for (size_t i = 0; i < s.exprs.size() && st.ok(); ++i) st = Eval(*s.exprs[i], frame, &values[i]);
      for (size_t i = 0; i < s.targets.size() && st.ok(); ++i) st = Assign(*s.targets[i], values[i], scope);
      if (st.ok()) st = Exec(s.body, scope, out, control);
      break;
    }
    case Stmt::Kind::kBreak: *control = Control::kBreak; break;
    case Stmt::Kind::kContinue: *control = Control::kContinue; break;
    case Stmt::Kind::kScope: st = Exec(s.body, child(), out, control); break;
  }
  if (!st.ok() && error_line_ == 0) error_line_ = s.line;
  return st;
}

}  // namespace strata::jinja
