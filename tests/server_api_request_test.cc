// ParseApiRequest (the JSON boundary of the server) and BuildPrompt: what
// valid requests turn into. Invalid ones are covered over HTTP in
// server_http_test.cc.
#include "server/api_request.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "format/gguf.h"
#include "server/prompt.h"
#include "test_util.h"

namespace strata::server {
namespace {

ApiRequest Parse(Endpoint e, const std::string& body, RequestLimits limits = {}) {
  ApiRequest r;
  std::string param;
  const Status s = ParseApiRequest(e, body, limits, &r, &param);
  EXPECT_TRUE(s.ok()) << s.ToString() << " (param " << param << ")";
  return r;
}

std::string ParseError(Endpoint e, const std::string& body, std::string* param, RequestLimits limits = {}) {
  ApiRequest r;
  const Status s = ParseApiRequest(e, body, limits, &r, param);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s.message();
}

TEST(ApiRequestTest, CompletionDefaultsAreOpenAis) {
  const ApiRequest r = Parse(Endpoint::kCompletions, R"({"prompt": "Hi"})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "Hi");
  EXPECT_FALSE(r.prompts[0].is_ids);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.max_tokens.has_value());
  // Sampling left out: the server's defaults (strata serve --temp, ...).
  EXPECT_FALSE(r.temperature.has_value());
  EXPECT_FALSE(r.top_p.has_value());
  EXPECT_FALSE(r.top_k.has_value());
  EXPECT_FALSE(r.min_p.has_value());
  EXPECT_FALSE(r.repeat_penalty.has_value());
  EXPECT_TRUE(r.unknown_fields.empty());
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.logprobs, -1);
}

TEST(ApiRequestTest, CompletionFields) {
  const ApiRequest r = Parse(Endpoint::kCompletions,
                             R"({"model": "m", "prompt": [[1, 2, 3]], "max_tokens": 7, "temperature": 0,
                                 "top_p": 0.5, "seed": -1, "stop": "\n", "stream": true,
                                 "stream_options": {"include_usage": true}, "logprobs": 2, "n": 1,
                                 "presence_penalty": 0, "echo": false, "top_k": 5, "min_p": 0.1,
                                 "repeat_penalty": 1.1, "user": "u", "unknown_field": {"x": 1}})");
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].is_ids);
  EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0f);
  EXPECT_EQ(r.top_p, 0.5f);
  EXPECT_EQ(r.seed, UINT64_MAX);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_FLOAT_EQ(*r.min_p, 0.1f);
  EXPECT_FLOAT_EQ(*r.repeat_penalty, 1.1f);
  EXPECT_EQ(r.unknown_fields, (std::vector<std::string>{"unknown_field"}));
}

TEST(ApiRequestTest, RepetitionPenaltyIsVllmsNameForRepeatPenalty) {
  EXPECT_FLOAT_EQ(*Parse(Endpoint::kCompletions, R"({"prompt": "x", "repetition_penalty": 1.3})").repeat_penalty, 1.3f);
  EXPECT_FLOAT_EQ(*Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}],
                                             "repeat_penalty": 1.2, "repetition_penalty": 1.2})")
                       .repeat_penalty,
                  1.2f);
  std::string param;
  ApiRequest r;
  EXPECT_FALSE(ParseApiRequest(Endpoint::kCompletions, R"({"prompt": "x", "repeat_penalty": 1.1, "repetition_penalty": 1.2})",
                               RequestLimits{}, &r, &param)
                   .ok());
  EXPECT_EQ(param, "repetition_penalty");
  EXPECT_FALSE(ParseApiRequest(Endpoint::kCompletions, R"({"prompt": "x", "repetition_penalty": 0})", RequestLimits{},
                               &r, &param)
                   .ok());
  EXPECT_EQ(param, "repetition_penalty");
}

TEST(ApiRequestTest, UnknownFieldsAreListedInTheClientsOrder) {
  const ApiRequest chat = Parse(Endpoint::kChat, R"({"zeta": 1, "messages": [{"role": "user", "content": "x"}],
                                                    "prompt": "not a chat field", "alpha": null})");
  EXPECT_EQ(chat.unknown_fields, (std::vector<std::string>{"zeta", "prompt", "alpha"}));
  const ApiRequest completion = Parse(Endpoint::kCompletions, R"({"prompt": "x", "messages": [], "echo": true})");
  EXPECT_EQ(completion.unknown_fields, (std::vector<std::string>{"messages"}));
}

