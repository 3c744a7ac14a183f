// The OpenAI/llama.cpp/vLLM request fields that steer sampling and endings
// over HTTP — presence_penalty, frequency_penalty, logit_bias (both forms),
// stop_token_ids, ignore_eos, min_tokens, n_predict, max_completion_tokens —
// the X-Strata-Ignored-Fields header, and the access log.
#include <gtest/gtest.h>

#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>

#include "engine/context.h"
#include "engine/sampler.h"
#include "raw_http.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;

json PostJson(ServerHarness& h, const std::string& path, const json& body, int want_status = 200,
              httplib::Headers* headers = nullptr) {
  auto c = h.Client();
  auto r = c->Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return json();
  EXPECT_EQ(r->status, want_status) << r->body;
  if (headers != nullptr) *headers = r->headers;
  return json::parse(r->body, nullptr, false);
}

class ServerSamplingFieldsTest : public ::testing::Test {
 protected:
  // The token whose text is piece.
  int32_t Token(const std::string& piece) const {
    const Vocab& v = h_.model().vocab();
    for (int32_t t = 0; t < v.n_tokens(); ++t)
      if (v.TokenToPiece(t) == piece) return t;
    ADD_FAILURE() << "no token '" << piece << "'";
    return 0;
  }
  // The reference: Context + Sampler with params, the prompt through
  // AcceptPrompt and each generated token through Accept, until EOG or n.
  std::string Reference(const std::string& prompt, const SamplerParams& params, int32_t n) {
    const Model& m = h_.model();
    std::unique_ptr<Context> ctx;
    EXPECT_TRUE(Context::Create(m, ContextParams{512, 512, 1}, &ctx).ok());
    std::vector<int32_t> toks = m.vocab().Encode(prompt, true, false);
    Sampler s(params);
    for (int32_t t : toks) s.AcceptPrompt(t);
    EXPECT_TRUE(ctx->Decode(toks, LogitsMode::kLast).ok());
    StreamDecoder d(m.vocab());
    std::string text;
    int32_t prev = toks.back();
    for (int32_t i = 0; i < n; ++i) {
      const int32_t next = s.Sample(ctx->logits(), m.hparams().n_vocab);
      if (next < 0 || m.vocab().IsEog(next)) break;
      s.Accept(next);
      text += d.Push(next, prev);
      prev = next;
      EXPECT_TRUE(ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok());
    }
    return text + d.Flush();
  }
  ServerHarness h_;
};

// The server's sampler runs exactly the chain a Sampler with the request's
// settings runs: penalties and biases, greedy and seeded.
TEST_F(ServerSamplingFieldsTest, PenaltiesAndBiasEqualTheSamplerDirectly) {
  const int32_t the = Token(" the");
  for (const float temperature : {0.0f, 0.9f}) {
    SamplerParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    p.frequency_penalty = 0.8f;
    p.presence_penalty = 0.6f;
    p.logit_bias = {{the, -3.5f}};
    const std::string want = Reference("Once upon a time", p, 40);
    const json r = PostJson(h_, "/v1/completions",
                            {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", temperature},
                             {"top_k", 0}, {"top_p", 1}, {"min_p", 0}, {"seed", 42}, {"frequency_penalty", 0.8},
                             {"presence_penalty", 0.6}, {"logit_bias", {{std::to_string(the), -3.5}}}});
    EXPECT_EQ(r["choices"][0]["text"], want) << temperature;
    // And the penalties changed something.
    SamplerParams plain = p;
    plain.frequency_penalty = plain.presence_penalty = 0;
    plain.logit_bias.clear();
    EXPECT_NE(Reference("Once upon a time", plain, 40), want);
  }
}

