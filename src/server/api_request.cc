#include "server/api_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>
#include <nlohmann/json.hpp>

#include "grammar/json_schema_gbnf.h"
#include "grammar/regex_gbnf.h"
#include "kv/session_file.h"

namespace strata::server {
namespace {

// Ordered: message and tool objects reach the chat template in the client's
// key order (tojson writes them in that order, as Python would).
using json = nlohmann::ordered_json;

// Reads typed, range-checked fields of one JSON object; the first failure
// names its field in *bad_param.
class Fields {
 public:
  Fields(const json& obj, std::string* bad_param) : obj_(obj), bad_param_(bad_param) {}

  // The field's value, or nullptr if absent or null (null means "default").
  const json* Get(const char* key) const {
    read_.insert(key);
    const auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  // The object's keys no Get asked for, in the client's order.
  std::vector<std::string> Unread() const {
    std::vector<std::string> keys;
    for (const auto& [key, value] : obj_.items())
      if (read_.count(key) == 0) keys.push_back(key);
    return keys;
  }

  Status Fail(const std::string& param, const std::string& message) const {
    *bad_param_ = param;
    return Status::InvalidArgument(message);
  }

  Status Number(const char* key, double lo, double hi, float* out) const {
    const json* v = Get(key);
    if (v == nullptr) return Status::Ok();
    if (!v->is_number()) return Fail(key, fmt::format("'{}' must be a number", key));
    const double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
      return Fail(key, fmt::format("'{}' must be between {} and {}", key, lo, hi));
    *out = static_cast<float>(d);
    return Status::Ok();
  }

  // As Number; *out stays empty when the field is absent.
  Status Number(const char* key, double lo, double hi, std::optional<float>* out) const {
    if (Get(key) == nullptr) return Status::Ok();
    float x = 0;
    STRATA_RETURN_IF_ERROR(Number(key, lo, hi, &x));
    *out = x;
    return Status::Ok();
  }

  // *present (if given) says whether the field was there.
  Status Int(const char* key, int64_t lo, int64_t hi, int64_t* out, bool* present = nullptr) const {
    const json* v = Get(key);
    if (present != nullptr) *present = v != nullptr;
    if (v == nullptr) return Status::Ok();
    if (!v->is_number_integer()) return Fail(key, fmt::format("'{}' must be an integer", key));
    const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi);
    const int64_t i = too_big ? hi : v->get<int64_t>();
    if (too_big || i < lo || i > hi) return Fail(key, fmt::format("'{}' must be between {} and {}", key, lo, hi));
    *out = i;
    return Status::Ok();
  }

  Status Bool(const char* key, bool* out) const {
    const json* v = Get(key);
    if (v == nullptr) return Status::Ok();
    if (!v->is_boolean()) return Fail(key, fmt::format("'{}' must be a boolean", key));
    *out = v->get<bool>();
    return Status::Ok();
  }

  // A field strata accepts only at its neutral value.
  Status Neutral(const char* key, const json& neutral, const std::string& what) const {
    const json* v = Get(key);
    if (v == nullptr || *v == neutral) return Status::Ok();
    return Fail(key, fmt::format("'{}' is not supported ({} only)", key, what));
  }

 private:
  const json& obj_;
  std::string* bad_param_;
  mutable std::set<std::string, std::less<>> read_;  // keys asked for
};

// repeat_penalty (llama.cpp's name) or repetition_penalty (vLLM's): > 0.
Status ParseRepeatPenalty(const Fields& f, ApiRequest* out) {
  std::optional<float> llama, vllm;
  STRATA_RETURN_IF_ERROR(f.Number("repeat_penalty", 0, 100, &llama));
  STRATA_RETURN_IF_ERROR(f.Number("repetition_penalty", 0, 100, &vllm));
  if (llama && vllm && *llama != *vllm)
    return f.Fail("repetition_penalty", "'repeat_penalty' and 'repetition_penalty' are the same setting; send one");
  out->repeat_penalty = llama ? llama : vllm;
  if (out->repeat_penalty && *out->repeat_penalty <= 0)
    return f.Fail(llama ? "repeat_penalty" : "repetition_penalty",
                  fmt::format("'{}' must be greater than 0", llama ? "repeat_penalty" : "repetition_penalty"));
  return Status::Ok();
}

// Largest id a request may name (the vocabulary is checked later).
constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

// A token id: a non-negative integer, or (an object's key) its decimal text.
bool TokenIdOf(const json& v, int32_t* id) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(kMaxTokenId) : v.get<int64_t>() < 0)
      return false;
    *id = static_cast<int32_t>(v.get<int64_t>());
    return true;
  }
  if (!v.is_string()) return false;
  const std::string& t = v.get_ref<const std::string&>();
  if (t.empty() || t.size() > 10 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  const int64_t x = std::stoll(t);
  if (x > kMaxTokenId) return false;
  *id = static_cast<int32_t>(x);
  return true;
}

