// `strata tokenize`, run as a subprocess on the shared models.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "test_util.h"

namespace strata {
namespace {

using ::strata::testing::CliPath;
using ::strata::testing::RunCommand;
using ::strata::testing::SharedPath;
using ::testing::HasSubstr;

testing::CommandResult Tokenize(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv = {CliPath(), "tokenize"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, input);
}

TEST(TokenizeCliTest, GgufModelPrintsIdsWithBos) {
  const auto r = Tokenize({"-m", SharedPath("models/stories260K.gguf")}, "Once upon a time");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

TEST(TokenizeCliTest, NoBosLeavesBosOut) {
  const auto r = Tokenize({"-m", SharedPath("models/stories260K.gguf"), "--no-bos"}, "Once upon a time");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "403 407 261 378\n");
}

TEST(TokenizeCliTest, Llama2cModelUsesTheGivenTokenizer) {
  const auto r = Tokenize({"-m", SharedPath("models/stories260K.bin"), "--tokenizer", SharedPath("models/tok512.bin")},
                          "Once upon a time");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

TEST(TokenizeCliTest, Llama2cModelWithoutTokenizerIsAClearError) {
  const auto r = Tokenize({"-m", SharedPath("models/stories260K.bin")}, "Once upon a time");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("--tokenizer"));
}

TEST(TokenizeCliTest, MissingModelIsAClearError) {
  const auto r = Tokenize({"-m", SharedPath("models/no-such-model.gguf")}, "x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("no-such-model.gguf"));
}

TEST(TokenizeCliTest, ReadsStdinByteForByte) {
  const std::string model = SharedPath("models/stories260K.gguf");
  EXPECT_EQ(Tokenize({"-m", model}, "Once upon a time\n").out, "1 403 407 261 378 13\n");  // 13 = <0x0A>
  EXPECT_EQ(Tokenize({"-m", model}, "a\xFF").out, "1 261 258\n");  // invalid UTF-8: byte token <0xFF>
  EXPECT_EQ(Tokenize({"-m", model}, "").out, "1\n");
  EXPECT_EQ(Tokenize({"-m", model, "--no-bos"}, "").out, "\n");
}

TEST(TokenizeCliTest, ParseSpecialRecognisesControlTokens) {
  const std::string model = SharedPath("models/stories260K.gguf");
  EXPECT_EQ(Tokenize({"-m", model, "--no-bos", "--parse-special"}, "<s>").out, "1\n");
  EXPECT_EQ(Tokenize({"-m", model, "--no-bos"}, "<s>").out, "410 504 419 505\n");  // ▁ < s >, spelled out
}

TEST(TokenizeCliTest, ByteLevelBpeVocabulary) {
  const auto r = Tokenize({"-m", SharedPath("vocab/ggml-vocab-gpt-2.gguf")}, "Hello world");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 995\n");  // gpt-2 adds no BOS
}

TEST(TokenizeCliTest, DefaultModelComesFromTheEnvironment) {
  ASSERT_EQ(setenv("STRATA_DEFAULT_MODEL", SharedPath("models/stories260K.gguf").c_str(), 1), 0);
  const auto r = Tokenize({}, "Once upon a time");
  unsetenv("STRATA_DEFAULT_MODEL");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378\n");
}

}  // namespace
}  // namespace strata
