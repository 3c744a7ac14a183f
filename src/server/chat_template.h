// ChatTemplate: renders chat messages into the prompt text a model was tuned
// on. GGUF files carry the template as Jinja (tokenizer.chat_template); strata
// has no Jinja engine, so it recognizes the well-known templates by their
// characteristic substrings (as llama.cpp's llm_chat_detect_template does) and
// renders each natively. Renderings match llama.cpp's llm_chat_apply_template.
//
// Names (for --chat-template): chatml, llama2, llama2-sys, llama2-sys-bos,
// llama2-sys-strip, mistral-v1, mistral-v3, mistral-v3-tekken, mistral-v7,
// mistral-v7-tekken, llama3, phi3, zephyr, gemma, plain. "plain" is the
// fallback for models without a (recognized) template:
//   "System: <s>\nUser: <u>\nAssistant: <a>\n...Assistant:"
//
// The rendering never contains the BOS token at its start: the tokenizer adds
// it (see prompt.h). Messages are rendered in order; roles are "system",
// "user" and "assistant" (validated by the request parser).
//
// Thread-safety: immutable after construction; Apply is const and reentrant.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata::server {

struct ChatMessage {
  std::string role;     // "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  enum class Kind {
    kPlain, kChatml, kLlama2, kLlama2Sys, kLlama2SysBos, kLlama2SysStrip, kMistralV1, kMistralV3,
    kMistralV3Tekken, kMistralV7, kMistralV7Tekken, kLlama3, kPhi3, kZephyr, kGemma,
  };

  // The plain fallback template.
  ChatTemplate() = default;

  // bos_text / eos_text: the model's BOS and EOS token texts (e.g. "<s>",
  // "</s>"), used where a template writes them between turns; empty means
  // "<s>" / "</s>".
  // By name; kInvalidArgument listing the known names if name is unknown.
  [[nodiscard]] static Status FromName(std::string_view name, std::string_view bos_text, std::string_view eos_text,
                                       ChatTemplate* out);
  // Recognizes a GGUF Jinja template (or a bare template name); nullopt if it
  // is none of the known ones.
  static std::optional<ChatTemplate> Detect(std::string_view jinja, std::string_view bos_text,
                                            std::string_view eos_text);
  // Every name FromName accepts, in a stable order.
  static std::vector<std::string> Names();

  // The prompt for messages, ending with the cue for the assistant's reply.
  std::string Apply(const std::vector<ChatMessage>& messages) const;

  Kind kind() const { return kind_; }
  std::string_view name() const;

 private:
  ChatTemplate(Kind kind, std::string_view bos_text, std::string_view eos_text);

  std::string ApplyLlama2(const std::vector<ChatMessage>& messages) const;
  std::string ApplyMistral(const std::vector<ChatMessage>& messages) const;
  std::string ApplyGemma(const std::vector<ChatMessage>& messages) const;

  Kind kind_ = Kind::kPlain;
  std::string bos_ = "<s>";
  std::string eos_ = "</s>";
};

}  // namespace strata::server
