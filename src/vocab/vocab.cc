#include "vocab/vocab.h"

namespace strata {

std::string Vocab::DecodePiece(TokenId id, TokenId prev) const {
  std::string piece = TokenToPiece(id);
  if (add_space_prefix() && (prev < 0 || prev == bos()) && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
  return piece;
}

std::string Vocab::Decode(const std::vector<TokenId>& ids) const {
  std::string text;
  TokenId prev = -1;
  for (TokenId id : ids) {
    text += DecodePiece(id, prev);
    prev = id;
  }
  return text;
}

}  // namespace strata
