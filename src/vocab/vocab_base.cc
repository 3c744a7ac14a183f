#include "vocab/vocab_base.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

namespace strata {

namespace {

// Texts llama.cpp treats as ending generation whatever their declared type.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
    "<|end_of_text|>", "<end_of_utterance>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
};

bool IsOneOf(std::string_view s, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

}  // namespace

VocabBase::VocabBase(const VocabSpec& spec)
    : model_(spec.model),
      pre_(spec.pre.empty() ? "default" : spec.pre),
      tokens_(spec.tokens),
      scores_(spec.scores),
      types_(spec.types),
      eog_(spec.tokens.size(), false),
      bos_(spec.bos),
      eos_(spec.eos),
      unk_(spec.unk),
      sep_(spec.sep),
      add_bos_(spec.add_bos),
      add_eos_(spec.add_eos),
      add_sep_(spec.add_sep),
      add_space_prefix_(spec.add_space_prefix),
      splitter_({}) {
  if (types_.empty()) types_.assign(tokens_.size(), TokenType::kNormal);
  ids_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (!tokens_[i].empty()) ids_.emplace(tokens_[i], static_cast<TokenId>(i));
  }
  for (TokenId id : {spec.eos, spec.eot, spec.eom}) {
    if (id >= 0) eog_[id] = true;
  }
  ApplyTextQuirks();
  splitter_ = MakeSplitter(spec.general_name);
}

void VocabBase::ApplyTextQuirks() {
  for (std::string_view text : kEogTexts) {
    const TokenId id = Find(text);
    if (id < 0) continue;
    eog_[id] = true;
    TokenType& t = types_[id];
    if (t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUndefined) t = TokenType::kControl;
  }
}

SpecialTokenSplitter VocabBase::MakeSplitter(const std::string& general_name) const {
  std::string name = general_name;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool phi3 = name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;
  std::vector<SpecialTokenSplitter::Entry> entries;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const TokenType t = types_[i];
    if (tokens_[i].empty()) continue;
    if (t != TokenType::kControl && t != TokenType::kUserDefined && t != TokenType::kUnknown) continue;
    SpecialTokenSplitter::Entry e;
    e.id = static_cast<TokenId>(i);
    e.text = tokens_[i];
    e.always = t == TokenType::kUserDefined;
    // Phi-3's added tokens swallow the whitespace after them (llama.cpp sets
    // RSTRIP on them by model name), except the three SentencePiece ones.
    e.rstrip = phi3 && !IsOneOf(e.text, {"<unk>", "<s>", "<|endoftext|>"});
    entries.push_back(std::move(e));
  }
  return SpecialTokenSplitter(std::move(entries));
}

std::vector<TokenId> VocabBase::Encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<TokenId> out;
  if (add_special && add_bos_) out.push_back(bos_);
  std::vector<SpecialTokenSplitter::Fragment> fragments;
  splitter_.Split(text, parse_special, &fragments);
  bool after_special = true;
  for (const auto& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      EncodeFragment(f.text, after_special, &out);
      after_special = false;
    }
  }
  if (add_special && add_eos_) out.push_back(eos_);
  if (add_special && add_sep_) out.push_back(sep_);
  return out;
}

std::string VocabBase::TokenToPiece(TokenId id, bool render_special) const {
  if (id < 0 || id >= n_tokens()) return "";
  const TokenType t = types_[id];
  if (t == TokenType::kControl || t == TokenType::kUnknown) return render_special ? tokens_[id] : "";
  return pieces_[id];
}

const std::string& VocabBase::token_text(TokenId id) const {
  return id >= 0 && id < n_tokens() ? tokens_[id] : no_text_;
}

TokenType VocabBase::token_type(TokenId id) const {
  return id >= 0 && id < n_tokens() ? types_[id] : TokenType::kUndefined;
}

bool VocabBase::IsEog(TokenId id) const { return id >= 0 && id < n_tokens() && eog_[id]; }

TokenId VocabBase::Find(std::string_view text) const {
  const auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

}  // namespace strata
