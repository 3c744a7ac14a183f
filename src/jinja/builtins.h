// The library a template sees, as jinja2's ImmutableSandboxedEnvironment
// with transformers' additions provides it:
//   filters.cc   filters (x | name(args)), incl. transformers' tojson
//   tests.cc     tests (x is name(args))
//   methods.cc   methods of str, dict and list (x.name(args)), with the
//                sandbox's refusal of list/dict mutators other than
//                list.pop and list.clear
//   globals.cc   range, dict, namespace, cycler, joiner, raise_exception,
//                strftime_now
// and the Python-style argument binding they share.
//
// Thread-safety: functions of their arguments and the Renderer passed in.
#pragma once

#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "jinja/value.h"

namespace strata::jinja {

class Renderer;

// One parameter of a builtin: its name and, if optional, its default.
struct Param {
  std::string_view name;
  std::optional<Value> default_value;  // nullopt: required
};

// Binds args to params as Python binds a call: positionals in order, then
// keywords by name, then defaults. *out holds one Value per param.
[[nodiscard]] Status BindArgs(std::string_view function, const CallArgs& args, std::initializer_list<Param> params,
                              std::vector<Value>* out);

// value | name(args). kInvalidArgument "No filter named 'x'." if unknown.
[[nodiscard]] Status ApplyFilter(Renderer& r, std::string_view name, const Value& value, CallArgs& args, Value* out);

// value is name(args). kInvalidArgument "No test named 'x'." if unknown.
[[nodiscard]] Status ApplyTest(Renderer& r, std::string_view name, const Value& value, CallArgs& args, bool* out);

// receiver.name when name is a method of receiver's type: *out is the bound
// method (or, for a mutator the sandbox refuses, an Undefined that fails
// with a SecurityError when used). False if the type has no such method.
bool LookupMethod(const Value& receiver, std::string_view name, Value* out);

// Python's printf-style `format % args` (the % operator on strings and the
// format filter): args is a tuple, a dict (for %(name)s) or a single value.
// A Markup format escapes the arguments.
[[nodiscard]] Status PercentFormat(Renderer& r, const Value& format, const Value& args, Value* out);

// The global named name, or false.
bool LookupGlobal(std::string_view name, Value* out);

}  // namespace strata::jinja
