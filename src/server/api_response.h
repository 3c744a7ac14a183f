// ResponseBuilder: OpenAI's response shapes for one request — the whole
// response (stream: false) or its server-sent-event chunks (stream: true):
// One builder per choice (its index in "choices": a request with several
// prompts or n > 1 has several):
//   completions: "text_completion" objects, choices[i].text, and with
//                logprobs choices[i].logprobs = {tokens, token_logprobs,
//                top_logprobs, text_offset} (text_offset in bytes, counted
//                from the start of the prompt text);
//   chat:        "chat.completion" / "chat.completion.chunk" objects,
//                choices[i].message / .delta, and with logprobs
//                choices[i].logprobs.content[] = {token, logprob, bytes,
//                top_logprobs[]}; with tools (Tools()), calls the model
//                wrote become message.tool_calls (finish_reason
//                "tool_calls") — streamed: content is sent until a call may
//                begin, the calls come in one delta.tool_calls chunk at the end.
// Token texts that are not valid UTF-8 on their own (a byte of a multi-byte
// character) render as U+FFFD in "token"; chat's "bytes" keeps them exact.
//
// Thread-safety: not thread-safe; one builder per choice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "server/api_request.h"
#include "server/tool_calls.h"
#include "vocab/vocab.h"

namespace strata::server {

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  std::optional<int32_t> cached_tokens;  // set: usage.prompt_tokens_details.cached_tokens (session requests)
};

struct ResponseIdentity {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

class ResponseBuilder {
 public:
  // REQUIRES: vocab outlives the builder. prompt_bytes: the length of the
  // prompt text (the first text_offset); index: the choice's.
  ResponseBuilder(const ApiRequest& request, ResponseIdentity identity, const Vocab& vocab, size_t prompt_bytes,
                  int32_t index);

  // Chat with tools: read calls out of the text in format f.
  void Tools(ToolCallFormat f);

  // echo: true (completions). The response text starts with prompt_text;
  // with logprobs, the prompt's tokens come first: first_token (not scored:
  // null logprob) then the engine's prompt_logprobs.
  void Echo(std::string prompt_text, int32_t first_token);
  bool echoes() const { return echo_; }

  // stream: false: this builder's entry of "choices". REQUIRES: reason is kStop or kLength.
  nlohmann::json WholeChoice(const std::string& text, const std::vector<TokenLogprob>& logprobs, FinishReason reason,
                             const std::vector<TokenLogprob>& prompt_logprobs);
  // stream: false: the response object around choices (WholeChoice of each, by index).
  nlohmann::json Whole(nlohmann::json choices, const Usage& usage) const;
  // stream: true, echo: the chunk with the prompt (before any Delta).
  nlohmann::json EchoDelta(const std::vector<TokenLogprob>& prompt_logprobs);

  // stream: true. First (chat only: the assistant role announcement; nothing
  // for completions), then Delta per piece of text (null: nothing to send
  // yet, the text may be a tool call), then the Finish chunks, then — if the
  // client asked for it — UsageChunk.
  bool HasFirst() const;
  nlohmann::json First() const;
  nlohmann::json Delta(const std::string& text, const std::vector<TokenLogprob>& logprobs);
  std::vector<nlohmann::json> Finish(FinishReason reason);
  nlohmann::json UsageChunk(const Usage& usage) const;

  // "data: <json>\n\n"; invalid UTF-8 is replaced.
  static std::string Sse(const nlohmann::json& chunk);
  // Compact JSON; invalid UTF-8 (e.g. from a model's name) is replaced, never thrown.
  static std::string Dump(const nlohmann::json& j);
  static nlohmann::json UsageJson(const Usage& usage);

 private:
  nlohmann::json Envelope(bool chunk) const;
  nlohmann::json Choice(nlohmann::json body, const nlohmann::json& logprobs, const nlohmann::json& finish) const;
  // null when logprobs were not requested.
  nlohmann::json Logprobs(const std::vector<TokenLogprob>& logprobs);
  nlohmann::json CompletionLogprobs(const std::vector<TokenLogprob>& logprobs);
  nlohmann::json ChatLogprobs(const std::vector<TokenLogprob>& logprobs) const;
  // The tool_calls array of calls.
  nlohmann::json ToolCallsJson(const std::vector<ToolCall>& calls) const;
  // The echoed prompt's tokens, for CompletionLogprobs (offsets from 0).
  std::vector<TokenLogprob> EchoTokens(const std::vector<TokenLogprob>& prompt_logprobs) const;

  Endpoint endpoint_;
  int32_t index_;
  bool include_usage_;
  int32_t top_logprobs_;
  ResponseIdentity identity_;
  const Vocab& vocab_;
  bool echo_ = false;
  std::string echo_text_;
  int32_t echo_first_ = -1;
  size_t text_offset_;
  std::optional<ToolCallStream> tools_;  // chat with tools
  std::vector<TokenLogprob> held_logprobs_;  // stream: of text the tool-call stream holds
};

}  // namespace strata::server
