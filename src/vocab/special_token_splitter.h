// SpecialTokenSplitter: cuts text around literal occurrences of special token
// texts before the model's tokenizer sees it, as llama.cpp's
// tokenizer_st_partition does.
//
// Entries are tried one after another, longest text first; each splits every
// raw-text fragment the earlier ones left. User-defined tokens always split;
// control and unknown tokens only when the caller asks to parse specials.
// An entry with lstrip/rstrip also swallows ASCII whitespace just before /
// after each occurrence.
//
// Thread-safety: immutable after construction; Split is const and safe to
// call concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vocab/vocab.h"

namespace strata {

class SpecialTokenSplitter {
 public:
  struct Entry {
    TokenId id = -1;
    std::string text;  // REQUIRES: non-empty
    bool always = false;  // split even when specials are not parsed (user-defined)
    bool lstrip = false;
    bool rstrip = false;
  };

  // A piece of the input: a special token (token >= 0) or raw text.
  struct Fragment {
    TokenId token = -1;
    std::string_view text;  // raw text; empty for a special token
  };

  explicit SpecialTokenSplitter(std::vector<Entry> entries);

  // Replaces *out with the fragments of text, in order. Raw fragments are
  // never empty and are views into text.
  void Split(std::string_view text, bool parse_special, std::vector<Fragment>* out) const;

 private:
  // Splits the raw fragment in by entry e into out.
  static void SplitFragment(std::string_view in, const Entry& e, std::vector<Fragment>* out);

  std::vector<Entry> entries_;  // longest text first
};

}  // namespace strata
