#include "grammar/gbnf_text.h"

#include <fmt/format.h>

#include "core/utf8.h"

namespace strata::grammar {
namespace {

// One code point as written inside a literal (quote '"') or a class (quote ']').
void AppendChar(uint32_t cp, char quote, std::string* out) {
  switch (cp) {
    case '\\': *out += "\\\\"; return;
    case '\n': *out += "\\n"; return;
    case '\r': *out += "\\r"; return;
    case '\t': *out += "\\t"; return;
    default: break;
  }
  if (quote == ']' && cp == '^') {
    *out += "\\x5E";  // a caret first in a class would negate it
  } else if (cp == static_cast<uint32_t>(quote) || (quote == ']' && (cp == '[' || cp == '-'))) {
    *out += '\\';
    *out += static_cast<char>(cp);
  } else if (cp < 0x20 || cp == 0x7F) {
    *out += fmt::format("\\x{:02X}", cp);
  } else if (cp >= 0xD800 && cp <= 0xDFFF) {
    *out += fmt::format("\\u{:04X}", cp);  // not UTF-8 encodable
  } else {
    utf8::Append(cp, out);
  }
}

}  // namespace

std::string GbnfLiteral(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const utf8::Decoded d = utf8::DecodeFront(text.substr(i));
    AppendChar(d.kind == utf8::Decoded::Kind::kValid ? d.codepoint : 0xFFFD, '"', &out);
    i += d.length;
  }
  return out + "\"";
}

std::string GbnfClass(const std::vector<std::pair<uint32_t, uint32_t>>& ranges, bool negated) {
  std::string out = negated ? "[^" : "[";
  for (const auto& [lo, hi] : ranges) {
    AppendChar(lo, ']', &out);
    if (hi != lo) {
      out += '-';
      AppendChar(hi, ']', &out);
    }
  }
  return out + "]";
}

std::string GbnfRules::Reserve(std::string_view name) {
  std::string base;
  for (const char c : name)
    base += (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ? c : '-';
  if (base.empty()) base = "r";
  std::string n = base;
  for (int i = 2; rules_.count(n) > 0; ++i) n = fmt::format("{}-{}", base, i);
  rules_[n] = "";
  return n;
}

std::string GbnfRules::Add(std::string_view name, std::string body) {
  const std::string n = Reserve(name);
  rules_[n] = std::move(body);
  return n;
}

std::string GbnfRules::Text() const {
  std::string out;
  if (const auto root = rules_.find("root"); root != rules_.end()) out += "root ::= " + root->second + "\n";
  for (const auto& [name, body] : rules_)
    if (name != "root") out += name + " ::= " + body + "\n";
  return out;
}

}  // namespace strata::grammar
