// BpeVocab: the "gpt2" tokenizer, byte-level BPE as llama.cpp's
// llm_tokenizer_bpe runs it.
//
// Encoding a fragment: the pre-tokenizer named by tokenizer.ggml.pre cuts it
// into pieces; each piece's bytes map to GPT-2's printable characters (see
// ByteLevelCodec), one symbol per byte; then the adjacent pair with the best
// (lowest) merge rank is merged, leftmost first on ties, until no listed
// merge applies. With ignore_merges a piece that is itself a token is emitted
// whole. Every byte is covered by a token in a sane vocabulary; a byte
// without one becomes unk, or is dropped if there is no unk.
//
// Decoding: normal tokens are unmapped to their bytes; user-defined tokens
// render as their text.
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "vocab/byte_level_codec.h"
#include "vocab/pretokenizer.h"
#include "vocab/vocab_base.h"

namespace strata {

class BpeVocab final : public VocabBase {
 public:
  // REQUIRES: spec passed ValidateVocabSpec; spec.model == "gpt2".
  // Errors: kUnsupported for an unknown spec.pre; kCorrupt for a merge that
  // is not "left right" with left, right and left+right all tokens.
  [[nodiscard]] static Status Create(const VocabSpec& spec, std::unique_ptr<Vocab>* out);

 private:
  struct Merge {
    int32_t rank;
    TokenId result;
  };

  BpeVocab(const VocabSpec& spec, std::unique_ptr<PreTokenizer> pre_tokenizer);
  [[nodiscard]] Status AddMerges(const std::vector<std::string>& merges);
  const Merge* FindMerge(TokenId left, TokenId right) const;
  void EncodeFragment(std::string_view text, bool after_special, std::vector<TokenId>* out) const override;
  // Appends the ids of one pre-tokenized piece.
  void EncodePiece(std::string_view piece, std::vector<TokenId>* out) const;

  ByteLevelCodec codec_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  bool ignore_merges_;
  std::array<TokenId, 256> byte_tokens_;          // token of each byte's character, -1 if none
  std::unordered_map<uint64_t, Merge> merges_;    // key: left << 32 | right
};

}  // namespace strata
