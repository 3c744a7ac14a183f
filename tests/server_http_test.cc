// strata::server::Server end to end, in process: every endpoint over real
// HTTP on a loopback port, against the bundled stories260K model.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <set>

#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;

json PostJson(httplib::Client& c, const std::string& path, const json& body, int* status,
              const httplib::Headers& headers = {}) {
  auto r = c.Post(path.c_str(), headers, body.dump(), "application/json");
  EXPECT_TRUE(r) << "no response: " << httplib::to_string(r.error());
  if (!r) return json();
  *status = r->status;
  return json::parse(r->body, nullptr, /*allow_exceptions=*/false);
}

json Completion(httplib::Client& c, const json& body) {
  int status = 0;
  json j = PostJson(c, "/v1/completions", body, &status);
  EXPECT_EQ(status, 200) << j.dump();
  return j;
}

// The text of a streamed response, checking every chunk's shape on the way.
struct Streamed {
  std::string text;
  std::string finish_reason;
  json usage;  // the usage chunk's, if any
  size_t chunks = 0;
};

Streamed ReadStream(const std::string& body, bool chat) {
  Streamed s;
  bool well_formed = false;
  const std::vector<std::string> data = SseData(body, &well_formed);
  EXPECT_TRUE(well_formed) << body;
  EXPECT_FALSE(data.empty());
  if (data.empty()) return s;
  EXPECT_EQ(data.back(), "[DONE]");
  std::string id;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json c = json::parse(data[i], nullptr, false);
    EXPECT_TRUE(c.is_object()) << data[i];
    if (!c.is_object()) return s;
    EXPECT_EQ(c["object"], chat ? "chat.completion.chunk" : "text_completion");
    if (id.empty()) id = c["id"];
    EXPECT_EQ(c["id"], id);
    ++s.chunks;
    if (c["choices"].empty()) {
      s.usage = c["usage"];
      continue;
    }
    const json& choice = c["choices"][0];
    EXPECT_EQ(choice["index"], 0);
    if (chat) {
      if (i == 0) {
        EXPECT_EQ(choice["delta"]["role"], "assistant");
      }
      s.text += choice["delta"].value("content", "");
    } else {
      s.text += choice["text"].get<std::string>();
    }
    if (!choice["finish_reason"].is_null()) s.finish_reason = choice["finish_reason"];
  }
  return s;
}

Streamed Stream(httplib::Client& c, const std::string& path, json body) {
  body["stream"] = true;
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
  return ReadStream(r->body, path == "/v1/chat/completions");
}

TEST(ServerHttpTest, Health) {
  ServerHarness h;
  auto r = h.Client()->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["status"], "ok");
}

TEST(ServerHttpTest, ModelsListsTheLoadedModel) {
  ServerHarness h;
  auto c = h.Client();
  auto r = c->Get("/v1/models");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  const json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  const std::string id = j["data"][0]["id"];
  EXPECT_EQ(id, h.model().name());
  EXPECT_EQ(j["data"][0]["object"], "model");
  auto one = c->Get(("/v1/models/" + id).c_str());
  ASSERT_TRUE(one);
  EXPECT_EQ(one->status, 200);
  EXPECT_EQ(json::parse(one->body)["id"], id);
  auto missing = c->Get("/v1/models/gpt-4");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["code"], "model_not_found");
}

// The API's greedy completion is exactly what `strata run --temp 0` prints.
TEST(ServerHttpTest, GreedyCompletionEqualsCliRun) {
  ServerHarness h;
  const std::string prompt = "Once upon a time";
  const int n = 60;
  const CommandResult run = RunCommand(
      {CliPath(), "run", "-m", StoriesModelPath(), "-p", prompt, "-n", std::to_string(n), "--temp", "0", "-t", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto c = h.Client();
  const json j = Completion(*c, {{"model", "anything"}, {"prompt", prompt}, {"max_tokens", n}, {"temperature", 0}});
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], h.model().name());
  EXPECT_EQ(j["choices"][0]["text"], run.out);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);  // BOS + 4, as llama2.c tokenizes it
  EXPECT_EQ(j["usage"]["completion_tokens"], n);
  EXPECT_EQ(j["usage"]["total_tokens"], 5 + n);
}

// Chat renders the plain template (stories260K has none) and then generates
// exactly like `strata run` on the rendered prompt.
TEST(ServerHttpTest, GreedyChatEqualsCliRunOnTheRenderedPrompt) {
  ServerHarness h;
  const CommandResult run = RunCommand({CliPath(), "run", "-m", StoriesModelPath(), "-p",
                                        "System: Tell a story.\nUser: Lily had a cat.\nAssistant:", "-n", "40",
                                        "--temp", "0", "-t", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  int status = 0;
  auto c = h.Client();
  const json j = PostJson(*c, "/v1/chat/completions",
                          {{"model", "x"},
                           {"messages", {{{"role", "system"}, {"content", "Tell a story."}},
                                         {{"role", "user"}, {"content", "Lily had a cat."}}}},
                           {"max_completion_tokens", 40},
                           {"temperature", 0}},
                          &status);
  ASSERT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], run.out);
  EXPECT_EQ(j["usage"]["completion_tokens"], 40);
}

