// The attention autotuner's cache: round trip, keys and CPUs kept apart,
// corrupt or unwritable caches never fatal, and contexts using the tuned grid.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "core/env.h"
#include "engine/attention_tuner.h"
#include "engine/context.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

AttentionTuneKey SmallKey() {
  AttentionTuneKey k;
  k.path = kernels::BestPath();
  k.head_dim = 32;
  k.n_head = 8;
  k.n_head_kv = 2;
  k.kv_type = DType::kF16;
  k.block_tokens = 32;
  k.n_threads = 2;
  return k;
}

std::string ReadAll(Env* env, const std::string& path) {
  std::string s;
  EXPECT_TRUE(env->ReadFile(path, UINT64_MAX, &s).ok());
  return s;
}

TEST(AttentionTunerCache, RoundTripPerKeyAndCpu) {
  auto env = NewMemEnv();
  const std::string path = "/cache/strata/attention-grid";
  const AttentionTuneKey a = SmallKey();
  AttentionTuneKey b = a;
  b.kv_type = DType::kQ8_0;
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu A", a).has_value());  // no file yet

  ASSERT_TRUE(StoreTunedGrid(env.get(), path, "cpu A", a, AttentionGrid{8, 4}).ok());
  ASSERT_TRUE(StoreTunedGrid(env.get(), path, "cpu A", b, AttentionGrid{2, 0}).ok());
  EXPECT_EQ(LoadTunedGrid(env.get(), path, "cpu A", a), (AttentionGrid{8, 4}));
  EXPECT_EQ(LoadTunedGrid(env.get(), path, "cpu A", b), (AttentionGrid{2, 0}));
  // Replacing one entry keeps the other.
  ASSERT_TRUE(StoreTunedGrid(env.get(), path, "cpu A", a, AttentionGrid{16, 1}).ok());
  EXPECT_EQ(LoadTunedGrid(env.get(), path, "cpu A", a), (AttentionGrid{16, 1}));
  EXPECT_EQ(LoadTunedGrid(env.get(), path, "cpu A", b), (AttentionGrid{2, 0}));

  // Any field of the key, or the CPU, not matching: no entry.
  AttentionTuneKey c = a;
  c.n_threads = 4;
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu A", c).has_value());
  c = a;
  c.block_tokens = 16;
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu A", c).has_value());
  c = a;
  c.path = kernels::Path::kScalar == a.path ? kernels::Path::kAvx2 : kernels::Path::kScalar;
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu A", c).has_value());
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu B", a).has_value());

  // A store from another CPU replaces the file: entries never mix machines.
  ASSERT_TRUE(StoreTunedGrid(env.get(), path, "cpu B", a, AttentionGrid{4, 2}).ok());
  EXPECT_EQ(LoadTunedGrid(env.get(), path, "cpu B", a), (AttentionGrid{4, 2}));
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu B", b).has_value());
  EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu A", a).has_value());
}

TEST(AttentionTunerCache, CorruptFilesAreIgnored) {
  auto env = NewMemEnv();
  const std::string path = "/grid";
  const AttentionTuneKey key = SmallKey();
  ASSERT_TRUE(StoreTunedGrid(env.get(), path, "cpu", key, AttentionGrid{8, 4}).ok());
  const std::string good = ReadAll(env.get(), path);
  ASSERT_EQ(LoadTunedGrid(env.get(), path, "cpu", key), (AttentionGrid{8, 4}));

  std::vector<std::string> bad = {"", "garbage\n", good.substr(0, good.size() - 1), good.substr(0, good.size() / 2)};
  for (size_t i = 0; i < good.size(); i += 7) {  // every 7th byte flipped
    std::string s = good;
    s[i] ^= 0x04;
    bad.push_back(s);
  }
  for (const std::string& s : bad) {
    ASSERT_TRUE(WriteFileAtomic(env.get(), path, s).ok());
    EXPECT_FALSE(LoadTunedGrid(env.get(), path, "cpu", key).has_value()) << s;
  }
  // A stored grid outside the valid range fails its own check even with a right checksum.
  ASSERT_TRUE(StoreTunedGrid(env.get(), "/other", "cpu", key, AttentionGrid{0, 4}).ok());
  EXPECT_FALSE(LoadTunedGrid(env.get(), "/other", "cpu", key).has_value());
}

