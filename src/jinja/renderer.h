// Renderer: executes a parsed template against its variables, with jinja2's
// semantics as ImmutableSandboxedEnvironment applies them (the sandbox's
// refusals included) and bounded work:
//   - every expression, statement and produced byte is charged against
//     Limits::max_steps;
//   - every string (the output included) is at most max_string_bytes and
//     every list or dict at most max_items;
//   - macro calls and recursive loops nest at most max_call_depth deep, the
//     evaluation as a whole max_nesting deep (the interpreter's stack), and
//     values at most max_value_depth (printing, tojson, comparisons).
// Exceeding a limit is an error, never a crash or a hang.
//
// Scoping follows jinja2: a for-loop iteration, a macro call, a with block,
// a set block and a filter block each get a frame whose assignments do not
// leak out; if-blocks share their enclosing frame; names resolve through
// the enclosing frames, then the render variables, then the globals.
//
// Thread-safety: one Renderer per render; not shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "jinja/ast.h"
#include "jinja/value.h"

namespace strata::jinja {

class Namespace;

struct Limits {
  size_t max_string_bytes = 16 << 20;  // any string value, the output included
  size_t max_items = 1 << 20;          // elements of one list or dict
  uint64_t max_steps = 20'000'000;     // work units: nodes evaluated, bytes and items produced / 64
  int max_call_depth = 100;            // nested macro calls and recursive loop calls
  int max_nesting = 1000;              // expressions and statements evaluating at once (bounds the stack)
  int max_value_depth = 256;           // nesting of values that are printed, compared or serialized
  int max_parse_depth = 200;           // nesting of blocks and expressions in the source
};

// How a render failed, for callers that tell the template's own
// raise_exception() apart from other errors.
struct RenderError {
  enum class Kind { kNone, kRaised, kRuntime, kLimit };
  Kind kind = Kind::kNone;
  int line = 0;
  std::string message;  // without the line
};

// A variable frame. Frames are shared: a macro keeps the frame it was
// defined in (as a weak reference; the Renderer keeps it alive).
struct Frame {
  std::shared_ptr<Frame> parent;
  std::unordered_map<std::string, Value> vars;
};

class Renderer {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  Renderer(const Limits& limits, Clock clock);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // Renders body with variables (a dict) into *out. On failure *error (if
  // given) says how; the Status message is "line N: message".
  [[nodiscard]] Status Render(const Body& body, const Value& variables, std::string* out, RenderError* error);

  // ---- for the builtins (filters, tests, methods, globals)
  const Limits& limits() const { return limits_; }
  const Clock& clock() const { return clock_; }
  // Charges work units; kResourceExhausted once the budget is spent.
  [[nodiscard]] Status Charge(uint64_t units);
  // A new string of n bytes / sequence of n items: charged, and refused
  // beyond the limits.
  [[nodiscard]] Status ChargeString(size_t bytes);
  [[nodiscard]] Status ChargeItems(size_t items);
  // The items a for-loop over v visits (consuming a one-pass iterator);
  // Python's TypeError for what is not iterable.
  [[nodiscard]] Status Iterate(const Value& v, std::vector<Value>* out);
  // obj.name and obj[key] as the sandbox resolves them: attribute first
  // (methods) then item for getattr, the reverse for getitem; a missing
  // one is an Undefined naming it.
  [[nodiscard]] Status GetAttr(const Value& obj, std::string_view name, Value* out);
  [[nodiscard]] Status GetItem(const Value& obj, const Value& key, Value* out);
  [[nodiscard]] Status Call(const Value& callee, CallArgs& args, Value* out);
  [[nodiscard]] Status CallFilter(std::string_view name, const Value& value, CallArgs& args, Value* out);
  [[nodiscard]] Status CallTest(std::string_view name, const Value& value, CallArgs& args, bool* out);
  // str(v) / repr(v) / ==, with the value depth limit.
  [[nodiscard]] Status Str(const Value& v, std::string* out);
  [[nodiscard]] Status Equal(const Value& a, const Value& b, bool* out);
  // Refuses a value nested deeper than max_value_depth where values are
  // stored (variables, namespace attributes, macro arguments): values only
  // grow deeper through stores, and deep ones are walked recursively.
  [[nodiscard]] Status CheckStored(const Value& v) const;
  // A Python exception (TypeError, ValueError, ...) as this render's error.
  [[nodiscard]] Status Raise(std::string message);
  // The template's own raise_exception(message).
  [[nodiscard]] Status RaiseTemplateError(std::string message);
  // Namespaces (the objects that can form reference cycles) register here
  // and are cleared when the render ends.
  void Track(std::shared_ptr<Namespace> ns) { tracked_.push_back(std::move(ns)); }

  // Evaluates / runs in a frame; used by macros and loops.
  [[nodiscard]] Status Eval(const Expr& e, const std::shared_ptr<Frame>& frame, Value* out);
  [[nodiscard]] Status EvalSliceTupleKey(const Value& obj, const Expr& key, const std::shared_ptr<Frame>& frame,
                                         Value* out);
  enum class Control { kNormal, kBreak, kContinue };
  [[nodiscard]] Status Exec(const Body& body, const std::shared_ptr<Frame>& frame, std::string* out, Control* control);
  [[nodiscard]] Status RunFor(const Stmt& s, const std::shared_ptr<Frame>& frame, const Value& iterable, int depth,
                              std::string* out);
  // Keeps a frame alive for the rest of the render (a macro's closure).
  void Pin(std::shared_ptr<Frame> frame) { pinned_.push_back(std::move(frame)); }
  // Macro and recursive-loop call nesting.
  [[nodiscard]] Status EnterCall();
  void LeaveCall() { --call_depth_; }

 private:
  [[nodiscard]] Status EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame, Value* out);
  [[nodiscard]] Status ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out,
                                Control* control);
  [[nodiscard]] Status Lookup(const std::string& name, const std::shared_ptr<Frame>& frame, Value* out);
  [[nodiscard]] Status Assign(const Expr& target, const Value& value, const std::shared_ptr<Frame>& frame);
  [[nodiscard]] Status EvalArgs(const Expr& e, const std::shared_ptr<Frame>& frame, CallArgs* args);
  [[nodiscard]] Status EvalFilter(const Expr& e, const std::shared_ptr<Frame>& frame, const Value* operand,
                                  Value* out);
  [[nodiscard]] Status Binary(const std::string& op, const Value& a, const Value& b, Value* out);
  [[nodiscard]] Status Compare(const std::string& op, const Value& a, const Value& b, bool* out);
  [[nodiscard]] Status Contains(const Value& container, const Value& item, bool* out);
  [[nodiscard]] Status Append(std::string* out, std::string_view text);

  const Limits limits_;
  const Clock clock_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;
  std::shared_ptr<Frame> root_;
  std::vector<std::shared_ptr<Frame>> pinned_;
  std::vector<std::shared_ptr<Namespace>> tracked_;
  // Where the first error arose.
  int error_line_ = 0;
  RenderError::Kind error_kind_ = RenderError::Kind::kNone;
};

}  // namespace strata::jinja