TEST(ServerHttpTest, StreamingTextEqualsNonStreaming) {
  ServerHarness h;
  auto c = h.Client();
  const json completion = {{"prompt", "The dog"}, {"max_tokens", 48}, {"temperature", 0}};
  const json whole = Completion(*c, completion);
  const Streamed streamed = Stream(*c, "/v1/completions", completion);
  EXPECT_EQ(streamed.text, whole["choices"][0]["text"]);
  EXPECT_EQ(streamed.finish_reason, "length");
  EXPECT_GT(streamed.chunks, 2u);
  EXPECT_TRUE(streamed.usage.is_null());  // not asked for

  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hello"}}}}, {"max_tokens", 32}, {"temperature", 0}};
  int status = 0;
  const json chat_whole = PostJson(*c, "/v1/chat/completions", chat, &status);
  ASSERT_EQ(status, 200);
  const Streamed chat_streamed = Stream(*c, "/v1/chat/completions", chat);
  EXPECT_EQ(chat_streamed.text, chat_whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(chat_streamed.finish_reason, "length");
}

// A stream whose first token comes after many keep-alive comments (here:
// queued behind another request, a keep-alive every millisecond) is not
// mistaken for a client that stopped reading: the keep-alives' bytes were
// once subtracted from the bytes queued for the client without having been
// added, so the first chunk after a dozen of them looked like megabytes
// queued and the connection was dropped.
TEST(ServerHttpTest, StreamAfterManyKeepAlivesIsDelivered) {
  server::ServerOptions o;
  o.heartbeat = std::chrono::milliseconds(1);
  EngineParams ep = ServerHarness::DefaultEngineParams();
  ep.parallel = 1;
  ServerHarness h(o, ep);
  std::thread first([&] {
    auto c = h.Client();
    Completion(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 2000}, {"temperature", 0}});
  });
  while (h.engine().Stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto c = h.Client();
  auto r = c->Post("/v1/completions", json{{"prompt", "The dog"}, {"max_tokens", 8}, {"temperature", 0},
                                          {"stream", true}}.dump(), "application/json");
  first.join();
  ASSERT_TRUE(r);
  size_t keep_alives = 0;
  for (size_t at = 0; (at = r->body.find(": keep-alive", at)) != std::string::npos; ++at) ++keep_alives;
  EXPECT_GT(keep_alives, 50u) << "the first token must come after many keep-alives";
  const Streamed s = ReadStream(r->body, false);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_FALSE(s.text.empty());
}

TEST(ServerHttpTest, StreamingUsageChunkWhenAsked) {
  ServerHarness h;
  auto c = h.Client();
  const Streamed s = Stream(*c, "/v1/chat/completions",
                            {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                             {"max_tokens", 10},
                             {"temperature", 0},
                             {"stream_options", {{"include_usage", true}}}});
  ASSERT_TRUE(s.usage.is_object());
  EXPECT_EQ(s.usage["completion_tokens"], 10);
  EXPECT_EQ(s.usage["total_tokens"], s.usage["prompt_tokens"].get<int>() + 10);
}

TEST(ServerHttpTest, StopStringEndsTheCompletion) {
  ServerHarness h;
  auto c = h.Client();
  const json free_run = Completion(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0}});
  const std::string text = free_run["choices"][0]["text"];
  const size_t cut = text.find(" little");
  ASSERT_NE(cut, std::string::npos) << text;
  for (bool stream : {false, true}) {
    const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0},
                      {"stop", {"zzz", " little"}}};
    if (stream) {
      const Streamed s = Stream(*c, "/v1/completions", req);
      EXPECT_EQ(s.text, text.substr(0, cut));
      EXPECT_EQ(s.finish_reason, "stop");
    } else {
      const json j = Completion(*c, req);
      EXPECT_EQ(j["choices"][0]["text"], text.substr(0, cut));
      EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
    }
  }
}

TEST(ServerHttpTest, SeedReproducesSampling) {
  ServerHarness h;
  auto c = h.Client();
  const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 1.0}, {"seed", 1234}};
  const json a = Completion(*c, req);
  const json b = Completion(*c, req);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  json other = req;
  other["seed"] = 99;
  EXPECT_NE(Completion(*c, other)["choices"][0]["text"], a["choices"][0]["text"]);
}

