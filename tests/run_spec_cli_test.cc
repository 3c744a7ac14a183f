// `strata run` with speculative decoding (--spec ngram, --draft-model): the
// greedy text is the plain run's, sessions continue alike, and bad flags are
// one-line errors.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "test_util.h"

namespace strata {
namespace {

using testing::RunCommand;

const char* const kPrompt = "Lily had a big red ball. Lily had a big red ball. Lily had a";

std::vector<std::string> RunArgs(const std::vector<std::string>& extra) {
  std::vector<std::string> a = {testing::CliPath(), "run", "-t", "1", "-m", testing::SharedPath("models/stories260K.gguf")};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

class RunSpecCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(testing::MakeTempDir());
    auto q = RunCommand({testing::CliPath(), "quantize", testing::SharedPath("models/stories260K.gguf"), Draft(), "--type",
                         "q4_0"});
    ASSERT_EQ(q.exit_code, 0) << q.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Draft() { return *dir_ + "/stories260K-q4_0.gguf"; }
  static std::string* dir_;
};
std::string* RunSpecCliTest::dir_ = nullptr;

TEST_F(RunSpecCliTest, GreedyTextEqualsPlain) {
  for (const char* prompt : {kPrompt, "Once upon a time"}) {
    auto plain = RunCommand(RunArgs({"--temp", "0", "-n", "150", "-p", prompt}));
    ASSERT_EQ(plain.exit_code, 0) << plain.err;
    for (const std::vector<std::string>& spec :
         {std::vector<std::string>{"--spec", "ngram"}, {"--spec", "ngram", "--draft-max", "2"},
          {"--draft-model", Draft()}, {"--spec", "draft", "--draft-model", Draft(), "--draft-min", "3", "--draft-max", "6"}}) {
      std::vector<std::string> extra = {"--temp", "0", "-n", "150", "-p", prompt};
      extra.insert(extra.end(), spec.begin(), spec.end());
      auto r = RunCommand(RunArgs(extra));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, plain.out) << spec[1];
      EXPECT_NE(r.err.find("strata: speculative ("), std::string::npos) << r.err;
    }
  }
}

// A session continued speculatively holds every token: the second half
// prints what one longer plain run prints.
TEST_F(RunSpecCliTest, SessionContinues) {
  const std::string sessions = testing::MakeTempDir();
  auto whole = RunCommand(RunArgs({"--temp", "0", "-n", "80", "-p", kPrompt}));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  auto first = RunCommand(RunArgs({"--temp", "0", "-n", "40", "-p", kPrompt, "--session-dir", sessions, "--session", "s",
                               "--spec", "ngram"}));
  auto second = RunCommand(RunArgs({"--temp", "0", "-n", "40", "-p", "", "--session-dir", sessions, "--session", "s",
                                "--draft-model", Draft()}));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(first.out + second.out, whole.out);
}

// A grammar constrains drafts too (the verifier computes each position's
// distribution through it): greedy text equals the plain grammar run's, and
// sampled text still follows the grammar.
TEST_F(RunSpecCliTest, GrammarConstrainsDrafts) {
  const std::string grammar = *dir_ + "/list.gbnf";
  std::ofstream(grammar) << "root ::= item{2,6}\nitem ::= \"- \" [a-z]{1,8} (\" \" [a-z]{1,8}){0,3} \"\\n\"\n";
  const std::string prompt = "- lily had a ball\n- lily had a ball\n- lily had";
  auto plain = RunCommand(RunArgs({"--temp", "0", "-n", "200", "-p", prompt, "--grammar-file", grammar}));
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  for (const char* spec : {"ngram", "draft"}) {
    std::vector<std::string> extra = {"-n", "200", "-p", prompt, "--grammar-file", grammar};
    if (std::string(spec) == "ngram") {
      extra.insert(extra.end(), {"--spec", "ngram"});
    } else {
      extra.insert(extra.end(), {"--draft-model", Draft()});
    }
    std::vector<std::string> greedy = extra;
    greedy.insert(greedy.end(), {"--temp", "0"});
    auto r = RunCommand(RunArgs(greedy));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, plain.out) << spec;
    for (const char* seed : {"1", "2", "3"}) {
      std::vector<std::string> sampled = extra;
      sampled.insert(sampled.end(), {"--temp", "1", "--seed", seed});
      r = RunCommand(RunArgs(sampled));
      ASSERT_EQ(r.exit_code, 0) << r.err;
      std::istringstream lines(r.out);
      int items = 0;
      for (std::string line; std::getline(lines, line); ++items)
        EXPECT_TRUE(std::regex_match(line, std::regex("- [a-z]{1,8}( [a-z]{1,8}){0,3}"))) << r.out;
      EXPECT_TRUE(items >= 2 && items <= 6) << r.out;
    }
  }
}

TEST_F(RunSpecCliTest, BadFlagsAreOneLineErrors) {
  const std::string other = *dir_ + "/other.gguf";
  auto synth = RunCommand({testing::CliPath(), "synth", other, "--layers", "1", "--embd", "64", "--ff", "128", "--heads",
                           "2", "--kv-heads", "2", "--vocab", "300", "--type", "f32"});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"--draft-model", other}, "the draft model's vocabulary differs from the model's: 300 tokens vs 512"},
      {{"--spec", "draft"}, "--spec draft: needs --draft-model"},
      {{"--spec", "ngram", "--draft-model", Draft()}, "--spec ngram:"},
      {{"--spec", "lookahead"}, "--spec"},
      {{"--spec", "ngram", "--draft-min", "5", "--draft-max", "4"}, "--draft-min: 5 is above --draft-max 4"},
      {{"--spec", "ngram", "--draft-max", "65"}, "--draft-max"},
      {{"--spec", "ngram", "--logits-out", *dir_ + "/l.bin"}, "--logits-out"},
      {{"--draft-model", *dir_ + "/missing.gguf"}, "missing.gguf"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> extra = {"-n", "4", "-p", "x"};
    extra.insert(extra.end(), c.args.begin(), c.args.end());
    auto r = RunCommand(RunArgs(extra));
    EXPECT_NE(r.exit_code, 0) << c.message;
    // One line, the last (after the model's load summary when the draft model is at fault).
    ASSERT_FALSE(r.err.empty());
    const size_t start = r.err.rfind('\n', r.err.size() - 2);
    const std::string last = r.err.substr(start == std::string::npos ? 0 : start + 1);
    EXPECT_NE(last.find(c.message), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace strata
