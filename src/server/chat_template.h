// ChatTemplate: renders a conversation into the prompt text a model was
// tuned on. Two kinds:
//   - Jinja: a GGUF's tokenizer.chat_template (or --chat-template-file),
//     rendered by strata's Jinja interpreter (src/jinja) exactly as
//     transformers' apply_chat_template renders it, with the variables
//     messages, tools (None without tools), documents (None),
//     add_generation_prompt (true), bos_token and eos_token (when the
//     vocabulary has them) and the request's chat_template_kwargs. A model's
//     tool-use variant (tokenizer.chat_template.tool_use) is used when the
//     request has tools.
//   - Built-in renderers by name (--chat-template NAME): chatml, llama2,
//     llama2-sys, llama2-sys-bos, llama2-sys-strip, mistral-v1, mistral-v3,
//     mistral-v3-tekken, mistral-v7, mistral-v7-tekken, llama3, phi3, zephyr,
//     gemma, plain — renderings of llama.cpp's llm_chat_apply_template. They
//     know system/user/assistant text only: tools, tool messages and tool
//     calls need a Jinja template. "plain" is the fallback for models without
//     a template: "System: <s>\nUser: <u>\nAssistant: <a>\n...Assistant:"
//
// The rendering may contain special-token text (BOS included, if the
// template writes it): the prompt builder parses it as special tokens and
// adds the BOS token only if the rendering does not start with it.
//
// Thread-safety: immutable after construction; Apply is const and may run
// concurrently.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace strata::jinja {
class Template;
}

namespace strata::server {

// A conversation in OpenAI's chat format, as a template receives it:
// messages are objects with "role" and "content" (a string, or null for an
// assistant turn that only calls tools) plus whatever else the client sent
// (tool_calls, tool_call_id, name, ...) in the client's key order; tools is
// null or the request's array; variables are extra template variables
// (llama.cpp's chat_template_kwargs, e.g. {"enable_thinking": false}).
struct ChatConversation {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: no tools
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;
};

class ChatTemplate {
 public:
  enum class Kind {
    kPlain, kChatml, kLlama2, kLlama2Sys, kLlama2SysBos, kLlama2SysStrip, kMistralV1, kMistralV3,
    kMistralV3Tekken, kMistralV7, kMistralV7Tekken, kLlama3, kPhi3, kZephyr, kGemma, kJinja,
  };

  // The plain fallback template.
  ChatTemplate() = default;

  // bos_text / eos_text: the model's BOS and EOS token texts (e.g. "<s>",
  // "</s>"); empty if the vocabulary has none. Built-in renderers that write
  // them between turns use "<s>" / "</s>" then.
  //
  // A built-in renderer by name; kInvalidArgument listing the known names if
  // name is unknown.
  [[nodiscard]] static Status FromName(std::string_view name, std::string_view bos_text, std::string_view eos_text,
                                       ChatTemplate* out);
  // A Jinja template (and optionally its tool-use variant, "" if none);
  // kInvalidArgument "chat template line N: ..." if either does not parse.
  [[nodiscard]] static Status FromJinja(std::string_view source, std::string_view tool_use_source,
                                        std::string_view bos_text, std::string_view eos_text, ChatTemplate* out);
  // Recognizes a well-known Jinja template (or a bare template name) as a
  // built-in renderer, as llama.cpp's llm_chat_detect_template does; nullopt
  // if it is none of them. The fallback for templates the interpreter
  // refuses.
  static std::optional<ChatTemplate> Detect(std::string_view jinja, std::string_view bos_text,
                                            std::string_view eos_text);
  // Every name FromName accepts, in a stable order.
  static std::vector<std::string> Names();

  // The prompt text for conversation. kInvalidArgument with a message for
  // the client when the template refuses the conversation (its
  // raise_exception(), an error inside the template at some line, or tools /
  // roles a built-in renderer cannot write); kResourceExhausted if the
  // template exceeds its work or size limits.
  [[nodiscard]] Status Apply(const ChatConversation& conversation, std::string* out) const;

  Kind kind() const { return kind_; }
  // The built-in renderer's name, or "jinja".
  std::string_view name() const;
  // The Jinja source a conversation with tools renders with (the tool-use
  // variant if there is one); "" for built-in renderers.
  const std::string& tool_source() const { return tool_source_; }

 private:
  ChatTemplate(Kind kind, std::string_view bos_text, std::string_view eos_text);

  struct Turn {
    std::string role, content;
  };
  [[nodiscard]] Status ApplyJinja(const ChatConversation& conversation, std::string* out) const;
  [[nodiscard]] static Status BuiltinTurns(const ChatConversation& conversation, std::string_view name,
                                           std::vector<Turn>* out);
  std::string ApplyBuiltin(const std::vector<Turn>& turns) const;
  std::string ApplyLlama2(const std::vector<Turn>& turns) const;
  std::string ApplyMistral(const std::vector<Turn>& turns) const;
  std::string ApplyGemma(const std::vector<Turn>& turns) const;

  Kind kind_ = Kind::kPlain;
  std::string bos_ = "<s>";  // built-ins' defaults when the model has none
  std::string eos_ = "</s>";
  std::string model_bos_, model_eos_;  // for Jinja: "" if the vocabulary has none
  std::shared_ptr<const jinja::Template> jinja_, jinja_tool_use_;
  std::string tool_source_;
};

}  // namespace strata::server
