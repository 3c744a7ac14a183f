// libFuzzer target for the Jinja interpreter (src/jinja): arbitrary bytes as
// a chat template, optionally followed by a NUL byte and the JSON variables
// (else a conversation with tools is used). Parsing and rendering must never
// crash, hang or allocate without bound (the limits are small here so that
// every input runs fast), and abort on any broken property:
//   - a refused template or render says why, naming the line;
//   - errors are kInvalidArgument, or kResourceExhausted for a limit;
//   - an output is valid UTF-8 within the size limit, and rendering twice
//     gives the same output.
//   ./build-fuzz/jinja_fuzz -max_total_time=60 fuzz/seeds/jinja_fuzz
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/utf8.h"
#include "jinja/py_string.h"
#include "jinja/template.h"

namespace {

using strata::Status;
using strata::StatusCode;
using strata::jinja::RenderError;
using strata::jinja::Template;
using strata::jinja::TemplateOptions;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "jinja_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

const nlohmann::ordered_json& DefaultVariables() {
  static const nlohmann::ordered_json v = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Weather in Zürich? 你好"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call0001a", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}}]},
      {"role": "tool", "tool_call_id": "call0001a", "content": "{\"t\": 21.5}"},
      {"role": "assistant", "content": "<think>ok</think>It is 21.5 °C."},
      {"role": "user", "content": "  thanks \n"}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}},
      "required": ["city"]}}}],
    "documents": null, "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"})");
  return v;
}

TemplateOptions FuzzOptions() {
  TemplateOptions o;
  o.limits.max_steps = 200000;
  o.limits.max_string_bytes = 1 << 20;
  o.limits.max_items = 1 << 16;
  o.limits.max_call_depth = 40;
  o.limits.max_value_depth = 64;
  o.limits.max_parse_depth = 100;
  o.clock = [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1721989800)); };
  return o;
}

void CheckFailure(const Status& s) {
  Check(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kResourceExhausted,
        "failures are kInvalidArgument or kResourceExhausted");
  Check(!s.message().empty(), "failures say why");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view source = input.substr(0, nul);
  nlohmann::ordered_json variables = DefaultVariables();
  if (nul != std::string_view::npos) {
    auto parsed = nlohmann::ordered_json::parse(input.substr(nul + 1), nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object()) variables = std::move(parsed);
  }
  static const TemplateOptions options = FuzzOptions();
  std::unique_ptr<Template> t;
  const Status parsed = Template::Parse(source, options, &t);
  if (!parsed.ok()) {
    CheckFailure(parsed);
    Check(parsed.code() == StatusCode::kInvalidArgument, "parse errors are kInvalidArgument");
    return 0;
  }
  std::string out;
  RenderError e;
  const Status s = t->Render(variables, &out, &e);
  if (!s.ok()) {
    CheckFailure(s);
    Check(e.kind != RenderError::Kind::kNone, "a failed render has a kind");
    Check((e.kind == RenderError::Kind::kLimit) == (s.code() == StatusCode::kResourceExhausted),
          "limits and only limits are kResourceExhausted");
    Check(s.message().starts_with("line "), "render errors name the line");
    return 0;
  }
  Check(out.size() <= options.limits.max_string_bytes, "output within the limit");
  Check(strata::utf8::IsValid(out), "output is valid UTF-8");
  std::string again;
  Check(t->Render(variables, &again).ok() && again == out, "rendering is deterministic");
  return 0;
}
