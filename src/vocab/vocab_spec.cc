#include "vocab/vocab_spec.h"

#include <cmath>
#include <limits>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "vocab/bpe_vocab.h"
#include "vocab/byte_token.h"
#include "vocab/spm_vocab.h"
#include "vocab/wpm_vocab.h"

namespace strata {

namespace {

Status CheckSpecialId(const char* name, TokenId id, size_t n) {
  if (id == -1 || (id >= 0 && static_cast<size_t>(id) < n)) return Status::Ok();
  return Status::Corrupt(std::string(name) + " token id " + std::to_string(id) + " is outside the vocabulary of " +
                         std::to_string(n) + " tokens");
}

Status CheckAddFlag(const char* flag, bool set, const char* name, TokenId id) {
  if (!set || id >= 0) return Status::Ok();
  return Status::Corrupt(std::string(flag) + " is set but the vocabulary has no " + name + " token");
}

Status CheckTokens(const VocabSpec& spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return Status::Corrupt("the vocabulary has no tokens");
  if (n > static_cast<size_t>(std::numeric_limits<TokenId>::max())) {
    return Status::Corrupt("the vocabulary has " + std::to_string(n) + " tokens, more than token ids can address");
  }
  if (!spec.scores.empty() && spec.scores.size() != n) {
    return Status::Corrupt(std::to_string(spec.scores.size()) + " token scores for " + std::to_string(n) + " tokens");
  }
  if (!spec.types.empty() && spec.types.size() != n) {
    return Status::Corrupt(std::to_string(spec.types.size()) + " token types for " + std::to_string(n) + " tokens");
  }
  std::unordered_set<std::string_view> seen;
  seen.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = spec.tokens[i];
    if (!t.empty() && !seen.insert(t).second) {
      return Status::Corrupt("token " + std::to_string(i) + " '" + t + "' appears twice in the vocabulary");
    }
    if (!spec.scores.empty() && std::isnan(spec.scores[i])) {
      return Status::Corrupt("token " + std::to_string(i) + " has a NaN score");
    }
    if (spec.model == "llama" && !spec.types.empty() && spec.types[i] == TokenType::kByte && !ParseByteToken(t)) {
      return Status::Corrupt("byte token " + std::to_string(i) + " '" + t + "' is not of the form <0xXX>");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateVocabSpec(const VocabSpec& spec) {
  STRATA_RETURN_IF_ERROR(CheckTokens(spec));
  const size_t n = spec.tokens.size();
  const std::pair<const char*, TokenId> specials[] = {{"BOS", spec.bos}, {"EOS", spec.eos}, {"UNK", spec.unk},
                                                      {"EOT", spec.eot}, {"EOM", spec.eom}, {"PAD", spec.pad},
                                                      {"SEP", spec.sep}};
  for (const auto& [name, id] : specials) STRATA_RETURN_IF_ERROR(CheckSpecialId(name, id, n));
  STRATA_RETURN_IF_ERROR(CheckAddFlag("add_bos_token", spec.add_bos, "BOS", spec.bos));
  STRATA_RETURN_IF_ERROR(CheckAddFlag("add_eos_token", spec.add_eos, "EOS", spec.eos));
  STRATA_RETURN_IF_ERROR(CheckAddFlag("add_sep_token", spec.add_sep, "SEP", spec.sep));
  return Status::Ok();
}

Status MakeVocab(const VocabSpec& spec, std::unique_ptr<Vocab>* out) {
  STRATA_RETURN_IF_ERROR(ValidateVocabSpec(spec));
  if (spec.model == "llama") {
    *out = std::make_unique<SpmVocab>(spec);
    return Status::Ok();
  }
  if (spec.model == "gpt2") return BpeVocab::Create(spec, out);
  if (spec.model == "bert") return WpmVocab::Create(spec, out);
  return Status::Unsupported("tokenizer model '" + spec.model + "' is not supported (supported: llama, gpt2, bert)");
}

}  // namespace strata
