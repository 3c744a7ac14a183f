// ChatTemplate: each built-in renderer renders llama.cpp's reference
// conversation exactly as llama.cpp's tests/test-chat-template.cpp expects
// (its non-Jinja expected outputs); Jinja templates render through the
// interpreter with transformers' variables (its conformance with Python's
// jinja2 is tests/jinja_conformance_test.cc); a GGUF's template renders into
// special tokens; real GGUF templates are recognized for the fallback.
#include "server/chat_template.h"

#include <gtest/gtest.h>

#include <memory>
#include <utility>

#include "format/gguf.h"
#include "server/api_request.h"
#include "server/prompt.h"
#include "test_util.h"
#include "vocab/vocab.h"

namespace strata::server {
namespace {

using json = nlohmann::ordered_json;

ChatConversation Conversation(std::initializer_list<std::pair<const char*, const char*>> turns) {
  ChatConversation c;
  for (const auto& [role, content] : turns) c.messages.push_back({{"role", role}, {"content", content}});
  return c;
}

const ChatConversation kConversation = Conversation({
    {"system", "You are a helpful assistant"}, {"user", "Hello"},
    {"assistant", "Hi there"},                 {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},  {"user", "Another question"},
});

std::string Apply(const ChatTemplate& t, const ChatConversation& c) {
  std::string out;
  const Status s = t.Apply(c, &out);
  return s.ok() ? out : "ERROR " + std::string(StatusCodeName(s.code())) + ": " + s.message();
}

ChatTemplate Jinja(std::string_view source, std::string_view tool_use = "", std::string_view bos = "<s>",
                   std::string_view eos = "</s>") {
  ChatTemplate t;
  const Status s = ChatTemplate::FromJinja(source, tool_use, bos, eos, &t);
  EXPECT_TRUE(s.ok()) << s.message();
  return t;
}

struct Rendering {
  std::string name;
  std::string expected;
};

class ChatTemplateRenderTest : public ::testing::TestWithParam<Rendering> {};

TEST_P(ChatTemplateRenderTest, MatchesReference) {
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromName(GetParam().name, "<s>", "</s>", &t).ok());
  EXPECT_EQ(t.name(), GetParam().name);
  EXPECT_EQ(Apply(t, kConversation), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Templates, ChatTemplateRenderTest,
    ::testing::Values(
        Rendering{"chatml",
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother "
                  "question<|im_end|>\n<|im_start|>assistant\n"},
        // mistralai/Mistral-7B-Instruct-v0.2 (old, no system prompt support)
        Rendering{"llama2",
                  "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
                  "assistant   </s>[INST] Another question [/INST]"},
        Rendering{"llama2-sys",
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are "
                  "you [/INST]   I am an assistant   </s>[INST] Another question [/INST]"},
        // TheBloke/FusionNet_34Bx2_MoE-AWQ
        Rendering{"llama2-sys-bos",
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who "
                  "are you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]"},
        // bofenghuang/vigogne-2-70b-chat
        Rendering{"llama2-sys-strip",
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are "
                  "you [/INST]I am an assistant</s>[INST] Another question [/INST]"},
        Rendering{"mistral-v1",
                  " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I "
                  "am an assistant   </s> [INST] Another question [/INST]"},
        Rendering{"mistral-v3",
                  "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
                  "assistant</s>[INST] Another question[/INST]"},
        Rendering{"mistral-v3-tekken",
                  "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
                  "assistant   </s>[INST]Another question[/INST]"},
        Rendering{"mistral-v7",
                  "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] "
                  "Who are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]"},
        Rendering{"mistral-v7-tekken",
                  "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]Hello[/INST]Hi there</s>[INST]Who "
                  "are you[/INST]   I am an assistant   </s>[INST]Another question[/INST]"},
        Rendering{"llama3",
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
                  "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>"
                  "assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho "
                  "are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an "
                  "assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother "
                  "question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        Rendering{"phi3",
                  "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi "
                  "there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   "
                  "<|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n"},
        Rendering{"zephyr",
                  "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi "
                  "there</s>\n<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   "
                  "</s>\n<|user|>\nAnother question</s>\n<|assistant|>\n"},
        Rendering{"gemma",
                  "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
                  "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
                  "assistant<end_of_turn>\n<start_of_turn>user\nAnother "
                  "question<end_of_turn>\n<start_of_turn>model\n"},
        Rendering{"plain",
                  "System: You are a helpful assistant\nUser: Hello\nAssistant: Hi there\nUser: Who are you\n"
                  "Assistant:    I am an assistant   \nUser: Another question\nAssistant:"}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& c : n)
        if (c == '-') c = '_';
      return n;
    });

TEST(ChatTemplateTest, EveryNameRoundTrips) {
  for (const std::string& name : ChatTemplate::Names()) {
    ChatTemplate t;
    ASSERT_TRUE(ChatTemplate::FromName(name, "", "", &t).ok()) << name;
    EXPECT_EQ(t.name(), name);
  }
}

TEST(ChatTemplateTest, UnknownNameIsAnErrorListingTheKnownOnes) {
  ChatTemplate t;
  const Status s = ChatTemplate::FromName("jinja-magic", "", "", &t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("jinja-magic"), std::string::npos);
  EXPECT_NE(s.message().find("chatml"), std::string::npos);
}

TEST(ChatTemplateTest, EosAndBosTextsComeFromTheModel) {
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromName("llama2-sys-bos", "<BOS>", "<EOS>", &t).ok());
  EXPECT_EQ(Apply(t, Conversation({{"user", "a"}, {"assistant", "b"}, {"user", "c"}})),
            "[INST] a [/INST]b<EOS><BOS>[INST] c [/INST]");
}

