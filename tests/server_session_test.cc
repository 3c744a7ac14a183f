// Sessions over HTTP (server/session_api.h), end to end in process against
// stories260K: a session continued after a server restart equals one
// uninterrupted request (completions and chat, greedy and seeded); fork then
// diverge; rollback then continue equals a run that never had the
// rolled-back turn; push/pop returns to the same logits; two writers get
// 409; API keys do not see each other's sessions; damaged and missing files
// get clear errors while other sessions keep working; the routes' errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <thread>

#include "core/env.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;

server::ServerOptions SessionOptions(const std::string& dir) {
  server::ServerOptions o;
  o.sessions.dir = dir;
  return o;
}

struct Reply {
  int status = 0;
  json body;
};

Reply Send(httplib::Client& c, const std::string& method, const std::string& path, const json& body = nullptr,
           const httplib::Headers& headers = {}) {
  httplib::Result r = method == "GET"      ? c.Get(path.c_str(), headers)
                      : method == "DELETE" ? c.Delete(path.c_str(), headers)
                      : body.is_null()     ? c.Post(path.c_str(), headers, "", "application/json")
                                           : c.Post(path.c_str(), headers, body.dump(), "application/json");
  EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
  if (!r) return {};
  return {r->status, json::parse(r->body, nullptr, /*allow_exceptions=*/false)};
}

// A successful completion or chat request; its text.
std::string Text(const Reply& r) {
  EXPECT_EQ(r.status, 200) << r.body.dump();
  if (r.status != 200) return "<" + std::to_string(r.status) + ">";
  const json& choice = r.body["choices"][0];
  return choice.contains("message") ? choice["message"]["content"].get<std::string>() : choice["text"].get<std::string>();
}

std::string Complete(httplib::Client& c, json body) { return Text(Send(c, "POST", "/v1/completions", body)); }
std::string Chat(httplib::Client& c, json body) { return Text(Send(c, "POST", "/v1/chat/completions", body)); }

json User(const std::string& text) { return {{"role", "user"}, {"content", text}}; }

int32_t SessionTokens(httplib::Client& c, const std::string& id) {
  const Reply r = Send(c, "GET", "/v1/sessions/" + id);
  EXPECT_EQ(r.status, 200) << r.body.dump();
  return r.status == 200 ? r.body["tokens"].get<int32_t>() : -1;
}

// The sampling of a run: greedy, or temperature 1 with a seed (sent on the first request only).
struct Sampling {
  const char* name;
  json first;  // fields of the first request
};
const Sampling kSamplings[] = {{"greedy", {{"temperature", 0}}},
                               {"seeded", {{"temperature", 1}, {"top_k", 0}, {"top_p", 1}, {"min_p", 0}, {"seed", 4242}}}};

