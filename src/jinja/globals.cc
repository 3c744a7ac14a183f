// Globals (builtins.h): jinja2's default namespace as the sandbox has it
// (range limited to 100000 items) and transformers' raise_exception and
// strftime_now. lipsum (random text) is not provided.
#include <fmt/format.h>

#include <ctime>

#include "jinja/builtins.h"
#include "jinja/objects.h"
#include "jinja/renderer.h"

namespace strata::jinja {
namespace {

// jinja2.sandbox.MAX_RANGE.
constexpr int64_t kMaxRange = 100000;

Status Range(Renderer& r, CallArgs& a, Value* out) {
  if (!a.keywords.empty()) return r.Raise("range() takes no keyword arguments");
  const size_t n = a.positional.size();
  if (n < 1 || n > 3) return r.Raise(fmt::format("range expected 1 to 3 arguments, got {}", n));
  int64_t v[3] = {0, 0, 1};
  for (size_t i = 0; i < n; ++i) {
    const Value& x = a.positional[i];
    if (!x.is_int() && !x.is_bool())
      return r.Raise(fmt::format("'{}' object cannot be interpreted as an integer", TypeName(x)));
    v[n == 1 ? 1 : i] = x.integer();
  }
  const int64_t start = v[0], stop = v[1], step = v[2];
  if (step == 0) return r.Raise("range() arg 3 must not be zero");
  // Length computed without overflow: ceil((stop - start) / step) if positive.
  const __int128 span = step > 0 ? static_cast<__int128>(stop) - start : static_cast<__int128>(start) - stop;
  const __int128 mag = step > 0 ? step : -static_cast<__int128>(step);
  const __int128 length = span <= 0 ? 0 : (span + mag - 1) / mag;
  if (length > kMaxRange)
    return r.Raise(fmt::format("Range too big. The sandbox blocks ranges larger than MAX_RANGE ({}).", kMaxRange));
  STRATA_RETURN_IF_ERROR(r.ChargeItems(static_cast<size_t>(length)));
  auto seq = std::make_shared<SeqData>();
  seq->kind = SeqKind::kRange;
  seq->range_start = start;
  seq->range_stop = stop;
  seq->range_step = step;
  for (int64_t i = 0; i < static_cast<int64_t>(length); ++i) seq->items.push_back(Value::Int(start + i * step));
  *out = Value::Seq(std::move(seq));
  return Status::Ok();
}

// dict(...) / namespace(...): Python's dict(*args, **kwargs).
Status DictFrom(Renderer& r, CallArgs& a, DictData* d) {
  if (a.positional.size() > 1) return r.Raise(fmt::format("dict expected at most 1 argument, got {}", a.positional.size()));
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (src.is_dict()) {
      *d = src.dict();
    } else {
      std::vector<Value> pairs;
      STRATA_RETURN_IF_ERROR(r.Iterate(src, &pairs));
      for (const Value& pair : pairs) {
        std::vector<Value> kv;
        STRATA_RETURN_IF_ERROR(r.Iterate(pair, &kv));
        if (kv.size() != 2) return r.Raise("dictionary update sequence element has the wrong length; 2 is required");
        STRATA_RETURN_IF_ERROR(d->Set(kv[0], kv[1]));
      }
    }
  }
  for (const auto& [k, v] : a.keywords) d->Set(k, v);
  return r.ChargeItems(d->entries.size());
}

Status Dict(Renderer& r, CallArgs& a, Value* out) {
  auto d = std::make_shared<DictData>();
  STRATA_RETURN_IF_ERROR(DictFrom(r, a, d.get()));
  *out = Value::Dict(std::move(d));
  return Status::Ok();
}

Status MakeNamespace(Renderer& r, CallArgs& a, Value* out) {
  DictData attrs;
  STRATA_RETURN_IF_ERROR(DictFrom(r, a, &attrs));
  auto ns = std::make_shared<Namespace>();
  for (const auto& [k, v] : attrs.entries) {
    if (!k.is_string()) return r.Raise("namespace() keywords must be strings");
    ns->Set(k.str(), v);
  }
  STRATA_RETURN_IF_ERROR(r.Charge(8));
  r.Track(ns);
  *out = Value::Object(std::move(ns));
  return Status::Ok();
}

// cycler(a, b, ...): .next() walks the items round, .current, .reset().
class Cycler : public Object, public std::enable_shared_from_this<Cycler> {
 public:
  explicit Cycler(std::vector<Value> items) : items_(std::move(items)) {}
  std::string_view type_name() const override { return "Cycler"; }
  bool GetAttr(std::string_view name, Value* out) const override {
    auto self = std::const_pointer_cast<Cycler>(shared_from_this());
    if (name == "current") {
      *out = items_[pos_];
    } else if (name == "items") {
      *out = Value::List(items_);
    } else if (name == "next" || name == "__next__") {
      *out = NewFunction("next", [self](Renderer&, CallArgs&, Value* result) {
        *result = self->items_[self->pos_];
        self->pos_ = (self->pos_ + 1) % self->items_.size();
        return Status::Ok();
      });
    } else if (name == "reset") {
      *out = NewFunction("reset", [self](Renderer&, CallArgs&, Value* result) {
        self->pos_ = 0;
        *result = Value::None();
        return Status::Ok();
      });
    } else {
      return false;
    }
    return true;
  }