// A bias: a number in [-100, 100], or false (llama.cpp: the token is banned).
bool BiasOf(const json& v, float* bias) {
  if (v.is_boolean() && !v.get<bool>()) {
    *bias = -std::numeric_limits<float>::infinity();
    return true;
  }
  if (!v.is_number()) return false;
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < -100 || d > 100) return false;
  *bias = static_cast<float>(d);
  return true;
}

// logit_bias: OpenAI's {"token id": bias}, or llama.cpp's [[id, bias], ...].
Status ParseLogitBias(const Fields& f, ApiRequest* out) {
  const json* v = f.Get("logit_bias");
  if (v == nullptr) return Status::Ok();
  std::map<int32_t, float> bias;  // the last entry for an id wins
  auto add = [&](const json& id, const json& value) {
    int32_t t = 0;
    float b = 0;
    if (!TokenIdOf(id, &t))
      return f.Fail("logit_bias", fmt::format("'logit_bias' keys must be token ids (non-negative integers), not {}",
                                              id.dump().substr(0, 40)));
    if (!BiasOf(value, &b))
      return f.Fail("logit_bias", fmt::format("'logit_bias' values must be numbers between -100 and 100 (or false), "
                                              "not {}", value.dump().substr(0, 40)));
    bias[t] = b;
    return Status::Ok();
  };
  if (v->is_object()) {
    for (const auto& [key, value] : v->items()) STRATA_RETURN_IF_ERROR(add(json(key), value));
  } else if (v->is_array()) {
    for (const json& pair : *v) {
      if (!pair.is_array() || pair.size() != 2)
        return f.Fail("logit_bias", "'logit_bias' as an array holds [token id, bias] pairs");
      STRATA_RETURN_IF_ERROR(add(pair[0], pair[1]));
    }
  } else {
    return f.Fail("logit_bias", "'logit_bias' must be an object {\"token id\": bias} or an array of [id, bias]");
  }
  out->logit_bias.assign(bias.begin(), bias.end());
  return Status::Ok();
}

Status ParseStopTokenIds(const Fields& f, ApiRequest* out) {
  const json* v = f.Get("stop_token_ids");
  if (v == nullptr) return Status::Ok();
  if (!v->is_array()) return f.Fail("stop_token_ids", "'stop_token_ids' must be an array of token ids");
  if (v->size() > kMaxStopTokenIds)
    return f.Fail("stop_token_ids", fmt::format("'stop_token_ids' holds at most {} ids", kMaxStopTokenIds));
  for (const json& t : *v) {
    int32_t id = 0;
    if (!t.is_number_integer() || !TokenIdOf(t, &id))
      return f.Fail("stop_token_ids", "'stop_token_ids' must hold non-negative integers");
    out->stop_token_ids.push_back(id);
  }
  return Status::Ok();
}