struct Detection {
  std::string model;
  std::string jinja;
  std::string expected;  // "" = not recognized
};

class ChatTemplateDetectTest : public ::testing::TestWithParam<Detection> {};

TEST_P(ChatTemplateDetectTest, RecognizesTheTemplate) {
  const auto t = ChatTemplate::Detect(GetParam().jinja, "<s>", "</s>");
  if (GetParam().expected.empty()) {
    EXPECT_FALSE(t.has_value());
  } else {
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->name(), GetParam().expected);
  }
}

// Templates as Hugging Face model repositories ship them (abridged where long;
// the characteristic parts are verbatim).
INSTANTIATE_TEST_SUITE_P(
    Models, ChatTemplateDetectTest,
    ::testing::Values(
        Detection{"OpenHermes",
                  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                  "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                  "{% endif %}",
                  "chatml"},
        Detection{"Mistral7BInstructV02",
                  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                  "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
                  "eos_token}}{% endif %}{% endfor %}",
                  "llama2"},
        Detection{"Llama2Chat",
                  "{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
                  "messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in messages %}"
                  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}"
                  "{% endif %}{% endfor %}",
                  "llama2-sys-bos"},
        Detection{"Vigogne",
                  "{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
                  "message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% endif %}",
                  "llama2-sys-strip"},
        Detection{"MistralV1",
                  "{%- if message['role'] == 'user' %}{%- if loop.first and system_message is defined %}"
                  "{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}{%- endif %}",
                  "mistral-v1"},
        Detection{"MistralLarge2407",
                  "{%- if tools is not none %}{{- \"[AVAILABLE_TOOLS] [\" }}{%- endif %}{{- \"[INST] \" + "
                  "message[\"content\"] + \"[/INST]\" }}",
                  "mistral-v3"},
        Detection{"MistralNemo",
                  "{{- \"[AVAILABLE_TOOLS][\" }}{%- endif %}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}",
                  "mistral-v3-tekken"},
        Detection{"MistralLarge2411",
                  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                  "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + "
                  "message['content'] + '[/SYSTEM_PROMPT]' }}{% endif %}{% endfor %}",
                  "mistral-v7"},
        Detection{"Llama3Instruct",
                  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
                  "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
                  "'<|eot_id|>' %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}",
                  "llama3"},
        Detection{"Phi3Mini",
                  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + "
                  "'\\n' + message['content'] + '<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}{% elif "
                  "(message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\\n'}}{% endif %}{% endfor %}",
                  "phi3"},
        Detection{"Zephyr7bBeta",
                  "{% for message in messages %}\\n{% if message['role'] == 'user' %}\\n{{ '<|user|>\\n' + "
                  "message['content'] + eos_token }}\\n{% elif message['role'] == 'assistant' %}\\n{{ "
                  "'<|assistant|>\\n'  + message['content'] + eos_token }}\\n{% endif %}{% endfor %}",
                  "zephyr"},
        Detection{"GemmaIt",
                  "{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + "
                  "'<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% "
                  "endif %}",
                  "gemma"},
        Detection{"BareName", "chatml", "chatml"},
        Detection{"Phi4IsNotChatml", "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}", ""},
        Detection{"Unknown", "{% for m in messages %}{{ m['content'] }}{% endfor %}", ""}),
    [](const auto& info) { return info.param.model; });

