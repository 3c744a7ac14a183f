// libFuzzer target for the server's request boundary: arbitrary bytes as the
// JSON body of /v1/completions and /v1/chat/completions. ParseApiRequest must
// never crash or throw, and aborts on any broken property:
//   - a rejected body names a client-facing reason, and its OpenAI error JSON
//     renders (whatever bytes the reason quotes);
//   - an accepted request is within the documented ranges, and every chat
//     template renders its messages.
//   ./build-fuzz/request_fuzz -max_total_time=60
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "kv/session_file.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/chat_template.h"

namespace {

using strata::server::ApiRequest;
using strata::server::Endpoint;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "request_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

void CheckAccepted(const ApiRequest& r, const strata::server::RequestLimits& limits) {
  Check(!r.max_tokens || (*r.max_tokens >= 0 && *r.max_tokens <= limits.max_tokens_limit), "max_tokens in range");
  Check(!r.temperature || (*r.temperature >= 0 && *r.temperature <= 2), "temperature in [0, 2]");
  Check(!r.top_p || (*r.top_p >= 0 && *r.top_p <= 1), "top_p in [0, 1]");
  Check(!r.min_p || (*r.min_p >= 0 && *r.min_p <= 1), "min_p in [0, 1]");
  Check(!r.repeat_penalty || (std::isfinite(*r.repeat_penalty) && *r.repeat_penalty > 0), "repeat_penalty > 0");
  Check(!r.top_k || *r.top_k >= 0, "top_k >= 0");
  Check(r.logprobs >= -1 && r.logprobs <= strata::server::kMaxLogprobs, "logprobs in range");
  Check(r.stop.size() <= strata::server::kMaxStops, "at most kMaxStops stops");
  for (const std::string& s : r.stop) Check(!s.empty(), "stop strings non-empty");
  for (const auto* pen : {&r.frequency_penalty, &r.presence_penalty})
    Check(!*pen || (**pen >= -2 && **pen <= 2), "penalties in [-2, 2]");
  for (size_t i = 0; i < r.logit_bias.size(); ++i) {
    const auto& [id, bias] = r.logit_bias[i];
    Check(id >= 0 && (i == 0 || r.logit_bias[i - 1].first < id), "logit_bias ids non-negative, one entry each");
    Check(bias == -std::numeric_limits<float>::infinity() || (bias >= -100 && bias <= 100), "biases in range");
  }
  Check(r.stop_token_ids.size() <= strata::server::kMaxStopTokenIds, "stop token ids bounded");
  for (int32_t id : r.stop_token_ids) Check(id >= 0, "stop token ids non-negative");
  Check(r.min_tokens >= 0 && (!r.max_tokens || r.min_tokens <= *r.max_tokens), "min_tokens in range");
  Check(r.session.empty() || strata::IsValidSessionName(r.session), "a session id names no path");
  if (r.endpoint == Endpoint::kCompletions) {
    Check(r.chat.messages.empty(), "completions have no messages");
    Check(!r.prompts.empty(), "completions have a prompt");
    Check(r.n >= 1 && r.prompts.size() * r.n <= static_cast<size_t>(strata::server::kMaxChoices), "choices bounded");
    for (const auto& p : r.prompts) {
      Check(!p.is_ids || !p.ids.empty(), "an id prompt has ids");
      for (int32_t id : p.ids) Check(id >= 0, "token ids non-negative");
    }
    return;
  }
  Check(!r.chat.messages.empty(), "chat has messages");
  for (const auto& m : r.chat.messages) {
    const std::string role = m.value("role", "");
    Check(role == "system" || role == "user" || role == "assistant" || role == "tool", "roles normalized");
    Check(m["content"].is_string() || (role == "assistant" && m["content"].is_null()), "content normalized");
  }
  Check(r.chat.tools.is_null() || (r.chat.tools.is_array() && !r.chat.tools.empty()), "tools null or non-empty");
  for (const std::string& name : strata::server::ChatTemplate::Names()) {
    strata::server::ChatTemplate t;
    Check(strata::server::ChatTemplate::FromName(name, "", "", &t).ok(), "every listed template exists");
    std::string text;
    const strata::Status s = t.Apply(r.chat, &text);
    Check(s.ok() ? !text.empty() : s.code() == strata::StatusCode::kInvalidArgument,
          "a rendering is never empty; a refusal is kInvalidArgument");
  }
  // A Jinja template renders whatever the request holds, or refuses it.
  static const strata::server::ChatTemplate* jinja = [] {
    auto* t = new strata::server::ChatTemplate();
    Check(strata::server::ChatTemplate::FromJinja(
              "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% if m.tool_calls %}{{ m.tool_calls|tojson }}"
              "{% endif %}{% endfor %}{% if tools %}{{ tools|tojson(indent=2) }}{% endif %}<|assistant|>",
              "", "<s>", "</s>", t)
              .ok(),
          "the fuzz Jinja template parses");
    return t;
  }();
  std::string text;
  const strata::Status s = jinja->Apply(r.chat, &text);
  Check(s.ok() || s.code() == strata::StatusCode::kInvalidArgument, "Jinja renders or refuses");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const strata::server::RequestLimits limits{4096};
  for (Endpoint e : {Endpoint::kCompletions, Endpoint::kChat}) {
    ApiRequest r;
    std::string param;
    const strata::Status s = strata::server::ParseApiRequest(e, body, limits, &r, &param);
    if (s.ok()) {
      Check(r.endpoint == e, "endpoint kept");
      CheckAccepted(r, limits);
    } else {
      Check(s.code() == strata::StatusCode::kInvalidArgument, "rejections are kInvalidArgument");
      Check(!s.message().empty(), "rejections say why");
      Check(!strata::server::ApiError::InvalidRequest(s.message(), param).ToJson().empty(), "error JSON renders");
    }
  }
  return 0;
}
