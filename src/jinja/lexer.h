// Lexer: template source -> tokens, with jinja2's whitespace rules as
// transformers configures them (trim_blocks and lstrip_blocks on,
// keep_trailing_newline off):
//   - \r\n and \r become \n; one trailing newline of the source is dropped;
//   - "{%-" / "{{-" / "{#-" strip all whitespace before the tag, "-%}" / "-}}"
//     / "-#}" all whitespace after it;
//   - trim_blocks: the first newline after "%}" or "#}" is removed ("+%}"
//     keeps it);
//   - lstrip_blocks: spaces and tabs from the start of a line up to "{%" or
//     "{#" are removed ("{%+" keeps them);
//   - {% raw %}...{% endraw %} is data.
// String literals are unescaped as Python's "unicode-escape" codec does.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace strata::jinja {

enum class TokenType : uint8_t {
  kData,           // text between tags (value: the text)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,         // value: the unescaped text
  kInteger,
  kFloat,
  kOperator,       // value: the operator ("+", "//", "==", "(", ...)
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string value;
  int64_t integer = 0;  // kInteger
  double real = 0;      // kFloat
  int line = 1;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Tokenizes source (REQUIRES: valid UTF-8), ending with a kEof token.
// kInvalidArgument "line N: ..." for malformed input.
[[nodiscard]] Status Tokenize(std::string_view source, const LexerOptions& options, std::vector<Token>* out);

}  // namespace strata::jinja