// max_completion_tokens wins over max_tokens (OpenAI deprecated it), which
// wins over llama.cpp's n_predict (-1: as many as the context holds).
Status ParseMaxTokens(const Fields& f, const RequestLimits& limits, ApiRequest* out) {
  int64_t n = 0;
  bool present = false;
  STRATA_RETURN_IF_ERROR(f.Int("n_predict", -1, limits.max_tokens_limit, &n, &present));
  if (present && n >= 0) out->max_tokens = static_cast<int32_t>(n);
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    STRATA_RETURN_IF_ERROR(f.Int(key, 0, limits.max_tokens_limit, &n, &present));
    if (present) out->max_tokens = static_cast<int32_t>(n);
  }
  STRATA_RETURN_IF_ERROR(f.Int("min_tokens", 0, limits.max_tokens_limit, &n, &present));
  if (present) out->min_tokens = static_cast<int32_t>(n);
  if (out->max_tokens && out->min_tokens > *out->max_tokens)
    return f.Fail("min_tokens", fmt::format("'min_tokens' ({}) must not exceed the maximum of tokens ({})",
                                            out->min_tokens, *out->max_tokens));
  return f.Bool("ignore_eos", &out->ignore_eos);
}

Status ParseSeed(const Fields& f, ApiRequest* out) {
  const json* v = f.Get("seed");
  if (v == nullptr) return Status::Ok();
  if (!v->is_number_integer()) return f.Fail("seed", "'seed' must be an integer");
  out->seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
  return Status::Ok();
}

Status ParseStop(const Fields& f, ApiRequest* out) {
  const json* v = f.Get("stop");
  if (v == nullptr) return Status::Ok();
  if (v->is_string()) {
    if (v->get_ref<const std::string&>().empty()) return f.Fail("stop", "'stop' must not be an empty string");
    out->stop.push_back(v->get<std::string>());
    return Status::Ok();
  }
  if (!v->is_array()) return f.Fail("stop", "'stop' must be a string or an array of strings");
  if (v->size() > kMaxStops) return f.Fail("stop", fmt::format("'stop' holds at most {} strings", kMaxStops));
  for (const json& s : *v) {
    if (!s.is_string() || s.get_ref<const std::string&>().empty())
      return f.Fail("stop", "every 'stop' entry must be a non-empty string");
    out->stop.push_back(s.get<std::string>());
  }
  return Status::Ok();
}

Status ParseStream(const Fields& f, ApiRequest* out) {
  STRATA_RETURN_IF_ERROR(f.Bool("stream", &out->stream));
  const json* opts = f.Get("stream_options");
  if (opts == nullptr) return Status::Ok();
  if (!opts->is_object()) return f.Fail("stream_options", "'stream_options' must be an object");
  std::string inner_param;
  Status s = Fields(*opts, &inner_param).Bool("include_usage", &out->include_usage);
  if (!s.ok()) return f.Fail("stream_options.include_usage", s.message());
  return Status::Ok();
}

// `lora`: an adapter's id, or llama-server's [{"id": index or id, "scale": s}, ...].
Status ParseLora(const Fields& f, const json& lora, ApiRequest* out) {
  if (lora.is_string()) {
    out->lora = lora.get<std::string>();
    return Status::Ok();
  }
  const std::string what =
      "'lora' must be a LoRA adapter's id or an array of {\"id\": its index or id, \"scale\": a number}";
  if (!lora.is_array()) return f.Fail("lora", what);
  if (lora.size() > kMaxLoraScales) return f.Fail("lora", fmt::format("'lora' has more than {} entries", kMaxLoraScales));
  out->lora_is_array = true;
  for (size_t i = 0; i < lora.size(); ++i) {
    const json& e = lora[i];
    const std::string param = fmt::format("lora[{}]", i);
    if (!e.is_object()) return f.Fail(param, what);
    LoraScale ls;
    const auto id = e.find("id");
    if (id != e.end() && id->is_number_integer() && id->get<int64_t>() >= 0) {
      ls.index = id->get<int64_t>();
    } else if (id != e.end() && id->is_string() && !id->get<std::string>().empty()) {
      ls.id = id->get<std::string>();
    } else {
      return f.Fail(param + ".id", "a LoRA adapter's 'id' must be its index (an integer >= 0) or its id");
    }
    const auto scale = e.find("scale");
    if (scale == e.end() || !scale->is_number() || !std::isfinite(scale->get<double>()) ||
        std::abs(scale->get<double>()) > kMaxLoraScale)
      return f.Fail(param + ".scale",
                    fmt::format("a LoRA adapter's 'scale' must be a number between {} and {}", -kMaxLoraScale,
                                kMaxLoraScale));
    ls.scale = static_cast<float>(scale->get<double>());
    out->lora_scales.push_back(std::move(ls));
  }
  return Status::Ok();
}