TEST(ServerHttpTest, TokenIdPromptIsUsedAsGiven) {
  ServerHarness h;
  auto c = h.Client();
  const json text = Completion(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}});
  const json ids = Completion(*c, {{"prompt", {1, 403, 407, 261, 378}}, {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(ids["choices"][0]["text"], text["choices"][0]["text"]);
  EXPECT_EQ(ids["usage"]["prompt_tokens"], 5);
  const json batch_of_one = Completion(*c, {{"prompt", {"Once upon a time"}}, {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(batch_of_one["choices"][0]["text"], text["choices"][0]["text"]);
}

// A batch of prompts (strings and token-id arrays) answers each prompt in
// its own choice, index = prompt * n + sample, each exactly as alone.
TEST(ServerHttpTest, PromptBatchAnswersEachPrompt) {
  ServerHarness h;
  auto c = h.Client();
  const std::vector<std::string> prompts = {"Once upon a time", "The dog", "Lily"};
  std::vector<json> alone;
  int prompt_tokens = 0;
  for (const std::string& p : prompts) {
    alone.push_back(Completion(*c, {{"prompt", p}, {"max_tokens", 10}, {"temperature", 0}}));
    prompt_tokens += alone.back()["usage"]["prompt_tokens"].get<int>();
  }
  const json batch = Completion(*c, {{"prompt", prompts}, {"max_tokens", 10}, {"temperature", 0}});
  ASSERT_EQ(batch["choices"].size(), prompts.size()) << batch.dump();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batch["choices"][i]["index"], i);
    EXPECT_EQ(batch["choices"][i]["text"], alone[i]["choices"][0]["text"]);
  }
  EXPECT_EQ(batch["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(batch["usage"]["completion_tokens"], 30);
  const json ids = Completion(*c, {{"prompt", {{1, 403, 407, 261, 378}, {1, 403, 407, 261, 378}}},
                                   {"max_tokens", 10}, {"temperature", 0}});
  ASSERT_EQ(ids["choices"].size(), 2u);
  EXPECT_EQ(ids["choices"][1]["text"], alone[0]["choices"][0]["text"]);
}

// n samples per prompt: distinct draws, each reproducible with a seed; the
// prompt counted once in usage; streamed chunks carry their choice's index.
TEST(ServerHttpTest, SeveralChoicesPerPrompt) {
  ServerHarness h;
  auto c = h.Client();
  const json req = {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 1.0}, {"seed", 7}, {"n", 3}};
  const json a = Completion(*c, req);
  ASSERT_EQ(a["choices"].size(), 3u) << a.dump();
  EXPECT_EQ(a["usage"]["prompt_tokens"], 5);
  EXPECT_EQ(a["usage"]["completion_tokens"], 72);
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a["choices"][i]["index"], i);
    texts.insert(a["choices"][i]["text"].get<std::string>());
  }
  EXPECT_EQ(texts.size(), 3u);
  const json b = Completion(*c, req);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b["choices"][i]["text"], a["choices"][i]["text"]);

  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    json body = std::string(path) == "/v1/completions"
                    ? json{{"prompt", "Once upon a time"}}
                    : json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}};
    body.update({{"max_tokens", 12}, {"temperature", 0}, {"n", 2}, {"stream", true}});
    auto r = c->Post(path, body.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    bool well_formed = false;
    const std::vector<std::string> data = SseData(r->body, &well_formed);
    ASSERT_TRUE(well_formed);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data.back(), "[DONE]");
    std::string text[2];
    int finishes[2] = {0, 0};
    for (size_t i = 0; i + 1 < data.size(); ++i) {
      const json chunk = json::parse(data[i]);
      ASSERT_EQ(chunk["choices"].size(), 1u);
      const json& choice = chunk["choices"][0];
      const int index = choice["index"];
      ASSERT_TRUE(index == 0 || index == 1) << data[i];
      text[index] += std::string(path) == "/v1/completions" ? choice["text"].get<std::string>()
                                                             : choice["delta"].value("content", "");
      if (!choice["finish_reason"].is_null()) ++finishes[index];
    }
    // Greedy: both choices are the same text, each finished once.
    EXPECT_EQ(text[0], text[1]);
    EXPECT_FALSE(text[0].empty());
    EXPECT_EQ(finishes[0], 1);
    EXPECT_EQ(finishes[1], 1);
  }
}

TEST(ServerHttpTest, MaxTokensZeroAndDefault) {
  ServerHarness h;
  auto c = h.Client();
  const json zero = Completion(*c, {{"prompt", "Once"}, {"max_tokens", 0}});
  EXPECT_EQ(zero["choices"][0]["text"], "");
  EXPECT_EQ(zero["usage"]["completion_tokens"], 0);
  const json dflt = Completion(*c, {{"prompt", "Once upon a time"}, {"temperature", 0}});
  EXPECT_EQ(dflt["usage"]["completion_tokens"], 16);  // OpenAI's default for completions
}

TEST(ServerHttpTest, CompletionLogprobs) {
  ServerHarness h;
  auto c = h.Client();
  for (bool stream : {false, true}) {
    json req = {{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}, {"logprobs", 3}};
    std::vector<json> parts;
    if (stream) {
      req["stream"] = true;
      auto r = c->Post("/v1/completions", req.dump(), "application/json");
      ASSERT_TRUE(r);
      bool ok = false;
      for (const std::string& d : SseData(r->body, &ok))
        if (d != "[DONE]") parts.push_back(json::parse(d)["choices"][0]);
    } else {
      parts.push_back(Completion(*c, req)["choices"][0]);
    }
    std::string text, joined;
    size_t n_tokens = 0;
    int64_t last_offset = -1;
    for (const json& choice : parts) {
      text += choice["text"].get<std::string>();
      if (choice["logprobs"].is_null()) continue;
      const json& lp = choice["logprobs"];
      ASSERT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
      ASSERT_EQ(lp["tokens"].size(), lp["top_logprobs"].size());
      ASSERT_EQ(lp["tokens"].size(), lp["text_offset"].size());
      for (size_t i = 0; i < lp["tokens"].size(); ++i) {
        joined += lp["tokens"][i].get<std::string>();
        EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
        EXPECT_EQ(lp["top_logprobs"][i].size(), 3u);
        // Greedy: the chosen token is the most likely one.
        double best = -1e30;
        for (const auto& [tok, v] : lp["top_logprobs"][i].items()) best = std::max(best, v.get<double>());
        EXPECT_NEAR(best, lp["token_logprobs"][i].get<double>(), 1e-6);
        EXPECT_GT(lp["text_offset"][i].get<int64_t>(), last_offset);
        last_offset = lp["text_offset"][i];
        ++n_tokens;
      }
    }
    EXPECT_EQ(n_tokens, 12u) << (stream ? "stream" : "whole");
    EXPECT_EQ(joined, text);
  }
}

