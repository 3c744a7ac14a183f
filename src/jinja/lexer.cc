#include "jinja/lexer.h"

#include <fmt/format.h>

#include <array>
#include <cstdlib>

#include "core/utf8.h"
#include "jinja/py_string.h"
#include "jinja/py_unicode.h"

namespace strata::jinja {
namespace {

constexpr std::array<std::string_view, 26> kOperators = {
    "//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
    "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";",
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || IsDigit(c); }

// Bytes in the UTF-8 character whose lead byte is b.
size_t CharLen(unsigned char b) { return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2; }

// Length of the whitespace character (Python's \s) at s[i], or 0.
size_t SpaceAt(std::string_view s, size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return unicode::IsSpace(b) ? 1 : 0;
  const size_t n = CharLen(b);
  return unicode::IsSpace(py::Decode(s.substr(i, n))[0]) ? n : 0;
}

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size()) {
    const size_t n = SpaceAt(s, i);
    if (n == 0) break;
    i += n;
  }
  return i;
}

bool AllSpace(std::string_view s) { return SkipSpace(s, 0) == s.size(); }

// Python's text.rstrip().
std::string_view RStripSpace(std::string_view s) {
  size_t keep = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = SpaceAt(s, i);
    i += n != 0 ? n : CharLen(static_cast<unsigned char>(s[i]));
    if (n == 0) keep = i;
  }
  return s.substr(0, keep);
}