// logit_bias +100 forces a token whatever the temperature; -100 (or
// llama.cpp's false) keeps the greedy choice from being drawn.
TEST_F(ServerSamplingFieldsTest, LogitBiasForcesAndBans) {
  const int32_t the = Token(" the");
  for (const double temperature : {0.0, 1.0}) {
    const json r = PostJson(h_, "/v1/chat/completions",
                            {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 5},
                             {"temperature", temperature}, {"seed", 1}, {"logit_bias", {{std::to_string(the), 100}}}});
    EXPECT_EQ(r["choices"][0]["message"]["content"], " the the the the the") << temperature;
  }
  const json greedy = PostJson(h_, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 1}, {"temperature", 0}});
  const std::string first = greedy["choices"][0]["text"];
  // Every token spelling it (a byte token may spell it too).
  std::vector<int32_t> ids;
  for (int32_t t = 0; t < h_.model().vocab().n_tokens(); ++t)
    if (h_.model().vocab().TokenToPiece(t) == first) ids.push_back(t);
  json openai = json::object(), llama = json::array();
  for (int32_t t : ids) {
    openai[std::to_string(t)] = -100;
    llama.push_back(json::array({t, false}));
  }
  for (const json& bias : {openai, llama}) {
    const json r = PostJson(h_, "/v1/completions",
                            {{"prompt", "Once upon a time"}, {"max_tokens", 1}, {"temperature", 0}, {"logit_bias", bias}});
    EXPECT_NE(r["choices"][0]["text"], first) << bias.dump();
    EXPECT_EQ(r["usage"]["completion_tokens"], 1);
  }
  // Ids beyond the vocabulary are a 400 naming the field.
  const json bad = PostJson(h_, "/v1/completions", {{"prompt", "x"}, {"logit_bias", {{"100000", 1}}}}, 400);
  EXPECT_EQ(bad["error"]["param"], "logit_bias");
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("100000"), std::string::npos);
  const json bad_stop = PostJson(h_, "/v1/completions", {{"prompt", "x"}, {"stop_token_ids", {100000}}}, 400);
  EXPECT_EQ(bad_stop["error"]["param"], "stop_token_ids");
}

// EOS biased +100 ends a completion at once; min_tokens holds it back that
// long; ignore_eos runs to max_tokens; a stop token id ends it (not in the
// text) — min_tokens holds that back too.
TEST_F(ServerSamplingFieldsTest, EndingsByToken) {
  const std::string eos = std::to_string(h_.model().vocab().eos());
  const json base = {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0},
                     {"logit_bias", {{eos, 100}}}};
  auto run = [&](json extra) {
    json body = base;
    body.update(extra);
    return PostJson(h_, "/v1/completions", body);
  };
  json r = run(json::object());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["completion_tokens"], 0);
  r = run({{"min_tokens", 6}});
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);
  const std::string six = r["choices"][0]["text"];
  r = run({{"ignore_eos", true}});
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 30);
  EXPECT_EQ(r["choices"][0]["text"].get<std::string>().substr(0, six.size()), six);

  const int32_t the = Token(" the");
  const json forced = {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"temperature", 0},
                       {"logit_bias", {{std::to_string(the), 100}}}, {"stop_token_ids", {the}}};
  r = PostJson(h_, "/v1/completions", forced);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["choices"][0]["text"], "");
  json held = forced;
  held["min_tokens"] = 3;
  r = PostJson(h_, "/v1/completions", held);
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerSamplingFieldsTest, MaxTokensAliases) {
  json r = PostJson(h_, "/v1/completions", {{"prompt", "Once upon a time"}, {"n_predict", 7}, {"temperature", 0}});
  EXPECT_EQ(r["usage"]["completion_tokens"], 7);
  r = PostJson(h_, "/v1/completions",
               {{"prompt", "Once upon a time"}, {"max_completion_tokens", 5}, {"max_tokens", 9}, {"temperature", 0}});
  EXPECT_EQ(r["usage"]["completion_tokens"], 5);
  r = PostJson(h_, "/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                            {"max_completion_tokens", 4}, {"temperature", 0}, {"ignore_eos", true}});
  EXPECT_EQ(r["usage"]["completion_tokens"], 4);
}

// Fields strata does not know are named in a response header, encoded so
// that a client's JSON key cannot inject a header.
TEST_F(ServerSamplingFieldsTest, IgnoredFieldsHeader) {
  // Raw bytes: the header exactly as sent (httplib would decode %XX).
  const std::string body =
      json{{"prompt", "x"}, {"max_tokens", 1}, {"frobnicate", 1}, {"best_effort", true}, {"a b\r\nX-Evil: 1", 0}}.dump();
  RawConnection raw(h_.port());
  ASSERT_TRUE(raw.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body));
  const std::string& reply = raw.ReadUntil("\r\n\r\n", std::chrono::seconds(30));
  // In the body's order (nlohmann::json sorts the keys when it writes them).
  EXPECT_NE(reply.find("\r\nX-Strata-Ignored-Fields: a%20b%0D%0AX-Evil%3A%201,best_effort,frobnicate\r\n"),
            std::string::npos) << reply;
  EXPECT_EQ(reply.find("\r\nX-Evil"), std::string::npos) << reply;
  httplib::Headers headers;
  PostJson(h_, "/v1/completions", json{{"prompt", "x"}, {"max_tokens", 1}}, 200, &headers);
  EXPECT_EQ(headers.count("X-Strata-Ignored-Fields"), 0u);
  // Streams carry it too.
  auto c = h_.Client();
  auto r = c->Post("/v1/completions", json{{"prompt", "x"}, {"max_tokens", 2}, {"stream", true}, {"zzz", 1}}.dump(),
                   "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("X-Strata-Ignored-Fields"), "zzz");
}

// ---- access log ----

class AccessLogTest : public ::testing::Test {
 protected:
  static server::ServerOptions Options(server::LogFormat format, std::mutex* mu, std::vector<std::string>* lines) {
    server::ServerOptions o;
    o.log_format = format;
    o.access_log = [mu, lines](const std::string& line) {
      std::lock_guard<std::mutex> l(*mu);
      lines->push_back(line);
    };
    return o;
  }
  // Waits until n lines were logged (a generation's line comes once its response is out).
  std::vector<std::string> Lines(size_t n) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (lines_.size() >= n) return lines_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::lock_guard<std::mutex> l(mu_);
    return lines_;
  }
  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST_F(AccessLogTest, JsonLinesParseAndCountTokens) {
  ServerHarness h(Options(server::LogFormat::kJson, &mu_, &lines_));
  const json whole = PostJson(h, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 6}});
  auto c = h.Client();
  ASSERT_TRUE(c->Post("/v1/chat/completions",
                      json{{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 4}, {"stream", true},
                           {"ignore_eos", true}}
                          .dump(),
                      "application/json"));
  PostJson(h, "/v1/completions", {{"prompt", "x"}, {"temperature", 9}}, 400);
  ASSERT_TRUE(c->Get("/health"));
  ASSERT_TRUE(c->Get("/no/such\"path"));
  const std::vector<std::string> lines = Lines(5);
  ASSERT_EQ(lines.size(), 5u);
  std::vector<json> recs;
  for (const std::string& line : lines) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    for (const char* key : {"method", "path", "status", "prompt_tokens", "completion_tokens", "ms"})
      EXPECT_TRUE(j.contains(key)) << line;
    EXPECT_GE(j["ms"].get<double>(), 0.0);
    recs.push_back(j);
  }
  // In the order the responses completed: the first two are sequential, the rest too.
  EXPECT_EQ(recs[0]["method"], "POST");
  EXPECT_EQ(recs[0]["path"], "/v1/completions");
  EXPECT_EQ(recs[0]["status"], 200);
  EXPECT_EQ(recs[0]["prompt_tokens"], whole["usage"]["prompt_tokens"]);
  EXPECT_EQ(recs[0]["completion_tokens"], 6);
  EXPECT_EQ(recs[1]["path"], "/v1/chat/completions");
  EXPECT_EQ(recs[1]["status"], 200);
  EXPECT_EQ(recs[1]["completion_tokens"], 4);
  EXPECT_GT(recs[1]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(recs[2]["status"], 400);
  EXPECT_EQ(recs[2]["completion_tokens"], 0);
  EXPECT_EQ(recs[3]["method"], "GET");
  EXPECT_EQ(recs[3]["path"], "/health");
  EXPECT_EQ(recs[3]["status"], 200);
  EXPECT_EQ(recs[4]["status"], 404);
  EXPECT_EQ(recs[4]["path"], "/no/such%22path");  // the client's bytes cannot break the line
}

