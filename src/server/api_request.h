// ApiRequest: a validated body of POST /v1/completions or
// /v1/chat/completions. ParseApiRequest is the JSON parsing boundary: it
// accepts any bytes, never throws, and either fills a request whose every
// field is in range or names what is wrong.
//
// Accepted fields (others are ignored, as OpenAI-compatible servers do):
//   both:  model (an adapter's id picks that LoRA adapter, as in vLLM), lora
//          (a LoRA adapter's id, the same choice by name; or llama-server's
//          array of at most kMaxLoraScales {"id": the adapter's index in
//          GET /v1/models' list of adapters, or its id, "scale": number in
//          [-kMaxLoraScale, kMaxLoraScale]}: those adapters together at those
//          scales, the others left out), max_tokens,
//          max_completion_tokens (wins over max_tokens), temperature [0,2], top_p [0,1], seed, stop (string or array of at
//          most kMaxStops non-empty strings), stream, stream_options.include_usage,
//          n (choices per prompt), user, presence_penalty and frequency_penalty
//          [-2,2], logit_bias (OpenAI's {"id": bias} with bias in [-100,100], or
//          llama.cpp's [[id, bias], ...] where bias false bans the token);
//          llama.cpp's extensions top_k, min_p, repeat_penalty, n_predict
//          (max_tokens' alias, -1: unlimited; the other two win), ignore_eos;
//          vLLM's min_tokens (<= max_tokens), stop_token_ids, repetition_penalty;
//          strata's speculative (bool, default true: false keeps the request to
//          plain decoding when the server speculates; the output is the same
//          either way); strata's session (a session id: [A-Za-z0-9._-]{1,128}, not starting
//          with '.').
//          Structured output, at most one of: grammar (GBNF), json_schema
//          (llama.cpp's), response_format (text, json_object [with llama.cpp's
//          "schema"], json_schema {"json_schema": {"schema": ...}}), vLLM's
//          guided_json (a schema, or its JSON text), guided_regex, guided_choice
//          — each turned into GBNF here (grammar/json_schema_gbnf.h,
//          grammar/regex_gbnf.h); the server parses it against the vocabulary.
//   completions: prompt (a string, an array of token ids, or a batch: an
//          array of strings or of token-id arrays), logprobs (0..kMaxLogprobs), echo,
//          best_of (1 only), suffix (empty only).
//   chat:  messages (roles system/developer/user/assistant/tool; content a
//          string, an array of {"type":"text","text":...} parts, or null for
//          an assistant turn with tool_calls; other message fields such as
//          tool_calls, tool_call_id and name are passed to the chat template
//          as sent), tools (function tools, passed to the chat template),
//          tool_choice ("auto", "none" which withholds the tools,
//          "required", or a named function: the server then constrains the
//          output to calls, server/tool_calls.h), parallel_tool_calls,
//          chat_template_kwargs (extra template variables, as llama.cpp's
//          server takes them), logprobs (bool), top_logprobs (0..kMaxLogprobs, requires logprobs).
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "server/chat_template.h"