// stablelm-2-zephyr writes <|endoftext|> where zephyr-7b writes eos_token.
TEST(ChatTemplateTest, ZephyrKeepsALiteralEndOfText) {
  const auto t = ChatTemplate::Detect("{{ '<|user|>\\n' + message['content'] + '<|endoftext|>' }}", "<s>", "</s>");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(Apply(*t, Conversation({{"user", "Hi"}})), "<|user|>\nHi<|endoftext|>\n<|assistant|>\n");
}

// A real GGUF's template (llama.cpp's Phi-3 vocabulary file).
TEST(ChatTemplateTest, DetectsPhi3FromItsGguf) {
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), testing::SharedPath("vocab/ggml-vocab-phi-3.gguf"), &f).ok());
  const std::optional<std::string> jinja = f->GetString("tokenizer.chat_template");
  ASSERT_TRUE(jinja.has_value());
  const auto t = ChatTemplate::Detect(*jinja, "<s>", "<|endoftext|>");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->name(), "phi3");
}

TEST(ChatTemplateTest, BuiltinsHonorAddGenerationPrompt) {
  ChatConversation c = Conversation({{"user", "Hi"}, {"assistant", "Hello"}});
  c.add_generation_prompt = false;
  for (const char* name : {"chatml", "llama3", "phi3", "zephyr", "gemma", "plain"}) {
    ChatTemplate t;
    ASSERT_TRUE(ChatTemplate::FromName(name, "", "", &t).ok());
    const std::string without = Apply(t, c);
    c.add_generation_prompt = true;
    const std::string with = Apply(t, c);
    c.add_generation_prompt = false;
    EXPECT_TRUE(with.starts_with(without) && with.size() > without.size()) << name;
  }
}

TEST(ChatTemplateTest, BuiltinsRefuseToolsAndToolMessages) {
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromName("chatml", "", "", &t).ok());
  ChatConversation c = Conversation({{"user", "Hi"}});
  c.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  EXPECT_EQ(Apply(t, c),
            "ERROR invalid argument: the 'chatml' chat template cannot render tools; serve the model with its Jinja "
            "chat template");
  c = Conversation({{"user", "Hi"}, {"tool", "42"}});
  EXPECT_TRUE(Apply(t, c).starts_with("ERROR invalid argument: the 'chatml' chat template renders only system, user "
                                      "and assistant text; 'tool' messages"));
}

TEST(ChatTemplateTest, JinjaRendersWithTransformersVariables) {
  const ChatTemplate t = Jinja(
      "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ m.tool_calls|tojson if m.tool_calls }}"
      "{{ eos_token }}{% endfor %}{% if tools %}[{{ tools|map(attribute='function.name')|join(',') }}]{% endif %}"
      "{{ documents is none }}{{ tools is none }}{% if add_generation_prompt %}<|assistant|>{% endif %}");
  EXPECT_EQ(t.name(), "jinja");
  ChatConversation c = Conversation({{"system", "S"}, {"user", "U"}});
  EXPECT_EQ(Apply(t, c), "<s><|system|>S</s><|user|>U</s>TrueTrue<|assistant|>");
  c.messages.push_back(json::parse(
      R"({"role": "assistant", "content": null, "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {"z": 1, "a": "é"}}}]})"));
  c.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}])");
  c.add_generation_prompt = false;
  EXPECT_EQ(Apply(t, c),
            "<s><|system|>S</s><|user|>U</s><|assistant|>None[{\"id\": \"1\", \"function\": {\"name\": \"f\", "
            "\"arguments\": {\"z\": 1, \"a\": \"é\"}}}]</s>[f,g]TrueFalse");
}

TEST(ChatTemplateTest, JinjaWithoutSpecialTokensLeavesThemUndefined) {
  const ChatTemplate t = Jinja("{{ bos_token is defined }}{{ eos_token is defined }}", "", "", "\xff");
  EXPECT_EQ(Apply(t, Conversation({{"user", "U"}})), "FalseFalse");
}