// Fields common to both endpoints.
Status ParseCommon(const Fields& f, const RequestLimits& limits, ApiRequest* out) {
  if (const json* model = f.Get("model")) {
    if (!model->is_string()) return f.Fail("model", "'model' must be a string");
    out->model = model->get<std::string>();
  }
  if (const json* lora = f.Get("lora")) STRATA_RETURN_IF_ERROR(ParseLora(f, *lora, out));
  STRATA_RETURN_IF_ERROR(ParseMaxTokens(f, limits, out));
  STRATA_RETURN_IF_ERROR(f.Number("temperature", 0, 2, &out->temperature));
  STRATA_RETURN_IF_ERROR(f.Number("top_p", 0, 1, &out->top_p));
  STRATA_RETURN_IF_ERROR(f.Number("min_p", 0, 1, &out->min_p));
  STRATA_RETURN_IF_ERROR(ParseRepeatPenalty(f, out));
  int64_t top_k = 0;
  bool has_top_k = false;
  STRATA_RETURN_IF_ERROR(f.Int("top_k", 0, 1 << 24, &top_k, &has_top_k));
  if (has_top_k) out->top_k = static_cast<int32_t>(top_k);
  STRATA_RETURN_IF_ERROR(ParseSeed(f, out));
  STRATA_RETURN_IF_ERROR(ParseStop(f, out));
  STRATA_RETURN_IF_ERROR(ParseStream(f, out));
  STRATA_RETURN_IF_ERROR(f.Bool("speculative", &out->speculative));
  if (const json* user = f.Get("user"); user != nullptr && !user->is_string())
    return f.Fail("user", "'user' must be a string");
  int64_t n = 1;
  STRATA_RETURN_IF_ERROR(f.Int("n", 1, kMaxChoices, &n));
  out->n = static_cast<int32_t>(n);
  STRATA_RETURN_IF_ERROR(f.Number("frequency_penalty", -2, 2, &out->frequency_penalty));
  STRATA_RETURN_IF_ERROR(f.Number("presence_penalty", -2, 2, &out->presence_penalty));
  STRATA_RETURN_IF_ERROR(ParseLogitBias(f, out));
  STRATA_RETURN_IF_ERROR(ParseStopTokenIds(f, out));
  if (const json* s = f.Get("session")) {
    if (!s->is_string() || !IsValidSessionName(s->get<std::string>()))
      return f.Fail("session", "'session' must be a session id: 1 to 128 letters, digits, '.', '_' or '-', not "
                               "starting with '.'");
    out->session = s->get<std::string>();
  }
  return Status::Ok();
}

// One prompt: text, or token ids (each in [0, 2^31)).
Status ParsePromptValue(const Fields& f, const json& v, PromptInput* out) {
  if (v.is_string()) {
    out->text = v.get<std::string>();
    return Status::Ok();
  }
  if (!v.is_array()) return f.Fail("prompt", "'prompt' must be a string or an array of token ids");
  out->is_ids = true;
  for (const json& t : v) {
    if (!t.is_number_integer() || (!t.is_number_unsigned() && t.get<int64_t>() < 0) ||
        (t.is_number_unsigned() && t.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())))
      return f.Fail("prompt", "token ids in 'prompt' must be non-negative integers");
    out->ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  if (out->ids.empty()) return f.Fail("prompt", "'prompt' must not be an empty array");
  return Status::Ok();
}