json With(json body, const json& extra) {
  for (const auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

// Later requests of a seeded run keep its sampling but not its seed (the session's RNG continues).
json Later(const Sampling& s) {
  json j = s.first;
  j.erase("seed");
  return j;
}

TEST(ServerSessionTest, CompletionContinuedAfterRestartEqualsOneRequest) {
  for (const Sampling& s : kSamplings) {
    const std::string dir = MakeTempDir();
    std::string first, second;
    {
      ServerHarness h(SessionOptions(dir));
      auto c = h.Client();
      first = Complete(*c, With({{"prompt", "Once upon a time"}, {"max_tokens", 24}, {"session", "story"}}, s.first));
    }
    {
      ServerHarness h(SessionOptions(dir));  // a new server: the session comes from its file
      auto c = h.Client();
      const Reply r = Send(*c, "POST", "/v1/completions",
                           With({{"prompt", ""}, {"max_tokens", 24}, {"session", "story"}}, Later(s)));
      second = Text(r);
      // All but the last token's KV came from the file, not computed again.
      EXPECT_EQ(r.body["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
                r.body["usage"]["prompt_tokens"].get<int>() - 1)
          << s.name;
    }
    ServerHarness plain;
    auto c = plain.Client();
    const std::string whole = Complete(*c, With({{"prompt", "Once upon a time"}, {"max_tokens", 48}}, s.first));
    EXPECT_EQ(first + second, whole) << s.name;
    EXPECT_FALSE(second.empty()) << s.name;
  }
}

// Speculative decoding leaves a session as plain decoding would: rejected
// drafts' KV is not recorded, and a continuation after a restart (speculating
// again) equals one plain request.
TEST(ServerSessionTest, SpeculationLeavesTheSessionAsPlainDecoding) {
  EngineParams spec = ServerHarness::DefaultEngineParams();
  spec.spec.method = SpecMethod::kNgram;
  spec.spec.draft_max = 4;
  spec.spec.adapt = false;  // drafts in every step, so some are rejected
  // Repeats itself, so prompt lookup has drafts to offer.
  const std::string kPrompt = "Lily went to the park. Lily went to the park. Lily went to the";
  const std::string dir = MakeTempDir();
  const json greedy = {{"max_tokens", 32}, {"temperature", 0}, {"session", "s"}};
  std::string first, second;
  int32_t tokens = 0;
  {
    ServerHarness h(SessionOptions(dir), spec);
    auto c = h.Client();
    first = Complete(*c, With({{"prompt", kPrompt}}, greedy));
    tokens = SessionTokens(*c, "s");
    const EngineStats st = h.engine().Stats();
    EXPECT_GT(st.spec_drafted, st.spec_accepted);
    EXPECT_GT(st.spec_accepted, 0u);
  }
  {
    ServerHarness h(SessionOptions(dir), spec);
    auto c = h.Client();
    second = Complete(*c, With({{"prompt", ""}}, greedy));
  }
  ServerHarness plain;
  auto c = plain.Client();
  const Reply r = Send(*c, "POST", "/v1/completions", {{"prompt", kPrompt}, {"max_tokens", 64}, {"temperature", 0}});
  EXPECT_EQ(first + second, Text(r));
  const std::vector<int32_t> prompt = plain.model().vocab().Encode(kPrompt, true, false);
  EXPECT_EQ(tokens, static_cast<int32_t>(prompt.size()) + 32);
}

TEST(ServerSessionTest, CompletionAppendsItsPromptLikeStrataRun) {
  const std::string dir = MakeTempDir();
  ServerHarness h(SessionOptions(dir));
  auto c = h.Client();
  Complete(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 0}, {"session", "s"}});
  Complete(*c, {{"prompt", " The end."}, {"max_tokens", 10}, {"temperature", 0}, {"session", "s"}});
  ASSERT_EQ(Send(*c, "POST", "/v1/sessions/s/fork", {{"to", "twin"}}).status, 200);
  // `strata run` continues the file the server wrote, as the server continues its twin.
  const CommandResult run = RunCommand({CliPath(), "run", "-m", StoriesModelPath(), "--session-dir", dir, "--session",
                                        "s", "-p", "", "-n", "10", "--temp", "0"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, Complete(*c, {{"prompt", ""}, {"max_tokens", 10}, {"temperature", 0}, {"session", "twin"}}));
  const int32_t after_run = SessionTokens(*c, "s");
  EXPECT_EQ(after_run, SessionTokens(*c, "twin"));
  // The server sees the file changed behind it and reads it again rather than using its parked KV.
  const Reply next = Send(*c, "POST", "/v1/completions",
                          {{"prompt", ""}, {"max_tokens", 4}, {"temperature", 0}, {"session", "s"}});
  ASSERT_EQ(next.status, 200);
  EXPECT_EQ(next.body["usage"]["prompt_tokens"], after_run);
  EXPECT_EQ(h.server().session_stats()->loads, 1u);
  const CommandResult info = RunCommand({CliPath(), "session", "--session-dir", dir, "info", "s"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
}

TEST(ServerSessionTest, ChatContinuedAfterRestartEqualsOneConversation) {
  for (const Sampling& s : kSamplings) {
    const std::string dir = MakeTempDir();
    std::string a1, a2;
    {
      ServerHarness h(SessionOptions(dir));
      auto c = h.Client();
      a1 = Chat(*c, With({{"messages", {User("Tell me a story.")}}, {"max_tokens", 16}, {"session", "c"}}, s.first));
    }
    {
      ServerHarness h(SessionOptions(dir));
      auto c = h.Client();
      a2 = Chat(*c, With({{"messages", {User("And then?")}}, {"max_tokens", 16}, {"session", "c"}}, Later(s)));
      const Reply got = Send(*c, "GET", "/v1/sessions/c");
      ASSERT_EQ(got.status, 200);
      EXPECT_EQ(got.body["kind"], "chat");
      ASSERT_EQ(got.body["messages"].size(), 4u) << got.body.dump();
      EXPECT_EQ(got.body["messages"][1]["content"], a1);
      EXPECT_EQ(got.body["messages"][3]["content"], a2);
    }
    // The same two turns on a server that never restarted.
    ServerHarness h(SessionOptions(MakeTempDir()));
    auto c = h.Client();
    EXPECT_EQ(Chat(*c, With({{"messages", {User("Tell me a story.")}}, {"max_tokens", 16}, {"session", "d"}}, s.first)),
              a1)
        << s.name;
    EXPECT_EQ(Chat(*c, With({{"messages", {User("And then?")}}, {"max_tokens", 16}, {"session", "d"}}, Later(s))), a2)
        << s.name;
    if (std::string(s.name) == "greedy") {
      // And the whole conversation sent at once, statelessly.
      const json all = {User("Tell me a story."), {{"role", "assistant"}, {"content", a1}}, User("And then?")};
      EXPECT_EQ(Chat(*c, {{"messages", all}, {"max_tokens", 16}, {"temperature", 0}}), a2);
    }
  }
}

TEST(ServerSessionTest, StreamingOnASession) {
  ServerHarness h(SessionOptions(MakeTempDir()));
  auto c = h.Client();
  json body = {{"prompt", "Once upon a time"}, {"max_tokens", 12}, {"temperature", 0}, {"session", "st"},
               {"stream", true}, {"stream_options", {{"include_usage", true}}}};
  auto r = c->Post("/v1/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  bool ok = false;
  const std::vector<std::string> data = SseData(r->body, &ok);
  ASSERT_TRUE(ok);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(data.back(), "[DONE]");
  const json usage = json::parse(data[data.size() - 2])["usage"];
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], 0);
  // Saved before [DONE]: the session holds prompt and completion.
  EXPECT_EQ(SessionTokens(*c, "st"), usage["prompt_tokens"].get<int>() + usage["completion_tokens"].get<int>());
}

TEST(ServerSessionTest, ForkThenDiverge) {
  ServerHarness h(SessionOptions(MakeTempDir()));
  auto c = h.Client();
  const json greedy = {{"temperature", 0}, {"max_tokens", 12}};
  const std::string base = Complete(*c, With({{"prompt", "Once upon a time"}, {"session", "f"}}, greedy));
  const Reply fork = Send(*c, "POST", "/v1/sessions/f/fork", {{"to", "g"}});
  ASSERT_EQ(fork.status, 200) << fork.body.dump();
  EXPECT_EQ(fork.body["id"], "g");
  EXPECT_EQ(fork.body["tokens"], SessionTokens(*c, "f"));
  const std::string dog = Complete(*c, With({{"prompt", " The dog"}, {"session", "f"}}, greedy));
  const std::string cat = Complete(*c, With({{"prompt", " Lily was sad. She cried"}, {"session", "g"}}, greedy));
  EXPECT_NE(dog, cat);
  // Each equals the same conversation in a session of its own.
  Complete(*c, With({{"prompt", "Once upon a time"}, {"session", "ref"}}, greedy));
  EXPECT_EQ(Complete(*c, With({{"prompt", " Lily was sad. She cried"}, {"session", "ref"}}, greedy)), cat);
  // The fork did not disturb its source: continue both further.
  EXPECT_EQ(SessionTokens(*c, "g"), SessionTokens(*c, "ref"));
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/f/fork", {{"to", "g"}}).status, 409);  // exists
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/f/fork", {{"to", "f"}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/nope/fork", {{"to", "x"}}).status, 404);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/f/fork", json::object()).status, 400);
  // The fork shared the parked KV of its source instead of reading the file.
  EXPECT_EQ(h.server().session_stats()->loads, 0u);
}

TEST(ServerSessionTest, RollbackThenContinueEqualsNeverHavingTheTurn) {
  for (const Sampling& s : kSamplings) {
    ServerHarness h(SessionOptions(MakeTempDir()));
    auto c = h.Client();
    // Completions, rolled back by tokens.
    Complete(*c, With({{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"session", "r"}}, s.first));
    const int32_t after_first = SessionTokens(*c, "r");
    Complete(*c, With({{"prompt", " Then a storm came."}, {"max_tokens", 10}, {"session", "r"}}, Later(s)));
    const Reply back = Send(*c, "POST", "/v1/sessions/r/rollback", {{"tokens", after_first}});
    ASSERT_EQ(back.status, 200) << back.body.dump();
    EXPECT_EQ(back.body["tokens"], after_first);
    const std::string got =
        Complete(*c, With({{"prompt", " The sun was out."}, {"max_tokens", 10}, {"session", "r"}}, Later(s)));
    Complete(*c, With({{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"session", "t"}}, s.first));
    EXPECT_EQ(Complete(*c, With({{"prompt", " The sun was out."}, {"max_tokens", 10}, {"session", "t"}}, Later(s))),
              got)
        << s.name;

    // Chat, rolled back by messages.
    Chat(*c, With({{"messages", {User("Tell me a story.")}}, {"max_tokens", 10}, {"session", "cr"}}, s.first));
    Chat(*c, With({{"messages", {User("Make it sad.")}}, {"max_tokens", 10}, {"session", "cr"}}, Later(s)));
    const Reply two = Send(*c, "POST", "/v1/sessions/cr/rollback", {{"messages", 2}});
    ASSERT_EQ(two.status, 200) << two.body.dump();
    EXPECT_EQ(two.body["message_count"], 2);
    const std::string chat_got =
        Chat(*c, With({{"messages", {User("Make it happy.")}}, {"max_tokens", 10}, {"session", "cr"}}, Later(s)));
    Chat(*c, With({{"messages", {User("Tell me a story.")}}, {"max_tokens", 10}, {"session", "ct"}}, s.first));
    EXPECT_EQ(Chat(*c, With({{"messages", {User("Make it happy.")}}, {"max_tokens", 10}, {"session", "ct"}}, Later(s))),
              chat_got)
        << s.name;
  }
}

TEST(ServerSessionTest, RollbackErrors) {
  ServerHarness h(SessionOptions(MakeTempDir()));
  auto c = h.Client();
  Complete(*c, {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "r"}});
  const int32_t n = SessionTokens(*c, "r");
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/rollback", {{"tokens", n + 1}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/rollback", {{"tokens", -1}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/rollback", {{"tokens", 1}, {"messages", 1}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/rollback", json::object()).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/rollback", {{"messages", 0}}).status, 400);  // a completion session
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/r/pop").status, 409);                         // nothing pushed
  // A completion session is continued by completions only.
  EXPECT_EQ(Send(*c, "POST", "/v1/chat/completions", {{"messages", {User("hi")}}, {"session", "r"}}).status, 400);
  EXPECT_EQ(SessionTokens(*c, "r"), n);
}

