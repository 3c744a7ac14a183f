#include "grammar/vocab_gbnf_options.h"

namespace strata::grammar {

GbnfOptions VocabGbnfOptions(const Vocab& vocab) {
  GbnfOptions o;
  o.n_vocab = vocab.n_tokens();
  o.token_of_text = [&vocab](std::string_view text) -> std::optional<int32_t> {
    const std::vector<TokenId> ids = vocab.Encode(text, /*add_special=*/false, /*parse_special=*/true);
    if (ids.size() != 1) return std::nullopt;
    return ids[0];
  };
  return o;
}

}  // namespace strata::grammar