// A prompt, or a batch: an array of strings or of token-id arrays (an array
// of integers is one prompt of token ids).
Status ParsePrompt(const Fields& f, ApiRequest* out) {
  const json* v = f.Get("prompt");
  if (v == nullptr) return f.Fail("prompt", "'prompt' is required");
  const bool batch = v->is_array() && !v->empty() && ((*v)[0].is_string() || (*v)[0].is_array());
  if (!batch) return ParsePromptValue(f, *v, &out->prompts.emplace_back());
  if (v->size() * static_cast<size_t>(out->n) > static_cast<size_t>(kMaxChoices))
    return f.Fail("prompt", fmt::format("'prompt' holds {} prompts and n is {}: at most {} choices per request",
                                        v->size(), out->n, kMaxChoices));
  for (const json& p : *v) {
    if (!p.is_string() && !p.is_array())
      return f.Fail("prompt", "a batch of prompts holds strings or arrays of token ids");
    STRATA_RETURN_IF_ERROR(ParsePromptValue(f, p, &out->prompts.emplace_back()));
  }
  return Status::Ok();
}

Status ParseCompletionFields(const Fields& f, ApiRequest* out) {
  STRATA_RETURN_IF_ERROR(ParsePrompt(f, out));
  int64_t logprobs = 0;
  bool present = false;
  STRATA_RETURN_IF_ERROR(f.Int("logprobs", 0, kMaxLogprobs, &logprobs, &present));
  if (present) out->logprobs = static_cast<int32_t>(logprobs);
  STRATA_RETURN_IF_ERROR(f.Bool("echo", &out->echo));
  STRATA_RETURN_IF_ERROR(f.Neutral("best_of", 1, "1"));
  return f.Neutral("suffix", "", "\"\"");
}

// content: a string, or an array of text parts (concatenated).
Status ParseContent(const Fields& f, const json& content, const std::string& param, std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) return f.Fail(param, "message content must be a string or an array of text parts");
  for (const json& part : content) {
    const auto type = part.is_object() ? part.find("type") : json::const_iterator();
    if (!part.is_object() || type == part.end() || !type->is_string())
      return f.Fail(param, "each content part must be an object with a 'type'");
    if (*type != "text")
      return f.Fail(param, fmt::format("content parts of type '{}' are not supported", type->get<std::string>()));
    const auto text = part.find("text");
    if (text == part.end() || !text->is_string()) return f.Fail(param, "a text content part needs a string 'text'");
    *out += text->get<std::string>();
  }
  return Status::Ok();
}

// One message, normalized for the chat template: developer -> system,
// content parts joined into a string; every other field kept as sent.
Status ParseMessage(const Fields& f, const json& m, size_t i, json* out) {
  const std::string param = fmt::format("messages[{}]", i);
  if (!m.is_object()) return f.Fail(param, "each message must be an object");
  const auto role_it = m.find("role");
  if (role_it == m.end() || !role_it->is_string()) return f.Fail(param + ".role", "each message needs a string 'role'");
  std::string role = role_it->get<std::string>();
  if (role == "developer") role = "system";
  if (role != "system" && role != "user" && role != "assistant" && role != "tool")
    return f.Fail(param + ".role", fmt::format("message role '{}' is not supported (system, developer, user, "
                                               "assistant, tool)", role));
  const auto tool_calls = m.find("tool_calls");
  if (tool_calls != m.end() && !tool_calls->is_null()) {
    if (role != "assistant") return f.Fail(param + ".tool_calls", "only assistant messages have 'tool_calls'");
    if (!tool_calls->is_array()) return f.Fail(param + ".tool_calls", "'tool_calls' must be an array");
    for (const json& call : *tool_calls)
      if (!call.is_object()) return f.Fail(param + ".tool_calls", "each tool call must be an object");
  }
  if (const auto id = m.find("tool_call_id"); id != m.end() && !id->is_string() && !id->is_null())
    return f.Fail(param + ".tool_call_id", "'tool_call_id' must be a string");
  *out = m;
  (*out)["role"] = role;
  const auto content = m.find("content");
  // An assistant turn that only called tools has null content.
  if (content == m.end() || content->is_null()) {
    if (role != "assistant") return f.Fail(param + ".content", "the message has no 'content'");
    (*out)["content"] = nullptr;
    return Status::Ok();
  }
  std::string text;
  STRATA_RETURN_IF_ERROR(ParseContent(f, *content, param + ".content", &text));
  (*out)["content"] = std::move(text);
  return Status::Ok();
}