// The logprobs of the next token after `session`'s tokens (greedy, 4 tokens).
json NextLogprobs(httplib::Client& c, const std::string& session) {
  const Reply r = Send(c, "POST", "/v1/completions",
                       {{"prompt", " Then"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 5}, {"session", session}});
  EXPECT_EQ(r.status, 200) << r.body.dump();
  return r.body["choices"][0]["logprobs"];
}

TEST(ServerSessionTest, PushPopReturnsToTheSameLogits) {
  ServerHarness h(SessionOptions(MakeTempDir()));
  auto c = h.Client();
  Complete(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 20}, {"temperature", 0}, {"session", "p"}});
  const int32_t at = SessionTokens(*c, "p");
  ASSERT_EQ(Send(*c, "POST", "/v1/sessions/p/fork", {{"to", "q"}}).status, 200);  // the point, kept aside
  const Reply pushed = Send(*c, "POST", "/v1/sessions/p/push");
  ASSERT_EQ(pushed.status, 200) << pushed.body.dump();
  EXPECT_EQ(pushed.body["stack_depth"], 1);
  // A sub-task: a few turns that the pop drops.
  Complete(*c, {{"prompt", " Meanwhile, a dragon"}, {"max_tokens", 30}, {"temperature", 0}, {"session", "p"}});
  Complete(*c, {{"prompt", " slept."}, {"max_tokens", 30}, {"temperature", 0}, {"session", "p"}});
  const Reply popped = Send(*c, "POST", "/v1/sessions/p/pop");
  ASSERT_EQ(popped.status, 200) << popped.body.dump();
  EXPECT_EQ(popped.body["tokens"], at);
  EXPECT_EQ(popped.body["stack_depth"], 0);
  const json after_pop = NextLogprobs(*c, "p");
  const json at_push = NextLogprobs(*c, "q");
  EXPECT_EQ(after_pop, at_push);
  EXPECT_EQ(after_pop["token_logprobs"].size(), 4u);
}

