// SpmVocab: the "llama" tokenizer, SentencePiece BPE as llama.cpp's
// llm_tokenizer_spm runs it.
//
// Encoding a fragment: spaces become '▁' (U+2581), a '▁' is prefixed when
// add_space_prefix and the fragment starts the text or follows a special
// token; the text is cut into UTF-8 characters (each byte that does not
// start a valid character is a symbol of its own; for valid UTF-8 this is
// exactly llama.cpp's cut); then the adjacent pair whose concatenation is the
// highest-scoring normal or user-defined token is merged, leftmost first on
// ties, until no pair forms a token. A symbol left that is no such token is
// spelled with byte tokens <0xXX>, or becomes unk if the vocabulary lacks one
// of those byte tokens.
//
// Decoding: '▁' renders as ' ', byte tokens as their byte, user-defined
// tokens as their text.
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "vocab/vocab_base.h"

namespace strata {

class SpmVocab final : public VocabBase {
 public:
  // REQUIRES: spec passed ValidateVocabSpec; spec.model == "llama".
  explicit SpmVocab(const VocabSpec& spec);

 private:
  void EncodeFragment(std::string_view text, bool after_special, std::vector<TokenId>* out) const override;
  // Id of the normal or user-defined token spelled text; -1 if none.
  TokenId Mergeable(std::string_view text) const;
  // Appends the ids for a final symbol.
  void AppendSymbol(std::string_view symbol, std::vector<TokenId>* out) const;

  std::array<TokenId, 256> byte_tokens_;  // <0xXX> token of each byte, -1 if missing
};

}  // namespace strata
