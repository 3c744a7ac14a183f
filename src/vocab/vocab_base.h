// VocabBase: what every tokenizer model shares: the token table, special ids
// and flags, the end-of-generation set, splitting text around special tokens
// before encoding, and rendering ids as pieces. Subclasses encode one raw
// text fragment and say how each token renders.
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vocab/special_token_splitter.h"
#include "vocab/vocab.h"
#include "vocab/vocab_spec.h"

namespace strata {

class VocabBase : public Vocab {
 public:
  std::vector<TokenId> Encode(std::string_view text, bool add_special, bool parse_special) const final;
  std::string TokenToPiece(TokenId id, bool render_special = false) const final;

  int32_t n_tokens() const final { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token_text(TokenId id) const final;
  TokenType token_type(TokenId id) const final;
  TokenId bos() const final { return bos_; }
  TokenId eos() const final { return eos_; }
  bool add_bos() const final { return add_bos_; }
  bool add_eos() const final { return add_eos_; }
  bool add_space_prefix() const final { return add_space_prefix_; }
  bool IsEog(TokenId id) const final;
  const std::string& model_name() const final { return model_; }
  const std::string& pre_name() const final { return pre_; }

 protected:
  // REQUIRES: spec passed ValidateVocabSpec.
  explicit VocabBase(const VocabSpec& spec);

  // Appends the ids of one raw text fragment (never empty). after_special:
  // the fragment starts the text or directly follows a special token.
  virtual void EncodeFragment(std::string_view text, bool after_special, std::vector<TokenId>* out) const = 0;

  // Id of the token whose text is exactly text, any type; -1 if none.
  TokenId Find(std::string_view text) const;
  float score(TokenId id) const { return scores_.empty() ? 0.0f : scores_[id]; }
  TokenId unk() const { return unk_; }

  // What each token renders as in running text when it is not a control or
  // unknown token. Subclass constructors fill it, one entry per token.
  std::vector<std::string> pieces_;

 private:
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // llama.cpp marks tokens by text: end-of-generation texts (e.g.
  // "<|im_end|>") end generation and become control tokens.
  void ApplyTextQuirks();
  // Splitter over the control, user-defined and unknown tokens; general_name
  // selects llama.cpp's per-model strip rules.
  SpecialTokenSplitter MakeSplitter(const std::string& general_name) const;

  std::string model_;
  std::string pre_;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string, TokenId, TextHash, std::equal_to<>> ids_;
  std::vector<bool> eog_;
  TokenId bos_, eos_, unk_, sep_;
  bool add_bos_, add_eos_, add_sep_, add_space_prefix_;
  SpecialTokenSplitter splitter_;
  std::string no_text_;  // token_text of an out-of-range id
};

}  // namespace strata
