// Tool calls (server/tool_calls.h): the formats read back out of text, the
// stream holding back what may be a call, the grammar of required and named
// calls; over HTTP on stories260K with a Hermes-style Jinja template:
// tool_choice "required" / named gives tool_calls whose arguments validate
// against the tool's schema (python3-jsonschema), streamed or not, and
// "auto" reads a call the model writes.
#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include "grammar_test_util.h"
#include "json_schema_cases.h"
#include "server_harness.h"

namespace strata::server {
namespace {

using json = nlohmann::ordered_json;

TEST(ToolCalls, FormatsAreDetectedFromTheTemplate) {
  EXPECT_EQ(DetectToolCallFormat("{{ '<tool_call>' }} ... </tool_call>"), ToolCallFormat::kHermes);
  EXPECT_EQ(DetectToolCallFormat("[AVAILABLE_TOOLS] ... [TOOL_CALLS]"), ToolCallFormat::kMistral);
  EXPECT_EQ(DetectToolCallFormat(R"(Respond with {"name": function name, "parameters": dictionary})"),
            ToolCallFormat::kLlama3);
  EXPECT_EQ(DetectToolCallFormat(""), ToolCallFormat::kJson);
}

TEST(ToolCalls, ParsedOutOfText) {
  std::string content;
  std::vector<ToolCall> calls;
  ASSERT_TRUE(ParseToolCalls(ToolCallFormat::kHermes,
                             "Let me look.\n<tool_call>\n{\"name\": \"get\", \"arguments\": {\"city\": \"Oslo\"}}\n"
                             "</tool_call>\n<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>",
                             &content, &calls));
  EXPECT_EQ(content, "Let me look.");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "get");
  EXPECT_EQ(calls[0].arguments, R"({"city":"Oslo"})");
  EXPECT_EQ(calls[1].name, "now");
  ASSERT_TRUE(ParseToolCalls(ToolCallFormat::kMistral, R"([TOOL_CALLS][{"name": "a", "arguments": {"x": 1}}])", &content,
                             &calls));
  EXPECT_EQ(calls[0].arguments, R"({"x":1})");
  ASSERT_TRUE(ParseToolCalls(ToolCallFormat::kLlama3, R"( {"name": "a", "parameters": {"y": [2]}} )", &content, &calls));
  EXPECT_EQ(calls[0].arguments, R"({"y":[2]})");
  ASSERT_TRUE(ParseToolCalls(ToolCallFormat::kJson, "{\"name\": \"a\", \"arguments\": {}}\n{\"name\": \"b\", \"arguments\": {}}",
                             &content, &calls));
  EXPECT_EQ(calls.size(), 2u);
  // Not calls: plain text, a malformed block, arguments that are no object, the wrong key.
  for (const auto& [f, text] : std::vector<std::pair<ToolCallFormat, const char*>>{
           {ToolCallFormat::kHermes, "Just text."},
           {ToolCallFormat::kHermes, "<tool_call>{\"name\": \"a\", \"arguments\": {}"},
           {ToolCallFormat::kHermes, "<tool_call>{\"name\": \"a\", \"arguments\": 3}</tool_call>"},
           {ToolCallFormat::kLlama3, R"({"name": "a", "arguments": {}})"},
           {ToolCallFormat::kJson, "{\"name\": \"a\"} trailing"},
           {ToolCallFormat::kMistral, "[TOOL_CALLS] nope"}}) {
    EXPECT_FALSE(ParseToolCalls(f, text, &content, &calls)) << text;
  }
}

TEST(ToolCalls, StreamHoldsWhatMayBeACall) {
  ToolCallStream hermes(ToolCallFormat::kHermes);
  EXPECT_EQ(hermes.Push("Sure, <to"), "Sure, ");
  EXPECT_EQ(hermes.Push("p"), "<top");  // not the marker after all
  EXPECT_EQ(hermes.Push(" <tool_"), " ");
  EXPECT_EQ(hermes.Push("call>{...}"), "");
  EXPECT_EQ(hermes.held(), "<tool_call>{...}");
  ToolCallStream json_format(ToolCallFormat::kJson);
  EXPECT_EQ(json_format.Push("  "), "");
  EXPECT_EQ(json_format.Push("{\"name\""), "");
  EXPECT_EQ(json_format.held(), "  {\"name\"");
  ToolCallStream text(ToolCallFormat::kLlama3);
  EXPECT_EQ(text.Push(" Hello"), " Hello");
  EXPECT_EQ(text.Push(" {x}"), " {x}");
}

const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
    "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]}}},
  {"type": "function", "function": {"name": "add", "parameters": {"type": "object",
    "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}
])");

TEST(ToolCalls, GrammarOfRequiredAndNamedCalls) {
  std::string gbnf;
  ASSERT_TRUE(ToolCallGrammar(ToolCallFormat::kHermes, kTools, "", true, &gbnf).ok());
  EXPECT_TRUE(testing::Matches(gbnf, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": -2}}\n</tool_call>"));
  EXPECT_TRUE(testing::Matches(gbnf, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n"
                                     "</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n"
                                     "</tool_call>"));
  EXPECT_FALSE(testing::Matches(gbnf, "<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 100, \"b\": 2}}\n</tool_call>"));
  ASSERT_TRUE(ToolCallGrammar(ToolCallFormat::kLlama3, kTools, "add", true, &gbnf).ok());
  EXPECT_TRUE(testing::Matches(gbnf, R"({"name": "add", "parameters": {"a": 5, "b": 6}})"));
  EXPECT_FALSE(testing::Matches(gbnf, R"({"name": "get_weather", "parameters": {"city": "x"}})"));
  ASSERT_TRUE(ToolCallGrammar(ToolCallFormat::kMistral, kTools, "", false, &gbnf).ok());
  EXPECT_TRUE(testing::Matches(gbnf, R"([TOOL_CALLS][{"name": "add", "arguments": {"a": 5, "b": 6}}])"));
  const json bad = json::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"not": {}}}}])");
  EXPECT_EQ(ToolCallGrammar(ToolCallFormat::kJson, bad, "", true, &gbnf).message(),
            "tools[0].function.parameters: the JSON schema at #: 'not' is not supported");
}

