// Writing GBNF text: literals and classes escaped so that the parser
// (gbnf_parser.h) reads back exactly the code points meant, and a rule set
// that names its rules uniquely. What the JSON Schema and regex converters
// emit their grammars with.
//
// Thread-safety: GbnfLiteral and GbnfClass are pure; a GbnfRules is one
// writer's.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::grammar {

// "text" as a GBNF literal. REQUIRES: text is valid UTF-8.
std::string GbnfLiteral(std::string_view text);
// A class of the given inclusive code point ranges ([...]; [^...] when negated).
std::string GbnfClass(const std::vector<std::pair<uint32_t, uint32_t>>& ranges, bool negated = false);

// Rules by name, written root first, then in name order.
class GbnfRules {
 public:
  // Adds `name ::= body` under name, or name-2, name-3, ... if taken;
  // returns the name used. Names are reduced to [a-zA-Z0-9-].
  std::string Add(std::string_view name, std::string body);
  // Reserves a name now and sets its body later (recursive rules).
  std::string Reserve(std::string_view name);
  void Set(const std::string& name, std::string body) { rules_[name] = std::move(body); }
  bool Has(const std::string& name) const { return rules_.count(name) > 0; }
  std::string Text() const;

 private:
  std::map<std::string, std::string> rules_;
};

}  // namespace strata::grammar
