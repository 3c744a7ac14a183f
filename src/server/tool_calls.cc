#include "server/tool_calls.h"

#include <fmt/format.h>

#include "grammar/gbnf_text.h"
#include "grammar/json_schema_gbnf.h"

namespace strata::server {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kMistralStart = "[TOOL_CALLS]";

std::string_view Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// {"name": N, key: A} with A an object; nullopt-like false if not that.
bool CallOf(const json& v, const char* key, ToolCall* out) {
  if (!v.is_object()) return false;
  const auto name = v.find("name");
  const auto args = v.find(key);
  if (name == v.end() || !name->is_string() || args == v.end() || !args->is_object()) return false;
  out->name = name->get<std::string>();
  out->arguments = args->dump();
  return true;
}

json ParseJson(std::string_view text) { return json::parse(text, nullptr, false); }

// The one call's JSON in the format: "name" and the arguments key.
std::string CallRule(grammar::GbnfRules* rules, const std::string& name, const std::string& args_key,
                     const std::string& args) {
  return rules->Add("call", "\"{\" space \"\\\"name\\\"\" space \":\" space " + grammar::GbnfLiteral(json(name).dump()) +
                                " space \",\" space " + grammar::GbnfLiteral(json(args_key).dump()) +
                                " space \":\" space " + args + " space \"}\"");
}

}  // namespace

ToolCallFormat DetectToolCallFormat(std::string_view source) {
  if (source.find(kHermesOpen) != std::string_view::npos) return ToolCallFormat::kHermes;
  if (source.find(kMistralStart) != std::string_view::npos) return ToolCallFormat::kMistral;
  if (source.find("\"parameters\"") != std::string_view::npos) return ToolCallFormat::kLlama3;
  return ToolCallFormat::kJson;
}

Status ToolCallGrammar(ToolCallFormat f, const json& tools, const std::string& only_name, bool several,
                       std::string* gbnf) {
  grammar::GbnfRules rules;
  const std::string args_key = f == ToolCallFormat::kLlama3 ? "parameters" : "arguments";
  std::vector<std::string> calls;
  for (size_t i = 0; i < tools.size(); ++i) {
    const json& fn = tools[i]["function"];
    const std::string name = fn["name"].get<std::string>();
    if (!only_name.empty() && name != only_name) continue;
    const auto params = fn.find("parameters");
    const json schema = params == fn.end() || params->is_null() ? json{{"type", "object"}} : *params;
    std::string args;
    if (Status s = grammar::JsonSchemaRules(schema, fmt::format("tool-{}", i), &rules, &args); !s.ok())
      return Status::InvalidArgument(fmt::format("tools[{}].function.parameters: the JSON schema {}", i, s.message()));
    calls.push_back(CallRule(&rules, name, args_key, args));
  }
  std::string call;
  for (size_t i = 0; i < calls.size(); ++i) call += (i > 0 ? " | " : "") + calls[i];
  call = rules.Add("one-call", call);
  grammar::JsonPrimitive("space", &rules);
  const bool many = several && f != ToolCallFormat::kLlama3;  // Llama 3 writes one call per turn
  switch (f) {
    case ToolCallFormat::kHermes: {
      const std::string block = rules.Add("call-block", "\"<tool_call>\\n\" " + call + " \"\\n</tool_call>\"");
      rules.Add("root", block + (many ? fmt::format(" ( \"\\n\" {} ){{0,{}}}", block, kMaxCalls - 1) : ""));
      break;
    }
    case ToolCallFormat::kMistral:
      rules.Add("root", "\"[TOOL_CALLS][\" " + call +
                            (many ? fmt::format(" ( \",\" space {} ){{0,{}}}", call, kMaxCalls - 1) : "") + " \"]\"");
      break;
    case ToolCallFormat::kLlama3:
    case ToolCallFormat::kJson:
      rules.Add("root", call + (many ? fmt::format(" ( \"\\n\" {} ){{0,{}}}", call, kMaxCalls - 1) : ""));
      break;
  }
  *gbnf = rules.Text();
  return Status::Ok();
}

bool ParseToolCalls(ToolCallFormat f, std::string_view text, std::string* content, std::vector<ToolCall>* calls) {
  std::vector<ToolCall> found;
  std::string rest;
  switch (f) {
    case ToolCallFormat::kHermes: {
      size_t at = 0;
      for (;;) {
        const size_t open = text.find(kHermesOpen, at);
        if (open == std::string_view::npos) break;
        const size_t close = text.find(kHermesClose, open);
        if (close == std::string_view::npos) return false;
        rest += text.substr(at, open - at);
        const std::string_view inner = text.substr(open + kHermesOpen.size(), close - open - kHermesOpen.size());
        if (!CallOf(ParseJson(Trim(inner)), "arguments", &found.emplace_back())) return false;
        at = close + kHermesClose.size();
      }
      rest += text.substr(at);
      break;
    }
    case ToolCallFormat::kMistral: {
      const std::string_view t = Trim(text);
      if (!t.starts_with(kMistralStart)) return false;
      const json list = ParseJson(t.substr(kMistralStart.size()));
      if (!list.is_array() || list.empty()) return false;
      for (const json& v : list)
        if (!CallOf(v, "arguments", &found.emplace_back())) return false;
      break;
    }
    case ToolCallFormat::kLlama3:
    case ToolCallFormat::kJson: {
      const char* key = f == ToolCallFormat::kLlama3 ? "parameters" : "arguments";
      std::string_view t = Trim(text);
      if (!t.starts_with("{")) return false;
      // One call per line (a call's JSON may span lines: then it is the whole text).
      const json whole = ParseJson(t);
      if (!whole.is_discarded()) {
        if (!CallOf(whole, key, &found.emplace_back())) return false;
        break;
      }
      while (!t.empty()) {
        const size_t nl = t.find('\n');
        if (!CallOf(ParseJson(t.substr(0, nl)), key, &found.emplace_back())) return false;
        t = nl == std::string_view::npos ? std::string_view() : Trim(t.substr(nl + 1));
      }
      break;
    }
  }
  if (found.empty()) return false;
  *content = std::string(Trim(rest));
  *calls = std::move(found);
  return true;
}

std::string ToolCallStream::Push(const std::string& text) {
  held_ += text;
  if (calling_) return "";
  std::string out;
  if (format_ == ToolCallFormat::kJson || format_ == ToolCallFormat::kLlama3) {
    // A call is the whole answer: it starts with "{" after any spaces.
    if (!started_) {
      const size_t b = held_.find_first_not_of(" \t\r\n");
      if (b == std::string::npos) return "";
      started_ = true;
      calling_ = held_[b] == '{';
      if (calling_) return "";
    }
    out.swap(held_);
    return out;
  }
  // A call starts with a marker anywhere: send what certainly precedes it.
  const std::string_view marker = format_ == ToolCallFormat::kHermes ? kHermesOpen : kMistralStart;
  const size_t at = held_.find(marker);
  if (at != std::string::npos) {
    calling_ = true;
    out = held_.substr(0, at);
    held_.erase(0, at);
    return out;
  }
  size_t keep = 0;  // the longest tail of held_ that begins the marker
  for (size_t n = std::min(marker.size() - 1, held_.size()); n > 0; --n) {
    if (marker.starts_with(std::string_view(held_).substr(held_.size() - n))) {
      keep = n;
      break;
    }
  }
  out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

}  // namespace strata::server
