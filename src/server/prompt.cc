#include "server/prompt.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

// The chat template's rendering, special-token text parsed as special
// tokens; BOS first if the vocabulary adds one and the rendering does not
// already start with its text.
Status ChatTokens(const ChatConversation& chat, const Vocab& vocab, const ChatTemplate& chat_template,
                  std::vector<int32_t>* out) {
  std::string text;
  STRATA_RETURN_IF_ERROR(chat_template.Apply(chat, &text));
  out->clear();
  const TokenId bos = vocab.bos();
  const bool starts_with_bos = bos >= 0 && !vocab.token_text(bos).empty() && text.starts_with(vocab.token_text(bos));
  if (vocab.add_bos() && bos >= 0 && !starts_with_bos) out->push_back(bos);
  const std::vector<TokenId> body = vocab.Encode(text, /*add_special=*/false, /*parse_special=*/true);
  out->insert(out->end(), body.begin(), body.end());
  return Status::Ok();
}

}  // namespace

Status BuildPrompt(const ApiRequest& request, size_t prompt_index, const Vocab& vocab,
                   const ChatTemplate& chat_template, std::vector<int32_t>* out) {
  if (request.endpoint == Endpoint::kChat) {
    STRATA_RETURN_IF_ERROR(ChatTokens(request.chat, vocab, chat_template, out));
  } else if (const PromptInput& prompt = request.prompts.at(prompt_index); prompt.is_ids) {
    for (int32_t id : prompt.ids)
      if (id >= vocab.n_tokens())
        return Status::InvalidArgument(
            fmt::format("token id {} in 'prompt' is outside the vocabulary (size {})", id, vocab.n_tokens()));
    *out = prompt.ids;
  } else {
    *out = vocab.Encode(prompt.text, /*add_special=*/true, /*parse_special=*/false);
  }
  if (out->empty()) return Status::InvalidArgument("the prompt is empty (and the model adds no BOS token)");
  return Status::Ok();
}

}  // namespace strata::server
