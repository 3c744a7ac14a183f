// Whether two models speak the same tokens: a speculative decoding draft
// model must, since its token ids are the model's (engine/speculator.h).
//
// Thread-safety: a pure function.
#pragma once

#include "core/status.h"
#include "vocab/vocab.h"

namespace strata {

// Ok if draft has the same tokenizer model, token count, and per token the
// same text and type, and the same BOS, EOS and end-of-generation tokens as
// target. Else kInvalidArgument naming the first difference (the token id
// and both texts, the draft's first).
[[nodiscard]] Status CheckSameVocabulary(const Vocab& target, const Vocab& draft);

}  // namespace strata
