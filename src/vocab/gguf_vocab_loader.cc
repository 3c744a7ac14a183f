// Vocab::FromGguf: reads the tokenizer.ggml.* metadata into a VocabSpec with
// llama.cpp's defaults for whatever the file leaves out.
#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "format/gguf.h"
#include "vocab/bpe_presets.h"
#include "vocab/vocab.h"
#include "vocab/vocab_spec.h"

namespace strata {

namespace {

// Sentinel some converters write for "no such token" (uint32 -1).
constexpr int64_t kNoTokenU32 = 0xFFFFFFFF;

Status WrongType(std::string_view key, const char* expected) {
  return Status::Corrupt("metadata key '" + std::string(key) + "' is not " + expected);
}

Status ReadString(const gguf::GgufFile& f, std::string_view key, std::string* out) {
  if (f.Find(key) == nullptr) return Status::Ok();
  std::optional<std::string> v = f.GetString(key);
  if (!v) return WrongType(key, "a string");
  *out = std::move(*v);
  return Status::Ok();
}

Status ReadBool(const gguf::GgufFile& f, std::string_view key, bool* out) {
  if (f.Find(key) == nullptr) return Status::Ok();
  std::optional<bool> v = f.GetBool(key);
  if (!v) return WrongType(key, "a bool");
  *out = *v;
  return Status::Ok();
}

Status ReadTokenId(const gguf::GgufFile& f, std::string_view key, TokenId* out) {
  if (f.Find(key) == nullptr) return Status::Ok();
  std::optional<int64_t> v = f.GetInt(key);
  if (!v) return WrongType(key, "an integer");
  if (*v == -1 || *v == kNoTokenU32) {
    *out = -1;
  } else if (*v < 0 || *v > std::numeric_limits<TokenId>::max()) {
    return Status::Corrupt("metadata key '" + std::string(key) + "' holds " + std::to_string(*v) +
                           ", which is not a token id");
  } else {
    *out = static_cast<TokenId>(*v);
  }
  return Status::Ok();
}

Status ReadTokenTable(const gguf::GgufFile& f, VocabSpec* spec) {
  constexpr std::string_view kTokens = "tokenizer.ggml.tokens";
  constexpr std::string_view kScores = "tokenizer.ggml.scores";
  constexpr std::string_view kTypes = "tokenizer.ggml.token_type";
  if (f.Find(kTokens) == nullptr) return Status::Corrupt("the vocabulary (tokenizer.ggml.tokens) is missing");
  std::optional<std::vector<std::string>> tokens = f.GetStringArray(kTokens);
  if (!tokens) return WrongType(kTokens, "an array of strings");
  spec->tokens = std::move(*tokens);
  if (f.Find(kScores) != nullptr) {
    std::optional<std::vector<float>> scores = f.GetFloatArray(kScores);
    if (!scores) return WrongType(kScores, "an array of numbers");
    spec->scores = std::move(*scores);
  }
  if (f.Find(kTypes) != nullptr) {
    std::optional<std::vector<int64_t>> types = f.GetIntArray(kTypes);
    if (!types) return WrongType(kTypes, "an array of integers");
    spec->types.reserve(types->size());
    for (size_t i = 0; i < types->size(); ++i) {
      const int64_t t = (*types)[i];
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        return Status::Corrupt("token " + std::to_string(i) + " has unknown token type " + std::to_string(t));
      }
      spec->types.push_back(static_cast<TokenType>(t));
    }
  }
  return Status::Ok();
}

// Per-model defaults (llama.cpp's, overridden by ReadSpecials) and data.
Status ReadModelSpecifics(const gguf::GgufFile& f, VocabSpec* spec) {
  if (spec->model == "llama") {
    const auto n = static_cast<TokenId>(std::min<size_t>(spec->tokens.size(), std::numeric_limits<TokenId>::max()));
    spec->unk = n > 0 ? 0 : -1;
    spec->bos = n > 1 ? 1 : -1;
    spec->eos = n > 2 ? 2 : -1;
    spec->add_bos = true;
    spec->add_space_prefix = true;
    return ReadBool(f, "tokenizer.ggml.add_space_prefix", &spec->add_space_prefix);
  }
  if (spec->model == "gpt2") {
    constexpr std::string_view kMerges = "tokenizer.ggml.merges";
    BpePreset preset;
    STRATA_RETURN_IF_ERROR(LookupBpePreset(spec->pre, &preset));
    spec->add_bos = preset.add_bos;
    spec->ignore_merges = preset.ignore_merges;
    if (f.Find(kMerges) == nullptr) return Status::Corrupt("a gpt2 vocabulary needs tokenizer.ggml.merges");
    std::optional<std::vector<std::string>> merges = f.GetStringArray(kMerges);
    if (!merges) return WrongType(kMerges, "an array of strings");
    spec->merges = std::move(*merges);
    return Status::Ok();
  }
  if (spec->model == "bert") {
    const auto n = spec->tokens.size();
    spec->unk = n > 100 ? 100 : -1;
    spec->bos = n > 101 ? 101 : -1;  // [CLS]
    spec->sep = n > 102 ? 102 : -1;  // [SEP]
    spec->pad = n > 0 ? 0 : -1;
    spec->add_bos = spec->bos >= 0;
    spec->add_sep = spec->sep >= 0;
    spec->add_space_prefix = true;  // pieces mark word starts with '▁'; Decode strips the first
    spec->lowercase = true;         // BertNormalizer's lowercase + strip_accents
    return ReadTokenId(f, "tokenizer.ggml.cls_token_id", &spec->bos);
  }
  return Status::Unsupported("tokenizer model '" + spec->model + "' is not supported (supported: llama, gpt2, bert)");
}

Status ReadSpecials(const gguf::GgufFile& f, VocabSpec* spec) {
  const std::pair<std::string_view, TokenId*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &spec->bos},     {"tokenizer.ggml.eos_token_id", &spec->eos},
      {"tokenizer.ggml.unknown_token_id", &spec->unk}, {"tokenizer.ggml.eot_token_id", &spec->eot},
      {"tokenizer.ggml.eom_token_id", &spec->eom},     {"tokenizer.ggml.padding_token_id", &spec->pad},
      {"tokenizer.ggml.seperator_token_id", &spec->sep},
  };
  for (const auto& [key, id] : ids) STRATA_RETURN_IF_ERROR(ReadTokenId(f, key, id));
  STRATA_RETURN_IF_ERROR(ReadBool(f, "tokenizer.ggml.add_bos_token", &spec->add_bos));
  STRATA_RETURN_IF_ERROR(ReadBool(f, "tokenizer.ggml.add_eos_token", &spec->add_eos));
  return Status::Ok();
}

}  // namespace

Status Vocab::FromGguf(const gguf::GgufFile& file, std::unique_ptr<Vocab>* out) {
  VocabSpec spec;
  constexpr std::string_view kModel = "tokenizer.ggml.model";
  if (file.Find(kModel) == nullptr) return Status::NotFound("the file has no tokenizer (tokenizer.ggml.model)");
  STRATA_RETURN_IF_ERROR(ReadString(file, kModel, &spec.model));
  STRATA_RETURN_IF_ERROR(ReadString(file, "tokenizer.ggml.pre", &spec.pre));
  STRATA_RETURN_IF_ERROR(ReadString(file, "general.name", &spec.general_name));
  STRATA_RETURN_IF_ERROR(ReadTokenTable(file, &spec));
  STRATA_RETURN_IF_ERROR(ReadModelSpecifics(file, &spec));
  STRATA_RETURN_IF_ERROR(ReadSpecials(file, &spec));
  return MakeVocab(spec, out);
}

}  // namespace strata
