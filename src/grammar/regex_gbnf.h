// Regular expressions (the common subset of Python's re and ECMAScript) to
// GBNF: vLLM's guided_regex and JSON Schema's "pattern".
//
// Supported: literals, escapes \d \w \s \D \W \S \n \r \t \f \v \0 \xHH
// \uHHHH and escaped punctuation; classes [...] / [^...] with ranges and
// class escapes; `.` (any character but \n); groups (...), (?:...),
// (?<name>...), (?P<name>...); alternation |; quantifiers * + ? {m} {m,}
// {m,n} (counts up to kMaxRepetition), lazy forms (the same language);
// ^ at the start and $ at the end. Anything else — backreferences,
// lookaround, atomic groups, possessive quantifiers, word boundaries, inline
// flags, Unicode property classes, anchors inside the pattern — is refused
// with kInvalidArgument naming the feature and its position.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace strata::grammar {

// Where the matched text goes: as it is, or as the contents of a JSON string
// (each character the pattern matches written as JSON writes it: `"`, `\`
// and control characters escaped).
enum class RegexTarget { kText, kJsonString };

struct RegexGbnf {
  std::string expr;          // a GBNF expression matching what the pattern matches
  bool anchored_start = false;  // the pattern began with ^
  bool anchored_end = false;    // the pattern ended with $
};

// Converts regex into a GBNF expression.
[[nodiscard]] Status RegexToGbnf(std::string_view regex, RegexTarget target, RegexGbnf* out);

// A whole GBNF grammar whose text must match regex entirely (vLLM's guided_regex).
[[nodiscard]] Status RegexGrammar(std::string_view regex, std::string* gbnf);

}  // namespace strata::grammar