int CountNewlines(std::string_view s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string source, const LexerOptions& options, std::vector<Token>* out)
      : src_(std::move(source)), o_(options), out_(out) {}

  Status Run() {
    while (pos_ < src_.size()) STRATA_RETURN_IF_ERROR(Root());
    Emit(TokenType::kEof, "");
    return Status::Ok();
  }

 private:
  enum class Tag { kVariable, kBlock, kComment };

  Status Error(const std::string& message) const {
    return Status::InvalidArgument(fmt::format("line {}: {}", line_, message));
  }

  Token& Emit(TokenType type, std::string value) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    t.line = line_;
    out_->push_back(std::move(t));
    return out_->back();
  }

  // Data before a tag, with "-" / lstrip_blocks applied.
  void EmitData(std::string_view text, char sign, bool lstrip_allowed) {
    const int newlines = CountNewlines(text);
    if (sign == '-') {
      text = RStripSpace(text);
    } else if (sign != '+' && o_.lstrip_blocks && lstrip_allowed) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && l_pos < text.size() && AllSpace(text.substr(l_pos)))
        text = text.substr(0, l_pos);
    }
    if (!text.empty()) Emit(TokenType::kData, std::string(text));
    line_ += newlines;
  }

  // One step in the root state: data up to the next tag, then the tag.
  Status Root() {
    size_t start = pos_;
    Tag tag = Tag::kBlock;
    for (;; ++start) {
      start = src_.find('{', start);
      if (start == std::string::npos || start + 1 >= src_.size()) {
        EmitData(std::string_view(src_).substr(pos_), 0, false);
        pos_ = src_.size();
        return Status::Ok();
      }
      const char c = src_[start + 1];
      if (c == '{' || c == '%' || c == '#') {
        tag = c == '{' ? Tag::kVariable : c == '%' ? Tag::kBlock : Tag::kComment;
        break;
      }
    }
    size_t after = start + 2;
    char sign = 0;
    if (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
    const std::string_view text = std::string_view(src_).substr(pos_, start - pos_);
    if (tag == Tag::kBlock) {
      if (size_t raw_end = RawBegin(after); raw_end != 0) {
        EmitData(text, sign, true);
        line_ += CountNewlines(std::string_view(src_).substr(start, raw_end - start));
        line_starting_ = src_[raw_end - 1] == '\n';
        pos_ = raw_end;
        return Raw();
      }
    }
    EmitData(text, sign, tag != Tag::kVariable);
    line_starting_ = false;
    pos_ = after;
    if (tag == Tag::kComment) return Comment();
    Emit(tag == Tag::kBlock ? TokenType::kBlockBegin : TokenType::kVariableBegin, "");
    return Inside(tag);
  }

  // If "{%[-+]" at i..after is followed by "\s*raw\s*(-%}\s*|%})", the end of
  // that match; else 0.
  size_t RawBegin(size_t i) const {
    i = SkipSpace(src_, i);
    if (src_.compare(i, 3, "raw") != 0) return 0;
    i = SkipSpace(src_, i + 3);
    if (src_.compare(i, 3, "-%}") == 0) return SkipSpace(src_, i + 3);
    if (src_.compare(i, 2, "%}") == 0) return i + 2;
    return 0;
  }

  Status Raw() {
    for (size_t i = src_.find("{%", pos_); i != std::string::npos; i = src_.find("{%", i + 1)) {
      size_t j = i + 2;
      char sign = 0;
      if (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) sign = src_[j++];
      j = SkipSpace(src_, j);
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j = SkipSpace(src_, j + 6);
      size_t end = BlockEnd(j);
      if (end == 0) continue;
      EmitData(std::string_view(src_).substr(pos_, i - pos_), sign, true);
      line_ += CountNewlines(std::string_view(src_).substr(i, end - i));
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return Status::Ok();
    }
    return Error("Missing end of raw directive");
  }

  // The end of "+%}", "-%}\s*" or "%}\n?" at i, or 0.
  size_t BlockEnd(size_t i) const {
    if (src_.compare(i, 3, "+%}") == 0) return i + 3;
    if (src_.compare(i, 3, "-%}") == 0) return SkipSpace(src_, i + 3);
    if (src_.compare(i, 2, "%}") == 0)
      return i + 2 + (o_.trim_blocks && i + 2 < src_.size() && src_[i + 2] == '\n' ? 1 : 0);
    return 0;
  }

  Status Comment() {
    for (size_t i = pos_; i < src_.size(); ++i) {
      size_t end = 0;
      if (src_.compare(i, 3, "+#}") == 0) {
        end = i + 3;
      } else if (src_.compare(i, 3, "-#}") == 0) {
        end = SkipSpace(src_, i + 3);
      } else if (src_.compare(i, 2, "#}") == 0) {
        end = i + 2 + (o_.trim_blocks && i + 2 < src_.size() && src_[i + 2] == '\n' ? 1 : 0);
      } else {
        continue;
      }
      line_ += CountNewlines(std::string_view(src_).substr(pos_, end - pos_));
      line_starting_ = src_[end - 1] == '\n';
      pos_ = end;
      return Status::Ok();
    }
    return Error("Missing end of comment tag");
  }

  // Tokens inside {% ... %} or {{ ... }}, through the end tag.
  Status Inside(Tag tag) {
    std::vector<char> balance;
    while (pos_ < src_.size()) {
      if (balance.empty()) {
        size_t end = 0;
        if (tag == Tag::kBlock) {
          end = BlockEnd(pos_);
        } else if (src_.compare(pos_, 3, "-}}") == 0) {
          end = SkipSpace(src_, pos_ + 3);
        } else if (src_.compare(pos_, 2, "}}") == 0) {
          end = pos_ + 2;
        }
        if (end != 0) {
          Emit(tag == Tag::kBlock ? TokenType::kBlockEnd : TokenType::kVariableEnd, "");
          line_ += CountNewlines(std::string_view(src_).substr(pos_, end - pos_));
          line_starting_ = src_[end - 1] == '\n';
          pos_ = end;
          return Status::Ok();
        }
      }
      if (size_t ws = SkipSpace(src_, pos_); ws != pos_) {
        line_ += CountNewlines(std::string_view(src_).substr(pos_, ws - pos_));
        pos_ = ws;
        continue;
      }
      const char c = src_[pos_];
      if (IsDigit(c)) {
        STRATA_RETURN_IF_ERROR(Number());
        continue;
      }
      if (IsNameStart(c)) {
        size_t e = pos_;
        while (e < src_.size() && IsNameChar(src_[e])) ++e;
        Emit(TokenType::kName, src_.substr(pos_, e - pos_));
        pos_ = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        if (size_t e = StringEnd(pos_); e != 0) {
          STRATA_RETURN_IF_ERROR(String(e));
          continue;
        }
      }
      STRATA_RETURN_IF_ERROR(Operator(&balance));
    }
    return Status::Ok();  // end of source inside a tag: the parser reports it
  }

  // Digits with single '_' separators at i; the end, or i if none.
  size_t Digits(size_t i, bool (*digit)(char)) const {
    size_t e = i;
    while (e < src_.size() && digit(src_[e])) {
      ++e;
      if (e + 1 < src_.size() && src_[e] == '_' && digit(src_[e + 1])) ++e;
    }
    return e;
  }

  Status Number() {
    // Python's float_re (tried first), then integer_re.
    const size_t int_end = Digits(pos_, IsDigit);
    size_t float_end = 0;
    if (pos_ == 0 || src_[pos_ - 1] != '.') {
      size_t e = int_end;
      if (e + 1 < src_.size() && src_[e] == '.' && IsDigit(src_[e + 1])) e = Digits(e + 1, IsDigit);
      const bool fraction = e != int_end;
      if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
        size_t x = e + 1;
        if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
        if (x < src_.size() && IsDigit(src_[x])) e = Digits(x, IsDigit), float_end = e;
      }
      if (float_end == 0 && fraction) float_end = e;
    }
    if (float_end != 0) {
      std::string text;
      for (size_t i = pos_; i < float_end; ++i)
        if (src_[i] != '_') text.push_back(src_[i]);
      Emit(TokenType::kFloat, text).real = std::strtod(text.c_str(), nullptr);
      pos_ = float_end;
      return Status::Ok();
    }
    int base = 10;
    size_t digits_begin = pos_, end = int_end;
    if (src_[pos_] == '0') {
      const char p = pos_ + 1 < src_.size() ? static_cast<char>(src_[pos_ + 1] | 0x20) : 0;
      auto prefixed = [&](bool (*digit)(char)) {
        size_t i = pos_ + 2;
        if (i < src_.size() && src_[i] == '_') ++i;
        if (i >= src_.size() || !digit(src_[i])) return size_t{0};
        return Digits(i, digit);
      };
      static constexpr auto kBin = [](char c) { return c == '0' || c == '1'; };
      static constexpr auto kOct = [](char c) { return c >= '0' && c <= '7'; };
      static constexpr auto kHex = [](char c) { return HexValue(c) >= 0; };
      size_t e = 0;
      if (p == 'b' && (e = prefixed(kBin)) != 0) base = 2;
      if (p == 'o' && (e = prefixed(kOct)) != 0) base = 8;
      if (p == 'x' && (e = prefixed(kHex)) != 0) base = 16;
      if (base != 10) {
        digits_begin = pos_ + 2;
        end = e;
      } else {
        // "0(_?0)*": a decimal literal may not have leading zeros.
        end = pos_ + 1;
        while (end < src_.size() && (src_[end] == '0' || (src_[end] == '_' && end + 1 < src_.size() &&
                                                          src_[end + 1] == '0')))
          ++end;
      }
    }
    uint64_t value = 0;
    for (size_t i = digits_begin; i < end; ++i) {
      if (src_[i] == '_') continue;
      const uint64_t d = static_cast<uint64_t>(HexValue(src_[i]));
      if (value > (static_cast<uint64_t>(INT64_MAX) - d) / static_cast<uint64_t>(base))
        return Error("integer literal too large");
      value = value * static_cast<uint64_t>(base) + d;
    }
    Emit(TokenType::kInteger, src_.substr(pos_, end - pos_)).integer = static_cast<int64_t>(value);
    pos_ = end;
    return Status::Ok();
  }

  // The end (past the closing quote) of the string literal at i, or 0.
  size_t StringEnd(size_t i) const {
    const char quote = src_[i];
    for (size_t j = i + 1; j < src_.size(); ++j) {
      if (src_[j] == '\\') {
        ++j;
      } else if (src_[j] == quote) {
        return j + 1;
      }
    }
    return 0;
  }

  // Unescapes the literal pos_..end as Python's unicode-escape codec does
  // after encode("ascii", "backslashreplace").
  Status String(size_t end) {
    const std::string_view body = std::string_view(src_).substr(pos_ + 1, end - pos_ - 2);
    std::string out;
    for (size_t i = 0; i < body.size();) {
      if (body[i] != '\\') {
        out.push_back(body[i++]);
        continue;
      }
      const char c = body[i + 1];
      i += 2;
      const auto uc = static_cast<unsigned char>(c);
      if (uc >= 0x80) {
        // The backslash escapes the first character of the \xNN / \uNNNN /
        // \UNNNNNNNN that backslashreplace wrote for this character.
        const size_t len = CharLen(uc);
        const uint32_t cp = py::Decode(body.substr(i - 1, len))[0];
        out += cp < 0x100 ? fmt::format("\\x{:02x}", cp) : cp < 0x10000 ? fmt::format("\\u{:04x}", cp)
                                                                          : fmt::format("\\U{:08x}", cp);
        i += len - 1;
        continue;
      }
      switch (c) {
        case '\n': continue;
        case '\\': out.push_back('\\'); continue;
        case '\'': out.push_back('\''); continue;
        case '"': out.push_back('"'); continue;
        case 'a': out.push_back('\a'); continue;
        case 'b': out.push_back('\b'); continue;
        case 'f': out.push_back('\f'); continue;
        case 'n': out.push_back('\n'); continue;
        case 'r': out.push_back('\r'); continue;
        case 't': out.push_back('\t'); continue;
        case 'v': out.push_back('\v'); continue;
        default: break;
      }
      if (c >= '0' && c <= '7') {
        uint32_t cp = static_cast<uint32_t>(c - '0');
        for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k)
          cp = cp * 8 + static_cast<uint32_t>(body[i++] - '0');
        utf8::Append(cp, &out);
        continue;
      }
      if (c == 'x' || c == 'u' || c == 'U') {
        const int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (int k = 0; k < digits; ++k) {
          const int h = i < body.size() ? HexValue(body[i]) : -1;
          if (h < 0) return Error(fmt::format("truncated \\{}{} escape", c, std::string(digits, 'X')));
          cp = cp * 16 + static_cast<uint32_t>(h);
          ++i;
        }
        if (cp > 0x10FFFF) return Error("illegal Unicode character");
        if (cp >= 0xD800 && cp <= 0xDFFF) return Error("surrogate code points are not supported in strings");
        utf8::Append(cp, &out);
        continue;
      }
      if (c == 'N') return Error("\\N{...} escapes are not supported");
      out.push_back('\\');
      out.push_back(c);
    }
    Emit(TokenType::kString, std::move(out));  // at the line the literal starts on
    line_ += CountNewlines(body);
    pos_ = end;
    return Status::Ok();
  }

  Status Operator(std::vector<char>* balance) {
    for (std::string_view op : kOperators) {
      if (src_.compare(pos_, op.size(), op) != 0) continue;
      const char c = op[0];
      if (op.size() == 1 && (c == '(' || c == '[' || c == '{')) {
        balance->push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (op.size() == 1 && (c == ')' || c == ']' || c == '}')) {
        if (balance->empty()) return Error(fmt::format("unexpected '{}'", c));
        if (balance->back() != c) return Error(fmt::format("unexpected '{}', expected '{}'", c, balance->back()));
        balance->pop_back();
      }
      Emit(TokenType::kOperator, std::string(op));
      pos_ += op.size();
      return Status::Ok();
    }
    const std::string ch = src_.substr(pos_, CharLen(static_cast<unsigned char>(src_[pos_])));
    return Error(fmt::format("unexpected char {}", py::Repr(ch)));
  }

  const std::string src_;
  const LexerOptions o_;
  std::vector<Token>* out_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
};

// \r\n and \r -> \n; without keep_trailing_newline one final newline goes.
std::string NormalizeNewlines(std::string_view source, bool keep_trailing_newline) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Status Tokenize(std::string_view source, const LexerOptions& options, std::vector<Token>* out) {
  out->clear();
  return Lexer(NormalizeNewlines(source, options.keep_trailing_newline), options, out).Run();
}

}  // namespace strata::jinja
