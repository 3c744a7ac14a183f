// BpePreset: what tokenizer.ggml.pre selects for a byte-level BPE ("gpt2")
// vocabulary: the pre-tokenizer regexes and the per-family flags, as
// llama.cpp's llm_tokenizer_bpe and llama_vocab::load define them.
//
// Thread-safety: pure function; safe to call concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata {

struct BpePreset {
  // Applied in sequence (see PreTokenizer).
  std::vector<std::string> regexes;
  // A pre-token that is itself a vocabulary entry is emitted whole, without
  // running merges (llama 3 and relatives).
  bool ignore_merges = false;
  // Default for tokenizer.ggml.add_bos_token when the file does not say.
  bool add_bos = false;
};

// Looks up pre (the value of tokenizer.ggml.pre; "" or "default" when the key
// is missing). kUnsupported naming pre if it is not one we implement.
[[nodiscard]] Status LookupBpePreset(std::string_view pre, BpePreset* out);

}  // namespace strata