TEST(ServerSessionTest, TwoWritersGetConflict) {
  ServerHarness h(SessionOptions(MakeTempDir()));
  bool saw_conflict = false;
  for (int attempt = 0; attempt < 5 && !saw_conflict; ++attempt) {
    httplib::Client c("127.0.0.1", h.port());
    httplib::Request req;
    req.method = "POST";
    req.path = "/v1/completions";
    req.body = json{{"prompt", "Once upon a time"}, {"max_tokens", 1500}, {"temperature", 0}, {"stream", true},
                    {"session", "w"}}
                   .dump();
    req.set_header("Content-Type", "application/json");
    bool asked = false;
    req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
      if (asked) return true;
      asked = true;  // the first chunk: the request runs, holding the session
      auto other = h.Client();
      const Reply second = Send(*other, "POST", "/v1/completions", {{"prompt", "x"}, {"session", "w"}});
      const Reply del = Send(*other, "DELETE", "/v1/sessions/w");
      if (second.status == 409) {
        saw_conflict = true;
        EXPECT_EQ(second.body["error"]["code"], "session_busy");
        EXPECT_EQ(second.body["error"]["type"], "invalid_request_error");
        EXPECT_EQ(second.body["error"]["param"], "session");
        EXPECT_NE(second.body["error"]["message"].get<std::string>().find("in use"), std::string::npos);
        EXPECT_TRUE(del.status == 409 || del.status == 404) << del.body.dump();  // 404 before the first save
      }
      return true;
    };
    auto r = c.send(req);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_TRUE(saw_conflict);
  // Free again once the first is done.
  auto c = h.Client();
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 2}, {"session", "w"}}).status, 200);
}