TEST(ChatTemplateTest, JinjaTakesChatTemplateKwargs) {
  const ChatTemplate t = Jinja("{{ 'think' if enable_thinking is not defined or enable_thinking else 'no think' }}");
  ChatConversation c = Conversation({{"user", "U"}});
  EXPECT_EQ(Apply(t, c), "think");
  c.variables = json::parse(R"({"enable_thinking": false, "messages": "cannot replace the messages"})");
  EXPECT_EQ(Apply(t, c), "no think");
}

TEST(ChatTemplateTest, JinjaUsesTheToolUseVariantWithTools) {
  const ChatTemplate t = Jinja("default", "tool use: {{ tools|length }}");
  ChatConversation c = Conversation({{"user", "U"}});
  EXPECT_EQ(Apply(t, c), "default");
  c.tools = json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  EXPECT_EQ(Apply(t, c), "tool use: 1");
}

TEST(ChatTemplateTest, JinjaErrorsAreClientErrorsWithTheirLine) {
  const ChatTemplate t = Jinja(
      "{% for m in messages %}\n{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}\n"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
      "{% endif %}{{ m.content + 1 if m.content == 'add' }}{% endfor %}");
  EXPECT_EQ(Apply(t, Conversation({{"user", "a"}, {"user", "b"}})),
            "ERROR invalid argument: Conversation roles must alternate user/assistant/user/assistant/... (raised by "
            "the chat template at line 3)");
  EXPECT_EQ(Apply(t, Conversation({{"user", "add"}})),
            "ERROR invalid argument: the chat template failed on this conversation at line 4: can only concatenate "
            "str (not \"int\") to str");
  const ChatTemplate slow = Jinja("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  EXPECT_TRUE(Apply(slow, Conversation({{"user", "a"}})).starts_with("ERROR resource exhausted: the chat template"));
}

TEST(ChatTemplateTest, JinjaSyntaxErrorsNameTheLine) {
  ChatTemplate t;
  const Status s = ChatTemplate::FromJinja("ok\n{% if x %}", "", "<s>", "</s>", &t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "chat template line 2: unexpected end of template; looking for 'elif' or 'else' or 'endif'");
  EXPECT_EQ(ChatTemplate::FromJinja("fine", "{{ broken", "", "", &t).message(),
            "tool-use chat template line 1: unexpected end of template, expected 'end of print statement'");
}

// A real GGUF's Jinja template (llama.cpp's Phi-3 vocabulary file) renders
// into the prompt with its special tokens parsed as special tokens, and the
// BOS it writes is not doubled.
TEST(ChatTemplateTest, Phi3GgufTemplateBecomesSpecialTokens) {
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), testing::SharedPath("vocab/ggml-vocab-phi-3.gguf"), &f).ok());
  std::unique_ptr<Vocab> vocab;
  ASSERT_TRUE(Vocab::FromGguf(*f, &vocab).ok());
  const std::string bos = vocab->token_text(vocab->bos()), eos = vocab->token_text(vocab->eos());
  ChatTemplate t;
  ASSERT_TRUE(ChatTemplate::FromJinja(*f->GetString("tokenizer.chat_template"), "", bos, eos, &t).ok());
  ApiRequest request;
  std::string param;
  ASSERT_TRUE(ParseApiRequest(Endpoint::kChat,
                              R"({"messages": [{"role": "user", "content": "Hello"},
                                               {"role": "assistant", "content": "Hi"},
                                               {"role": "user", "content": "Who?"}]})",
                              RequestLimits(), &request, &param)
                  .ok());
  std::string text;
  ASSERT_TRUE(t.Apply(request.chat, &text).ok());
  // What Python's jinja2 renders from this template (transformers' setup).
  EXPECT_EQ(text, "<s><|user|>\nHello<|end|>\n<|assistant|>\nHi<|end|>\n<|user|>\nWho?<|end|>\n<|assistant|>\n");
  std::vector<int32_t> ids;
  ASSERT_TRUE(BuildPrompt(request, 0, *vocab, t, &ids).ok());
  auto count = [&](std::string_view token) {
    int n = 0;
    for (int32_t id : ids) n += vocab->token_text(id) == token;
    return n;
  };
  EXPECT_EQ(ids.front(), vocab->bos());
  EXPECT_EQ(count(bos), 1);
  EXPECT_EQ(count("<|user|>"), 2);
  EXPECT_EQ(count("<|assistant|>"), 2);
  EXPECT_EQ(count("<|end|>"), 3);
}

}  // namespace
}  // namespace strata::server