TEST(ServerHttpTest, ChatLogprobs) {
  ServerHarness h;
  auto c = h.Client();
  int status = 0;
  const json j = PostJson(*c, "/v1/chat/completions",
                          {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                           {"max_tokens", 8},
                           {"temperature", 0},
                           {"logprobs", true},
                           {"top_logprobs", 2}},
                          &status);
  ASSERT_EQ(status, 200) << j.dump();
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 8u);
  std::string bytes;
  for (const json& t : content) {
    for (const json& b : t["bytes"]) bytes += static_cast<char>(b.get<int>());
    EXPECT_EQ(t["top_logprobs"].size(), 2u);
    EXPECT_NEAR(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-6);
  }
  EXPECT_EQ(bytes, j["choices"][0]["message"]["content"]);
}

struct BadRequest {
  std::string name;
  std::string path;
  std::string body;
  int status;
  std::string param;  // expected error.param ("" = null)
};

class ServerBadRequestTest : public ::testing::TestWithParam<BadRequest> {
 protected:
  // One server (small context and body limit) for all the cases.
  static void SetUpTestSuite() {
    server::ServerOptions o;
    o.limits.max_body_bytes = 64 * 1024;
    EngineParams ep = ServerHarness::DefaultEngineParams();
    ep.n_ctx = 128;
    harness_ = new ServerHarness(o, ep);
  }
  static void TearDownTestSuite() {
    delete harness_;
    harness_ = nullptr;
  }
  static ServerHarness* harness_;
};

ServerHarness* ServerBadRequestTest::harness_ = nullptr;

// Each malformed request gets its 4xx in OpenAI's error format, and the
// server keeps serving afterwards.
TEST_P(ServerBadRequestTest, RejectedAndServerKeepsServing) {
  ServerHarness* h = harness_;
  const BadRequest& p = GetParam();
  auto c = h->Client();
  auto r = c->Post(p.path.c_str(), p.body, "application/json");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, p.status) << r->body;
  const json e = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(e.is_object()) << r->body;
  ASSERT_TRUE(e["error"].is_object()) << r->body;
  EXPECT_TRUE(e["error"]["message"].is_string());
  EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
  EXPECT_TRUE(e["error"]["type"].is_string());
  EXPECT_TRUE(e["error"].contains("code"));
  if (p.param.empty()) {
    EXPECT_TRUE(e["error"]["param"].is_null()) << r->body;
  } else {
    EXPECT_EQ(e["error"]["param"], p.param) << r->body;
  }
  auto ok = c->Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

const std::string kChat = "/v1/chat/completions";
const std::string kCmpl = "/v1/completions";