// A ChatML template that offers tools the Hermes way.
constexpr const char* kHermesTemplate =
    "{%- if tools %}<|im_start|>system\nYou may call functions. For each call return "
    "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>\n"
    "{%- for t in tools %}{{ t.function.name }} {% endfor %}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
    "<|im_start|>assistant\n";

json Chat(httplib::Client& c, const json& body) {
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, 200) << r->body;
  return json::parse(r->body);
}

// The tool_calls a stream's chunks carry, and its finish_reason.
json StreamedCalls(httplib::Client& c, json body, std::string* finish, std::string* content) {
  body["stream"] = true;
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  EXPECT_TRUE(r);
  json calls = json::array();
  std::istringstream lines(r ? r->body : "");
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("data: ") || line == "data: [DONE]") continue;
    const json chunk = json::parse(line.substr(6));
    const json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) *finish = choice["finish_reason"];
    const json& delta = choice["delta"];
    if (delta.contains("content") && delta["content"].is_string()) *content += delta["content"].get<std::string>();
    if (delta.contains("tool_calls"))
      for (const json& tc : delta["tool_calls"]) calls.push_back(tc);
  }
  return calls;
}

TEST(ToolCallsHttp, RequiredAndNamedCallsValidate) {
  testing::ServerHarness h({}, testing::ServerHarness::DefaultEngineParams(), "", kHermesTemplate);
  auto c = h.Client();
  json cases = json::array();
  int calls_seen = 0;
  for (int seed = 0; seed < 8; ++seed) {
    json body = {{"messages", {{{"role", "user"}, {"content", "What is the weather in Oslo?"}}}},
                 {"tools", kTools}, {"temperature", 1.0}, {"seed", seed}, {"max_tokens", 300}};
    body["tool_choice"] = seed % 2 == 0 ? json("required") : json{{"type", "function"}, {"function", {{"name", "add"}}}};
    body["parallel_tool_calls"] = seed % 4 == 2;
    const json r = Chat(*c, body);
    const json& choice = r["choices"][0];
    if (choice["finish_reason"] == "length") continue;  // cut off inside a call
    ASSERT_EQ(choice["finish_reason"], "tool_calls") << r.dump();
    const json& msg = choice["message"];
    EXPECT_TRUE(msg["content"].is_null()) << r.dump();
    ASSERT_GE(msg["tool_calls"].size(), 1u);
    for (const json& tc : msg["tool_calls"]) {
      EXPECT_EQ(tc["type"], "function");
      EXPECT_TRUE(tc["id"].get<std::string>().starts_with("call_"));
      const std::string name = tc["function"]["name"];
      if (seed % 2 == 1) EXPECT_EQ(name, "add");
      const json& tool = kTools[name == "add" ? 1 : 0];
      ASSERT_EQ(tool["function"]["name"], name);
      cases.push_back({{"schema", tool["function"]["parameters"]}, {"text", tc["function"]["arguments"]}});
      ++calls_seen;
    }
    // The same request streamed: the same calls, in one delta, finish_reason tool_calls.
    std::string finish, content;
    const json streamed = StreamedCalls(*c, body, &finish, &content);
    EXPECT_EQ(finish, "tool_calls");
    EXPECT_EQ(content, "");
    ASSERT_EQ(streamed.size(), msg["tool_calls"].size());
    for (size_t i = 0; i < streamed.size(); ++i) {
      EXPECT_EQ(streamed[i]["index"], i);
      EXPECT_EQ(streamed[i]["function"], msg["tool_calls"][i]["function"]);
    }
  }
  EXPECT_GE(calls_seen, 6);
  const std::vector<std::string> results = testing::PythonValidate(cases);
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < results.size(); ++i) EXPECT_EQ(results[i], "") << cases[i]["text"];
}

