#include "vocab/vocab_compare.h"

#include <fmt/format.h>

namespace strata {
namespace {

// A token's text for a message: quoted, escapes for control bytes, at most 40 bytes.
std::string Quote(const std::string& text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < 40; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    out += c < 0x20 || c == 0x7f ? fmt::format("\\x{:02x}", c) : std::string(1, static_cast<char>(c));
  }
  return out + (text.size() > 40 ? "...'" : "'");
}

}  // namespace

Status CheckSameVocabulary(const Vocab& target, const Vocab& draft) {
  auto differ = [&](const std::string& detail) {
    return Status::InvalidArgument("the draft model's vocabulary differs from the model's: " + detail);
  };
  if (draft.model_name() != target.model_name())
    return differ(fmt::format("tokenizer '{}' vs '{}'", draft.model_name(), target.model_name()));
  if (draft.n_tokens() != target.n_tokens())
    return differ(fmt::format("{} tokens vs {}", draft.n_tokens(), target.n_tokens()));
  for (TokenId id = 0; id < target.n_tokens(); ++id) {
    if (draft.token_text(id) != target.token_text(id))
      return differ(fmt::format("token {} is {} vs {}", id, Quote(draft.token_text(id)), Quote(target.token_text(id))));
    if (draft.token_type(id) != target.token_type(id))
      return differ(fmt::format("token {} ({}) has type {} vs {}", id, Quote(target.token_text(id)),
                                static_cast<int32_t>(draft.token_type(id)), static_cast<int32_t>(target.token_type(id))));
    if (draft.IsEog(id) != target.IsEog(id))
      return differ(fmt::format("token {} ({}) ends generation in {}", id, Quote(target.token_text(id)),
                                draft.IsEog(id) ? "the draft model only" : "the model only"));
  }
  if (draft.bos() != target.bos()) return differ(fmt::format("BOS {} vs {}", draft.bos(), target.bos()));
  if (draft.eos() != target.eos()) return differ(fmt::format("EOS {} vs {}", draft.eos(), target.eos()));
  return Status::Ok();
}

}  // namespace strata