INSTANTIATE_TEST_SUITE_P(
    Cases, ServerBadRequestTest,
    ::testing::Values(
        BadRequest{"MalformedJson", kCmpl, R"({"prompt": "x",)", 400, ""},
        BadRequest{"NotAnObject", kCmpl, R"(["prompt"])", 400, ""},
        BadRequest{"EmptyBody", kCmpl, "", 400, ""},
        BadRequest{"InvalidUtf8", kCmpl, "{\"prompt\": \"a\xff\xfe b\"}", 400, ""},
        BadRequest{"LoneSurrogate", kCmpl, R"({"prompt": "\ud800"})", 400, ""},
        BadRequest{"MissingPrompt", kCmpl, R"({"max_tokens": 3})", 400, "prompt"},
        BadRequest{"PromptWrongType", kCmpl, R"({"prompt": 42})", 400, "prompt"},
        BadRequest{"TooManyChoices", kCmpl, R"({"prompt": ["a", "b", "c", "d", "e"], "n": 4})", 400, "prompt"},
        BadRequest{"MixedBatch", kCmpl, R"({"prompt": ["a", 7]})", 400, "prompt"},
        BadRequest{"EmptyPromptInBatch", kCmpl, R"({"prompt": [[1], []]})", 400, "prompt"},
        BadRequest{"NegativeTokenId", kCmpl, R"({"prompt": [1, -5]})", 400, "prompt"},
        BadRequest{"TokenIdOutsideVocab", kCmpl, R"({"prompt": [1, 100000]})", 400, "prompt"},
        BadRequest{"PromptTooLongForContext", kCmpl,
                   R"({"prompt": ")" + std::string(2000, 'x') + R"("})", 400, "prompt"},
        BadRequest{"NegativeMaxTokens", kCmpl, R"({"prompt": "a", "max_tokens": -1})", 400, "max_tokens"},
        BadRequest{"HugeMaxTokens", kCmpl, R"({"prompt": "a", "max_tokens": 10000000000})", 400, "max_tokens"},
        BadRequest{"MaxTokensOverContextLimit", kCmpl, R"({"prompt": "a", "max_tokens": 129})", 400, "max_tokens"},
        BadRequest{"MaxTokensString", kCmpl, R"({"prompt": "a", "max_tokens": "5"})", 400, "max_tokens"},
        BadRequest{"TemperatureTooHigh", kCmpl, R"({"prompt": "a", "temperature": 3})", 400, "temperature"},
        BadRequest{"TemperatureWrongType", kCmpl, R"({"prompt": "a", "temperature": "hot"})", 400, "temperature"},
        BadRequest{"TopPOutOfRange", kCmpl, R"({"prompt": "a", "top_p": 1.5})", 400, "top_p"},
        BadRequest{"RepeatPenaltyZero", kCmpl, R"({"prompt": "a", "repeat_penalty": 0})", 400, "repeat_penalty"},
        BadRequest{"NulAndGarbageAfterJson", kCmpl, std::string(R"({"prompt": "a"})") + std::string(1, '\0') + "garbage",
                   400, ""},
        BadRequest{"StopWrongType", kCmpl, R"({"prompt": "a", "stop": [1]})", 400, "stop"},
        BadRequest{"StopEmpty", kCmpl, R"({"prompt": "a", "stop": ""})", 400, "stop"},
        BadRequest{"SeedWrongType", kCmpl, R"({"prompt": "a", "seed": 1.5})", 400, "seed"},
        BadRequest{"StreamWrongType", kCmpl, R"({"prompt": "a", "stream": "yes"})", 400, "stream"},
        BadRequest{"TooManyLogprobs", kCmpl, R"({"prompt": "a", "logprobs": 21})", 400, "logprobs"},
        BadRequest{"ZeroChoices", kCmpl, R"({"prompt": "a", "n": 0})", 400, "n"},
        BadRequest{"TooManyN", kCmpl, R"({"prompt": "a", "n": 17})", 400, "n"},
        BadRequest{"EchoWrongType", kCmpl, R"({"prompt": "a", "echo": "yes"})", 400, "echo"},
        BadRequest{"ModelWrongType", kCmpl, R"({"prompt": "a", "model": 7})", 400, "model"},
        BadRequest{"MissingMessages", kChat, R"({"max_tokens": 3})", 400, "messages"},
        BadRequest{"EmptyMessages", kChat, R"({"messages": []})", 400, "messages"},
        BadRequest{"MessageNotObject", kChat, R"({"messages": ["hi"]})", 400, "messages[0]"},
        BadRequest{"UnknownRole", kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
                   "messages[0].role"},
        BadRequest{"MissingContent", kChat, R"({"messages": [{"role": "user"}]})", 400, "messages[0].content"},
        BadRequest{"ImagePart", kChat,
                   R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]})",
                   400, "messages[0].content"},
        BadRequest{"TopLogprobsWithoutLogprobs", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400, "top_logprobs"},
        BadRequest{"MalformedTool", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})", 400,
                   "tools[0].function"},
        BadRequest{"NegativeMaxCompletionTokens", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -3})", 400,
                   "max_completion_tokens"},
        BadRequest{"GrammarDoesNotParse", kCmpl, R"({"prompt": "a", "grammar": "root ::= foo"})", 400, "grammar"},
        BadRequest{"GrammarTokenOutsideVocab", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= <[99999]>"})", 400, "grammar"},
        BadRequest{"GrammarWrongType", kCmpl, R"({"prompt": "a", "grammar": 3})", 400, "grammar"},
        BadRequest{"UnsupportedSchemaKeyword", kCmpl,
                   R"({"prompt": "a", "response_format": {"type": "json_schema", "json_schema": {"name": "s",
                       "schema": {"type": "array", "uniqueItems": true}}}})", 400, "response_format"},
        BadRequest{"UnknownResponseFormat", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}})", 400,
                   "response_format"},
        BadRequest{"JsonSchemaBadRef", kChat,
                   R"({"messages": [{"role": "user", "content": "x"}], "json_schema": {"$ref": "#/nope"}})", 400,
                   "json_schema"},
        BadRequest{"GuidedJsonNotJson", kCmpl, R"({"prompt": "a", "guided_json": "{not json"})", 400, "guided_json"},
        BadRequest{"GuidedRegexLookahead", kCmpl, R"j({"prompt": "a", "guided_regex": "a(?=b)"})j", 400, "guided_regex"},
        BadRequest{"GuidedChoiceEmpty", kCmpl, R"({"prompt": "a", "guided_choice": []})", 400, "guided_choice"},
        BadRequest{"TwoConstraints", kCmpl, R"({"prompt": "a", "grammar": "root ::= \"a\"", "guided_choice": ["a"]})",
                   400, "guided_choice"},
        BadRequest{"LeftRecursiveSchemaRef", kCmpl,
                   R"({"prompt": "a", "json_schema": {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"}})",
                   400, "json_schema"},
        BadRequest{"BodyTooLarge", kCmpl, R"({"prompt": ")" + std::string(70 * 1024, 'x') + R"("})", 413, ""},
        BadRequest{"UnknownPath", "/v1/embeddings", R"({"input": "x"})", 404, ""},
        BadRequest{"WrongMethod", "/v1/models", "{}", 405, ""}),
    [](const auto& info) { return info.param.name; });

TEST(ServerHttpTest, UnknownPathAndWrongMethodOnGet) {
  ServerHarness h;
  auto c = h.Client();
  auto r = c->Get("/v2/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "not_found");
  auto m = c->Get("/v1/chat/completions");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 405);
  EXPECT_EQ(m->get_header_value("Allow"), "POST");
}

