// LoadSummary: the one-line description run and serve print after loading.
#include "engine/load_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/env.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(LoadSummaryTest, NamesArchitectureParametersTypesFileContextAndKv) {
  SynthSpec s;
  s.arch = Arch::kQwen3;
  s.head_dim = 32;
  s.n_layer = 2;
  s.n_embd = 64;
  s.n_ff = 96;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 300;
  s.n_ctx = 64;
  s.type = DType::kQ8_0;
  std::unique_ptr<Env> env = NewMemEnv();
  std::unique_ptr<Model> m = testing::SynthesizeAndLoad(env.get(), s);
  ASSERT_TRUE(m);
  // Parameters: embd + output 2 x 300 x 64, per layer q 128x64, k/v 64x64 each, o 64x128,
  // gate/up/down 3 x 96x64, norms 2 x 64 + 2 x 32; output norm 64.
  const uint64_t per_layer = 128 * 64 + 2 * 64 * 64 + 64 * 128 + 3 * 96 * 64 + 2 * 64 + 2 * 32;
  EXPECT_EQ(m->n_params(), 2 * 300 * 64 + 2 * per_layer + 64);
  KvLayout kv;
  ASSERT_TRUE(MakeKvLayout(m->hparams(), DType::kF16, 32, &kv).ok());
  const std::string line = LoadSummary(*m, 4096, kv);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, ::testing::StartsWith("qwen3 \"strata-synth-qwen3-2L-64E-q8_0\": 124.9K parameters, "));
  EXPECT_THAT(line, ::testing::HasSubstr("q8_0 ×16 + f32 ×9"));  // 7 matrices per layer + embd + output
  // KV: 4096 tokens x 2 layers x 2 (K, V) x 2 KV heads x 32 dims x 2 bytes = 2 MiB.
  EXPECT_THAT(line, ::testing::EndsWith("; context 4096, KV f16 2.0 MiB"));
  EXPECT_THAT(line, ::testing::HasSubstr(", file "));
}

}  // namespace
}  // namespace strata
