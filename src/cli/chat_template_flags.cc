#include "cli/chat_template_flags.h"

#include <cstdio>
#include <memory>
#include <optional>

#include "cli/cli_util.h"
#include "core/env.h"
#include "format/gguf.h"

namespace strata::cli {
namespace {

// The chat templates a GGUF model carries: tokenizer.chat_template and its
// tool-use variant tokenizer.chat_template.tool_use ("" for other formats or
// none). (Model does not expose its metadata yet, so the file is mapped once
// more.)
struct ModelChatTemplates {
  std::string main, tool_use;
};

ModelChatTemplates GgufChatTemplates(const std::string& path) {
  std::unique_ptr<RandomAccessFile> f;
  uint32_t magic = 0;
  if (!Env::Default()->NewRandomAccessFile(path, &f).ok() || !f->Read(0, 4, &magic).ok() || magic != gguf::kMagic)
    return {};
  std::unique_ptr<gguf::GgufFile> file;
  CheckOk("cannot read " + path, gguf::GgufFile::Open(Env::Default(), path, &file));
  return {file->GetString("tokenizer.chat_template").value_or(""),
          file->GetString("tokenizer.chat_template.tool_use").value_or("")};
}

// Largest --chat-template-file accepted (real templates are under 64 KiB).
constexpr uint64_t kMaxChatTemplateFileBytes = 1 << 20;

}  // namespace

void AddChatTemplateFlags(CLI::App* cmd, ChatTemplateFlags* flags) {
  std::string names;
  for (const std::string& n : server::ChatTemplate::Names()) names += (names.empty() ? "" : ", ") + n;
  CLI::Option* by_name = cmd->add_option(
      "--chat-template", flags->name,
      "Built-in chat template instead of the model's Jinja template (default: the model's, else 'plain'); one of " +
          names);
  cmd->add_option("--chat-template-file", flags->file,
                  "Jinja chat template file to use instead of the model's (as transformers renders it)")
      ->excludes(by_name);
}

server::ChatTemplate PickChatTemplate(const ChatTemplateFlags& flags, const std::string& model_path,
                                      const Vocab& vocab, const std::string& who) {
  const std::string bos = vocab.bos() >= 0 ? vocab.token_text(vocab.bos()) : "";
  const std::string eos = vocab.eos() >= 0 ? vocab.token_text(vocab.eos()) : "";
  server::ChatTemplate t;
  if (!flags.name.empty()) {
    CheckOk("--chat-template", server::ChatTemplate::FromName(flags.name, bos, eos, &t));
    return t;
  }
  if (!flags.file.empty()) {
    std::string source;
    CheckOk("--chat-template-file", ReadSmallFile(flags.file, kMaxChatTemplateFileBytes, &source));
    CheckOk("--chat-template-file " + flags.file, server::ChatTemplate::FromJinja(source, "", bos, eos, &t));
    return t;
  }
  const ModelChatTemplates jinja = GgufChatTemplates(model_path);
  if (jinja.main.empty()) return t;
  const Status parsed = server::ChatTemplate::FromJinja(jinja.main, jinja.tool_use, bos, eos, &t);
  if (parsed.ok()) return t;
  std::optional<server::ChatTemplate> detected = server::ChatTemplate::Detect(jinja.main, bos, eos);
  std::fprintf(stderr, "%s: warning: the model's chat template cannot be used (%s); using '%s' "
               "(pick one with --chat-template or --chat-template-file)\n",
               who.c_str(), parsed.message().c_str(), detected ? std::string(detected->name()).c_str() : "plain");
  return detected ? *detected : t;
}

}  // namespace strata::cli
