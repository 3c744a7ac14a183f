#include "grammar/regex_gbnf.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "grammar/gbnf_parser.h"
#include "grammar/gbnf_text.h"
#include "grammar/grammar.h"

namespace strata::grammar {
namespace {

using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

constexpr int kMaxRegexNesting = 100;

const Ranges kDigit = {{'0', '9'}};
const Ranges kWord = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
const Ranges kSpace = {{'\t', '\r'}, {' ', ' '}};  // \t \n \v \f \r and space

Ranges Complement(const Ranges& r) { return CharClass::Of(r, true).ranges; }

class RegexParser {
 public:
  RegexParser(std::string_view text, RegexTarget target) : text_(text), target_(target) {}

  Status Run(RegexGbnf* out) {
    if (!utf8::IsValid(text_)) return Status::InvalidArgument("the regex is not valid UTF-8");
    if (Peek() == '^') {
      out->anchored_start = true;
      ++pos_;
    }
    STRATA_RETURN_IF_ERROR(Alternation(0, &out->expr));
    if (pos_ < text_.size()) return Error("')' has no '(' to close");  // the only place a sequence stops early
    out->anchored_end = anchored_end_;
    return Status::Ok();
  }

 private:
  char Peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  bool AtEnd() const { return pos_ >= text_.size(); }

  Status Error(const std::string& what) const {
    return Status::InvalidArgument(fmt::format("{} at position {} of the regex", what, pos_));
  }
  Status Unsupported(const std::string& feature) const {
    return Status::InvalidArgument(fmt::format("{} (at position {} of the regex) is not supported", feature, pos_));
  }

  uint32_t NextCodePoint() {
    const utf8::Decoded d = utf8::DecodeFront(text_.substr(pos_));
    pos_ += d.length;
    return d.codepoint;
  }

  Status Alternation(int depth, std::string* out) {
    std::vector<std::string> alts(1);
    STRATA_RETURN_IF_ERROR(Sequence(depth, &alts.back()));
    while (Peek() == '|') {
      ++pos_;
      STRATA_RETURN_IF_ERROR(Sequence(depth, &alts.emplace_back()));
    }
    if (alts.size() == 1) {
      *out = std::move(alts[0]);
      return Status::Ok();
    }
    *out = "(";
    for (size_t i = 0; i < alts.size(); ++i) *out += (i > 0 ? " | " : "") + alts[i];
    *out += ")";
    return Status::Ok();
  }

  Status Sequence(int depth, std::string* out) {
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      if (Peek() == '$') {
        if (pos_ + 1 < text_.size()) return Unsupported("'$' before the end of the pattern");
        ++pos_;
        if (depth > 0) return Unsupported("'$' inside a group");
        anchored_end_ = true;
        return Status::Ok();
      }
      if (Peek() == '^') return Unsupported("'^' after the start of the pattern");
      std::string atom;
      STRATA_RETURN_IF_ERROR(Atom(depth, &atom));
      STRATA_RETURN_IF_ERROR(Quantifier(&atom));
      if (!out->empty()) *out += " ";
      *out += atom;
    }
    if (out->empty()) *out = "\"\"";
    return Status::Ok();
  }

  Status Atom(int depth, std::string* out) {
    const char c = Peek();
    if (c == '(') {
      if (depth + 1 > kMaxRegexNesting) return Error(fmt::format("groups nest deeper than {} levels", kMaxRegexNesting));
      const size_t open = pos_;
      ++pos_;
      if (Peek() == '?') {
        pos_ = open;  // where the construct's errors point
        const char k = Peek(2);
        if (k == ':') {
          pos_ += 3;
        } else if (k == '=' || k == '!') {
          return Unsupported("lookahead");
        } else if (k == '<' && (Peek(3) == '=' || Peek(3) == '!')) {
          return Unsupported("lookbehind");
        } else if (k == '<' || (k == 'P' && Peek(3) == '<')) {
          pos_ = text_.find('>', pos_);
          if (pos_ == std::string_view::npos) {
            pos_ = text_.size();
            return Error("the group name is not closed with '>'");
          }
          ++pos_;
        } else if (k == '>') {
          return Unsupported("an atomic group");
        } else if (k == 'P' && Peek(3) == '=') {
          return Unsupported("a backreference");
        } else {
          return Unsupported("an inline flag or other (? construct");
        }
      }
      std::string inner;
      STRATA_RETURN_IF_ERROR(Alternation(depth + 1, &inner));
      if (Peek() != ')') return Error("'(' is not closed");
      ++pos_;
      *out = "(" + inner + ")";
      return Status::Ok();
    }
    if (c == '[') return Class(out);
    if (c == '.') {
      ++pos_;
      *out = Set(Complement({{'\n', '\n'}}));
      return Status::Ok();
    }
    if (c == '*' || c == '+' || c == '?') return Error(fmt::format("'{}' has nothing before it to repeat", c));
    if (c == '{') return Error("'{' has nothing before it to repeat");
    if (c == '\\') {
      Ranges set;
      bool is_set = false;
      uint32_t cp = 0;
      STRATA_RETURN_IF_ERROR(Escape(false, &cp, &set, &is_set));
      *out = is_set ? Set(set) : Literal(cp);
      return Status::Ok();
    }
    *out = Literal(NextCodePoint());
    return Status::Ok();
  }

