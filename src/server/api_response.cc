#include "server/api_response.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace strata::server {

using nlohmann::json;

ResponseBuilder::ResponseBuilder(const ApiRequest& request, ResponseIdentity identity, const Vocab& vocab,
                                 size_t prompt_bytes, int32_t index)
    : endpoint_(request.endpoint),
      index_(index),
      include_usage_(request.stream && request.include_usage),
      top_logprobs_(request.logprobs),
      identity_(std::move(identity)),
      vocab_(vocab),
      text_offset_(prompt_bytes) {}

json ResponseBuilder::UsageJson(const Usage& usage) {
  json j = {{"prompt_tokens", usage.prompt_tokens},
            {"completion_tokens", usage.completion_tokens},
            {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
  if (usage.cached_tokens) j["prompt_tokens_details"] = {{"cached_tokens", *usage.cached_tokens}};
  return j;
}

std::string ResponseBuilder::Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string ResponseBuilder::Sse(const json& chunk) {
  return "data: " + Dump(chunk) + "\n\n";
}

json ResponseBuilder::Envelope(bool chunk) const {
  const char* object = endpoint_ == Endpoint::kCompletions ? "text_completion"
                       : chunk                             ? "chat.completion.chunk"
                                                           : "chat.completion";
  json j = {{"id", identity_.id}, {"object", object}, {"created", identity_.created}, {"model", identity_.model}};
  // OpenAI marks every chunk's usage null when a usage chunk will follow.
  if (chunk && include_usage_) j["usage"] = nullptr;
  return j;
}

json ResponseBuilder::Choice(json body, const json& logprobs, const json& finish) const {
  body["index"] = index_;
  body["logprobs"] = logprobs;
  body["finish_reason"] = finish;
  return body;
}

void ResponseBuilder::Tools(ToolCallFormat f) { tools_.emplace(f); }

json ResponseBuilder::ToolCallsJson(const std::vector<ToolCall>& calls) const {
  json a = json::array();
  const std::string tail = identity_.id.substr(identity_.id.find('-') + 1);
  for (size_t i = 0; i < calls.size(); ++i) {
    a.push_back({{"index", i},
                 {"id", fmt::format("call_{}_{}_{}", tail, index_, i)},
                 {"type", "function"},
                 {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments}}}});
  }
  return a;
}

void ResponseBuilder::Echo(std::string prompt_text, int32_t first_token) {
  echo_ = true;
  echo_text_ = std::move(prompt_text);
  echo_first_ = first_token;
}

std::vector<TokenLogprob> ResponseBuilder::EchoTokens(const std::vector<TokenLogprob>& prompt_logprobs) const {
  std::vector<TokenLogprob> tokens;
  if (echo_first_ >= 0) {
    TokenLogprob first;
    first.id = echo_first_;
    first.text = vocab_.TokenToPiece(echo_first_);
    first.logprob = std::numeric_limits<float>::quiet_NaN();  // nothing before it to score it
    tokens.push_back(std::move(first));
  }
  tokens.insert(tokens.end(), prompt_logprobs.begin(), prompt_logprobs.end());
  return tokens;
}

json ResponseBuilder::EchoDelta(const std::vector<TokenLogprob>& prompt_logprobs) {
  const size_t completion_offset = text_offset_;
  text_offset_ = 0;
  json j = Envelope(true);
  j["choices"] = json::array({Choice({{"text", echo_text_}}, Logprobs(EchoTokens(prompt_logprobs)), nullptr)});
  text_offset_ = completion_offset;
  return j;
}

json ResponseBuilder::WholeChoice(const std::string& text, const std::vector<TokenLogprob>& logprobs,
                                  FinishReason reason, const std::vector<TokenLogprob>& prompt_logprobs) {
  json lp;
  if (echo_ && top_logprobs_ >= 0) {
    const size_t completion_offset = text_offset_;
    text_offset_ = 0;
    lp = Logprobs(EchoTokens(prompt_logprobs));
    text_offset_ = completion_offset;
    const json rest = Logprobs(logprobs);
    for (const char* key : {"tokens", "token_logprobs", "top_logprobs", "text_offset"})
      for (const json& v : rest[key]) lp[key].push_back(v);
  } else {
    lp = Logprobs(logprobs);
  }
  std::string content;
  std::vector<ToolCall> calls;
  if (tools_ && reason == FinishReason::kStop && ParseToolCalls(tools_->format(), text, &content, &calls)) {
    json message = {{"role", "assistant"}, {"content", content.empty() ? json(nullptr) : json(content)},
                    {"tool_calls", ToolCallsJson(calls)}};
    return Choice({{"message", std::move(message)}}, lp, "tool_calls");
  }
  json body = endpoint_ == Endpoint::kCompletions
                  ? json{{"text", echo_ ? echo_text_ + text : text}}
                  : json{{"message", {{"role", "assistant"}, {"content", text}}}};
  return Choice(std::move(body), lp, FinishReasonName(reason));
}

