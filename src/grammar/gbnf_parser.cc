#include "grammar/gbnf_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "core/utf8.h"

namespace strata::grammar {

namespace {

bool IsWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

class Parser {
 public:
  Parser(std::string_view text, const GbnfOptions& options) : text_(text), options_(options) {}

  Status Run(Grammar* out) {
    if (text_.size() > kMaxGbnfBytes)
      return Status::InvalidArgument(fmt::format("the grammar has {} bytes; at most {} are accepted", text_.size(),
                                                 kMaxGbnfBytes));
    SkipSpace(true);
    while (pos_ < text_.size()) STRATA_RETURN_IF_ERROR(ParseRule());
    STRATA_RETURN_IF_ERROR(CheckDefined());
    const auto root = ids_.find("root");
    if (root == ids_.end()) return Status::InvalidArgument("the grammar has no 'root' rule");
    STRATA_RETURN_IF_ERROR(CheckLeftRecursion());
    Grammar g;
    for (size_t r = 0; r < bodies_.size(); ++r) {
      g.rule_start.push_back(static_cast<uint32_t>(g.elements.size()));
      g.elements.insert(g.elements.end(), bodies_[r].begin(), bodies_[r].end());
    }
    g.rule_names = std::move(names_);
    g.classes = std::move(classes_);
    g.root = root->second;
    *out = std::move(g);
    return Status::Ok();
  }

 private:
  using Body = std::vector<Element>;

  char Peek(size_t ahead = 0) const { return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0'; }
  bool AtEnd() const { return pos_ >= text_.size(); }

  // "line L, column C: message" for the byte at offset.
  Status ErrorAt(size_t offset, const std::string& message) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) {
        ++column;
      }
    }
    return Status::InvalidArgument(fmt::format("line {}, column {}: {}", line, column, message));
  }
  Status Error(const std::string& message) const { return ErrorAt(pos_, message); }