TEST(ApiRequestTest, TokenizeRequest) {
  TokenizeRequest t;
  std::string param;
  ASSERT_TRUE(ParseTokenizeRequest(R"({"content": "Hi there"})", &t, &param).ok());
  EXPECT_EQ(t.content, "Hi there");
  EXPECT_FALSE(t.add_special);
  EXPECT_TRUE(t.parse_special);
  EXPECT_FALSE(t.with_pieces);
  ASSERT_TRUE(ParseTokenizeRequest(R"({"content": "", "add_special": true, "parse_special": false,
                                       "with_pieces": true})",
                                   &t, &param)
                  .ok());
  EXPECT_TRUE(t.add_special);
  EXPECT_FALSE(t.parse_special);
  EXPECT_TRUE(t.with_pieces);
  for (const char* bad : {R"({})", R"({"content": 5})", R"({"content": ["a"]})", R"([])"}) {
    EXPECT_FALSE(ParseTokenizeRequest(bad, &t, &param).ok()) << bad;
  }
  EXPECT_FALSE(ParseTokenizeRequest(R"({"content": "x", "with_pieces": 1})", &t, &param).ok());
  EXPECT_EQ(param, "with_pieces");
}

TEST(ApiRequestTest, DetokenizeRequest) {
  std::vector<int32_t> ids;
  std::string param;
  ASSERT_TRUE(ParseDetokenizeRequest(R"({"tokens": [1, 0, 511]})", 512, &ids, &param).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 0, 511}));
  ASSERT_TRUE(ParseDetokenizeRequest(R"({"tokens": []})", 512, &ids, &param).ok());
  EXPECT_TRUE(ids.empty());
  for (const char* bad : {R"({})", R"({"tokens": [512]})", R"({"tokens": [-1]})", R"({"tokens": [1.5]})",
                          R"({"tokens": ["1"]})", R"({"tokens": [18446744073709551615]})", R"({"tokens": 3})"}) {
    EXPECT_FALSE(ParseDetokenizeRequest(bad, 512, &ids, &param).ok()) << bad;
    EXPECT_EQ(param, "tokens") << bad;
  }
}

TEST(ApiRequestTest, NullMeansDefault) {
  const ApiRequest r = Parse(Endpoint::kCompletions,
                             R"({"prompt": "x", "max_tokens": null, "stop": null, "seed": null, "logprobs": null})");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_EQ(r.logprobs, -1);
}

TEST(ApiRequestTest, ChatMessagesAndContentParts) {
  const ApiRequest r = Parse(Endpoint::kChat,
                             R"({"messages": [
                                   {"role": "developer", "content": "Be brief."},
                                   {"role": "user", "content": [{"type": "text", "text": "Hello "},
                                                                {"type": "text", "text": "there"}], "name": "bob"},
                                   {"role": "assistant", "content": null},
                                   {"role": "user", "content": "Again"}],
                                 "max_tokens": 5, "max_completion_tokens": 9,
                                 "logprobs": true, "top_logprobs": 3, "response_format": {"type": "text"},
                                 "tools": []})");
  ASSERT_EQ(r.chat.messages.size(), 4u);
  EXPECT_EQ(r.chat.messages[0]["role"], "system");
  EXPECT_EQ(r.chat.messages[1]["content"], "Hello there");
  EXPECT_EQ(r.chat.messages[1]["name"], "bob");  // other fields reach the template as sent
  EXPECT_EQ(r.chat.messages[2]["role"], "assistant");
  EXPECT_TRUE(r.chat.messages[2]["content"].is_null());
  EXPECT_TRUE(r.chat.tools.is_null());  // "tools": [] is no tools
  EXPECT_EQ(r.max_tokens, 9);  // max_completion_tokens wins
  EXPECT_EQ(r.logprobs, 3);
}

TEST(ApiRequestTest, ChatLogprobsWithoutTopMeansZeroAlternatives) {
  const ApiRequest r = Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})");
  EXPECT_EQ(r.logprobs, 0);
  const ApiRequest off =
      Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": false})");
  EXPECT_EQ(off.logprobs, -1);
}

TEST(ApiRequestTest, MaxTokensLimit) {
  std::string param;
  const std::string m = ParseError(Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 101})", &param, {100});
  EXPECT_EQ(param, "max_tokens");
  EXPECT_NE(m.find("100"), std::string::npos) << m;
  EXPECT_EQ(Parse(Endpoint::kCompletions, R"({"prompt": "x", "max_tokens": 100})", {100}).max_tokens, 100);
}

