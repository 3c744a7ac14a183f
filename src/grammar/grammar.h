// Grammar: a context-free grammar over Unicode code points (and, for special
// tokens, token ids) in the compiled form the matcher walks — what a GBNF
// text (gbnf_parser.h) becomes. Immutable once built; shared by every request
// that generates under it.
//
// Shape: each rule's body is a run of elements in `elements`, starting at
// rule_start[rule]: alternatives separated by kAlt, the last closed by kEnd.
// An alternative is a sequence of terminals (kChars, kToken, kNotToken) and
// rule references (kRule); an empty alternative matches the empty string.
// A position is an index into `elements`; a parse stack is a list of
// positions, each the next element to match in some sequence.
//
// Guarantees (checked by the parser): every referenced rule is defined, no
// rule is left-recursive, root is a defined rule, every class id is valid.
//
// Thread-safety: immutable; safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace strata::grammar {

enum class ElementKind : uint8_t {
  kEnd,       // closes a rule's last alternative
  kAlt,       // separates two alternatives
  kRule,      // value: rule id
  kChars,     // value: index into classes; matches one code point
  kToken,     // value: token id; matches that one token (not its text)
  kNotToken,  // value: token id; matches any one token but that one
};

struct Element {
  ElementKind kind;
  uint32_t value;
};

// A set of code points: sorted, disjoint, non-adjacent inclusive ranges
// (negated GBNF classes are complemented over [0, 0x10FFFF] when built).
struct CharClass {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  uint64_t ascii[2] = {0, 0};  // bit c set iff code point c < 128 is in the set

  // Builds the class of the given ranges (any order, overlaps allowed), or of
  // their complement.
  static CharClass Of(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated);

  bool Contains(uint32_t cp) const;
  // True if some code point in [lo, hi] is in the set.
  bool Intersects(uint32_t lo, uint32_t hi) const;
  bool operator==(const CharClass& o) const { return ranges == o.ranges; }
};

inline constexpr uint32_t kMaxCodePoint = 0x10FFFF;

struct Grammar {
  std::vector<Element> elements;
  std::vector<uint32_t> rule_start;     // [rule] position of its first element
  std::vector<std::string> rule_names;  // [rule] as written, or generated for groups and repetitions
  std::vector<CharClass> classes;
  uint32_t root = 0;

  // True if position pos ends its alternative (kEnd or kAlt).
  bool EndsAlternative(uint32_t pos) const {
    const ElementKind k = elements[pos].kind;
    return k == ElementKind::kEnd || k == ElementKind::kAlt;
  }
};

}  // namespace strata::grammar