TEST_F(AccessLogTest, TextLines) {
  ServerHarness h(Options(server::LogFormat::kText, &mu_, &lines_));
  PostJson(h, "/v1/completions", {{"prompt", "Once upon a time"}, {"max_tokens", 3}});
  const std::vector<std::string> lines = Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(std::regex_match(lines[0], std::regex(R"(POST /v1/completions 200 prompt_tokens=5 completion_tokens=3 ms=\d+\.\d)")))
      << lines[0];
}

// A client gone before its whole response: logged once, as 499, with the tokens generated until then.
TEST_F(AccessLogTest, ClientGoneIs499) {
  ServerHarness h(Options(server::LogFormat::kJson, &mu_, &lines_));
  {
    const std::string body = R"({"prompt":"Once","max_tokens":2000,"temperature":0})";
    RawConnection c(h.port());
    ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    while (h.engine().Stats().running == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::vector<std::string> lines = Lines(1);
  ASSERT_EQ(lines.size(), 1u);
  const json j = json::parse(lines[0]);
  EXPECT_EQ(j["status"], 499);
  EXPECT_EQ(j["path"], "/v1/completions");
  EXPECT_LT(j["completion_tokens"].get<int>(), 2000);
  ASSERT_TRUE(h.WaitIdle());
  std::lock_guard<std::mutex> l(mu_);
  EXPECT_EQ(lines_.size(), 1u);  // nothing else logged for it
}

}  // namespace
}  // namespace strata::testing
