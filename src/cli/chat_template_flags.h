// --chat-template NAME and --chat-template-file FILE, as serve and chat take
// them, and the chat template they pick for a model.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "server/chat_template.h"
#include "vocab/vocab.h"

namespace strata::cli {

struct ChatTemplateFlags {
  std::string name;  // a built-in renderer's name; empty: the model's template
  std::string file;  // a Jinja template file; empty: the model's template
};
void AddChatTemplateFlags(CLI::App* cmd, ChatTemplateFlags* flags);

// --chat-template NAME, else --chat-template-file FILE, else the model's
// Jinja template (tokenizer.chat_template and its tool-use variant), else (a
// template the interpreter refuses) the built-in renderer it is recognized
// as, else "plain". A refused template is a warning on stderr prefixed with
// `who` ("strata serve"). Fails (cli::Fail) on a bad name or file.
server::ChatTemplate PickChatTemplate(const ChatTemplateFlags& flags, const std::string& model_path,
                                      const Vocab& vocab, const std::string& who);

}  // namespace strata::cli
