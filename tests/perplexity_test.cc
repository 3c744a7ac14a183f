// strata perplexity: ComputePerplexity against the definition computed here
// directly (BOS first in every chunk, the second half scored), its bounds, and
// the CLI's output and errors. Agreement with llama-perplexity itself is in
// conformance_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "engine/context.h"
#include "engine/perplexity.h"
#include "model/model.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<Model> LoadStories() {
  ModelLoadOptions o;
  o.path = testing::SharedPath("models/stories260K.gguf");
  std::unique_ptr<Model> m;
  EXPECT_TRUE(Model::Load(Env::Default(), o, &m).ok());
  return m;
}

std::vector<int32_t> StoryTokens(const Model& m) {
  return m.vocab().Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
      "a big, red ball. She wanted to play with it, but it was too high. Lily's mom said, \"Lily, let's go to the "
      "park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find "
      "it.\" Lily was sad and didn't know what to do.",
      true, false);
}

// The definition: every chunk decoded alone with BOS first, tokens first+1 ..
// n_ctx-1 scored by log-softmax in double.
double DirectPerplexity(const Model& m, const std::vector<int32_t>& tokens, int32_t n_ctx, int32_t n_chunks) {
  double nll = 0;
  int64_t count = 0;
  const int32_t V = m.hparams().n_vocab;
  for (int32_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
    chunk[0] = m.vocab().bos();
    ContextParams p;
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    std::unique_ptr<Context> ctx;
    EXPECT_TRUE(Context::Create(m, p, &ctx).ok());
    EXPECT_TRUE(ctx->Decode(chunk, LogitsMode::kAll).ok());
    for (int32_t k = n_ctx / 2; k < n_ctx - 1; ++k) {
      const float* l = ctx->logits(k);
      double max = l[0], sum = 0;
      for (int32_t i = 1; i < V; ++i) max = std::max<double>(max, l[i]);
      for (int32_t i = 0; i < V; ++i) sum += std::exp(l[i] - max);
      nll -= l[chunk[k + 1]] - max - std::log(sum);
      ++count;
    }
  }
  return std::exp(nll / count);
}

TEST(PerplexityTest, MatchesTheDefinition) {
  const std::unique_ptr<Model> m = LoadStories();
  ASSERT_TRUE(m);
  const std::vector<int32_t> tokens = StoryTokens(*m);
  ASSERT_GE(tokens.size(), 90u);
  for (const auto& [n_ctx, chunks] : {std::pair{16, 0}, std::pair{32, 2}, std::pair{45, 0}}) {
    PerplexityParams p;
    p.n_ctx = n_ctx;
    p.n_chunks = chunks;
    p.context.n_threads = 2;
    std::vector<double> running;
    PerplexityResult r;
    ASSERT_TRUE(ComputePerplexity(*m, tokens, p, [&](int32_t, double ppl) { running.push_back(ppl); }, &r).ok());
    const int32_t want_chunks = chunks > 0 ? chunks : static_cast<int32_t>(tokens.size()) / n_ctx;
    EXPECT_EQ(r.n_chunks, want_chunks);
    EXPECT_EQ(r.n_scored, int64_t{want_chunks} * (n_ctx - n_ctx / 2 - 1));
    ASSERT_EQ(running.size(), static_cast<size_t>(want_chunks));
    EXPECT_EQ(running.back(), r.ppl);
    EXPECT_NEAR(r.ppl, DirectPerplexity(*m, tokens, n_ctx, want_chunks), 1e-5 * r.ppl) << n_ctx;
    EXPECT_GT(r.ppl_error, 0);
  }
}

TEST(PerplexityTest, RefusesTooFewTokensAndTinyContexts) {
  const std::unique_ptr<Model> m = LoadStories();
  ASSERT_TRUE(m);
  const std::vector<int32_t> tokens = StoryTokens(*m);
  PerplexityParams p;
  p.n_ctx = static_cast<int32_t>(tokens.size()) / 2 + 1;
  PerplexityResult r;
  Status s = ComputePerplexity(*m, tokens, p, nullptr, &r);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(std::to_string(tokens.size()) + " tokens"));
  p.n_ctx = 3;
  EXPECT_EQ(ComputePerplexity(*m, tokens, p, nullptr, &r).code(), StatusCode::kInvalidArgument);
  p.n_ctx = 16;
  const std::vector<int32_t> bad(40, 100000);
  EXPECT_EQ(ComputePerplexity(*m, bad, p, nullptr, &r).code(), StatusCode::kInvalidArgument);
}

TEST(PerplexityCliTest, PrintsTheFinalEstimateAndClearErrors) {
  const std::string dir = testing::MakeTempDir();
  const std::string text = dir + "/text.txt";
  std::string story;
  for (int i = 0; i < 4; ++i) story += "Once upon a time, there was a little girl named Lily. She loved to play.\n";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), text, story).ok());
  const std::string model = testing::SharedPath("models/stories260K.gguf");
  testing::CommandResult r = testing::RunCommand({testing::CliPath(), "perplexity", "-m", model, "-f", text, "-c", "32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::MatchesRegex("Final estimate: PPL = [0-9]+\\.[0-9]{4} \\+/- [0-9]+\\.[0-9]{5}\n"));
  EXPECT_THAT(r.err, HasSubstr("[1]"));

  r = testing::RunCommand({testing::CliPath(), "perplexity", "-m", model, "-f", text, "-c", "512"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("a context of 512 needs at least 1024"));
  r = testing::RunCommand({testing::CliPath(), "perplexity", "-m", model, "-f", dir + "/missing.txt"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("missing.txt"));
  r = testing::RunCommand({testing::CliPath(), "perplexity", "-m", model, "-f", text, "-c", "2"});
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace strata