namespace strata::server {

enum class Endpoint { kCompletions, kChat };

inline constexpr int32_t kMaxLogprobs = 20;
inline constexpr size_t kMaxStops = 16;
inline constexpr size_t kMaxStopTokenIds = 256;
inline constexpr size_t kMaxLoraScales = 64;
inline constexpr double kMaxLoraScale = 100;
// Choices one request may ask for: prompts in the batch x n.
inline constexpr int32_t kMaxChoices = 16;

// An entry of `lora` as an array: an adapter, named by its index or its id, and a scale.
struct LoraScale {
  int64_t index = -1;  // >= 0: by index
  std::string id;      // else by id
  float scale = 0;
};

// One completions prompt: text, or token ids used as given (no BOS added).
struct PromptInput {
  bool is_ids = false;
  std::string text;
  std::vector<int32_t> ids;
};

enum class ToolChoice { kAuto, kNone, kRequired, kFunction };

struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                  // as sent; "" if absent
  std::string lora;                   // as sent when a string; "" if absent or an array
  std::vector<LoraScale> lora_scales;  // `lora` as an array, in order (it may be empty)
  bool lora_is_array = false;
  // Completions: one or more prompts (a batch), each answered by n choices
  // (choice index = prompt index * n + sample); prompts.size() * n <= kMaxChoices.
  std::vector<PromptInput> prompts;
  int32_t n = 1;                      // choices per prompt (chat: of the conversation)
  // Chat: messages normalized (developer -> system, content parts joined).
  ChatConversation chat;
  std::optional<int32_t> max_tokens;  // absent: the server's default
  // Sampling; absent: the server's defaults (strata serve --temp, --top-k, ...).
  std::optional<float> temperature;   // [0, 2]; 0: greedy
  std::optional<float> top_p;         // [0, 1]; 1: off
  std::optional<int32_t> top_k;       // 0: off
  std::optional<float> min_p;         // [0, 1]; 0: off
  std::optional<float> repeat_penalty;  // > 0; 1: off ("repetition_penalty", vLLM's name, is the same)
  std::optional<float> frequency_penalty;  // [-2, 2]; 0: off
  std::optional<float> presence_penalty;   // [-2, 2]; 0: off
  // (token id, bias), ids not yet checked against the vocabulary; one entry
  // per id (the last given wins); -infinity: banned (llama.cpp's false).
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::vector<int32_t> stop_token_ids;  // ids not yet checked against the vocabulary
  bool ignore_eos = false;
  int32_t min_tokens = 0;
  std::optional<uint64_t> seed;       // absent: random
  std::vector<std::string> stop;
  bool stream = false;
  bool speculative = true;            // false: no speculative decoding for this request
  bool include_usage = false;         // stream_options.include_usage
  int32_t logprobs = -1;              // -1: none; else alternatives per token (0..kMaxLogprobs)
  bool echo = false;                  // completions: the response text starts with the prompt (and, with
                                      // logprobs, the prompt's tokens are scored too)
  // Top-level fields strata does not know (ignored, as OpenAI does; the server logs them).
  std::vector<std::string> unknown_fields;
  ToolChoice tool_choice = ToolChoice::kAuto;  // chat with tools
  std::string tool_name;              // kFunction: the function to call
  bool parallel_tool_calls = true;    // kRequired: more than one call may come
  std::string session;                // "" none; else the session this request continues (server/session_api.h)
  std::string grammar;                // structured output as GBNF ("" none)
  std::string grammar_param;          // the field it came from (for errors)
};

struct RequestLimits {
  int32_t max_tokens_limit = 1 << 20;  // largest max_tokens accepted
};

// The conversation of a body holding "messages" and optionally "tools",
// "tool_choice", "parallel_tool_calls" and "chat_template_kwargs", validated
// and normalized as for chat completions (other fields are ignored): what
// llama.cpp's POST /apply-template takes. Errors as ParseApiRequest's.
[[nodiscard]] Status ParseChatConversation(std::string_view body, ChatConversation* out, std::string* bad_param);

// Parses and validates body for endpoint. On failure returns kInvalidArgument
// with a message meant for the client and sets *bad_param to the offending
// field ("" when the body as a whole is at fault).
[[nodiscard]] Status ParseApiRequest(Endpoint endpoint, std::string_view body, const RequestLimits& limits,
                                     ApiRequest* out, std::string* bad_param);

// POST /tokenize, llama-server's: "content" (text, required), "add_special"
// (BOS/EOS as the vocabulary adds them; default false), "parse_special"
// (control tokens written in the text; default true), "with_pieces" (reply
// {id, piece} objects; default false).
struct TokenizeRequest {
  std::string content;
  bool add_special = false;
  bool parse_special = true;
  bool with_pieces = false;
};
[[nodiscard]] Status ParseTokenizeRequest(std::string_view body, TokenizeRequest* out, std::string* bad_param);

// POST /detokenize: "tokens", ids in [0, n_vocab). Errors as ParseApiRequest's.
[[nodiscard]] Status ParseDetokenizeRequest(std::string_view body, int32_t n_vocab, std::vector<int32_t>* tokens,
                                            std::string* bad_param);

}  // namespace strata::server
