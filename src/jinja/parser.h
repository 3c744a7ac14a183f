// Parser: tokens -> statement tree, following jinja2's grammar and operator
// precedence (jinja2/parser.py), with the loopcontrols extension's
// break/continue and transformers' {% generation %} block. Template
// inheritance and loading (extends, include, import, from) and autoescape
// blocks are refused: a chat template has no loader and no HTML.
//
// Thread-safety: pure function.
#pragma once

#include <vector>

#include "core/status.h"
#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace strata::jinja {

// kInvalidArgument "line N: ..." for a syntax error or nesting beyond
// max_depth (expressions and blocks count alike).
[[nodiscard]] Status Parse(std::vector<Token> tokens, int max_depth, Body* out);

}  // namespace strata::jinja