json ResponseBuilder::Whole(json choices, const Usage& usage) const {
  json j = Envelope(false);
  j["choices"] = std::move(choices);
  j["usage"] = UsageJson(usage);
  return j;
}

bool ResponseBuilder::HasFirst() const { return endpoint_ == Endpoint::kChat; }

json ResponseBuilder::First() const {
  json j = Envelope(true);
  j["choices"] = json::array({Choice({{"delta", {{"role", "assistant"}, {"content", ""}}}}, nullptr, nullptr)});
  return j;
}

json ResponseBuilder::Delta(const std::string& text, const std::vector<TokenLogprob>& logprobs) {
  if (tools_) {
    // Send only what certainly is no tool call; its logprobs go with it.
    held_logprobs_.insert(held_logprobs_.end(), logprobs.begin(), logprobs.end());
    const std::string sendable = tools_->Push(text);
    if (sendable.empty()) return nullptr;
    json j = Envelope(true);
    j["choices"] = json::array({Choice({{"delta", {{"content", sendable}}}}, Logprobs(held_logprobs_), nullptr)});
    held_logprobs_.clear();
    return j;
  }
  json j = Envelope(true);
  json body = endpoint_ == Endpoint::kCompletions ? json{{"text", text}} : json{{"delta", {{"content", text}}}};
  j["choices"] = json::array({Choice(std::move(body), Logprobs(logprobs), nullptr)});
  return j;
}

std::vector<json> ResponseBuilder::Finish(FinishReason reason) {
  std::vector<json> chunks;
  auto chunk = [&](json body, json logprobs, json finish) {
    json j = Envelope(true);
    j["choices"] = json::array({Choice(std::move(body), logprobs, finish)});
    chunks.push_back(std::move(j));
  };
  json finish = FinishReasonName(reason);
  if (tools_) {
    std::string content;
    std::vector<ToolCall> calls;
    if (reason == FinishReason::kStop && ParseToolCalls(tools_->format(), tools_->held(), &content, &calls)) {
      if (!content.empty()) chunk({{"delta", {{"content", content}}}}, nullptr, nullptr);
      chunk({{"delta", {{"tool_calls", ToolCallsJson(calls)}}}}, Logprobs(held_logprobs_), nullptr);
      finish = "tool_calls";
    } else if (!tools_->held().empty() || !held_logprobs_.empty()) {
      chunk({{"delta", {{"content", tools_->held()}}}}, Logprobs(held_logprobs_), nullptr);
    }
    held_logprobs_.clear();
  }
  json body = endpoint_ == Endpoint::kCompletions ? json{{"text", ""}} : json{{"delta", json::object()}};
  chunk(std::move(body), nullptr, finish);
  return chunks;
}

json ResponseBuilder::UsageChunk(const Usage& usage) const {
  json j = Envelope(true);
  j["choices"] = json::array();
  j["usage"] = UsageJson(usage);
  return j;
}

json ResponseBuilder::Logprobs(const std::vector<TokenLogprob>& logprobs) {
  if (top_logprobs_ < 0) return nullptr;
  return endpoint_ == Endpoint::kCompletions ? CompletionLogprobs(logprobs) : ChatLogprobs(logprobs);
}

json ResponseBuilder::CompletionLogprobs(const std::vector<TokenLogprob>& logprobs) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const TokenLogprob& lp : logprobs) {
    tokens.push_back(lp.text);
    if (std::isnan(lp.logprob)) {  // an echoed prompt's first token: unscored
      token_logprobs.push_back(nullptr);
      top.push_back(nullptr);
    } else {
      token_logprobs.push_back(lp.logprob);
      json alternatives = json::object();
      for (const auto& [id, logprob] : lp.top) alternatives[vocab_.TokenToPiece(id)] = logprob;
      top.push_back(std::move(alternatives));
    }
    offsets.push_back(text_offset_);
    text_offset_ += lp.text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

namespace {

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

json ResponseBuilder::ChatLogprobs(const std::vector<TokenLogprob>& logprobs) const {
  json content = json::array();
  for (const TokenLogprob& lp : logprobs) {
    json top = json::array();
    for (const auto& [id, logprob] : lp.top) {
      const std::string piece = vocab_.TokenToPiece(id);
      top.push_back({{"token", piece}, {"logprob", logprob}, {"bytes", Bytes(piece)}});
    }
    content.push_back({{"token", lp.text}, {"logprob", lp.logprob}, {"bytes", Bytes(lp.text)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

}  // namespace strata::server
