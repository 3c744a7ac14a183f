// `strata inspect`, run as a subprocess on the shared models and on corrupt files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "core/env.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

testing::CommandResult Inspect(const std::string& path) {
  return testing::RunCommand({testing::CliPath(), "inspect", path});
}

// A failed command prints exactly one line, "strata: ...", and nothing to stdout.
void ExpectOneLineError(const testing::CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("strata:"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr(needle));
}

TEST(InspectCliTest, PrintsGgufMetadataAndTensorTable) {
  testing::CommandResult r = Inspect(testing::SharedPath("models/stories260K.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, HasSubstr("format: GGUF v3\n"));
  EXPECT_THAT(r.out, HasSubstr("alignment: 32\n"));
  EXPECT_THAT(r.out, HasSubstr("metadata: 19 keys\n"));
  EXPECT_THAT(r.out, HasSubstr("  general.architecture str = \"llama\"\n"));
  EXPECT_THAT(r.out, HasSubstr("  llama.embedding_length u32 = 64\n"));
  EXPECT_THAT(r.out, HasSubstr("  llama.attention.layer_norm_rms_epsilon f32 = 1e-05\n"));
  // Long arrays: the first 8 elements, then "...", with the count in the type.
  EXPECT_THAT(r.out, HasSubstr("  tokenizer.ggml.tokens arr[str,512] = [\"<unk>\", \"<s>\", \"</s>\", \"<0x00>\", "
                               "\"<0x01>\", \"<0x02>\", \"<0x03>\", \"<0x04>\", ...]\n"));
  EXPECT_THAT(r.out, HasSubstr("tensors: 48\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("blk\\.4\\.ffn_down\\.weight +f32 +\\[172, 64\\] +44032\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("output_norm\\.weight +f32 +\\[64\\] +256\n"));
  EXPECT_THAT(r.out, HasSubstr("total: 48 tensors, 292800 elements, 1171200 bytes"));
}

TEST(InspectCliTest, PrintsLlama2cConfigAndTensorTable) {
  testing::CommandResult r = Inspect(testing::SharedPath("models/stories260K.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("format: llama2.c checkpoint\n"));
  EXPECT_THAT(r.out, HasSubstr("  dim = 64\n  hidden_dim = 172\n  n_layers = 5\n  n_heads = 8\n  n_kv_heads = 4\n"
                               "  vocab_size = 512\n  seq_len = 512\n  shared_classifier = true\n"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("blk\\.0\\.attn_k\\.weight +f32 +\\[64, 32\\] +8192\n"));
  EXPECT_THAT(r.out, HasSubstr("total: 47 tensors, 260032 elements, 1040128 bytes"));
}

TEST(InspectCliTest, PrintsZeroTensorVocabFile) {
  testing::CommandResult r = Inspect(testing::SharedPath("vocab/ggml-vocab-bert-bge.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("  bert.attention.causal bool = false\n"));
  EXPECT_THAT(r.out, HasSubstr("tensors: 0\n"));
  EXPECT_THAT(r.out, HasSubstr("total: 0 tensors, 0 elements, 0 bytes"));
}

TEST(InspectCliTest, FailsCleanlyOnCorruptAndMissingFiles) {
  const std::string dir = testing::MakeTempDir();
  std::string model;
  ASSERT_TRUE(Env::Default()->ReadFile(testing::SharedPath("models/stories260K.gguf"), UINT64_MAX, &model).ok());
  const std::string truncated = dir + "/truncated.gguf";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), truncated, model.substr(0, 20000)).ok());
  ExpectOneLineError(Inspect(truncated), "past the end");

  const std::string garbage = dir + "/garbage.bin";
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), garbage, "not a model at all, just some text\n").ok());
  ExpectOneLineError(Inspect(garbage), "llama2.c");

  ExpectOneLineError(Inspect(dir + "/missing.gguf"), "missing.gguf");
  for (const std::string& p : {truncated, garbage}) EXPECT_TRUE(Env::Default()->RemoveFile(p).ok());
}

TEST(InspectCliTest, RequiresAModelArgument) {
  testing::CommandResult r = testing::RunCommand({testing::CliPath(), "inspect"});
  EXPECT_NE(r.exit_code, 0);
  testing::CommandResult help = testing::RunCommand({testing::CliPath(), "inspect", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("MODEL"));
}

}  // namespace
}  // namespace strata