// tools: OpenAI function tools, each {"type": "function", "function":
// {"name": ..., ...}}; tool_choice "auto" (default), "none", "required" or
// {"type": "function", "function": {"name": ...}}; parallel_tool_calls.
Status ParseTools(const Fields& f, ChatConversation* chat, ToolChoice* choice, std::string* tool_name,
                  bool* parallel) {
  if (const json* v = f.Get("functions"); v != nullptr && !(v->is_array() && v->empty()))
    return f.Fail("functions", "'functions' (deprecated) is not supported; use 'tools'");
  const json* tools = f.Get("tools");
  if (tools != nullptr) {
    if (!tools->is_array()) return f.Fail("tools", "'tools' must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string param = fmt::format("tools[{}]", i);
      if (!t.is_object() || t.value("type", json()) != "function")
        return f.Fail(param, "each tool must be an object with \"type\": \"function\"");
      const auto fn = t.find("function");
      if (fn == t.end() || !fn->is_object() || !fn->contains("name") || !(*fn)["name"].is_string())
        return f.Fail(param + ".function", "a function tool needs a 'function' object with a string 'name'");
      if (const auto p = fn->find("parameters"); p != fn->end() && !p->is_null() && !p->is_object() && !p->is_boolean())
        return f.Fail(param + ".function.parameters", "'parameters' must be a JSON schema");
    }
    if (!tools->empty()) chat->tools = *tools;
  }
  *choice = ToolChoice::kAuto;
  if (const json* c = f.Get("tool_choice")) {
    if (*c == "none") {
      *choice = ToolChoice::kNone;
    } else if (*c == "required") {
      *choice = ToolChoice::kRequired;
    } else if (c->is_object()) {
      const auto fn = c->find("function");
      if (c->value("type", json()) != "function" || fn == c->end() || !fn->is_object() ||
          !fn->contains("name") || !(*fn)["name"].is_string())
        return f.Fail("tool_choice", "a named 'tool_choice' is {\"type\": \"function\", \"function\": {\"name\": ...}}");
      *choice = ToolChoice::kFunction;
      *tool_name = (*fn)["name"].get<std::string>();
    } else if (*c != "auto") {
      return f.Fail("tool_choice", "'tool_choice' is \"auto\", \"none\", \"required\" or a named function");
    }
  }
  if (*choice == ToolChoice::kNone) chat->tools = nullptr;  // the model is not to call tools: it does not see them
  if ((*choice == ToolChoice::kRequired || *choice == ToolChoice::kFunction) && chat->tools.is_null())
    return f.Fail("tool_choice", "'tool_choice' asks for a tool call but the request has no 'tools'");
  if (*choice == ToolChoice::kFunction) {
    bool known = false;
    for (const json& t : chat->tools) known |= t["function"]["name"] == *tool_name;
    if (!known) return f.Fail("tool_choice", fmt::format("'tool_choice' names '{}', which is not in 'tools'", *tool_name));
  }
  return f.Bool("parallel_tool_calls", parallel);
}

