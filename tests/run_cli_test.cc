// `strata run` end to end against llama2.c's reference outputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "test_util.h"

namespace strata {
namespace {

using testing::RunCommand;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The completion llama2.c printed: its stdout minus the echoed prompt and the
// one newline run.c adds at the end.
std::string RefCompletion(const std::string& file, const std::string& prompt) {
  std::string s = ReadFile(testing::SharedPath("reference/" + file));
  EXPECT_EQ(s.compare(0, prompt.size(), prompt), 0);
  s = s.substr(prompt.size());
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

struct Case {
  const char* file;
  const char* prompt;
  int n;  // tokens generated: llama2.c's -n counts prompt positions too
};

const Case kCases[] = {
    {"stories260K_t0_n64_once-upon-a-time.stdout", "Once upon a time", 60},
    {"stories260K_t0_n200.stdout", "", 200},
    {"stories260K_t0_default-steps.stdout", "", 256},
};

class RunCliTest : public ::testing::TestWithParam<bool> {
 protected:
  std::vector<std::string> Args(const Case& c) const {
    std::vector<std::string> a = {testing::CliPath(), "run", "--temp", "0", "-n", std::to_string(c.n), "-p", c.prompt, "-t", "2"};
    if (GetParam()) {
      a.insert(a.end(), {"-m", testing::SharedPath("models/stories260K.gguf")});
    } else {
      a.insert(a.end(), {"-m", testing::SharedPath("models/stories260K.bin"), "--tokenizer",
                         testing::SharedPath("models/tok512.bin")});
    }
    return a;
  }
};

TEST_P(RunCliTest, GreedyMatchesLlama2c) {
  for (const Case& c : kCases) {
    auto r = RunCommand(Args(c));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, RefCompletion(c.file, c.prompt)) << c.file;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RunCliTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "gguf" : "llama2c_bin"; });

TEST(RunCli, DefaultModelIsBundledStories) {
  auto r = RunCommand({testing::CliPath(), "run", "--temp", "0", "-n", "60", "-p", "Once upon a time"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, RefCompletion("stories260K_t0_n64_once-upon-a-time.stdout", "Once upon a time"));
}

TEST(RunCli, SeededSamplingIsReproducible) {
  std::vector<std::string> a = {testing::CliPath(), "run", "--temp", "1", "--seed", "7", "-n", "40", "-p", "Lily"};
  auto r1 = RunCommand(a), r2 = RunCommand(a);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(r1.out, r2.out);
  EXPECT_FALSE(r1.out.empty());
}

TEST(RunCli, Q8_0GivesTheSameGreedyTokensAsF32) {
  const std::string dir = testing::MakeTempDir();
  const std::string q8 = dir + "/stories260K-q8_0.gguf";
  auto q = RunCommand({testing::CliPath(), "quantize", testing::SharedPath("models/stories260K.gguf"), q8, "--type", "q8_0"});
  ASSERT_EQ(q.exit_code, 0) << q.err;
  auto tok = [&](const std::string& model) {
    auto r = RunCommand({testing::CliPath(), "run", "-m", model, "--temp", "0", "-n", "20", "-p", "Once upon a time"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto t = RunCommand({testing::CliPath(), "tokenize", "-m", model, "--no-bos"}, r.out);
    return t.out;
  };
  const std::string f32 = tok(testing::SharedPath("models/stories260K.gguf"));
  EXPECT_FALSE(f32.empty());
  EXPECT_EQ(tok(q8), f32);
}

// A session continued in a second process prints exactly what one longer run
// prints, greedy and with seeded sampling (the sampler's RNG is saved too).
TEST(RunCli, SessionContinuesAcrossProcesses) {
  for (const char* temp : {"0", "1"}) {
    const std::string dir = testing::MakeTempDir();
    auto run = [&](const std::vector<std::string>& extra) {
      std::vector<std::string> a = {testing::CliPath(), "run", "--temp", temp, "--seed", "5", "--session-dir", dir};
      a.insert(a.end(), extra.begin(), extra.end());
      auto r = RunCommand(a);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      return r.out;
    };
    const std::string whole = run({"-p", "Once upon a time", "-n", "80"});
    const std::string first = run({"--session", "s", "-p", "Once upon a time", "-n", "40"});
    const std::string second = run({"--session", "s", "-p", "", "-n", "40"});
    EXPECT_EQ(first + second, whole) << "temp " << temp;
    EXPECT_FALSE(second.empty());
    // The session now holds prompt + 80 tokens; `session rollback` and `rm` work on it.
    auto info = RunCommand({testing::CliPath(), "session", "--session-dir", dir, "info", "s"});
    EXPECT_EQ(info.exit_code, 0) << info.err;
    EXPECT_NE(info.out.find("tokens:      85"), std::string::npos) << info.out;
    EXPECT_EQ(RunCommand({testing::CliPath(), "session", "--session-dir", dir, "rollback", "s", "5"}).exit_code, 0);
    EXPECT_EQ(RunCommand({testing::CliPath(), "session", "--session-dir", dir, "rm", "s"}).exit_code, 0);
    EXPECT_NE(RunCommand({testing::CliPath(), "session", "--session-dir", dir, "info", "s"}).exit_code, 0);
  }
}

// Without -p the prompt is the text of -f FILE, else standard input (not a
// terminal here); one final newline is dropped. -p wins over standard input.
TEST(RunCli, PromptFromStandardInputOrFile) {
  const std::string dir = testing::MakeTempDir();
  auto run = [](const std::vector<std::string>& extra, const std::string& in = "") {
    std::vector<std::string> a = {testing::CliPath(), "run", "--temp", "0", "-n", "30", "-t", "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return RunCommand(a, in);
  };
  const auto want = run({"-p", "Once upon a time"});
  ASSERT_EQ(want.exit_code, 0) << want.err;
  ASSERT_FALSE(want.out.empty());
  for (const char* in : {"Once upon a time", "Once upon a time\n", "Once upon a time\r\n"}) {
    const auto r = run({}, in);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, want.out) << in;
    const std::string file = dir + "/prompt.txt";
    std::ofstream(file, std::ios::binary) << in;
    EXPECT_EQ(run({"-f", file}, "Lily").out, want.out) << in;
  }
  EXPECT_EQ(run({"-p", "Once upon a time"}, "Lily").out, want.out);
  EXPECT_NE(run({}, "Once upon a time\n\n").out, want.out);  // only one newline is dropped
  EXPECT_EQ(run({}, "").out, run({"-p", ""}).out);
}

TEST(RunCli, PromptFileErrorsAreOneLine) {
  const std::string dir = testing::MakeTempDir();
  const std::string big = dir + "/big.txt";
  std::ofstream(big) << "x";
  std::filesystem::resize_file(big, (uint64_t{64} << 20) + 1);  // sparse
  std::ofstream(dir + "/empty.txt");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"-f", dir + "/missing.txt"}, dir + "/missing.txt: no such file"},
      {{"-f", dir}, dir + ": is a directory"},
      {{"-f", dir + "/empty.txt"}, dir + "/empty.txt is empty"},
      {{"-f", big}, big + " is larger than 67108864 bytes"},
      {{"-f", big, "-p", "x"}, "excludes"},
  };
  for (const auto& [args, want] : cases) {
    std::vector<std::string> a = {testing::CliPath(), "run", "-n", "4"};
    a.insert(a.end(), args.begin(), args.end());
    const auto r = RunCommand(a);
    EXPECT_NE(r.exit_code, 0) << want;
    EXPECT_TRUE(r.out.empty());
    EXPECT_NE(r.err.find(want), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // exactly one line
  }
}

// --kv-ram 0 with a disk tier prints exactly what all-in-RAM prints.
TEST(RunCli, DiskTierOutputEqualsRam) {
  const std::string dir = testing::MakeTempDir();
  std::vector<std::string> a = {testing::CliPath(), "run", "--temp", "0", "-n", "200", "-p", "Once upon a time"};
  auto ram = RunCommand(a);
  a.insert(a.end(), {"--kv-ram", "0", "--kv-disk", dir, "--kv-block", "8"});
  auto disk = RunCommand(a);
  ASSERT_EQ(disk.exit_code, 0) << disk.err;
  EXPECT_EQ(disk.out, ram.out);
  auto bad = RunCommand({testing::CliPath(), "run", "--kv-ram", "12Q", "-p", "x"});
  EXPECT_NE(bad.exit_code, 0);
}

TEST(RunCli, BadInputIsOneLineAndNonZero) {
  const std::string dir = testing::MakeTempDir();
  const std::string junk = dir + "/junk.gguf";
  std::ofstream(junk) << "GGUF\x03\x00\x00\x00garbage";
  const std::vector<std::vector<std::string>> cases = {
      {testing::CliPath(), "run", "-m", dir + "/missing.gguf", "-p", "x"},
      {testing::CliPath(), "run", "-m", junk, "-p", "x"},
      {testing::CliPath(), "run", "-m", testing::SharedPath("models/stories260K.bin"), "-p", "x"},
      {testing::CliPath(), "run", "-n", "-5"},
  };
  for (const auto& args : cases) {
    auto r = RunCommand(args);
    EXPECT_NE(r.exit_code, 0) << args[3];
    EXPECT_TRUE(r.out.empty());
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;  // exactly one line
  }
}

// --grammar-file: every seed's completion follows the grammar and ends where
// it can; a grammar that does not parse is one line naming its place.
TEST(RunCli, GrammarFileConstrainsTheCompletion) {
  const std::string dir = testing::MakeTempDir();
  const std::string grammar = dir + "/list.gbnf";
  std::ofstream(grammar) << "root ::= item{2,4}\nitem ::= \"- \" [a-z]{1,8} (\" \" [a-z]{1,8}){0,3} \"\\n\"\n";
  for (const char* seed : {"1", "2", "3", "4"}) {
    const auto r = RunCommand({testing::CliPath(), "run", "-p", "Once upon a time", "-n", "200", "--temp", "1",
                               "--seed", seed, "--grammar-file", grammar});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    int items = 0;
    for (std::string line; std::getline(lines, line); ++items)
      EXPECT_TRUE(std::regex_match(line, std::regex("- [a-z]{1,8}( [a-z]{1,8}){0,3}"))) << r.out;
    EXPECT_TRUE(items >= 2 && items <= 4) << r.out;
    EXPECT_EQ(r.out.back(), '\n') << r.out;
  }
  std::ofstream(dir + "/bad.gbnf") << "root ::= item\n";
  const auto bad = RunCommand({testing::CliPath(), "run", "-p", "x", "--grammar-file", dir + "/bad.gbnf"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("line 1, column 10: rule 'item' is used but never defined"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace strata