TEST(ApiRequestTest, MessagesOnlyForChatAndPromptOnlyForCompletions) {
  std::string param;
  ParseError(Endpoint::kChat, R"({"prompt": "x"})", &param);
  EXPECT_EQ(param, "messages");
  ParseError(Endpoint::kCompletions, R"({"messages": [{"role": "user", "content": "x"}]})", &param);
  EXPECT_EQ(param, "prompt");
}

TEST(ApiRequestTest, ErrorsNameTheField) {
  std::string param;
  ParseError(Endpoint::kCompletions, R"({"prompt": "x", "stream_options": {"include_usage": 1}})", &param);
  EXPECT_EQ(param, "stream_options.include_usage");
  ParseError(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}, {"role": 3}]})", &param);
  EXPECT_EQ(param, "messages[1].role");
  ParseError(Endpoint::kCompletions, R"({"prompt": "x", "stop": ["a","b","c","d","e","f","g","h","i","j","k",
                                       "l","m","n","o","p","q"]})", &param);
  EXPECT_EQ(param, "stop");
  ParseError(Endpoint::kCompletions, R"({"prompt": "x", "logit_bias": {"1": 101}})", &param);
  EXPECT_EQ(param, "logit_bias");
  ParseError(Endpoint::kCompletions, R"({"prompt": []})", &param);
  EXPECT_EQ(param, "prompt");
  ParseError(Endpoint::kCompletions, R"({"prompt": [1, 4294967296]})", &param);
  EXPECT_EQ(param, "prompt");
  ParseError(Endpoint::kCompletions, R"({"prompt": "x", "temperature": 1e400})", &param);
}

TEST(ApiRequestTest, PenaltiesLogitBiasAndTokenEndings) {
  const ApiRequest r = Parse(Endpoint::kCompletions, R"({"prompt": "x", "presence_penalty": 0.5,
      "frequency_penalty": -1.25, "logit_bias": {"7": 100, "3": -100, "12": 0.5}, "stop_token_ids": [2, 9],
      "ignore_eos": true, "min_tokens": 4, "max_tokens": 10})");
  EXPECT_FLOAT_EQ(*r.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(*r.frequency_penalty, -1.25f);
  EXPECT_EQ(r.logit_bias, (std::vector<std::pair<int32_t, float>>{{3, -100.0f}, {7, 100.0f}, {12, 0.5f}}));
  EXPECT_EQ(r.stop_token_ids, (std::vector<int32_t>{2, 9}));
  EXPECT_TRUE(r.ignore_eos);
  EXPECT_EQ(r.min_tokens, 4);
  EXPECT_TRUE(r.unknown_fields.empty());
  // llama.cpp's array form; false bans; the last entry for an id wins.
  const ApiRequest a = Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}],
      "logit_bias": [[5, 1.5], [8, false], [5, -2]]})");
  ASSERT_EQ(a.logit_bias.size(), 2u);
  EXPECT_EQ(a.logit_bias[0], (std::pair<int32_t, float>{5, -2.0f}));
  EXPECT_EQ(a.logit_bias[1].first, 8);
  EXPECT_EQ(a.logit_bias[1].second, -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(Parse(Endpoint::kCompletions, R"({"prompt": "x", "logit_bias": {}})").logit_bias.empty());
}

TEST(ApiRequestTest, BadPenaltiesBiasesAndEndingsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("presence_penalty": 2.5)", "presence_penalty"},
      {R"("frequency_penalty": "1")", "frequency_penalty"},
      {R"("logit_bias": {"abc": 1})", "logit_bias"},
      {R"("logit_bias": {"-1": 1})", "logit_bias"},
      {R"("logit_bias": {"1": true})", "logit_bias"},
      {R"("logit_bias": {"99999999999": 1})", "logit_bias"},
      {R"("logit_bias": [[1, 2, 3]])", "logit_bias"},
      {R"("logit_bias": [["hello", 2]])", "logit_bias"},
      {R"("logit_bias": 5)", "logit_bias"},
      {R"("stop_token_ids": [1, -2])", "stop_token_ids"},
      {R"("stop_token_ids": "2")", "stop_token_ids"},
      {R"("ignore_eos": 1)", "ignore_eos"},
      {R"("min_tokens": -1)", "min_tokens"},
      {R"("min_tokens": 9, "max_tokens": 8)", "min_tokens"},
      {R"("n_predict": -2)", "n_predict"},
  };
  for (const auto& [field, param] : cases) {
    std::string got;
    const std::string m = ParseError(Endpoint::kCompletions, R"({"prompt": "x", )" + field + "}", &got);
    EXPECT_EQ(got, param) << field << ": " << m;
  }
}