  // After a backslash (at the cursor): one character (*cp), or a class (*set, *is_set).
  Status Escape(bool in_class, uint32_t* cp, Ranges* set, bool* is_set) {
    const size_t start = pos_;
    ++pos_;
    if (AtEnd()) return Error("the regex ends with a lone backslash");
    const char e = Peek();
    ++pos_;
    *is_set = true;
    switch (e) {
      case 'd': *set = kDigit; return Status::Ok();
      case 'D': *set = Complement(kDigit); return Status::Ok();
      case 'w': *set = kWord; return Status::Ok();
      case 'W': *set = Complement(kWord); return Status::Ok();
      case 's': *set = kSpace; return Status::Ok();
      case 'S': *set = Complement(kSpace); return Status::Ok();
      default: break;
    }
    *is_set = false;
    switch (e) {
      case 'n': *cp = '\n'; return Status::Ok();
      case 'r': *cp = '\r'; return Status::Ok();
      case 't': *cp = '\t'; return Status::Ok();
      case 'f': *cp = '\f'; return Status::Ok();
      case 'v': *cp = '\v'; return Status::Ok();
      case '0': *cp = 0; return Status::Ok();
      case 'x': return Hex(2, cp);
      case 'u': return Hex(4, cp);
      case 'b':
        if (in_class) {
          *cp = '\b';
          return Status::Ok();
        }
        [[fallthrough]];
      case 'B': pos_ = start; return Unsupported("a word boundary \\" + std::string(1, e));
      case 'p': case 'P': pos_ = start; return Unsupported("a Unicode property class \\" + std::string(1, e));
      case 'k': pos_ = start; return Unsupported("a named backreference \\k");
      case 'A': case 'Z': case 'z': case 'G': pos_ = start; return Unsupported("the anchor \\" + std::string(1, e));
      default: break;
    }
    if (e >= '1' && e <= '9') {
      pos_ = start;
      return Unsupported("a backreference \\" + std::string(1, e));
    }
    const unsigned char u = static_cast<unsigned char>(e);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
      pos_ = start;
      return Error(fmt::format("unknown escape \\{}", e));
    }
    --pos_;
    *cp = NextCodePoint();  // escaped punctuation (or any other character) stands for itself
    return Status::Ok();
  }