TEST(ServerSessionTest, SessionLockedByAnotherProcessIsBusy) {
  const std::string dir = MakeTempDir();
  ServerHarness h(SessionOptions(dir));
  auto c = h.Client();
  Complete(*c, {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "x"}});
  std::unique_ptr<FileLock> held;  // as `strata run --session x` holds it
  ASSERT_TRUE(Env::Default()->LockFile(dir + "/x.session.lock", &held).ok());
  const Reply r = Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "x"}});
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("another process"), std::string::npos);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/x/rollback", {{"tokens", 1}}).status, 409);
  held.reset();
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "x"}}).status, 200);
}

TEST(ServerSessionTest, SessionsArePerApiKey) {
  const std::string dir = MakeTempDir();
  server::ServerOptions o = SessionOptions(dir);
  o.api_key = "key-one";
  o.more_api_keys = {"key-two"};
  ServerHarness h(o);
  auto c = h.Client();
  const httplib::Headers one = {{"Authorization", "Bearer key-one"}}, two = {{"Authorization", "Bearer key-two"}};
  ASSERT_EQ(Send(*c, "POST", "/v1/completions",
                 {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}, {"session", "mine"}}, one)
                .status,
            200);
  const Reply list_one = Send(*c, "GET", "/v1/sessions", nullptr, one);
  ASSERT_EQ(list_one.status, 200);
  ASSERT_EQ(list_one.body["data"].size(), 1u);
  EXPECT_EQ(list_one.body["data"][0]["id"], "mine");
  const Reply list_two = Send(*c, "GET", "/v1/sessions", nullptr, two);
  ASSERT_EQ(list_two.status, 200);
  EXPECT_TRUE(list_two.body["data"].empty()) << list_two.body.dump();
  EXPECT_EQ(Send(*c, "GET", "/v1/sessions/mine", nullptr, two).status, 404);
  EXPECT_EQ(Send(*c, "DELETE", "/v1/sessions/mine", nullptr, two).status, 404);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/mine/rollback", {{"tokens", 0}}, two).status, 404);
  // The same id under the other key is another session: it starts empty.
  const Reply fresh = Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 2}, {"session", "mine"}}, two);
  ASSERT_EQ(fresh.status, 200);
  EXPECT_EQ(fresh.body["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const Reply mine = Send(*c, "GET", "/v1/sessions/mine", nullptr, one);
  EXPECT_GT(mine.body["tokens"].get<int>(), Send(*c, "GET", "/v1/sessions/mine", nullptr, two).body["tokens"].get<int>());
  EXPECT_EQ(Send(*c, "GET", "/v1/sessions", nullptr, {}).status, 401);
  // Neither key's sessions are in the shared directory's root.
  std::vector<std::string> names;
  ASSERT_TRUE(Env::Default()->ListDir(dir, &names).ok());
  for (const std::string& n : names) EXPECT_EQ(n.rfind("key-", 0), 0u) << n;
}

// Flips one byte of a file.
void FlipByte(const std::string& path, uint64_t at) {
  std::string bytes;
  ASSERT_TRUE(Env::Default()->ReadFile(path, UINT64_MAX, &bytes).ok());
  ASSERT_LT(at, bytes.size());
  bytes[at] ^= 0x10;
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), path, bytes).ok());
}