TEST(ServerHttpTest, ApiKeyRequiredEverywhereButHealth) {
  server::ServerOptions o;
  o.api_key = "sekrit-key";
  ServerHarness h(o);
  auto c = h.Client();
  const std::string body = R"({"prompt":"Once","max_tokens":2})";
  for (const httplib::Headers& bad :
       {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer wrong"}},
        httplib::Headers{{"Authorization", "sekrit-key"}}, httplib::Headers{{"Authorization", "Bearer sekrit-keyX"}}}) {
    auto r = c->Post("/v1/completions", bad, body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(json::parse(r->body)["error"]["code"], "invalid_api_key");
    for (const char* path : {"/v1/models", "/metrics"}) {
      auto g = c->Get(path, bad);
      ASSERT_TRUE(g);
      EXPECT_EQ(g->status, 401) << path;
    }
  }
  const httplib::Headers good = {{"Authorization", "Bearer sekrit-key"}};
  auto ok = c->Post("/v1/completions", good, body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(c->Get("/v1/models", good)->status, 200);
  EXPECT_EQ(c->Get("/metrics", good)->status, 200);
  EXPECT_EQ(c->Get("/health")->status, 200);
}

// The full path of program in $PATH, or "".
std::string FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t end = dirs.find(':', pos);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(pos, end - pos) + "/" + program;
    if (end > pos && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    pos = end + 1;
  }
  return "";
}

// One sample line of the exposition format: name{labels} value.
double MetricValue(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + at + series.size() + 2);
}

TEST(ServerHttpTest, MetricsExposition) {
  ServerHarness h;
  auto c = h.Client();
  Completion(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 7}, {"temperature", 0}});
  Stream(*c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 5}});
  c->Get("/nowhere");
  // The engine may update its counters just after the last event went out.
  ASSERT_TRUE(h.WaitIdle());
  for (int i = 0; i < 500 && h.engine().Stats().completion_tokens_total < 12; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto r = c->Get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
  const std::string& m = r->body;
  // Every line is a comment or "name[{labels}] value".
  size_t pos = 0;
  while (pos < m.size()) {
    const size_t end = m.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "the exposition ends with a newline";
    const std::string line = m.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    const size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    char* parsed_end = nullptr;
    std::strtod(line.c_str() + space + 1, &parsed_end);
    EXPECT_EQ(*parsed_end, '\0') << line;
    EXPECT_EQ(line.rfind("strata_", 0), 0u) << line;
  }
  EXPECT_EQ(MetricValue(m, R"(strata_http_requests_total{endpoint="/v1/completions",status="200"})"), 2);
  EXPECT_EQ(MetricValue(m, R"(strata_http_requests_total{endpoint="other",status="404"})"), 1);
  EXPECT_EQ(MetricValue(m, "strata_completion_tokens_total"), 12);
  EXPECT_EQ(MetricValue(m, "strata_prompt_tokens_total"), 10);
  EXPECT_EQ(MetricValue(m, "strata_requests_running"), 0);
  EXPECT_EQ(MetricValue(m, "strata_requests_queued"), 0);
  EXPECT_GT(MetricValue(m, R"(strata_kv_blocks{state="total"})"), 0);
  EXPECT_GE(MetricValue(m, R"(strata_kv_slices{tier="ram"})"), 0);
  EXPECT_GE(MetricValue(m, "strata_kv_prefix_cache_hits_total"), 0);
  EXPECT_GT(MetricValue(m, "strata_engine_steps_total"), 0);
  EXPECT_EQ(MetricValue(m, "strata_time_to_first_token_seconds_count"), 2);
  EXPECT_EQ(MetricValue(m, "strata_inter_token_latency_seconds_count"), 6 + 4);
  EXPECT_EQ(MetricValue(m, R"(strata_inter_token_latency_seconds_bucket{le="+Inf"})"), 10);

  // Debian's prometheus package brings promtool; use it when present.
  const std::string promtool = FindOnPath("promtool");
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed";
  const CommandResult check = RunCommand({promtool, "check", "metrics"}, m);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

// A long greedy stream (stories260K runs 2000 tokens without an EOS).
const json kLongStream = {{"prompt", "Once upon a time"}, {"max_tokens", 2000}, {"temperature", 0}, {"stream", true}};

// Streams body until the receiver has seen `chunks` pieces, then hangs up.
void StreamThenHangUp(int port, const json& body, int chunks) {
  httplib::Client c("127.0.0.1", port);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  int seen = 0;
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++seen < chunks; };
  auto r = c.send(req);
  EXPECT_FALSE(r);  // cancelled by the receiver
  EXPECT_EQ(seen, chunks);
}

