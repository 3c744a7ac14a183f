// A Jinja2 template interpreter for chat templates: the subset of Jinja2
// that real chat templates use, rendering byte-for-byte what Python's
// jinja2 renders when set up as transformers' apply_chat_template sets it
// up (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, the
// loopcontrols extension, {% generation %}, and the tojson /
// raise_exception / strftime_now additions).
//
//   std::unique_ptr<jinja::Template> t;
//   STRATA_RETURN_IF_ERROR(jinja::Template::Parse(source, {}, &t));
//   std::string prompt;
//   STRATA_RETURN_IF_ERROR(t->Render(variables /* JSON object */, &prompt));
//
// Templates are untrusted input: parsing and rendering are bounded in depth,
// size and work (Limits), and every failure is a Status naming the template
// line ("line 12: Conversation roles must alternate ...").
//
// Thread-safety: a parsed Template is immutable; Render is const and may run
// concurrently from several threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "jinja/ast.h"
#include "jinja/lexer.h"
#include "jinja/renderer.h"

namespace strata::jinja {

struct TemplateOptions {
  LexerOptions syntax;  // transformers' settings by default
  Limits limits;
  size_t max_source_bytes = 1 << 20;
  // strftime_now's clock (local time); default: the system clock.
  std::function<std::chrono::system_clock::time_point()> clock;
};

class Template {
 public:
  // kInvalidArgument "line N: ..." for a syntax error, a source that is not
  // UTF-8 or is larger than max_source_bytes.
  [[nodiscard]] static Status Parse(std::string_view source, const TemplateOptions& options,
                                    std::unique_ptr<Template>* out);

  // Renders with variables (a JSON object; each key a template variable,
  // insertion order kept for tojson). On failure *error, if given, tells
  // raise_exception() apart from other errors and limits.
  [[nodiscard]] Status Render(const nlohmann::ordered_json& variables, std::string* out,
                              RenderError* error = nullptr) const;
  // Same with the variables already converted (a dict Value).
  [[nodiscard]] Status Render(const Value& variables, std::string* out, RenderError* error = nullptr) const;

  const TemplateOptions& options() const { return options_; }

 private:
  Template() = default;

  TemplateOptions options_;
  Body body_;
};

// JSON -> Value (objects become dicts in insertion order, integers that fit
// int64 ints, other numbers floats). kInvalidArgument beyond max_depth levels.
[[nodiscard]] Status ValueFromJson(const nlohmann::ordered_json& json, int max_depth, Value* out);

}  // namespace strata::jinja