TEST(ToolCallsHttp, AutoReadsTheCallTheModelWrites) {
  testing::ServerHarness h({}, testing::ServerHarness::DefaultEngineParams(), "", kHermesTemplate);
  auto c = h.Client();
  // The grammar plays a model that answers with a sentence and a call.
  json body = {{"messages", {{{"role", "user"}, {"content", "Add 2 and 3."}}}}, {"tools", kTools}, {"max_tokens", 100},
               {"grammar", "root ::= \"Sure.\\n<tool_call>\\n{\\\"name\\\": \\\"add\\\", \\\"arguments\\\": {\\\"a\\\": 2, "
                           "\\\"b\\\": 3}}\\n</tool_call>\""}};
  const json r = Chat(*c, body);
  const json& choice = r["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_EQ(choice["message"]["content"], "Sure.");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(choice["message"]["tool_calls"][0]["function"]["name"], "add");
  EXPECT_EQ(json::parse(choice["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"a": 2, "b": 3})"));
  std::string finish, content;
  const json streamed = StreamedCalls(*c, body, &finish, &content);
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(content, "Sure.\n");  // sent before the call began
  ASSERT_EQ(streamed.size(), 1u);
  EXPECT_EQ(streamed[0]["function"], choice["message"]["tool_calls"][0]["function"]);
  // Text that is no call stays content; tool_choice none hides the tools.
  body["grammar"] = "root ::= \"No call here.\"";
  EXPECT_EQ(Chat(*c, body)["choices"][0]["message"]["content"], "No call here.");
  body["tool_choice"] = "none";
  body["grammar"] = "root ::= \"<tool_call>\\n{\\\"name\\\": \\\"add\\\", \\\"arguments\\\": {}}\\n</tool_call>\"";
  const json none = Chat(*c, body);
  EXPECT_EQ(none["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(none["choices"][0]["message"]["content"].get<std::string>().starts_with("<tool_call>"));
  // A required call cannot be combined with another constraint.
  body["tool_choice"] = "required";
  auto bad = c->Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "tool_choice");
}

}  // namespace
}  // namespace strata::server