  Status Hex(int digits, uint32_t* cp) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char h = Peek();
      int d = -1;
      if (h >= '0' && h <= '9') d = h - '0';
      else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
      if (d < 0) return Error(fmt::format("expected {} hex digits", digits));
      v = v << 4 | static_cast<uint32_t>(d);
      ++pos_;
    }
    *cp = v;
    return Status::Ok();
  }

  Status Class(std::string* out) {
    const size_t open = pos_;
    ++pos_;
    const bool negated = Peek() == '^';
    if (negated) ++pos_;
    Ranges ranges;
    bool first = true;
    while (first || Peek() != ']') {
      if (AtEnd()) {
        pos_ = open;
        return Error("'[' is not closed");
      }
      if (Peek() == '[' && Peek(1) == ':') return Unsupported("a POSIX class [:...:]");
      uint32_t lo = 0;
      Ranges set;
      bool is_set = false;
      if (Peek() == '\\') {
        STRATA_RETURN_IF_ERROR(Escape(true, &lo, &set, &is_set));
      } else {
        lo = NextCodePoint();
      }
      first = false;
      if (is_set) {
        ranges.insert(ranges.end(), set.begin(), set.end());
        continue;
      }
      uint32_t hi = lo;
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < text_.size()) {
        ++pos_;
        if (Peek() == '\\') {
          STRATA_RETURN_IF_ERROR(Escape(true, &hi, &set, &is_set));
          if (is_set) return Error("a range cannot end with a class escape");
        } else {
          hi = NextCodePoint();
        }
        if (hi < lo) return Error("the class range is reversed");
      }
      ranges.emplace_back(lo, hi);
    }
    ++pos_;
    *out = Set(CharClass::Of(std::move(ranges), negated).ranges);
    return Status::Ok();
  }

  Status Quantifier(std::string* atom) {
    const char c = Peek();
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      ++pos_;
      q = std::string(1, c);
    } else if (c == '{') {
      const size_t open = pos_;
      ++pos_;
      uint32_t min = 0;
      STRATA_RETURN_IF_ERROR(Count(&min));
      std::optional<uint32_t> max = min;
      if (Peek() == ',') {
        ++pos_;
        max.reset();
        if (Peek() != '}') {
          uint32_t m = 0;
          STRATA_RETURN_IF_ERROR(Count(&m));
          max = m;
        }
      }
      if (Peek() != '}') {
        pos_ = open;
        return Error("'{' must start a repetition {m}, {m,} or {m,n}");
      }
      ++pos_;
      if (max && *max < min) return Error("the repetition's maximum is below its minimum");
      q = max ? fmt::format("{{{},{}}}", min, *max) : fmt::format("{{{},}}", min);
    } else {
      return Status::Ok();
    }
    if (Peek() == '+') return Unsupported("a possessive quantifier");
    if (Peek() == '?') ++pos_;  // lazy: the same language
    if (Peek() == '*' || Peek() == '+' || Peek() == '{') return Error("a quantifier follows a quantifier");
    *atom = "(" + *atom + ")" + q;
    return Status::Ok();
  }

  Status Count(uint32_t* out) {
    if (Peek() < '0' || Peek() > '9') return Error("expected a number in the repetition");
    uint64_t v = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(Peek() - '0'), uint64_t{1} << 40);
      ++pos_;
    }
    if (v > kMaxRepetition) return Error(fmt::format("a repetition count is at most {}", kMaxRepetition));
    *out = static_cast<uint32_t>(v);
    return Status::Ok();
  }

  // One character, as the target writes it.
  std::string Literal(uint32_t cp) {
    if (target_ == RegexTarget::kText) {
      std::string s;
      utf8::Append(std::min(cp, kMaxCodePoint), &s);
      return GbnfLiteral(s);
    }
    return Set({{cp, cp}});
  }

  // Any character of ranges, as the target writes it. In a JSON string the
  // characters JSON escapes appear as their escapes.
  std::string Set(const Ranges& ranges) {
    if (target_ == RegexTarget::kText) return GbnfClass(ranges);
    const CharClass set = CharClass::Of(ranges, false);
    // Plain: everything JSON writes as itself.
    const CharClass plain = CharClass::Of({{0, 0x1F}, {'"', '"'}, {'\\', '\\'}}, true);
    Ranges both;
    for (const auto& [lo, hi] : set.ranges)
      for (const auto& [plo, phi] : plain.ranges)
        if (std::max(lo, plo) <= std::min(hi, phi)) both.emplace_back(std::max(lo, plo), std::min(hi, phi));
    std::vector<std::string> alts;
    if (!both.empty()) alts.push_back(GbnfClass(both));
    for (uint32_t cp : {uint32_t{'"'}, uint32_t{'\\'}}) {
      if (set.Contains(cp)) alts.push_back(GbnfLiteral(std::string("\\") + static_cast<char>(cp)));
    }
    for (uint32_t cp = 0; cp < 0x20; ++cp) {
      if (!set.Contains(cp)) continue;
      const char* short_form = cp == '\n' ? "\\n" : cp == '\r' ? "\\r" : cp == '\t' ? "\\t" : cp == '\b' ? "\\b"
                               : cp == '\f' ? "\\f" : nullptr;
      alts.push_back(GbnfLiteral(short_form != nullptr ? short_form : fmt::format("\\u{:04x}", cp)));
    }
    if (alts.empty()) return "[]";  // an empty set: matches nothing
    if (alts.size() == 1) return alts[0];
    std::string s = "(";
    for (size_t i = 0; i < alts.size(); ++i) s += (i > 0 ? " | " : "") + alts[i];
    return s + ")";
  }

  std::string_view text_;
  RegexTarget target_;
  size_t pos_ = 0;
  bool anchored_end_ = false;
};

}  // namespace

Status RegexToGbnf(std::string_view regex, RegexTarget target, RegexGbnf* out) {
  *out = RegexGbnf();
  return RegexParser(regex, target).Run(out);
}

Status RegexGrammar(std::string_view regex, std::string* gbnf) {
  RegexGbnf r;
  STRATA_RETURN_IF_ERROR(RegexToGbnf(regex, RegexTarget::kText, &r));
  *gbnf = "root ::= " + r.expr + "\n";
  return Status::Ok();
}

}  // namespace strata::grammar
