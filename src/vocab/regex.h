// Regex: one compiled PCRE2 pattern as the BPE pre-tokenizers use it.
//
// Patterns are compiled with PCRE2_UTF | PCRE2_UCP (so \s, \p{L}, \p{N}, \p{P}
// follow Unicode properties), PCRE2_DOLLAR_ENDONLY ('$' only at the very end,
// as in ECMAScript and Rust regex) and PCRE2_MATCH_INVALID_UTF: subjects may
// hold invalid UTF-8, whose bytes simply never match. JIT-compiled when the
// library supports it.
//
// Thread-safety: a Regex is immutable after Compile and safe to share; a
// MatchScratch belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "core/status.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;

namespace strata {

class Regex {
 public:
  // Per-caller match state, reused across Find calls to avoid allocations.
  class MatchScratch {
   public:
    explicit MatchScratch(const Regex& regex);
    ~MatchScratch();
    MatchScratch(const MatchScratch&) = delete;
    MatchScratch& operator=(const MatchScratch&) = delete;

   private:
    friend class Regex;
    pcre2_real_match_data_8* data_;
  };

  // kInvalidArgument (with PCRE2's message and offset) if pattern does not compile.
  [[nodiscard]] static Status Compile(std::string_view pattern, std::unique_ptr<Regex>* out);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Finds the leftmost match in subject starting at or after byte offset
  // start; on success sets [*begin, *end) (possibly empty) and returns true.
  // The subject is the whole world: lookarounds and '$' see its ends only.
  // Any PCRE2 failure other than "no match" (e.g. a resource limit) is
  // reported as no match, so the rest of the subject stays one piece.
  // REQUIRES: start <= subject.size(); scratch made for this Regex.
  bool Find(std::string_view subject, size_t start, MatchScratch* scratch, size_t* begin, size_t* end) const;

 private:
  explicit Regex(pcre2_real_code_8* code) : code_(code) {}
  pcre2_real_code_8* code_;
};

}  // namespace strata
