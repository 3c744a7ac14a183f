// GBNF parser: llama.cpp's grammar format (grammars/README.md in llama.cpp)
// into a Grammar. The text is untrusted (it arrives in requests): every
// failure is a kInvalidArgument naming the line and column, recursion and
// size are bounded, and nothing it accepts can make matching unbounded.
//
// The format: rules `name ::= alternatives`, names of [a-zA-Z0-9-]; the rule
// `root` is where matching starts. Alternatives `a | b`, sequences, groups
// `( ... )`, repetition `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`; literals
// "..." and classes [...] / [^...] with ranges a-z, escapes \xXX \uXXXX
// \UXXXXXXXX \t \r \n \\ \" \[ \] \-; `.` (any code point); tokens <[id]>,
// <text> (text that tokenizes to exactly one token) and their negations
// !<[id]> / !<text>. Comments run from # to the end of the line. A rule ends
// at a newline, except inside parentheses and after `|` or `::=`.
//
// Where strata is stricter than llama.cpp (which accepts these and matches
// something surprising): a rule defined twice, a reversed range [z-a], a
// repetition {m,n} with m > n or above kMaxRepetition, invalid UTF-8.
//
// Thread-safety: pure function of its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "core/status.h"
#include "grammar/grammar.h"

namespace strata::grammar {

inline constexpr size_t kMaxGbnfBytes = size_t{4} << 20;  // grammar text
inline constexpr int kMaxNesting = 256;                    // parentheses inside one another
inline constexpr uint32_t kMaxRepetition = 2000;           // m and n of {m,n}, as llama.cpp bounds them
inline constexpr size_t kMaxElements = size_t{1} << 20;    // after repetitions are expanded
inline constexpr size_t kMaxRules = size_t{1} << 16;       // including generated ones

struct GbnfOptions {
  // Ids of <[id]> must be below this (0: any id).
  int32_t n_vocab = 0;
  // The token <text> names: its id if text is exactly one token, else nullopt.
  // Null: <text> references are refused.
  std::function<std::optional<int32_t>(std::string_view text)> token_of_text;
};

// Errors: kInvalidArgument "line L, column C: what is wrong" (column in code
// points), or naming the rule for grammar-wide faults (undefined rule, left
// recursion, no root).
[[nodiscard]] Status ParseGbnf(std::string_view text, const GbnfOptions& options, Grammar* out);

}  // namespace strata::grammar