TEST(ServerHttpTest, ClientDisconnectMidStreamCancelsTheRequest) {
  ServerHarness h;
  StreamThenHangUp(h.port(), kLongStream, 3);
  ASSERT_TRUE(h.WaitIdle(std::chrono::seconds(5)));
  // Cancelled long before its 2000 tokens.
  EXPECT_LT(h.engine().Stats().completion_tokens_total, 1000u);
  EXPECT_EQ(h.engine().Stats().running, 0);
  auto ok = h.Client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

// Engine::Submit refusing (queue full) becomes 429.
TEST(ServerHttpTest, QueueFullIs429) {
  EngineParams ep = ServerHarness::DefaultEngineParams();
  ep.parallel = 1;
  ep.max_queue = 1;
  ServerHarness h({}, ep);
  std::atomic<bool> streaming{false};
  // Holds the only slot until the test hangs up.
  std::thread holder([&] {
    httplib::Client c("127.0.0.1", h.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = kLongStream.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      streaming = true;
      return h.engine().Stats().requests_rejected == 0;
    };
    c.send(req);
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Waits in the queue.
  auto queued = std::async(std::launch::async, [&] {
    return h.Client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":1})", "application/json");
  });
  while (h.engine().Stats().queue_depth < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto r = h.Client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":1})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "queue_full");
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  holder.join();
  auto q = queued.get();
  ASSERT_TRUE(q);
  EXPECT_EQ(q->status, 200);
  EXPECT_TRUE(h.WaitIdle());
}

// Shutdown ends running streams once the grace period is over and returns
// from Serve promptly.
TEST(ServerHttpTest, ShutdownCancelsRunningRequests) {
  server::ServerOptions o;
  o.shutdown_grace = std::chrono::milliseconds(200);
  ServerHarness h(o);
  std::atomic<bool> streaming{false};
  std::thread client([&] {
    httplib::Client c("127.0.0.1", h.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = kLongStream.dump();
    req.set_header("Content-Type", "application/json");
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      streaming = true;
      return true;
    };
    c.send(req);
  });
  while (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  h.server().Shutdown();
  EXPECT_LT(h.Join().count(), 2000);
  client.join();
  EXPECT_TRUE(h.WaitIdle(std::chrono::seconds(2)));
  EXPECT_LT(h.engine().Stats().completion_tokens_total, 1500u);
}

// Shutdown racing the start of Serve is not lost.
TEST(ServerHttpTest, ShutdownRightAfterStartIsNotLost) {
  for (int i = 0; i < 10; ++i) {
    ServerHarness h;
    h.server().Shutdown();
    EXPECT_LT(h.Join().count(), 2000);
  }
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// llama-server's POST /apply-template: the rendered prompt, without generating.
TEST(ServerHttpTest, ApplyTemplateRendersThePrompt) {
  ServerHarness h({}, ServerHarness::DefaultEngineParams(), "chatml");
  auto c = h.Client();
  auto r = c->Post("/apply-template", R"({"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]})",
                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["prompt"],
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  auto bad = c->Post("/apply-template", R"({"messages":"nope"})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_EQ(json::parse(bad->body)["error"]["param"], "messages") << bad->body;
  EXPECT_EQ(h.engine().Stats().requests_total, 0u);  // nothing was generated
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// echo with logprobs and max_tokens 0 scores the prompt in OpenAI's legacy
// shape; the scores of a greedy completion's tokens fed back as a prompt
// equal the logprobs the completion reported.
TEST(ServerHttpTest, EchoScoresThePrompt) {
  ServerHarness h;
  auto c = h.Client();
  auto gen = c->Post("/v1/completions", R"({"prompt":[1, 403, 407, 261, 378],"max_tokens":6,"temperature":0,"logprobs":0})",
                     "application/json");
  ASSERT_TRUE(gen);
  ASSERT_EQ(gen->status, 200) << gen->body;
  const json g = json::parse(gen->body)["choices"][0]["logprobs"];
  ASSERT_EQ(g["tokens"].size(), 6u);
  json ids = json::array({1, 403, 407, 261, 378});
  const Vocab& vocab = h.model().vocab();
  for (const json& t : g["tokens"]) {
    // From the top: byte tokens (low ids) render like the pieces sampled here.
    int32_t id = h.model().hparams().n_vocab - 1;
    while (id >= 0 && vocab.TokenToPiece(id) != t.get<std::string>()) --id;
    ASSERT_GE(id, 0) << t;
    ids.push_back(id);
  }
  json req = {{"prompt", ids}, {"echo", true}, {"logprobs", 2}, {"max_tokens", 0}};
  auto scored = c->Post("/v1/completions", req.dump(), "application/json");
  ASSERT_TRUE(scored);
  ASSERT_EQ(scored->status, 200) << scored->body;
  const json choice = json::parse(scored->body)["choices"][0];
  const json lp = choice["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 11u) << scored->body;
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (size_t i = 1; i < 11; ++i) {
    EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
    EXPECT_EQ(lp["top_logprobs"][i].size(), 2u);
  }
  for (size_t k = 0; k < 6; ++k)
    EXPECT_NEAR(lp["token_logprobs"][5 + k].get<double>(), g["token_logprobs"][k].get<double>(), 1e-3) << k;
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(choice["text"], h.model().vocab().Decode(std::vector<int32_t>(ids.begin(), ids.end())));
  EXPECT_EQ(json::parse(scored->body)["usage"]["completion_tokens"], 0);
}

// echo without logprobs: the text starts with the prompt (streamed too).
TEST(ServerHttpTest, EchoPrefixesThePrompt) {
  ServerHarness h;
  auto c = h.Client();
  auto r = c->Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":4,"temperature":0,"echo":true})",
                   "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto plain = c->Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":4,"temperature":0})",
                       "application/json");
  ASSERT_TRUE(plain);
  EXPECT_EQ(json::parse(r->body)["choices"][0]["text"],
            "Once upon a time" + json::parse(plain->body)["choices"][0]["text"].get<std::string>());
  auto s = c->Post("/v1/completions",
                   R"({"prompt":"Once upon a time","max_tokens":4,"temperature":0,"echo":true,"stream":true})",
                   "application/json");
  ASSERT_TRUE(s);
  bool well_formed = false;
  std::string text;
  for (const std::string& d : SseData(s->body, &well_formed))
    if (d != "[DONE]") text += json::parse(d)["choices"][0]["text"].get<std::string>();
  EXPECT_TRUE(well_formed);
  EXPECT_EQ(text, json::parse(r->body)["choices"][0]["text"]);
}

}  // namespace
}  // namespace strata::testing

namespace strata::testing {
namespace {

// llama-server's /tokenize and /detokenize: ids as strata run's tokenizer
// gives them, pieces, specials, and the way back.
TEST(ServerHttpTest, TokenizeAndDetokenize) {
  ServerHarness h;
  auto c = h.Client();
  const Vocab& vocab = h.model().vocab();
  int status = 0;
  const json t = PostJson(*c, "/tokenize", {{"content", "Once upon a time"}}, &status);
  ASSERT_EQ(status, 200) << t.dump();
  const std::vector<TokenId> want = vocab.Encode("Once upon a time", false, true);
  EXPECT_EQ(t["tokens"].get<std::vector<TokenId>>(), want);
  const json special = PostJson(*c, "/tokenize", {{"content", "Once"}, {"add_special", true}}, &status);
  ASSERT_EQ(status, 200);
  ASSERT_FALSE(special["tokens"].empty());
  EXPECT_EQ(special["tokens"][0], vocab.bos());
  const json pieces = PostJson(*c, "/tokenize", {{"content", "Once upon"}, {"with_pieces", true}}, &status);
  ASSERT_EQ(status, 200);
  std::string joined;
  for (const json& p : pieces["tokens"]) {
    EXPECT_TRUE(p["id"].is_number_integer());
    joined += p["piece"].get<std::string>();
  }
  EXPECT_EQ(joined, " Once upon");  // the add_space_prefix space stays in the pieces, as in llama-server

  json ids = t["tokens"];
  ids.insert(ids.begin(), vocab.bos());
  const json d = PostJson(*c, "/detokenize", {{"tokens", ids}}, &status);
  ASSERT_EQ(status, 200) << d.dump();
  EXPECT_EQ(d["content"], vocab.TokenToPiece(vocab.bos(), true) + " Once upon a time");

  const json bad = PostJson(*c, "/detokenize", {{"tokens", {vocab.n_tokens()}}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(bad["error"]["param"], "tokens");
  const json bad_content = PostJson(*c, "/tokenize", {{"text", "x"}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(bad_content["error"]["param"], "content");
  EXPECT_EQ(h.engine().Stats().requests_total, 0u);  // nothing was generated
}

TEST(ServerHttpTest, TokenizeNeedsTheKey) {
  server::ServerOptions o;
  o.api_key = "sesame";
  ServerHarness h(o);
  auto r = h.Client()->Post("/tokenize", R"({"content":"x"})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
}

// The OpenAI routes without /v1, as llama-server has them.
TEST(ServerHttpTest, RoutesWithoutTheV1Prefix) {
  ServerHarness h;
  auto c = h.Client();
  int status = 0;
  const json body = {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}};
  const json v1 = PostJson(*c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200);
  const json bare = PostJson(*c, "/completions", body, &status);
  ASSERT_EQ(status, 200) << bare.dump();
  EXPECT_EQ(bare["choices"][0]["text"], v1["choices"][0]["text"]);
  const json chat = PostJson(*c, "/chat/completions",
                             {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}}, &status);
  ASSERT_EQ(status, 200) << chat.dump();
  EXPECT_EQ(chat["object"], "chat.completion");
  auto models = c->Get("/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  const std::string id = json::parse(models->body)["data"][0]["id"];
  auto model = c->Get(("/models/" + id).c_str());
  ASSERT_TRUE(model);
  EXPECT_EQ(model->status, 200) << model->body;
  auto other = c->Get("/models/nope");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404);
}

// A request that sets no sampling takes the server's (strata serve --temp ...).
TEST(ServerHttpTest, ServerSamplingDefaultsApplyToRequestsThatSetNone) {
  server::ServerOptions o;
  o.sampling.temperature = 0;
  ServerHarness h(o);
  auto c = h.Client();
  int status = 0;
  const json greedy = PostJson(*c, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 24}}, &status);
  ASSERT_EQ(status, 200);
  const CommandResult run = RunCommand(
      {CliPath(), "run", "-m", StoriesModelPath(), "-p", "Once upon a time", "-n", "24", "--temp", "0", "-t", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(greedy["choices"][0]["text"], run.out);
  // The request's own setting wins: temperature 1.5 with two seeds differs.
  const json a = PostJson(*c, "/v1/completions",
                          {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 1.5}, {"seed", 1}}, &status);
  const json b = PostJson(*c, "/v1/completions",
                          {{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"temperature", 1.5}, {"seed", 2}}, &status);
  EXPECT_NE(a["choices"][0]["text"], b["choices"][0]["text"]);
}

// Fields strata ignores are logged, each name once.
TEST(ServerHttpTest, IgnoredFieldsAreLoggedOnce) {
  auto lines = std::make_shared<std::vector<std::string>>();
  auto mu = std::make_shared<std::mutex>();
  server::ServerOptions o;
  o.log = [lines, mu](const std::string& line) {
    std::lock_guard<std::mutex> l(*mu);
    lines->push_back(line);
  };
  ServerHarness h(o);
  auto c = h.Client();
  int status = 0;
  for (int i = 0; i < 3; ++i) {
    PostJson(*c, "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 1}, {"mystery", 1}, {"best_of", 1}}, &status);
    ASSERT_EQ(status, 200);
  }
  std::lock_guard<std::mutex> l(*mu);
  ASSERT_EQ(lines->size(), 1u);
  EXPECT_NE((*lines)[0].find("'mystery'"), std::string::npos) << (*lines)[0];
  EXPECT_EQ((*lines)[0].find("best_of"), std::string::npos) << (*lines)[0];
}

}  // namespace
}  // namespace strata::testing
