// PreTokenizer: cuts text into the pieces that byte-level BPE then encodes
// one at a time, the way llama.cpp's unicode_regex_split does.
//
// The regexes apply in sequence: the first splits the whole text; each later
// one splits every piece the previous produced. Within a piece, every match
// becomes a piece and so does every non-empty stretch between matches, so no
// byte is ever dropped (bytes of invalid UTF-8 never match and end up in
// those stretches).
//
// Thread-safety: immutable after Create; Split is const and safe to call
// concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "vocab/regex.h"

namespace strata {

class PreTokenizer {
 public:
  // kInvalidArgument if a pattern does not compile.
  [[nodiscard]] static Status Create(const std::vector<std::string>& patterns, std::unique_ptr<PreTokenizer>* out);

  // Appends the pieces of text, in order, as views into text. Their
  // concatenation is text. An empty text yields no pieces.
  void Split(std::string_view text, std::vector<std::string_view>* pieces) const;

 private:
  PreTokenizer() = default;
  // Splits each of in by regex into out.
  static void SplitBy(const Regex& regex, const std::vector<std::string_view>& in, std::vector<std::string_view>* out);

  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace strata
