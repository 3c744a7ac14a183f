// BuildPrompt: the token ids a validated request feeds the engine.
//   completions, text:  tokenized as `strata run` does — BOS (and EOS) as the
//                       vocabulary's add_bos/add_eos flags say, special-token
//                       text kept as plain text;
//   completions, ids:   used as given (no BOS added), each must be < n_vocab;
//   chat:               the chat template's rendering, tokenized with special
//                       tokens parsed; BOS prepended if the vocabulary adds
//                       one and the rendering does not already start with it.
//                       A template that refuses the conversation (its
//                       raise_exception, an error, tools a built-in cannot
//                       write) fails the request with its message.
//
// Thread-safety: a pure function of its arguments (Vocab is immutable).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "server/api_request.h"
#include "server/chat_template.h"
#include "vocab/vocab.h"

namespace strata::server {

// kInvalidArgument (a message for the client) if a token id is out of range,
// the chat template refuses the conversation, or the prompt has no tokens;
// kResourceExhausted if the chat template exceeds its limits.
// Completions: request.prompts[prompt_index]; chat: the conversation (prompt_index 0).
[[nodiscard]] Status BuildPrompt(const ApiRequest& request, size_t prompt_index, const Vocab& vocab,
                                 const ChatTemplate& chat_template, std::vector<int32_t>* out);

}  // namespace strata::server