// messages, tools, tool_choice, parallel_tool_calls, chat_template_kwargs.
Status ParseConversation(const Fields& f, ChatConversation* out, ToolChoice* choice, std::string* tool_name,
                         bool* parallel) {
  const json* messages = f.Get("messages");
  if (messages == nullptr) return f.Fail("messages", "'messages' is required");
  if (!messages->is_array() || messages->empty()) return f.Fail("messages", "'messages' must be a non-empty array");
  for (size_t i = 0; i < messages->size(); ++i) {
    json m;
    STRATA_RETURN_IF_ERROR(ParseMessage(f, (*messages)[i], i, &m));
    out->messages.push_back(std::move(m));
  }
  STRATA_RETURN_IF_ERROR(ParseTools(f, out, choice, tool_name, parallel));
  if (const json* kwargs = f.Get("chat_template_kwargs")) {
    if (!kwargs->is_object()) return f.Fail("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    out->variables = *kwargs;
  }
  return Status::Ok();
}

Status ParseChatFields(const Fields& f, ApiRequest* out) {
  STRATA_RETURN_IF_ERROR(
      ParseConversation(f, &out->chat, &out->tool_choice, &out->tool_name, &out->parallel_tool_calls));
  bool logprobs = false;
  STRATA_RETURN_IF_ERROR(f.Bool("logprobs", &logprobs));
  int64_t top = 0;
  bool has_top = false;
  STRATA_RETURN_IF_ERROR(f.Int("top_logprobs", 0, kMaxLogprobs, &top, &has_top));
  if (has_top && !logprobs) return f.Fail("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  if (logprobs) out->logprobs = static_cast<int32_t>(top);
  return Status::Ok();
}

// response_format: text (nothing), json_object (optionally with llama.cpp's
// "schema"), or json_schema {"json_schema": {"schema": ...}}.
Status ParseResponseFormat(const Fields& f, const json& v, std::string* gbnf) {
  const char* param = "response_format";
  const auto type = v.is_object() ? v.find("type") : json::const_iterator();
  if (!v.is_object() || type == v.end() || !type->is_string())
    return f.Fail(param, "'response_format' must be an object with a string 'type'");
  const json* schema = nullptr;
  if (*type == "text") return Status::Ok();
  if (*type == "json_object") {
    if (const auto it = v.find("schema"); it != v.end() && !it->is_null()) schema = &*it;
  } else if (*type == "json_schema") {
    const auto js = v.find("json_schema");
    if (js == v.end() || !js->is_object())
      return f.Fail(param, "'response_format' of type json_schema needs a 'json_schema' object");
    if (const auto it = js->find("schema"); it != js->end() && !it->is_null()) schema = &*it;
  } else {
    return f.Fail(param, fmt::format("'response_format' type '{}' is not supported (text, json_object, json_schema)",
                                     type->get<std::string>()));
  }
  if (schema == nullptr) {
    *gbnf = grammar::JsonObjectGrammar();
    return Status::Ok();
  }
  if (Status s = grammar::JsonSchemaGrammar(*schema, gbnf); !s.ok())
    return f.Fail(param, "the JSON schema " + s.message());
  return Status::Ok();
}

// Structured output: one of grammar (GBNF), json_schema (llama.cpp's),
// response_format (OpenAI's), guided_json / guided_regex / guided_choice (vLLM's).
Status ParseStructuredOutput(const Fields& f, ApiRequest* out) {
  for (const char* key : {"grammar", "json_schema", "response_format", "guided_json", "guided_regex", "guided_choice"}) {
    const json* v = f.Get(key);
    if (v == nullptr) continue;
    std::string gbnf;
    const std::string k = key;
    if (k == "grammar") {
      if (!v->is_string()) return f.Fail(key, "'grammar' must be a string (a GBNF grammar)");
      gbnf = v->get<std::string>();
      if (gbnf.empty()) continue;
    } else if (k == "json_schema" || k == "guided_json") {
      json schema = *v;
      if (k == "guided_json" && v->is_string()) {  // vLLM takes the schema as JSON text too
        try {
          schema = json::parse(v->get<std::string>());
        } catch (const json::exception&) {
          return f.Fail(key, "'guided_json' as a string must hold a JSON schema");
        }
      }
      if (Status s = grammar::JsonSchemaGrammar(schema, &gbnf); !s.ok())
        return f.Fail(key, "the JSON schema " + s.message());
    } else if (k == "response_format") {
      STRATA_RETURN_IF_ERROR(ParseResponseFormat(f, *v, &gbnf));
      if (gbnf.empty()) continue;
    } else if (k == "guided_regex") {
      if (!v->is_string()) return f.Fail(key, "'guided_regex' must be a string");
      if (Status s = grammar::RegexGrammar(v->get<std::string>(), &gbnf); !s.ok()) return f.Fail(key, s.message());
    } else {
      std::vector<std::string> choices;
      if (v->is_array())
        for (const json& c : *v)
          if (c.is_string()) choices.push_back(c.get<std::string>());
      if (!v->is_array() || v->empty() || choices.size() != v->size())
        return f.Fail(key, "'guided_choice' must be a non-empty array of strings");
      gbnf = grammar::ChoiceGrammar(choices);
    }
    if (!out->grammar.empty())
      return f.Fail(key, fmt::format("'{}' and '{}' both constrain the output; send one", out->grammar_param, key));
    out->grammar = std::move(gbnf);
    out->grammar_param = key;
  }
  return Status::Ok();
}

// Deepest nesting of arrays and objects a body may have: JSON values are
// copied and rendered recursively (tool schemas nest a few levels).
constexpr int kMaxJsonDepth = 64;

// The deepest nesting of [ and { in text, outside strings.
int JsonDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// The body as a JSON object.
Status ParseBody(std::string_view body, json* doc) {
  if (JsonDepth(body) > kMaxJsonDepth)
    return Status::InvalidArgument(fmt::format("the body nests deeper than {} levels", kMaxJsonDepth));
  try {
    *doc = json::parse(body);
  } catch (const json::exception& e) {
    return Status::InvalidArgument(fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!doc->is_object()) return Status::InvalidArgument("the body must be a JSON object");
  return Status::Ok();
}

}  // namespace

Status ParseChatConversation(std::string_view body, ChatConversation* out, std::string* bad_param) {
  bad_param->clear();
  json doc;
  STRATA_RETURN_IF_ERROR(ParseBody(body, &doc));
  *out = ChatConversation();
  ToolChoice choice;
  std::string name;
  bool parallel = true;
  return ParseConversation(Fields(doc, bad_param), out, &choice, &name, &parallel);
}

Status ParseApiRequest(Endpoint endpoint, std::string_view body, const RequestLimits& limits, ApiRequest* out,
                       std::string* bad_param) {
  bad_param->clear();
  // JSON text holds no raw NUL; the parser would stop at one and ignore the rest.
  if (body.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("the body is not valid JSON: it contains a NUL byte");
  json doc;
  STRATA_RETURN_IF_ERROR(ParseBody(body, &doc));
  *out = ApiRequest();
  out->endpoint = endpoint;
  const Fields f(doc, bad_param);
  STRATA_RETURN_IF_ERROR(ParseCommon(f, limits, out));
  STRATA_RETURN_IF_ERROR(ParseStructuredOutput(f, out));
  STRATA_RETURN_IF_ERROR(endpoint == Endpoint::kCompletions ? ParseCompletionFields(f, out) : ParseChatFields(f, out));
  out->unknown_fields = f.Unread();
  return Status::Ok();
}

Status ParseTokenizeRequest(std::string_view body, TokenizeRequest* out, std::string* bad_param) {
  bad_param->clear();
  json doc;
  STRATA_RETURN_IF_ERROR(ParseBody(body, &doc));
  *out = TokenizeRequest();
  const Fields f(doc, bad_param);
  const json* content = f.Get("content");
  if (content == nullptr || !content->is_string()) return f.Fail("content", "'content' must be a string");
  out->content = content->get<std::string>();
  STRATA_RETURN_IF_ERROR(f.Bool("add_special", &out->add_special));
  STRATA_RETURN_IF_ERROR(f.Bool("parse_special", &out->parse_special));
  return f.Bool("with_pieces", &out->with_pieces);
}

Status ParseDetokenizeRequest(std::string_view body, int32_t n_vocab, std::vector<int32_t>* tokens,
                              std::string* bad_param) {
  bad_param->clear();
  json doc;
  STRATA_RETURN_IF_ERROR(ParseBody(body, &doc));
  tokens->clear();
  const Fields f(doc, bad_param);
  const json* ids = f.Get("tokens");
  if (ids == nullptr || !ids->is_array()) return f.Fail("tokens", "'tokens' must be an array of token ids");
  for (const json& id : *ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n_vocab)
      return f.Fail("tokens", fmt::format("'tokens' must hold token ids in [0, {})", n_vocab));
    tokens->push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  return Status::Ok();
}

}  // namespace strata::server