TEST(ServerSessionTest, DamagedAndMissingFilesGetClearErrors) {
  const std::string dir = MakeTempDir();
  {
    ServerHarness h(SessionOptions(dir));
    auto c = h.Client();
    for (const char* id : {"body", "head", "good", "gone"})
      Complete(*c, {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"session", id}});
  }
  uint64_t size = 0;
  ASSERT_TRUE(Env::Default()->FileSize(dir + "/body.session", &size).ok());
  FlipByte(dir + "/body.session", size / 2);  // a KV block
  FlipByte(dir + "/head.session", 50);        // the header
  ServerHarness h(SessionOptions(dir));
  auto c = h.Client();
  for (const char* id : {"body", "head"}) {
    const Reply r = Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", id}});
    EXPECT_EQ(r.status, 500) << id;
    EXPECT_EQ(r.body["error"]["code"], "session_corrupt") << r.body.dump();
    const std::string message = r.body["error"]["message"];
    EXPECT_NE(message.find(std::string("session '") + id + "'"), std::string::npos) << message;
    EXPECT_EQ(message.find(dir), std::string::npos) << "no server path in: " << message;
  }
  // The others are unaffected.
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "good"}}).status, 200);
  const Reply list = Send(*c, "GET", "/v1/sessions");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["data"].size(), 4u);
  for (const json& x : list.body["data"]) {
    if (x["id"] == "head") {
      EXPECT_NE(x.value("error", "").find("checksum"), std::string::npos) << x.dump();
    } else {
      EXPECT_FALSE(x.contains("error")) << x.dump();  // a damaged block shows only when read
    }
  }
  // Deleting a damaged session works.
  EXPECT_EQ(Send(*c, "DELETE", "/v1/sessions/head").status, 200);
  // A session whose file is removed behind the server's back, while its KV is parked.
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "gone"}}).status, 200);
  ASSERT_TRUE(Env::Default()->RemoveFile(dir + "/gone.session").ok());
  const Reply gone = Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "gone"}});
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.body["error"]["code"], "session_not_found");
  // ... after which the id starts a new session.
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 2}, {"session", "gone"}}).status, 200);
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "good"}}).status, 200);
}

