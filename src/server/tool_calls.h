// Tool calls: how a model writes them (its chat template's family, as
// llama.cpp's chat formats recognize it), the grammar that makes it write
// them (tool_choice "required" or a named function), and reading them back
// out of its text into OpenAI's tool_calls.
//
// Formats (arguments A a JSON object, N the function's name):
//   kHermes   <tool_call>\n{"name": N, "arguments": A}\n</tool_call>, one block per
//             call (Hermes 2/3, Qwen 2.5/3 and every template that writes <tool_call>);
//   kMistral  [TOOL_CALLS][{"name": N, "arguments": A}, ...];
//   kLlama3   {"name": N, "parameters": A} (templates that ask for "parameters");
//   kJson     {"name": N, "arguments": A}, one per line (any other template).
//
// Thread-safety: pure functions; a ToolCallStream is one choice's.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace strata::server {

enum class ToolCallFormat { kJson, kHermes, kMistral, kLlama3 };

// Calls one answer may hold when several are allowed.
inline constexpr int kMaxCalls = 16;

// The format a chat template (the Jinja source a request with tools renders
// with; "" for built-in renderers) asks the model to call tools in.
ToolCallFormat DetectToolCallFormat(std::string_view template_source);

// GBNF whose texts are calls in format f to the tools (OpenAI function
// tools, each "parameters" a JSON Schema, absent: any object): to only_name
// alone unless it is empty; one call, or up to kMaxCalls if several. Errors name
// the tool whose schema does not convert.
[[nodiscard]] Status ToolCallGrammar(ToolCallFormat f, const nlohmann::ordered_json& tools, const std::string& only_name,
                                     bool several, std::string* gbnf);

struct ToolCall {
  std::string name;
  std::string arguments;  // JSON text of an object
};

// The calls text holds in format f, each with a string name and object
// arguments; *content: the text around them (trimmed). False (nothing set)
// if text holds none, or anything that looks like one is malformed: then it
// is all content.
bool ParseToolCalls(ToolCallFormat f, std::string_view text, std::string* content, std::vector<ToolCall>* calls);

// Streaming: which part of the text generated so far is certainly content
// (sent as it comes) and which may be the start of a call (held until the
// end, then parsed).
class ToolCallStream {
 public:
  explicit ToolCallStream(ToolCallFormat f) : format_(f) {}
  ToolCallFormat format() const { return format_; }
  // Appends text; returns the content that is now certainly no call.
  std::string Push(const std::string& text);
  // At the end: the held text (all of it parsed by the caller).
  const std::string& held() const { return held_; }

 private:
  ToolCallFormat format_;
  std::string held_;       // text not sent yet
  bool calling_ = false;   // a call has begun: hold everything
  bool started_ = false;   // some non-space text was seen
};

}  // namespace strata::server
