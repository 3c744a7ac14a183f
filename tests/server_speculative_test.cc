// The server with speculative decoding: the same completions (greedy,
// whole and streamed), the per-request opt-out, the counters on /metrics,
// and `strata serve`'s flags.
#include <gtest/gtest.h>

#include <regex>

#include "server_harness.h"

namespace strata {
namespace {

using nlohmann::json;
using testing::ServerHarness;

EngineParams SpecParams() {
  EngineParams p = ServerHarness::DefaultEngineParams();
  p.spec.method = SpecMethod::kNgram;
  p.spec.adapt = false;  // draft in every step: stories260K drafts would rightly be rare otherwise
  return p;
}

std::string Complete(ServerHarness& h, const json& body) {
  auto r = h.Client()->Post("/v1/completions", body.dump(), "application/json");
  EXPECT_TRUE(r);
  if (!r) return "";
  EXPECT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body, nullptr, false);
  if (!body.value("stream", false)) return j["choices"][0]["text"];
  bool ok = true;
  std::string text;
  for (const std::string& d : testing::SseData(r->body, &ok)) {
    if (d == "[DONE]") break;
    const json chunk = json::parse(d);
    if (!chunk["choices"].empty()) text += chunk["choices"][0]["text"].get<std::string>();
  }
  EXPECT_TRUE(ok);
  return text;
}

// One counter's value in the /metrics text.
double Metric(ServerHarness& h, const std::string& name) {
  auto r = h.Client()->Get("/metrics");
  EXPECT_TRUE(r && r->status == 200);
  std::smatch m;
  const std::string body = r ? r->body : "";
  if (!std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+]+)"))) {
    ADD_FAILURE() << name << " not in /metrics";
    return -1;
  }
  return std::stod(m[1]);
}

TEST(ServerSpeculativeTest, SameCompletionsAndCounters) {
  ServerHarness plain, spec({}, SpecParams());
  const std::string prompt = "Lily had a big red ball. Lily had a big red ball. Lily had a";
  for (bool stream : {false, true}) {
    const json body = {{"prompt", prompt}, {"max_tokens", 80}, {"temperature", 0}, {"stream", stream}};
    EXPECT_EQ(Complete(spec, body), Complete(plain, body)) << "stream " << stream;
  }
  const double drafted = Metric(spec, "strata_spec_drafted_tokens_total");
  const double accepted = Metric(spec, "strata_spec_accepted_tokens_total");
  EXPECT_GT(Metric(spec, "strata_spec_verifications_total"), 0);
  EXPECT_GT(accepted, 0);
  EXPECT_LE(accepted, drafted);
  EXPECT_EQ(Metric(plain, "strata_spec_drafted_tokens_total"), 0);

  // Opting out: the same text, nothing drafted for it.
  const json off = {{"prompt", prompt}, {"max_tokens", 40}, {"temperature", 0}, {"speculative", false}};
  EXPECT_EQ(Complete(spec, off), Complete(plain, off));
  EXPECT_EQ(Metric(spec, "strata_spec_drafted_tokens_total"), drafted);

  auto bad = spec.Client()->Post("/v1/completions", json{{"prompt", "x"}, {"speculative", "no"}}.dump(),
                                 "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("speculative"), std::string::npos) << bad->body;
}

TEST(ServerSpeculativeTest, ServeFlagsAreCheckedAtStartup) {
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--spec", "draft"}, {"--spec", "ngram", "--draft-min", "3", "--draft-max", "2"},
        {"--draft-model", "/nonexistent/draft.gguf"}, {"--spec", "ngram", "--spec-max-batch", "-1"}}) {
    std::vector<std::string> argv = {testing::CliPath(), "serve", "--port", "0", "-m", testing::StoriesModelPath()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const testing::CommandResult r = testing::RunCommand(argv, "", {.timeout_s = 30});
    EXPECT_NE(r.exit_code, 0) << flags[0];
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.err.find(flags[0] == "--draft-model" ? "draft.gguf" : flags[flags.size() - 2]), std::string::npos)
        << r.err;
  }
}

}  // namespace
}  // namespace strata