TEST(ServerSessionTest, SessionOfAnotherKvLayoutIsIncompatible) {
  const std::string dir = MakeTempDir();
  {
    ServerHarness h(SessionOptions(dir));
    auto c = h.Client();
    Complete(*c, {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "k"}});
  }
  EngineParams ep = ServerHarness::DefaultEngineParams();
  ep.kv_block_tokens = 16;
  ServerHarness h(SessionOptions(dir), ep);
  auto c = h.Client();
  const Reply r = Send(*c, "POST", "/v1/completions", {{"prompt", ""}, {"max_tokens", 4}, {"session", "k"}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body["error"]["code"], "session_incompatible");
  EXPECT_NE(r.body["error"]["message"].get<std::string>().find("block size 32"), std::string::npos) << r.body.dump();
}

TEST(ServerSessionTest, HostileIdsAndBadRequests) {
  const std::string dir = MakeTempDir();
  ServerHarness h(SessionOptions(dir));
  auto c = h.Client();
  for (const std::string& id : {std::string(".."), std::string(".hidden"), std::string("a b"), std::string("%2e%2e"),
                                std::string(200, 'x'), std::string("x\\y")}) {
    const Reply r = Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"session", id}});
    EXPECT_EQ(r.status, 400) << id;
    EXPECT_EQ(r.body["error"]["param"], "session") << id;
  }
  for (const std::string& path : {"/v1/sessions/..", "/v1/sessions/.x", "/v1/sessions/%2F..%2Fetc"}) {
    const Reply r = Send(*c, "GET", path);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_EQ(r.body["error"]["code"], "invalid_session_id") << path;
  }
  EXPECT_EQ(Send(*c, "GET", "/v1/sessions/a/b").status, 404);
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/a/explode").status, 404);
  auto put = c->Put("/v1/sessions/a", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->get_header_value("Allow"), "GET, DELETE");
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"session", 5}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"n", 2}, {"session", "s"}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", {"a", "b"}}, {"session", "s"}}).status, 400);
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", "Hi"}, {"echo", true}, {"session", "s"}}).status, 400);
  EXPECT_EQ(Send(*c, "GET", "/v1/sessions/nothing").status, 404);
  EXPECT_EQ(Send(*c, "DELETE", "/v1/sessions/nothing").status, 404);
  // Nothing was created, no lock file left behind.
  std::vector<std::string> names;
  ASSERT_TRUE(Env::Default()->ListDir(dir, &names).ok());
  EXPECT_TRUE(names.empty()) << names.front();
  // Without --session-dir sessions are off.
  ServerHarness off;
  auto d = off.Client();
  const Reply r = Send(*d, "POST", "/v1/completions", {{"prompt", "Hi"}, {"session", "s"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["error"]["code"], "sessions_disabled");
  EXPECT_EQ(Send(*d, "GET", "/v1/sessions").status, 404);
}

TEST(ServerSessionTest, LimitsAndDelete) {
  const std::string dir = MakeTempDir();
  server::ServerOptions o = SessionOptions(dir);
  o.sessions.max_sessions = 2;
  ServerHarness h(o);
  auto c = h.Client();
  Complete(*c, {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "a"}});
  Complete(*c, {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "b"}});
  const Reply third = Send(*c, "POST", "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "c"}});
  EXPECT_EQ(third.status, 429);
  EXPECT_EQ(third.body["error"]["code"], "too_many_sessions");
  EXPECT_EQ(Send(*c, "POST", "/v1/sessions/a/fork", {{"to", "c"}}).status, 429);
  const Reply del = Send(*c, "DELETE", "/v1/sessions/a");
  ASSERT_EQ(del.status, 200);
  EXPECT_EQ(del.body["deleted"], true);
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/a.session"));
  EXPECT_EQ(Send(*c, "GET", "/v1/sessions/a").status, 404);
  EXPECT_EQ(Send(*c, "POST", "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 4}, {"session", "c"}}).status, 200);
  // The disk budget: a session that would not fit is refused before generating.
  server::ServerOptions tiny = SessionOptions(MakeTempDir());
  tiny.sessions.disk_max = 4096;
  ServerHarness t(tiny);
  auto tc = t.Client();
  const Reply full = Send(*tc, "POST", "/v1/completions", {{"prompt", "Once"}, {"max_tokens", 100}, {"session", "big"}});
  EXPECT_EQ(full.status, 507);
  EXPECT_EQ(full.body["error"]["code"], "session_store_full");
}

TEST(ServerSessionTest, IdleSessionsAreEvictedFromTheKvCacheNotLost) {
  // A KV pool too small for many parked sessions: the oldest are evicted and read back from their files.
  EngineParams ep = ServerHarness::DefaultEngineParams();
  ep.parallel = 1;
  ep.n_ctx = 256;  // 2 * 1 * 8 blocks of 32
  ServerHarness h(SessionOptions(MakeTempDir()), ep);
  auto c = h.Client();
  const std::vector<std::string> prompts = {"Once upon a time", "The cat sat", "A big dog", "Tom and Sue",
                                            "In the park", "The sun was"};
  std::vector<std::string> first;
  for (size_t i = 0; i < prompts.size(); ++i)
    first.push_back(Complete(*c, {{"prompt", prompts[i]}, {"max_tokens", 100}, {"temperature", 0},
                                  {"session", "e" + std::to_string(i)}}));
  EXPECT_GT(h.engine().Stats().kv.parked_evictions, 0u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::string next =
        Complete(*c, {{"prompt", ""}, {"max_tokens", 10}, {"temperature", 0}, {"session", "e" + std::to_string(i)}});
    // Whether its KV was still parked or read back from the file, it continues as one request would.
    EXPECT_EQ(first[i] + next, Complete(*c, {{"prompt", prompts[i]}, {"max_tokens", 110}, {"temperature", 0}})) << i;
  }
  EXPECT_GT(h.server().session_stats()->loads, 0u);
  auto m = c->Get("/metrics");
  ASSERT_TRUE(m);
  for (const char* series : {"strata_sessions{state=\"resident\"}", "strata_session_kv_slices{tier=\"ram\"}",
                             "strata_session_file_bytes", "strata_session_evictions_total", "strata_session_loads_total",
                             "strata_session_resumes_total", "strata_session_saves_total"})
    EXPECT_NE(m->body.find(std::string("\n") + series + " "), std::string::npos) << series;
  // Debian's prometheus package brings promtool; the exposition must pass it when present.
  const char* path = std::getenv("PATH");
  std::string promtool;
  for (std::string dirs = path != nullptr ? path : ""; !dirs.empty();) {
    const size_t colon = dirs.find(':');
    const std::string candidate = dirs.substr(0, colon) + "/promtool";
    if (::access(candidate.c_str(), X_OK) == 0) {
      promtool = candidate;
      break;
    }
    dirs = colon == std::string::npos ? "" : dirs.substr(colon + 1);
  }
  if (promtool.empty()) GTEST_SKIP() << "promtool not installed";
  const CommandResult check = RunCommand({promtool, "check", "metrics"}, m->body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
}

}  // namespace
}  // namespace strata::testing