// max_completion_tokens wins over max_tokens, which wins over n_predict (-1: unlimited).
TEST(ApiRequestTest, MaxTokensAliases) {
  for (Endpoint e : {Endpoint::kCompletions, Endpoint::kChat}) {
    const std::string base = e == Endpoint::kChat ? R"("messages": [{"role": "user", "content": "x"}])" : R"("prompt": "x")";
    EXPECT_EQ(Parse(e, "{" + base + R"(, "n_predict": 9})").max_tokens, 9);
    EXPECT_FALSE(Parse(e, "{" + base + R"(, "n_predict": -1})").max_tokens.has_value());
    EXPECT_EQ(Parse(e, "{" + base + R"(, "n_predict": 9, "max_tokens": 4})").max_tokens, 4);
    EXPECT_EQ(Parse(e, "{" + base + R"(, "max_completion_tokens": 3, "max_tokens": 4, "n_predict": 5})").max_tokens, 3);
  }
}

TEST(ApiRequestTest, ToolsAndToolMessagesReachTheTemplateAsSent) {
  const ApiRequest r = Parse(Endpoint::kChat, R"({"messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\": \"Oslo\"}"}}]},
      {"role": "tool", "tool_call_id": "c1", "name": "w", "content": "5 C"}],
    "tools": [{"type": "function", "function": {"name": "w", "parameters": {"z": 1, "a": 2}}}],
    "tool_choice": "auto", "parallel_tool_calls": true, "chat_template_kwargs": {"enable_thinking": false}})");
  ASSERT_EQ(r.chat.messages.size(), 3u);
  EXPECT_EQ(r.chat.messages[1]["tool_calls"][0]["function"]["name"], "w");
  EXPECT_EQ(r.chat.messages[2]["role"], "tool");
  EXPECT_EQ(r.chat.messages[2]["tool_call_id"], "c1");
  // Key order is the client's (tojson in a template writes it so).
  EXPECT_EQ(r.chat.tools.dump(), R"([{"type":"function","function":{"name":"w","parameters":{"z":1,"a":2}}}])");
  EXPECT_EQ(r.chat.variables.dump(), R"({"enable_thinking":false})");
  const ApiRequest none = Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": "none"})");
  EXPECT_TRUE(none.chat.tools.is_null());  // "none": the model does not see them
}

TEST(ApiRequestTest, DeeplyNestedBodiesAreRejected) {
  std::string param;
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(ParseError(Endpoint::kChat,
                       R"({"messages": [{"role": "user", "content": "x", "extra": )" + deep + "}]}", &param),
            "the body nests deeper than 64 levels");
  // Brackets inside strings do not count.
  const ApiRequest r = Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": ")" +
                                                  std::string(100, '[') + R"("}]})");
  EXPECT_EQ(r.chat.messages[0]["content"], std::string(100, '['));
}

TEST(ApiRequestTest, MalformedToolsAreRejected) {
  const std::string user = R"("messages": [{"role": "user", "content": "x"}])";
  std::string param;
  ParseError(Endpoint::kChat, "{" + user + R"(, "tools": {"type": "function"}})", &param);
  EXPECT_EQ(param, "tools");
  ParseError(Endpoint::kChat, "{" + user + R"(, "tools": [{"type": "retrieval"}]})", &param);
  EXPECT_EQ(param, "tools[0]");
  ParseError(Endpoint::kChat, "{" + user + R"(, "tools": [{"type": "function", "function": {}}]})", &param);
  EXPECT_EQ(param, "tools[0].function");
  ParseError(Endpoint::kChat, "{" + user + R"(, "tool_choice": "required"})", &param);
  EXPECT_EQ(param, "tool_choice");
  ParseError(Endpoint::kChat, "{" + user + R"(, "parallel_tool_calls": "no"})", &param);
  EXPECT_EQ(param, "parallel_tool_calls");
  const std::string tools = R"("tools": [{"type": "function", "function": {"name": "f"}}])";
  EXPECT_EQ(ParseError(Endpoint::kChat, "{" + user + ", " + tools +
                                            R"(, "tool_choice": {"type": "function", "function": {"name": "g"}}})",
                       &param),
            "'tool_choice' names 'g', which is not in 'tools'");
  EXPECT_EQ(param, "tool_choice");
  ParseError(Endpoint::kChat, "{" + user + ", " + tools + R"(, "tool_choice": {"type": "function"}})", &param);
  EXPECT_EQ(param, "tool_choice");
  ParseError(Endpoint::kChat, "{" + user + ", " + tools + R"(, "tool_choice": "sometimes"})", &param);
  EXPECT_EQ(param, "tool_choice");
  ParseError(Endpoint::kChat, "{" + user + R"(, "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]})",
             &param);
  EXPECT_EQ(param, "tools[0].function.parameters");
  ParseError(Endpoint::kChat, "{" + user + R"(, "chat_template_kwargs": [1]})", &param);
  EXPECT_EQ(param, "chat_template_kwargs");
  ParseError(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "x", "tool_calls": []}]})", &param);
  EXPECT_EQ(param, "messages[0].tool_calls");
  ParseError(Endpoint::kChat, R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [1]}]})", &param);
  EXPECT_EQ(param, "messages[0].tool_calls");
  ParseError(Endpoint::kChat, R"({"messages": [{"role": "tool", "content": null}]})", &param);
  EXPECT_EQ(param, "messages[0].content");
  ParseError(Endpoint::kChat, R"({"messages": [{"role": "tool", "content": "x", "tool_call_id": 5}]})", &param);
  EXPECT_EQ(param, "messages[0].tool_call_id");
}