 private:
  std::vector<Value> items_;
  size_t pos_ = 0;
};

Status MakeCycler(Renderer& r, CallArgs& a, Value* out) {
  if (a.positional.empty()) return r.Raise("at least one item has to be provided");
  *out = Value::Object(std::make_shared<Cycler>(a.positional));
  return Status::Ok();
}

Status MakeJoiner(Renderer& r, CallArgs& a, Value* out) {
  std::vector<Value> p;
  STRATA_RETURN_IF_ERROR(BindArgs("joiner", a, {{"sep", Value::String(", ")}}, &p));
  auto used = std::make_shared<bool>(false);
  *out = NewFunction("joiner", [sep = p[0], used](Renderer&, CallArgs&, Value* result) {
    *result = *used ? sep : Value::String("");
    *used = true;
    return Status::Ok();
  });
  return Status::Ok();
}

Status RaiseException(Renderer& r, CallArgs& a, Value*) {
  std::string message;
  if (!a.positional.empty()) STRATA_RETURN_IF_ERROR(r.Str(a.positional[0], &message));
  return r.RaiseTemplateError(std::move(message));
}

// datetime.now().strftime(format): a naive local time, so %z and %Z are
// empty; %f is the microseconds; the rest is the C library's strftime.
Status StrftimeNow(Renderer& r, CallArgs& a, Value* out) {
  std::vector<Value> p;
  STRATA_RETURN_IF_ERROR(BindArgs("strftime_now", a, {{"format", std::nullopt}}, &p));
  if (!p[0].is_string()) return r.Raise("strftime() argument 1 must be str");
  const std::string& f = p[0].str();
  if (f.size() > 1024) return r.Raise("strftime_now: format longer than 1024 bytes");
  const auto now = r.clock()();
  const auto since_epoch = now.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count() % 1000000;
  std::string cfmt;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%' || i + 1 >= f.size()) {
      cfmt.push_back(f[i]);
      continue;
    }
    const char c = f[++i];
    if (c == 'f') {
      cfmt += fmt::format("{:06d}", micros < 0 ? micros + 1000000 : micros);
    } else if (c != 'z' && c != 'Z') {
      cfmt.push_back('%');
      cfmt.push_back(c);
    }
  }
  std::tm tm{};
  if (localtime_r(&seconds, &tm) == nullptr) return r.Raise("strftime_now: the clock is out of range");
  std::string buf(cfmt.size() * 64 + 64, '\0');
  const size_t n = cfmt.empty() ? 0 : std::strftime(buf.data(), buf.size(), cfmt.c_str(), &tm);
  if (n == 0 && !cfmt.empty()) return r.Raise("strftime_now: the formatted date is too long");
  buf.resize(n);
  *out = Value::String(std::move(buf));
  return Status::Ok();
}

struct Global {
  std::string_view name;
  Status (*fn)(Renderer&, CallArgs&, Value*);
};

constexpr Global kGlobals[] = {
    {"range", Range},         {"dict", Dict},
    {"namespace", MakeNamespace}, {"cycler", MakeCycler},
    {"joiner", MakeJoiner},   {"raise_exception", RaiseException},
    {"strftime_now", StrftimeNow},
};

}  // namespace

bool LookupGlobal(std::string_view name, Value* out) {
  for (const Global& g : kGlobals) {
    if (g.name != name) continue;
    *out = NewFunction(std::string(name), g.fn);
    return true;
  }
  return false;
}

}  // namespace strata::jinja
