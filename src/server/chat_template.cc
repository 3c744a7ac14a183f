#include "server/chat_template.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <utility>

#include "core/utf8.h"
#include "jinja/py_string.h"
#include "jinja/template.h"

namespace strata::server {
namespace {

using Kind = ChatTemplate::Kind;

constexpr std::array<std::pair<std::string_view, Kind>, 15> kNames = {{
    {"chatml", Kind::kChatml},
    {"llama2", Kind::kLlama2},
    {"llama2-sys", Kind::kLlama2Sys},
    {"llama2-sys-bos", Kind::kLlama2SysBos},
    {"llama2-sys-strip", Kind::kLlama2SysStrip},
    {"mistral-v1", Kind::kMistralV1},
    {"mistral-v3", Kind::kMistralV3},
    {"mistral-v3-tekken", Kind::kMistralV3Tekken},
    {"mistral-v7", Kind::kMistralV7},
    {"mistral-v7-tekken", Kind::kMistralV7Tekken},
    {"llama3", Kind::kLlama3},
    {"phi3", Kind::kPhi3},
    {"zephyr", Kind::kZephyr},
    {"gemma", Kind::kGemma},
    {"plain", Kind::kPlain},
}};

// Work a chat template may do per conversation (jinja::Limits::max_steps):
// real templates need well under a million steps for long conversations with
// tools; this bounds a hostile one to about two seconds.
constexpr uint64_t kMaxTemplateSteps = 10'000'000;

// The assistant cue each built-in renderer ends with (empty for the [INST]
// families, whose cue is the closing [/INST] of the last user turn).
std::string_view GenerationCue(Kind kind) {
  switch (kind) {
    case Kind::kChatml: return "<|im_start|>assistant\n";
    case Kind::kLlama3: return "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case Kind::kPhi3:
    case Kind::kZephyr: return "<|assistant|>\n";
    case Kind::kGemma: return "<start_of_turn>model\n";
    case Kind::kPlain: return "Assistant:";
    default: return "";
  }
}

// Drops the cue a rendering ends with, for add_generation_prompt = false.
void StripGenerationCue(Kind kind, std::string* text) {
  const std::string_view cue = GenerationCue(kind);
  if (!cue.empty() && text->ends_with(cue)) text->resize(text->size() - cue.size());
}

std::optional<Kind> KindByName(std::string_view name) {
  for (const auto& [n, k] : kNames)
    if (n == name) return k;
  return std::nullopt;
}

// Python's str.strip() on ASCII whitespace, as the templates' `| trim` does.
std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// The llama-2 family: [INST] turns, with or without <<SYS>> blocks.
std::optional<Kind> DetectLlama2Family(std::string_view t) {
  auto has = [t](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("[SYSTEM_PROMPT]")) return Kind::kMistralV7;
  // Mistral's official v1/v3 templates (their cookbook's chat_templates.md).
  if (has("' [INST] ' + system_message") || has("[AVAILABLE_TOOLS]")) {
    if (has(" [INST]")) return Kind::kMistralV1;
    if (has("\"[INST]\"")) return Kind::kMistralV3Tekken;
    return Kind::kMistralV3;
  }
  if (has("content.strip()")) return Kind::kLlama2SysStrip;
  if (has("bos_token + '[INST]")) return Kind::kLlama2SysBos;
  if (has("<<SYS>>")) return Kind::kLlama2Sys;
  return Kind::kLlama2;
}

std::optional<Kind> DetectKind(std::string_view t) {
  if (auto k = KindByName(t)) return k;
  auto has = [t](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (has("<|im_start|>")) {
    // phi-4 and SmolVLM reuse <|im_start|> with other layouts.
    if (has("<|im_sep|>") || has("<end_of_utterance>")) return std::nullopt;
    return Kind::kChatml;
  }
  if (t.starts_with("mistral") || has("[INST]")) return DetectLlama2Family(t);
  if (has("<|assistant|>") && has("<|end|>")) return Kind::kPhi3;
  if (has("<|user|>") && (has("<|endoftext|>") || has("eos_token"))) return Kind::kZephyr;
  if (has("<start_of_turn>")) return Kind::kGemma;
  if (has("<|start_header_id|>") && has("<|end_header_id|>")) return Kind::kLlama3;
  return std::nullopt;
}

}  // namespace

ChatTemplate::ChatTemplate(Kind kind, std::string_view bos_text, std::string_view eos_text)
    : kind_(kind), model_bos_(bos_text), model_eos_(eos_text) {
  if (!bos_text.empty()) bos_ = bos_text;
  if (!eos_text.empty()) eos_ = eos_text;
}

Status ChatTemplate::FromName(std::string_view name, std::string_view bos_text, std::string_view eos_text,
                              ChatTemplate* out) {
  const std::optional<Kind> kind = KindByName(name);
  if (!kind) {
    return Status::InvalidArgument(
        fmt::format("unknown chat template '{}' (known: {})", name, fmt::join(Names(), ", ")));
  }
  *out = ChatTemplate(*kind, bos_text, eos_text);
  return Status::Ok();
}

Status ChatTemplate::FromJinja(std::string_view source, std::string_view tool_use_source, std::string_view bos_text,
                               std::string_view eos_text, ChatTemplate* out) {
  // Token texts that are not UTF-8 (byte tokens) cannot be template
  // strings: such a model has no usable bos_token / eos_token.
  ChatTemplate t(Kind::kJinja, utf8::IsValid(bos_text) ? bos_text : "",
                 utf8::IsValid(eos_text) ? eos_text : "");
  jinja::TemplateOptions options;
  options.limits.max_steps = kMaxTemplateSteps;
  std::unique_ptr<jinja::Template> parsed;
  if (Status s = jinja::Template::Parse(source, options, &parsed); !s.ok())
    return Status::InvalidArgument("chat template " + s.message());
  t.jinja_ = std::move(parsed);
  if (!tool_use_source.empty()) {
    if (Status s = jinja::Template::Parse(tool_use_source, options, &parsed); !s.ok())
      return Status::InvalidArgument("tool-use chat template " + s.message());
    t.jinja_tool_use_ = std::move(parsed);
  }
  t.tool_source_ = std::string(tool_use_source.empty() ? source : tool_use_source);
  *out = std::move(t);
  return Status::Ok();
}

std::optional<ChatTemplate> ChatTemplate::Detect(std::string_view jinja, std::string_view bos_text,
                                                 std::string_view eos_text) {
  const std::optional<Kind> kind = DetectKind(jinja);
  if (!kind) return std::nullopt;
  // stablelm-2-zephyr writes its end-of-turn literally instead of eos_token.
  const bool literal_eot = *kind == Kind::kZephyr && jinja.find("<|endoftext|>") != std::string_view::npos;
  return ChatTemplate(*kind, bos_text, literal_eot ? std::string_view("<|endoftext|>") : eos_text);
}

std::vector<std::string> ChatTemplate::Names() {
  std::vector<std::string> names;
  for (const auto& entry : kNames) names.emplace_back(entry.first);
  return names;
}

std::string_view ChatTemplate::name() const {
  if (kind_ == Kind::kJinja) return "jinja";
  for (const auto& [n, k] : kNames)
    if (k == kind_) return n;
  return "plain";
}

Status ChatTemplate::Apply(const ChatConversation& conversation, std::string* out) const {
  if (kind_ == Kind::kJinja) return ApplyJinja(conversation, out);
  std::vector<Turn> turns;
  STRATA_RETURN_IF_ERROR(BuiltinTurns(conversation, name(), &turns));
  *out = ApplyBuiltin(turns);
  if (!conversation.add_generation_prompt) StripGenerationCue(kind_, out);
  return Status::Ok();
}

Status ChatTemplate::ApplyJinja(const ChatConversation& conversation, std::string* out) const {
  const bool has_tools = conversation.tools.is_array() && !conversation.tools.empty();
  const jinja::Template& t = has_tools && jinja_tool_use_ ? *jinja_tool_use_ : *jinja_;
  // transformers' apply_chat_template variables; chat_template_kwargs first
  // so that they cannot replace these.
  nlohmann::ordered_json variables = conversation.variables.is_object() ? conversation.variables
                                                                        : nlohmann::ordered_json::object();
  variables["messages"] = conversation.messages;
  variables["tools"] = conversation.tools;
  variables["documents"] = nullptr;
  variables["add_generation_prompt"] = conversation.add_generation_prompt;
  if (!model_bos_.empty()) variables["bos_token"] = model_bos_;
  if (!model_eos_.empty()) variables["eos_token"] = model_eos_;
  jinja::RenderError error;
  const Status s = t.Render(variables, out, &error);
  if (s.ok()) return s;
  switch (error.kind) {
    case jinja::RenderError::Kind::kRaised:
      return Status::InvalidArgument(fmt::format("{} (raised by the chat template at line {})", error.message,
                                                 error.line));
    case jinja::RenderError::Kind::kLimit:
      return Status::ResourceExhausted("the chat template " + s.message());
    default:
      return Status::InvalidArgument(
          fmt::format("the chat template failed on this conversation at line {}: {}", error.line, error.message));
  }
}

// The system/user/assistant text turns a built-in renderer can write.
Status ChatTemplate::BuiltinTurns(const ChatConversation& conversation, std::string_view name,
                                  std::vector<Turn>* out) {
  if (conversation.tools.is_array() && !conversation.tools.empty())
    return Status::InvalidArgument(fmt::format(
        "the '{}' chat template cannot render tools; serve the model with its Jinja chat template", name));
  for (const auto& m : conversation.messages) {
    const std::string role = m.value("role", "");
    if ((role != "system" && role != "user" && role != "assistant") || m.contains("tool_calls"))
      return Status::InvalidArgument(fmt::format(
          "the '{}' chat template renders only system, user and assistant text; '{}' messages and tool calls need "
          "a Jinja chat template",
          name, role));
    const auto content = m.find("content");
    out->push_back({role, content != m.end() && content->is_string() ? content->get<std::string>() : ""});
  }
  return Status::Ok();
}

std::string ChatTemplate::ApplyBuiltin(const std::vector<Turn>& messages) const {
  std::string out;
  switch (kind_) {
    case Kind::kChatml:
      for (const Turn& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      return out + "<|im_start|>assistant\n";
    case Kind::kLlama2:
    case Kind::kLlama2Sys:
    case Kind::kLlama2SysBos:
    case Kind::kLlama2SysStrip:
      return ApplyLlama2(messages);
    case Kind::kMistralV1:
    case Kind::kMistralV3:
    case Kind::kMistralV3Tekken:
      return ApplyMistral(messages);
    case Kind::kMistralV7:
    case Kind::kMistralV7Tekken: {
      const std::string sp = kind_ == Kind::kMistralV7 ? " " : "";
      for (const Turn& m : messages) {
        if (m.role == "system") {
          out += "[SYSTEM_PROMPT]" + sp + m.content + "[/SYSTEM_PROMPT]";
        } else if (m.role == "user") {
          out += "[INST]" + sp + m.content + "[/INST]";
        } else {
          out += sp + m.content + eos_;
        }
      }
      return out;
    }
    case Kind::kLlama3:
      for (const Turn& m : messages)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + Trim(m.content) + "<|eot_id|>";
      return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
    case Kind::kPhi3:
      for (const Turn& m : messages) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      return out + "<|assistant|>\n";
    case Kind::kZephyr:
      for (const Turn& m : messages) out += "<|" + m.role + "|>\n" + m.content + eos_ + "\n";
      return out + "<|assistant|>\n";
    case Kind::kGemma:
      return ApplyGemma(messages);
    case Kind::kPlain:
    case Kind::kJinja:
      break;
  }
  for (const Turn& m : messages) {
    const char* label = m.role == "system" ? "System" : m.role == "user" ? "User" : "Assistant";
    out += fmt::format("{}: {}\n", label, m.content);
  }
  return out + "Assistant:";
}

// [INST] user [/INST]assistant</s>[INST] ...; the BOS before the first turn
// comes from the tokenizer. A system message opens the first turn, in a
// <<SYS>> block if the variant supports one.
std::string ChatTemplate::ApplyLlama2(const std::vector<Turn>& messages) const {
  const bool sys_block = kind_ != Kind::kLlama2;
  const bool strip = kind_ == Kind::kLlama2SysStrip;
  std::string out = "[INST] ";
  bool inside_turn = true;
  for (const Turn& m : messages) {
    const std::string content = strip ? Trim(m.content) : m.content;
    if (!inside_turn) {
      out += kind_ == Kind::kLlama2SysBos ? bos_ + "[INST] " : "[INST] ";
      inside_turn = true;
    }
    if (m.role == "system") {
      out += sys_block ? "<<SYS>>\n" + content + "\n<</SYS>>\n\n" : content + "\n";
    } else if (m.role == "user") {
      out += content + " [/INST]";
    } else {
      out += content + eos_;
      inside_turn = false;
    }
  }
  return out;
}

// Mistral's v1 / v3 / v3-tekken layouts differ only in spaces around [INST]
// and whether assistant replies are trimmed.
std::string ChatTemplate::ApplyMistral(const std::vector<Turn>& messages) const {
  const std::string lead = kind_ == Kind::kMistralV1 ? " " : "";
  const std::string trail = kind_ == Kind::kMistralV3Tekken ? "" : " ";
  std::string out;
  bool inside_turn = false;
  for (const Turn& m : messages) {
    if (!inside_turn) {
      out += lead + "[INST]" + trail;
      inside_turn = true;
    }
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else if (m.role == "user") {
      out += m.content + lead + "[/INST]";
    } else {
      out += trail + (kind_ == Kind::kMistralV3 ? Trim(m.content) : m.content) + eos_;
      inside_turn = false;
    }
  }
  return out;
}

// Gemma has no system role: a system message is prepended to the next user turn.
std::string ChatTemplate::ApplyGemma(const std::vector<Turn>& messages) const {
  std::string out, system;
  for (const Turn& m : messages) {
    if (m.role == "system") {
      system += Trim(m.content);
      continue;
    }
    const bool model = m.role == "assistant";
    out += std::string("<start_of_turn>") + (model ? "model" : m.role) + "\n";
    if (!system.empty() && !model) {
      out += system + "\n\n";
      system.clear();
    }
    out += Trim(m.content) + "<end_of_turn>\n";
  }
  return out + "<start_of_turn>model\n";
}

}  // namespace strata::server
