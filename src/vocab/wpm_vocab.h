// WpmVocab: the "bert" tokenizer, WordPiece as HF tokenizers' BertNormalizer,
// BertPreTokenizer and WordPiece model run it (llama.cpp's llm_tokenizer_wpm
// approximates the same).
//
// Encoding a fragment:
//  1. normalize: drop invalid UTF-8, U+FFFD and control/format/unassigned
//     characters (\p{C}, except \t \n \r); when lowercasing (the "uncased"
//     models), decompose (NFD), drop non-spacing marks (\p{Mn}) and
//     lower-case;
//  2. split into words at whitespace, and make every punctuation character
//     (\p{P} and ASCII symbols) and CJK ideograph a word of its own;
//  3. spell each word greedily with the longest vocabulary entries: the first
//     piece is looked up with the word-start mark '▁' (the GGUF form of a
//     piece without "##"), later pieces as they are. A word that cannot be
//     spelled, or has over 100 characters, becomes unk.
// With add_special the text is framed as [CLS] ... [SEP] (bos and sep).
//
// Decoding: '▁' renders as ' ' (the leading one is stripped, as for
// SentencePiece: add_space_prefix is set); lower-casing is not undone.
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "vocab/regex.h"
#include "vocab/vocab_base.h"

namespace strata {

class WpmVocab final : public VocabBase {
 public:
  // REQUIRES: spec passed ValidateVocabSpec; spec.model == "bert".
  [[nodiscard]] static Status Create(const VocabSpec& spec, std::unique_ptr<Vocab>* out);

 private:
  struct Patterns {
    std::unique_ptr<Regex> control;  // characters BertNormalizer removes
    std::unique_ptr<Regex> mark;     // non-spacing marks, removed after NFD
    std::unique_ptr<Regex> word;     // one word of the pre-tokenizer
  };

  WpmVocab(const VocabSpec& spec, Patterns patterns);
  void EncodeFragment(std::string_view text, bool after_special, std::vector<TokenId>* out) const override;
  std::string Normalize(std::string_view text) const;
  // Appends the WordPiece ids of one word (or unk).
  void EncodeWord(std::string_view word, std::vector<TokenId>* out) const;

  Patterns patterns_;
  bool lowercase_;
  size_t max_token_bytes_ = 0;
};

}  // namespace strata