TEST(AttentionTuner, MeasuresOnceThenReadsTheCache) {
  auto env = NewMemEnv();
  const std::string path = "/c/attention-grid";
  const AttentionTuneKey key = SmallKey();
  ThreadPool pool(key.n_threads);

  ASSERT_TRUE(WriteFileAtomic(env.get(), path, "not a cache").ok());  // corrupt: ignored and rewritten
  const TunedGrid first = TuneAttentionGrid(env.get(), path, key, pool);
  EXPECT_TRUE(first.measured);
  EXPECT_TRUE(first.store.ok()) << first.store.ToString();
  EXPECT_TRUE(first.grid.Valid());
  EXPECT_LE(first.grid.q_tile * (key.n_head / key.n_head_kv), kernels::kTileRows);
  EXPECT_EQ(LoadTunedGrid(env.get(), path, kernels::CpuModelName(), key), first.grid);

  const TunedGrid second = TuneAttentionGrid(env.get(), path, key, pool);
  EXPECT_FALSE(second.measured);
  EXPECT_EQ(second.grid, first.grid);

  // A cache written on another CPU model is not used.
  ASSERT_TRUE(StoreTunedGrid(env.get(), path, kernels::CpuModelName() + " (another)", key, AttentionGrid{3, 3}).ok());
  const TunedGrid third = TuneAttentionGrid(env.get(), path, key, pool);
  EXPECT_TRUE(third.measured);
  EXPECT_EQ(LoadTunedGrid(env.get(), path, kernels::CpuModelName(), key), third.grid);
}

TEST(AttentionTuner, UnwritableCacheStillGivesAGrid) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), dir + "/file", "x").ok());
  AttentionTuneKey key = SmallKey();
  key.n_threads = 1;
  ThreadPool pool(1);
  const TunedGrid t = TuneAttentionGrid(Env::Default(), dir + "/file/attention-grid", key, pool);  // parent is a file
  EXPECT_TRUE(t.measured);
  EXPECT_FALSE(t.store.ok());
  EXPECT_TRUE(t.grid.Valid());
}

TEST(AttentionTuner, ContextUsesTheCachedGrid) {
  auto env = NewMemEnv();
  const std::unique_ptr<Model> model =
      testing::SynthesizeAndLoad(env.get(), SynthSpec{1, 128, 256, 4, 2, 300, 256, DType::kF32, 3});
  ASSERT_TRUE(model);
  ContextParams p;
  p.n_threads = 2;
  p.env = env.get();
  p.tune_cache_path = "/cache/attention-grid";
  const AttentionTuneKey key{kernels::BestPath(), 32, 4, 2, DType::kF32, p.kv_block_tokens, 2};
  // A grid planted in the cache is what the context runs.
  ASSERT_TRUE(StoreTunedGrid(env.get(), p.tune_cache_path, kernels::CpuModelName(), key, AttentionGrid{5, 7}).ok());
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::Create(*model, p, &ctx).ok());
  EXPECT_EQ(ctx->attention_grid(), (AttentionGrid{5, 7}));
  // Without a cache path: the defaults, and nothing is measured or written.
  p.tune_cache_path.clear();
  ASSERT_TRUE(Context::Create(*model, p, &ctx).ok());
  EXPECT_EQ(ctx->attention_grid(), AttentionGrid{});
  // Another key (KV type) is measured and added next to the planted one.
  p.tune_cache_path = "/cache/attention-grid";
  p.kv_type = DType::kF16;
  ASSERT_TRUE(Context::Create(*model, p, &ctx).ok());
  AttentionTuneKey f16 = key;
  f16.kv_type = DType::kF16;
  EXPECT_EQ(LoadTunedGrid(env.get(), p.tune_cache_path, kernels::CpuModelName(), f16), ctx->attention_grid());
  EXPECT_EQ(LoadTunedGrid(env.get(), p.tune_cache_path, kernels::CpuModelName(), key), (AttentionGrid{5, 7}));
}

}  // namespace
}  // namespace strata