// What POST /apply-template takes: the conversation alone, validated as for
// chat completions; the template renders it into the prompt text.
TEST(ApiRequestTest, ChatConversationForApplyTemplate) {
  ChatConversation c;
  std::string param;
  ASSERT_TRUE(ParseChatConversation(R"({"messages": [{"role": "developer", "content": [{"type": "text", "text": "Be"},
                                        {"type": "text", "text": " brief."}]}, {"role": "user", "content": "Hi"}],
                                        "tools": [{"type": "function", "function": {"name": "f"}}],
                                        "max_tokens": "ignored here"})",
                                    &c, &param)
                  .ok());
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromJinja("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}"
                                      "{{ tools|length }}{% if add_generation_prompt %}<|assistant|>{% endif %}",
                                      "", "<s>", "</s>", &t)
                  .ok());
  std::string prompt;
  ASSERT_TRUE(t.Apply(c, &prompt).ok());
  EXPECT_EQ(prompt, "<|system|>Be brief.<|user|>Hi1<|assistant|>");
  EXPECT_EQ(ParseChatConversation(R"({"tools": []})", &c, &param).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(param, "messages");
  EXPECT_EQ(ParseChatConversation("[1]", &c, &param).message(), "the body must be a JSON object");
}

// Chat prompts parse special tokens and get exactly one BOS; completion
// prompts keep special-token text as text.
TEST(PromptTest, ChatParsesSpecialTokensAndAddsOneBos) {
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), testing::SharedPath("vocab/ggml-vocab-phi-3.gguf"), &f).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::FromGguf(*f, &vocab).ok());
  ChatTemplate phi3;
  ASSERT_TRUE(ChatTemplate::FromName("phi3", "", "", &phi3).ok());
  const std::vector<TokenId> user = vocab->Encode("<|user|>", false, true);
  ASSERT_EQ(user.size(), 1u);

  ApiRequest chat = Parse(Endpoint::kChat, R"({"messages": [{"role": "user", "content": "Hi"}]})");
  std::vector<int32_t> ids;
  ASSERT_TRUE(BuildPrompt(chat, 0, *vocab, phi3, &ids).ok());
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], vocab->add_bos() ? vocab->bos() : user[0]);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), vocab->bos()), vocab->add_bos() ? 1 : 0);
  EXPECT_NE(std::find(ids.begin(), ids.end(), user[0]), ids.end());

  ApiRequest text = Parse(Endpoint::kCompletions, R"({"prompt": "<|user|>"})");
  ASSERT_TRUE(BuildPrompt(text, 0, *vocab, phi3, &ids).ok());
  EXPECT_EQ(std::find(ids.begin(), ids.end(), user[0]), ids.end());
}

TEST(PromptTest, TokenIdsOutsideTheVocabularyAreRejected) {
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), testing::SharedPath("vocab/ggml-vocab-phi-3.gguf"), &f).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::FromGguf(*f, &vocab).ok());
  ApiRequest r = Parse(Endpoint::kCompletions, R"({"prompt": [1, 2]})");
  std::vector<int32_t> ids;
  EXPECT_TRUE(BuildPrompt(r, 0, *vocab, ChatTemplate(), &ids).ok());
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 2}));
  r.prompts[0].ids.push_back(vocab->n_tokens());
  EXPECT_EQ(BuildPrompt(r, 0, *vocab, ChatTemplate(), &ids).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::server