  // What sits at the cursor, for messages.
  std::string Found() const {
    if (AtEnd()) return "the end of the grammar";
    const unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c == '\n' || c == '\r') return "the end of the line";
    if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", static_cast<char>(c));
    const utf8::Decoded d = utf8::DecodeFront(text_.substr(pos_));
    if (d.kind != utf8::Decoded::Kind::kValid) return fmt::format("byte 0x{:02X}", c);
    return fmt::format("U+{:04X}", d.codepoint);
  }

  void SkipSpace(bool newline_ok) {
    while (!AtEnd()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || (newline_ok && (c == '\r' || c == '\n'))) {
        ++pos_;
      } else if (c == '#') {
        while (!AtEnd() && text_[pos_] != '\r' && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  std::string_view ParseName() {
    const size_t start = pos_;
    while (!AtEnd() && IsWordChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  // The id of the rule named name (a new, undefined rule if unseen).
  Status RuleId(std::string_view name, uint32_t* id) {
    const auto it = ids_.find(std::string(name));
    if (it != ids_.end()) {
      *id = it->second;
      return Status::Ok();
    }
    return NewRule(std::string(name), id);
  }

  Status NewRule(std::string name, uint32_t* id) {
    if (bodies_.size() >= kMaxRules)
      return Error(fmt::format("the grammar needs more than {} rules (counting groups and repetitions)", kMaxRules));
    *id = static_cast<uint32_t>(bodies_.size());
    if (name.empty()) name = fmt::format("{}_{}", rule_name_, *id);  // a group or repetition inside rule_name_
    ids_.emplace(name, *id);
    names_.push_back(std::move(name));
    bodies_.emplace_back();
    defined_at_.push_back(std::string_view::npos);
    first_use_.push_back(std::string_view::npos);
    return Status::Ok();
  }

  Status Reserve(size_t n) {
    if (n_elements_ + n > kMaxElements)
      return Error(fmt::format("the grammar expands to more than {} elements (repetitions are expanded)", kMaxElements));
    n_elements_ += n;
    return Status::Ok();
  }

  Status Push(Body* body, Element e) {
    STRATA_RETURN_IF_ERROR(Reserve(1));
    body->push_back(e);
    return Status::Ok();
  }

  Status ParseRule() {
    const size_t start = pos_;
    const std::string_view name = ParseName();
    if (name.empty()) return Error(fmt::format("expected a rule name, found {}", Found()));
    uint32_t id = 0;
    STRATA_RETURN_IF_ERROR(RuleId(name, &id));
    if (defined_at_[id] != std::string_view::npos)
      return ErrorAt(start, fmt::format("rule '{}' is defined twice (first at {})", name, Where(defined_at_[id])));
    defined_at_[id] = start;
    rule_name_ = std::string(name);
    SkipSpace(false);
    if (text_.substr(pos_, 3) != "::=")
      return Error(fmt::format("expected '::=' after the rule name '{}', found {}", name, Found()));
    pos_ += 3;
    SkipSpace(true);
    Body body;
    STRATA_RETURN_IF_ERROR(ParseAlternates(0, &body));
    if (Peek() == '\r') ++pos_;
    if (Peek() == '\n') {
      ++pos_;
    } else if (!AtEnd()) {
      return Error(fmt::format("expected the end of the line after rule '{}', found {}", name, Found()));
    }
    SkipSpace(true);
    bodies_[id] = std::move(body);
    return Status::Ok();
  }

  // depth > 0: inside parentheses, where newlines are spaces.
  Status ParseAlternates(int depth, Body* body) {
    STRATA_RETURN_IF_ERROR(ParseSequence(depth, body));
    while (Peek() == '|') {
      STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kAlt, 0}));
      ++pos_;
      SkipSpace(true);
      STRATA_RETURN_IF_ERROR(ParseSequence(depth, body));
    }
    return Push(body, {ElementKind::kEnd, 0});
  }

  Status ParseSequence(int depth, Body* body) {
    const bool nested = depth > 0;
    size_t symbol = body->size();  // where the last symbol's elements start (for repetitions)
    while (!AtEnd()) {
      const char c = Peek();
      const size_t start = body->size();
      if (c == '"') {
        ++pos_;
        while (Peek() != '"') {
          if (AtEnd()) return Error("the string literal is not closed");
          uint32_t cp = 0;
          STRATA_RETURN_IF_ERROR(ParseChar(&cp));
          STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kChars, InternClass(CharClass::Of({{cp, cp}}, false))}));
        }
        ++pos_;
      } else if (c == '[') {
        uint32_t id = 0;
        STRATA_RETURN_IF_ERROR(ParseClass(&id));
        STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kChars, id}));
      } else if (c == '<' || c == '!') {
        const ElementKind kind = c == '!' ? ElementKind::kNotToken : ElementKind::kToken;
        if (c == '!') ++pos_;
        uint32_t id = 0;
        STRATA_RETURN_IF_ERROR(ParseToken(&id));
        STRATA_RETURN_IF_ERROR(Push(body, {kind, id}));
      } else if (IsWordChar(c)) {
        const size_t at = pos_;
        uint32_t id = 0;
        STRATA_RETURN_IF_ERROR(RuleId(ParseName(), &id));
        if (first_use_[id] == std::string_view::npos) first_use_[id] = at;
        STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kRule, id}));
      } else if (c == '(') {
        if (depth + 1 > kMaxNesting) return Error(fmt::format("groups nest deeper than {} levels", kMaxNesting));
        const size_t open = pos_;
        ++pos_;
        SkipSpace(true);
        uint32_t id = 0;
        STRATA_RETURN_IF_ERROR(NewRule("", &id));
        Body group;
        STRATA_RETURN_IF_ERROR(ParseAlternates(depth + 1, &group));
        if (Peek() != ')')
          return Error(fmt::format("expected ')' to close the group opened at {}, found {}",
                                   Where(open), Found()));
        ++pos_;
        bodies_[id] = std::move(group);
        STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kRule, id}));
      } else if (c == '.') {
        ++pos_;
        STRATA_RETURN_IF_ERROR(Push(body, {ElementKind::kChars, InternClass(CharClass::Of({}, true))}));
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (symbol == body->size()) return Error(fmt::format("'{}' has nothing before it to repeat", c));
        uint32_t min = 0;
        std::optional<uint32_t> max;
        if (c == '{') {
          STRATA_RETURN_IF_ERROR(ParseCount(nested, &min, &max));
        } else {
          ++pos_;
          min = c == '+' ? 1 : 0;
          if (c == '?') max = 1;
        }
        SkipSpace(nested);
        STRATA_RETURN_IF_ERROR(Repeat(body, symbol, min, max));
        continue;
      } else {
        break;
      }
      symbol = start;
      SkipSpace(nested);
    }
    return Status::Ok();
  }

  // "line L, column C" of offset.
  std::string Where(size_t offset) const {
    const std::string m = ErrorAt(offset, "").message();
    return m.substr(0, m.size() - 2);
  }

  // {m}, {m,}, {m,n} at the cursor.
  Status ParseCount(bool nested, uint32_t* min, std::optional<uint32_t>* max) {
    ++pos_;
    SkipSpace(nested);
    STRATA_RETURN_IF_ERROR(ParseInt(min));
    SkipSpace(nested);
    if (Peek() == '}') {
      *max = *min;
    } else if (Peek() == ',') {
      ++pos_;
      SkipSpace(nested);
      if (IsDigit(Peek())) {
        uint32_t n = 0;
        STRATA_RETURN_IF_ERROR(ParseInt(&n));
        *max = n;
        SkipSpace(nested);
      }
      if (Peek() != '}') return Error(fmt::format("expected '}}' to close the repetition, found {}", Found()));
    } else {
      return Error(fmt::format("expected ',' or '}}' in the repetition, found {}", Found()));
    }
    ++pos_;
    if (*max && **max < *min) return Error(fmt::format("the repetition {{{},{}}} has its maximum below its minimum", *min, **max));
    return Status::Ok();
  }

  // A repetition count, at most kMaxRepetition.
  Status ParseInt(uint32_t* out) {
    if (!IsDigit(Peek())) return Error(fmt::format("expected a number in the repetition, found {}", Found()));
    const size_t start = pos_;
    uint64_t v = 0;
    while (IsDigit(Peek())) {
      v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(Peek() - '0'), uint64_t{1} << 40);
      ++pos_;
    }
    if (v > kMaxRepetition)
      return ErrorAt(start, fmt::format("a repetition count is at most {}", kMaxRepetition));
    *out = static_cast<uint32_t>(v);
    return Status::Ok();
  }

  // Rewrites the symbol at body[symbol..] as it repeated min..max times (max
  // nullopt: unbounded): S{m,n} is S m times, then R(n-m) where
  // R(k) ::= S R(k-1) | "" and R(1) ::= S | ""; S{m,} is S m times, then
  // R ::= S R | "". Nested optionals keep one parse per prefix (no ambiguity).
  Status Repeat(Body* body, size_t symbol, uint32_t min, std::optional<uint32_t> max) {
    const Body s(body->begin() + static_cast<std::ptrdiff_t>(symbol), body->end());
    body->resize(symbol);
    n_elements_ -= s.size();
    const uint64_t optional = max ? *max - min : 1;
    const uint64_t needed = uint64_t{min} * s.size() + optional * (s.size() + 3) + 1;
    if (needed > kMaxElements) return Reserve(kMaxElements + 1);
    STRATA_RETURN_IF_ERROR(Reserve(static_cast<size_t>(needed)));
    for (uint32_t i = 0; i < min; ++i) body->insert(body->end(), s.begin(), s.end());
    uint32_t last = 0;
    for (uint64_t k = 0; k < optional; ++k) {
      uint32_t id = 0;
      STRATA_RETURN_IF_ERROR(NewRule("", &id));
      Body r = s;
      if (!max) r.push_back({ElementKind::kRule, id});
      else if (k > 0) r.push_back({ElementKind::kRule, last});
      r.push_back({ElementKind::kAlt, 0});
      r.push_back({ElementKind::kEnd, 0});
      bodies_[id] = std::move(r);
      last = id;
    }
    if (optional > 0) body->push_back({ElementKind::kRule, last});
    return Status::Ok();
  }

  // One character of a literal or class (an escape or a UTF-8 character).
  Status ParseChar(uint32_t* cp) {
    if (Peek() != '\\') {
      const utf8::Decoded d = utf8::DecodeFront(text_.substr(pos_));
      if (d.kind != utf8::Decoded::Kind::kValid) return Error("invalid UTF-8");
      *cp = d.codepoint;
      pos_ += d.length;
      return Status::Ok();
    }
    const size_t start = pos_;
    const char e = Peek(1);
    pos_ += 2;
    int hex = 0;
    switch (e) {
      case 'x': hex = 2; break;
      case 'u': hex = 4; break;
      case 'U': hex = 8; break;
      case 't': *cp = '\t'; return Status::Ok();
      case 'r': *cp = '\r'; return Status::Ok();
      case 'n': *cp = '\n'; return Status::Ok();
      case '\\': case '"': case '[': case ']': case '-': *cp = static_cast<uint8_t>(e); return Status::Ok();
      default:
        pos_ = start;
        if (e == '\0' && start + 1 >= text_.size()) return Error("the grammar ends inside an escape");
        return Error("unknown escape (\\x \\u \\U \\t \\r \\n \\\\ \\\" \\[ \\] \\- are known)");
    }
    uint32_t v = 0;
    for (int i = 0; i < hex; ++i) {
      const char h = Peek();
      int d = -1;
      if (h >= '0' && h <= '9') d = h - '0';
      else if (h >= 'a' && h <= 'f') d = h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') d = h - 'A' + 10;
      if (d < 0) return Error(fmt::format("expected {} hex digits after \\{}, found {}", hex, e, Found()));
      v = v << 4 | static_cast<uint32_t>(d);
      ++pos_;
    }
    if (v > kMaxCodePoint) return ErrorAt(start, fmt::format("U+{:X} is beyond the last code point U+10FFFF", v));
    *cp = v;
    return Status::Ok();
  }

  // [...] or [^...] at the cursor.
  Status ParseClass(uint32_t* id) {
    const size_t open = pos_;
    ++pos_;
    const bool negated = Peek() == '^';
    if (negated) ++pos_;
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    while (Peek() != ']') {
      if (AtEnd()) return ErrorAt(open, "the character class is not closed");
      const size_t at = pos_;
      uint32_t lo = 0;
      STRATA_RETURN_IF_ERROR(ParseChar(&lo));
      uint32_t hi = lo;
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < text_.size()) {
        ++pos_;
        STRATA_RETURN_IF_ERROR(ParseChar(&hi));
        if (hi < lo) return ErrorAt(at, fmt::format("the range U+{:04X}-U+{:04X} is reversed", lo, hi));
      }
      ranges.emplace_back(lo, hi);
    }
    ++pos_;
    *id = InternClass(CharClass::Of(std::move(ranges), negated));
    return Status::Ok();
  }

  // <[id]> or <text> at the cursor.
  Status ParseToken(uint32_t* id) {
    if (Peek() != '<') return Error(fmt::format("expected '<' after '!', found {}", Found()));
    const size_t open = pos_;
    ++pos_;
    if (Peek() == '[') {
      ++pos_;
      if (!IsDigit(Peek())) return Error(fmt::format("expected a token id, found {}", Found()));
      uint64_t v = 0;
      while (IsDigit(Peek())) {
        v = std::min<uint64_t>(v * 10 + static_cast<uint64_t>(Peek() - '0'), uint64_t{1} << 40);
        ++pos_;
      }
      if (Peek() != ']' || Peek(1) != '>') return Error(fmt::format("expected ']>' after the token id, found {}", Found()));
      pos_ += 2;
      if (v > static_cast<uint64_t>(INT32_MAX) || (options_.n_vocab > 0 && v >= static_cast<uint64_t>(options_.n_vocab)))
        return ErrorAt(open, fmt::format("token id {} is not in the vocabulary ({} tokens)", v, options_.n_vocab));
      *id = static_cast<uint32_t>(v);
      return Status::Ok();
    }
    const size_t start = pos_;
    while (!AtEnd() && Peek() != '>' && Peek() != '\n') ++pos_;
    if (Peek() != '>') return ErrorAt(open, "the token reference is not closed with '>'");
    const std::string_view piece = text_.substr(open, pos_ + 1 - open);  // with its brackets, as the token is written
    ++pos_;
    if (pos_ - start == 1) return ErrorAt(open, "the token reference '<>' is empty");
    if (!options_.token_of_text)
      return ErrorAt(open, fmt::format("token '{}' needs a vocabulary to be resolved; use <[id]>", piece));
    const std::optional<int32_t> t = options_.token_of_text(piece);
    if (!t) return ErrorAt(open, fmt::format("'{}' is not exactly one token of the vocabulary", piece));
    *id = static_cast<uint32_t>(*t);
    return Status::Ok();
  }

  uint32_t InternClass(CharClass c) {
    const auto it = class_ids_.find(c.ranges);
    if (it != class_ids_.end()) return it->second;
    const uint32_t id = static_cast<uint32_t>(classes_.size());
    class_ids_.emplace(c.ranges, id);
    classes_.push_back(std::move(c));
    return id;
  }

  Status CheckDefined() const {
    for (size_t r = 0; r < bodies_.size(); ++r)
      if (defined_at_[r] == std::string_view::npos && first_use_[r] != std::string_view::npos)
        return ErrorAt(first_use_[r], fmt::format("rule '{}' is used but never defined", names_[r]));
    return Status::Ok();
  }

  // A rule that can derive a string starting with itself would make the
  // matcher's stack expansion endless: refused, naming the rule.
  Status CheckLeftRecursion() const {
    const size_t n = bodies_.size();
    // Nullable rules, by a worklist: an alternative made only of rule
    // references becomes nullable once all of them are.
    std::vector<bool> nullable(n, false);
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> users(n);  // rule -> (alternative, owner rule)
    std::vector<uint32_t> missing;                                    // [alternative] references not yet nullable
    std::vector<uint32_t> queue;
    for (uint32_t r = 0; r < n; ++r) {
      const Body& b = bodies_[r];
      size_t i = 0;
      while (i < b.size()) {
        const uint32_t alt = static_cast<uint32_t>(missing.size());
        uint32_t refs = 0;
        bool terminal = false;
        for (; b[i].kind != ElementKind::kAlt && b[i].kind != ElementKind::kEnd; ++i) {
          if (b[i].kind == ElementKind::kRule) {
            ++refs;
            users[b[i].value].emplace_back(alt, r);
          } else {
            terminal = true;
          }
        }
        missing.push_back(terminal ? UINT32_MAX : refs);
        if (refs == 0 && !terminal && !nullable[r]) {
          nullable[r] = true;
          queue.push_back(r);
        }
        ++i;
      }
    }
    while (!queue.empty()) {
      const uint32_t r = queue.back();
      queue.pop_back();
      for (const auto& [alt, owner] : users[r]) {
        if (missing[alt] == UINT32_MAX || --missing[alt] != 0 || nullable[owner]) continue;
        nullable[owner] = true;
        queue.push_back(owner);
      }
    }
    // Left edges: r -> s if an alternative of r starts with s after nullable rules only.
    std::vector<std::vector<uint32_t>> left(n);
    for (uint32_t r = 0; r < n; ++r) {
      const Body& b = bodies_[r];
      bool open = true;  // still at the left edge of the current alternative
      for (const Element& e : b) {
        if (e.kind == ElementKind::kAlt || e.kind == ElementKind::kEnd) {
          open = true;
        } else if (open && e.kind == ElementKind::kRule) {
          left[r].push_back(e.value);
          open = nullable[e.value];
        } else {
          open = false;
        }
      }
    }
    // A cycle among left edges, by an iterative depth-first search.
    enum : uint8_t { kNew, kOnPath, kDone };
    std::vector<uint8_t> color(n, kNew);
    std::vector<std::pair<uint32_t, size_t>> path;  // (rule, next edge)
    for (uint32_t start = 0; start < n; ++start) {
      if (color[start] != kNew) continue;
      path.emplace_back(start, 0);
      color[start] = kOnPath;
      while (!path.empty()) {
        auto& [r, next] = path.back();
        if (next == left[r].size()) {
          color[r] = kDone;
          path.pop_back();
          continue;
        }
        const uint32_t s = left[r][next++];
        if (color[s] == kOnPath)
          return Status::InvalidArgument(fmt::format("rule '{}' is left-recursive (it can start with itself), "
                                                     "which GBNF does not support", BaseName(s)));
        if (color[s] == kNew) {
          color[s] = kOnPath;
          path.emplace_back(s, 0);
        }
      }
    }
    return Status::Ok();
  }

  // A generated rule's user-written owner ("expr" for "expr_12").
  std::string BaseName(uint32_t rule) const {
    const std::string& name = names_[rule];
    return name.substr(0, name.find('_'));
  }

  std::string_view text_;
  const GbnfOptions& options_;
  size_t pos_ = 0;
  std::string rule_name_;  // the rule being parsed
  std::vector<Body> bodies_;
  std::vector<std::string> names_;
  std::vector<size_t> defined_at_;  // [rule] offset of its definition; npos if undefined (or generated)
  std::vector<size_t> first_use_;   // [rule] offset of its first reference; npos if none
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<CharClass> classes_;
  std::map<std::vector<std::pair<uint32_t, uint32_t>>, uint32_t> class_ids_;
  size_t n_elements_ = 0;
};

}  // namespace

Status ParseGbnf(std::string_view text, const GbnfOptions& options, Grammar* out) {
  return Parser(text, options).Run(out);
}

}  // namespace strata::grammar
