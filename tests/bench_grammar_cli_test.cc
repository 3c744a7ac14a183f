// strata bench-grammar: runs on a model's logits and on a vocabulary-only
// GGUF, reports what it measured (the figures themselves are benchmarks'
// business, docs/BENCHMARKS.md), and refuses bad input by name.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace strata {
namespace {

std::string WriteSchema() {
  const std::string path = testing::MakeTempDir() + "/schema.json";
  std::ofstream(path) << R"({"type": "object", "properties": {"n": {"type": "integer", "maximum": 99},
                              "s": {"type": "string", "maxLength": 8}}, "required": ["n", "s"]})";
  return path;
}

void ExpectReport(const testing::CommandResult& r, int32_t n_vocab, int tokens) {
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_vocab"], n_vocab);
  EXPECT_EQ(j["tokens"], tokens);
  EXPECT_GT(j["trie_nodes"].get<int>(), 0);
  EXPECT_GT(j["states"].get<int>(), 0);
  for (const char* k : {"plain_us", "grammar_us", "accept_us"}) EXPECT_GE(j[k]["median"].get<double>(), 0) << k;
  EXPECT_TRUE(j["overhead_us"]["mean"].is_number());
}

TEST(BenchGrammarCli, ModelLogitsAndVocabularyOnly) {
  const std::string schema = WriteSchema();
  ExpectReport(testing::RunCommand({testing::CliPath(), "bench-grammar", "-m", testing::SharedPath("models/stories260K.gguf"),
                                    "--json-schema", schema, "-n", "120", "-t", "1", "--json"}),
               512, 120);
  ExpectReport(testing::RunCommand({testing::CliPath(), "bench-grammar", "--vocab",
                                    testing::SharedPath("vocab/ggml-vocab-phi-3.gguf"), "--json-schema", schema, "-n",
                                    "60", "--json"}),
               32064, 60);
}

TEST(BenchGrammarCli, BadInputIsNamed) {
  auto r = testing::RunCommand({testing::CliPath(), "bench-grammar", "-n", "5"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("give one of --grammar-file and --json-schema"), std::string::npos) << r.err;
  const std::string bad = testing::MakeTempDir() + "/bad.gbnf";
  std::ofstream(bad) << "root ::= (\"a\"";
  r = testing::RunCommand({testing::CliPath(), "bench-grammar", "--grammar-file", bad, "-n", "5"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("line 1, column 14: expected ')'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace strata
