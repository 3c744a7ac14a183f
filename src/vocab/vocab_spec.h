// VocabSpec: everything a tokenizer is built from, independent of the file it
// came from (GGUF metadata or a llama2.c tokenizer.bin). Loaders fill one,
// MakeVocab validates it and builds the Vocab for its model.
//
// Thread-safety: a plain value.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "vocab/vocab.h"

namespace strata {

struct VocabSpec {
  std::string model;         // "llama", "gpt2" or "bert"
  std::string pre;           // tokenizer.ggml.pre; "" if absent
  std::string general_name;  // general.name; selects llama.cpp's per-model quirks
  std::vector<std::string> tokens;
  std::vector<float> scores;     // empty (all 0) or one per token
  std::vector<TokenType> types;  // empty (all kNormal) or one per token
  std::vector<std::string> merges;  // "gpt2" only: "left right", best first

  // -1 = none. unk is the fallback for text no token or byte token covers.
  TokenId bos = -1, eos = -1, unk = -1, eot = -1, eom = -1, pad = -1, sep = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_sep = false;           // append sep after the text ("bert")
  bool add_space_prefix = false;  // "llama": prefix text with '▁'
  bool ignore_merges = false;     // "gpt2": see BpePreset
  bool lowercase = false;         // "bert": lower-case and strip accents (uncased models)
};

// Checks spec as MakeVocab does (see below) without building anything.
[[nodiscard]] Status ValidateVocabSpec(const VocabSpec& spec);

// Checks spec (one score/type per token, no duplicate token text, no NaN
// score, well-formed <0xXX> byte tokens for "llama", special ids in range,
// add_* flags backed by their token; empty token texts are allowed and never
// produced by Encode) and builds the tokenizer for spec.model. Errors:
// kCorrupt describing the first problem (including a "gpt2" merge that does
// not name tokens), kUnsupported naming an unknown model or pre-tokenizer.
[[nodiscard]] Status MakeVocab(const VocabSpec& spec, std::unique_ptr<Vocab>* out);

}  // namespace strata
