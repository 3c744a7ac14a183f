#include "core/utf8.h"
#include "vocab/vocab.h"

namespace strata {

std::string StreamDecoder::Push(TokenId id, TokenId prev) {
  pending_ += vocab_.DecodePiece(id, prev);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const utf8::Decoded d = utf8::DecodeFront(std::string_view(pending_).substr(pos));
    if (d.kind == utf8::Decoded::Kind::kIncomplete) break;  // wait for the next token's bytes
    if (d.kind == utf8::Decoded::Kind::kValid) {
      out.append(pending_, pos, d.length);
    } else {
      out.append(utf8::kReplacement);
    }
    pos += d.length;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out = pending_.empty() ? "" : std::string(utf8::kReplacement);
  pending_.clear();
  return out;
}

}  // namespace strata
