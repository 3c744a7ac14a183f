// The GBNF parser's options for a vocabulary: token ids bounded by its size,
// and <text> resolved to the one token text encodes to (special tokens
// recognised, nothing added), as llama.cpp resolves it.
//
// Thread-safety: the options hold a reference to vocab; it must outlive them.
#pragma once

#include "grammar/gbnf_parser.h"
#include "vocab/vocab.h"

namespace strata::grammar {

GbnfOptions VocabGbnfOptions(const Vocab& vocab);

}  // namespace strata::grammar
