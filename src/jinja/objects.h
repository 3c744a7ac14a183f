// Objects shared by the renderer and the builtins: namespace() and native
// (C++) functions such as builtins and bound methods.
//
// Thread-safety: belong to one render.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "jinja/value.h"

namespace strata::jinja {

// namespace(...): the one object a template may assign attributes to
// ({% set ns.attr = value %}), which is how state leaves a loop body.
class Namespace : public Object {
 public:
  std::string_view type_name() const override { return "Namespace"; }
  bool GetAttr(std::string_view name, Value* out) const override;
  [[nodiscard]] Status Str(int depth, std::string* out) const override;
  void Set(std::string_view name, Value value) { attrs_.Set(name, std::move(value)); }
  // Drops every attribute (breaking reference cycles at the end of a render).
  void Clear() { attrs_ = DictData(); }

 private:
  DictData attrs_;
};

// A function implemented in C++: a global, a bound method, loop.cycle, ...
class NativeFunction : public Object {
 public:
  using Fn = std::function<Status(Renderer&, CallArgs&, Value*)>;
  NativeFunction(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  std::string_view type_name() const override { return "builtin_function_or_method"; }
  bool callable() const override { return true; }
  [[nodiscard]] Status Call(Renderer& r, CallArgs& args, Value* out) override { return fn_(r, args, out); }
  [[nodiscard]] Status Str(int depth, std::string* out) const override;

 private:
  std::string name_;
  Fn fn_;
};

inline Value NewFunction(std::string name, NativeFunction::Fn fn) {
  return Value::Object(std::make_shared<NativeFunction>(std::move(name), std::move(fn)));
}

}  // namespace strata::jinja
