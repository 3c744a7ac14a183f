// Query-tiled attention: the AttendTile kernel against the scalar reference
// row by row, AttentionPass against softmax attention computed directly, and
// whole models giving the same output on every attention grid.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/env.h"
#include "core/rng.h"
#include "engine/attention_pass.h"
#include "engine/context.h"
#include "engine/engine.h"
#include "engine/output_processor.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

using kernels::Path;
using kernels::SoftmaxPartial;

std::vector<float> Random(size_t n, uint64_t seed, float amp = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = amp * (2.0f * rng.NextFloat() - 1.0f);
  return v;
}

std::vector<Path> PathsToTest() {
  std::vector<Path> paths;
  for (Path p : kernels::AvailablePaths())
    if (p != Path::kAmx) paths.push_back(p);  // runs the AVX-512 kernels
  return paths;
}

// Every query row of a tile, token t seeing rows [first_key[t], n_keys[t]),
// against AttendRows on the scalar path, causal and with a sliding window,
// with and without soft-capping; tokens that see nothing keep their state bit
// for bit.
TEST(AttentionTile, MatchesScalarRowByRow) {
  struct Shape {
    DType type;
    int32_t D;
  };
  const Shape shapes[] = {{DType::kF32, 24}, {DType::kF32, 64}, {DType::kF16, 40},
                          {DType::kF16, 128}, {DType::kQ8_0, 32}, {DType::kQ8_0, 96}};
  for (Path path : PathsToTest()) {
    for (const Shape& sh : shapes) {
      const int32_t D = sh.D;
      for (int32_t n_heads : {1, 2, 3, 8}) {
        for (int32_t n_tok : {1, 2, 5, 9, 13}) {  // 9 x 8 heads: more rows than one kernel call takes
          for (int32_t n : {1, 17, 32}) {
            // Tokens at positions first..first+n_tok-1 over a block starting at position 0..n:
            // some tokens see none of it, some part, some all.
            for (int32_t first : {-4, 0, n - 3, n + 2}) {
             // Windows of 5 and 19 keys: rows starting inside a 16-key chunk, inside the next one, or none.
             for (int32_t window : {0, 5, 19}) {
              const kernels::ScoreParams score{0.125f, window == 5 ? 1.5f : 0.0f};
              SCOPED_TRACE(std::string(kernels::PathName(path)) + " " + DTypeName(sh.type) + " D=" + std::to_string(D) +
                           " heads=" + std::to_string(n_heads) + " tok=" + std::to_string(n_tok) +
                           " n=" + std::to_string(n) + " first=" + std::to_string(first) +
                           " window=" + std::to_string(window) + " softcap=" + std::to_string(score.softcap));
              const size_t row_bytes = *RowBytes(sh.type, D) + 4;  // rows need not be packed
              std::vector<uint8_t> k(row_bytes * n), v(row_bytes * n);
              for (int32_t j = 0; j < n; ++j) {
                kernels::QuantizeRow(sh.type, Random(D, 100 + j).data(), &k[j * row_bytes], D);
                kernels::QuantizeRow(sh.type, Random(D, 500 + j).data(), &v[j * row_bytes], D);
              }
              const size_t q_stride = static_cast<size_t>(n_heads) * D + 5;
              const std::vector<float> q = Random(q_stride * n_tok, 7, 2.0f);
              std::vector<int32_t> n_keys(n_tok), first_key(n_tok, 0);
              for (int32_t t = 0; t < n_tok; ++t) {
                n_keys[t] = std::clamp(first + t + 1, 0, n);
                if (window > 0) first_key[t] = std::clamp(first + t + 1 - window, 0, n);
              }
              const auto sees = [&](int32_t t) { return n_keys[t] > first_key[t]; };

              const int32_t rows = n_tok * n_heads;
              const size_t stride = D + 3;
              std::vector<float> got(stride * rows, 0.5f), want = got, scratch(D);
              std::vector<SoftmaxPartial> pg(rows, SoftmaxPartial{0.25f, 2.0f}), pw = pg;  // mid-sequence state
              kernels::AttendTile(q.data(), q_stride, n_tok, n_heads, first_key.data(), n_keys.data(), k.data(),
                                  v.data(), row_bytes, sh.type, D, score, pg.data(), got.data(), stride,
                                  scratch.data(), path);
              for (int32_t t = 0; t < n_tok; ++t)
                for (int32_t h = 0; h < n_heads; ++h)
                  if (sees(t))
                    kernels::AttendRows(&q[t * q_stride + h * D], &k[first_key[t] * row_bytes],
                                        &v[first_key[t] * row_bytes], row_bytes, sh.type, n_keys[t] - first_key[t], D,
                                        score, &pw[t * n_heads + h], &want[(t * n_heads + h) * stride],
                                        scratch.data(), Path::kScalar);
              for (int32_t r = 0; r < rows; ++r) {
                if (!sees(r / n_heads)) {
                  EXPECT_EQ(pg[r].m, 0.25f) << r;
                  EXPECT_EQ(pg[r].l, 2.0f) << r;
                }
                EXPECT_NEAR(pg[r].m, pw[r].m, 1e-5f * (1 + std::fabs(pw[r].m))) << r;
                EXPECT_NEAR(pg[r].l, pw[r].l, 1e-5f * pw[r].l) << r;
                for (int32_t d = 0; d < D; ++d)
                  ASSERT_NEAR(got[r * stride + d], want[r * stride + d], 1e-5f * (1 + std::fabs(want[r * stride + d])))
                      << "row " << r << " d " << d;
                for (size_t d = D; d < stride; ++d) EXPECT_EQ(got[r * stride + d], 0.5f) << "wrote past row " << r;
              }
             }
            }
          }
        }
      }
    }
  }
}

// Synthetic paged KV for AttentionPass: sequences of random rows in blocks.
struct PagedKv {
  KvLayout layout;
  std::vector<std::vector<uint8_t>> storage;
  std::vector<std::vector<uint8_t*>> slices;  // [seq][block]

  PagedKv(const KvLayout& l, const std::vector<int32_t>& lengths) : layout(l) {
    uint64_t seed = 1;
    for (int32_t len : lengths) {
      slices.emplace_back();
      for (int32_t b = 0; b * l.block_tokens < len; ++b) {
        std::vector<uint8_t>& s = storage.emplace_back(l.slice_bytes());
        for (uint64_t off = 0; off < l.slice_bytes(); off += l.row_bytes())
          kernels::QuantizeRow(l.type, Random(l.head_dim, seed++).data(), s.data() + off, l.head_dim);
        slices.back().push_back(s.data());
      }
    }
  }
  // Dequantized K (or V) row of (sequence, KV head, position).
  std::vector<float> Row(int32_t seq, int32_t g, int32_t pos, bool value) const {
    const uint8_t* slice = slices[seq][pos / layout.block_tokens];
    const int32_t tok = pos % layout.block_tokens;
    std::vector<float> r(layout.head_dim);
    kernels::DequantizeRow(layout.type, slice + (value ? layout.v_offset(g, tok) : layout.k_offset(g, tok)), r.data(),
                           layout.head_dim);
    return r;
  }
};

// Softmax attention of one query head, directly in double, over the keys
// math.window allows (scores scaled and soft-capped as math.score says).
std::vector<double> DirectAttention(const PagedKv& kv, const AttentionMath& math, const float* q, int32_t seq,
                                    int32_t pos, int32_t g) {
  const int32_t D = kv.layout.head_dim;
  const int32_t first = math.window > 0 ? std::max(0, pos - math.window + 1) : 0;
  std::vector<double> s(pos + 1), out(D, 0.0);
  double max = -1e300, sum = 0;
  for (int32_t j = first; j <= pos; ++j) {
    const std::vector<float> k = kv.Row(seq, g, j, false);
    double dot = 0;
    for (int32_t d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * k[d];
    s[j] = dot * math.score.scale;
    if (math.score.softcap > 0) s[j] = math.score.softcap * std::tanh(s[j] / math.score.softcap);
    max = std::max(max, s[j]);
  }
  for (int32_t j = first; j <= pos; ++j) sum += std::exp(s[j] - max);
  for (int32_t j = first; j <= pos; ++j) {
    const std::vector<float> v = kv.Row(seq, g, j, true);
    for (int32_t d = 0; d < D; ++d) out[d] += std::exp(s[j] - max) / sum * v[d];
  }
  return out;
}

// A batch mixing decode tokens and prompt runs of several sequences, and a
// single decode token, on grids from one token per tile without splits to
// large tiles split block by block, with 2 and 3 KV heads; causal, and with
// sliding windows (one within a block, one across blocks; with soft-capping).
TEST(AttentionPassTest, EveryGridMatchesDirectSoftmax) {
  const AttentionGrid grids[] = {{1, 0}, {4, 0}, {3, 1}, {64, 2}, {8, 5}};
  // Sequence 0: a prompt of 21 tokens at 0..20; 1: one decode token at 40;
  // 2: 10 tokens at 15..24 after a cached prefix; 3: a decode token at 0.
  const std::vector<int32_t> lengths = {21, 41, 25, 1};
  std::vector<AttentionQuery> mixed;
  for (int32_t p = 0; p < 21; ++p) mixed.push_back({0, p});
  mixed.push_back({1, 40});
  for (int32_t p = 15; p < 25; ++p) mixed.push_back({2, p});
  mixed.push_back({3, 0});
  const std::vector<AttentionQuery> decode = {{1, 40}};
  const int32_t n_head = 6, D = 64, B = 8;
  const size_t E = static_cast<size_t>(n_head) * D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const AttentionMath maths[] = {{{scale}, 0}, {{scale}, 5}, {{scale, 2.5f}, 13}};
  const auto check = [&](DType type, int threads, int32_t n_kv, const std::vector<AttentionQuery>& queries) {
    const KvLayout layout{1, n_kv, D, B, type};
    PagedKv kv(layout, lengths);
    const std::vector<float> q = Random(E * queries.size(), 99, 3.0f);
    ThreadPool pool(threads);
    AttentionPass pass(layout, n_head, pool);
    for (const AttentionMath& math : maths) {
      for (const AttentionGrid& grid : grids) {
        SCOPED_TRACE(std::string(DTypeName(type)) + " threads=" + std::to_string(threads) + " n_kv=" +
                     std::to_string(n_kv) + " queries=" + std::to_string(queries.size()) + " " +
                     AttentionGridName(grid) + " window=" + std::to_string(math.window) +
                     " softcap=" + std::to_string(math.score.softcap));
        std::vector<float> out(q.size(), -1.0f);
        pass.Run(grid, math, queries, q.data(), kv.slices, out.data());
        for (size_t i = 0; i < queries.size(); ++i) {
          for (int32_t h = 0; h < n_head; ++h) {
            const std::vector<double> want =
                DirectAttention(kv, math, &q[i * E + h * D], queries[i].seq, queries[i].pos, h / (n_head / n_kv));
            for (int32_t d = 0; d < D; ++d)
              ASSERT_NEAR(out[i * E + h * D + d], want[d], 2e-6 + 1e-5 * std::fabs(want[d]))
                  << "query " << i << " head " << h << " d " << d;
          }
        }
      }
    }
  };
  for (DType type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    for (int threads : {1, 2}) {
      for (int32_t n_kv : {2, 3}) {
        check(type, threads, n_kv, mixed);
        check(type, threads, n_kv, decode);
      }
    }
  }
}

// Partial mode (KV blocks spread over ranks): each part's softmax state over
// its blocks only (the others null), merged by log-sum-exp and normalized,
// equals attention over all blocks — for blocks split by parity, into a
// first and a second half, and all on one side (the other sees none).
TEST(AttentionPassTest, PartialStatesMergeToTheWhole) {
  const std::vector<int32_t> lengths = {21, 41, 25};
  std::vector<AttentionQuery> queries;
  for (int32_t p = 0; p < 21; ++p) queries.push_back({0, p});
  queries.push_back({1, 40});
  for (int32_t p = 15; p < 25; ++p) queries.push_back({2, p});
  const int32_t n_head = 4, D = 32, B = 8, n_kv = 2;
  const size_t E = static_cast<size_t>(n_head) * D, row = D + 2;
  const KvLayout layout{1, n_kv, D, B, DType::kF16};
  PagedKv kv(layout, lengths);
  const std::vector<float> q = Random(E * queries.size(), 7, 3.0f);
  ThreadPool pool(2);
  AttentionPass pass(layout, n_head, pool);
  const AttentionMath math{{1.0f / std::sqrt(static_cast<float>(D))}, 0};
  std::vector<float> whole(q.size());
  pass.Run(AttentionGrid{4, 1}, math, queries, q.data(), kv.slices, whole.data());
  const std::vector<std::function<bool(int32_t)>> splits = {
      [](int32_t b) { return b % 2 == 0; }, [](int32_t b) { return b < 3; }, [](int32_t) { return true; }};
  for (size_t si = 0; si < splits.size(); ++si) {
    for (const AttentionGrid& grid : {AttentionGrid{1, 0}, AttentionGrid{8, 1}}) {
      SCOPED_TRACE("split " + std::to_string(si) + " " + AttentionGridName(grid));
      std::vector<std::vector<uint8_t*>> mine = kv.slices, theirs = kv.slices;
      for (size_t s = 0; s < kv.slices.size(); ++s)
        for (size_t b = 0; b < kv.slices[s].size(); ++b)
          (splits[si](static_cast<int32_t>(b)) ? theirs : mine)[s][b] = nullptr;
      std::vector<float> a(queries.size() * n_head * row), c(a.size());
      pass.Run(grid, math, queries, q.data(), mine, nullptr, a.data());
      pass.Run(grid, math, queries, q.data(), theirs, nullptr, c.data());
      for (size_t x = 0; x < queries.size() * n_head; ++x) {
        kernels::SoftmaxPartial st{a[x * row + D], a[x * row + D + 1]};
        kernels::MergePartial(&st, &a[x * row], kernels::SoftmaxPartial{c[x * row + D], c[x * row + D + 1]},
                              &c[x * row], D);
        ASSERT_GT(st.l, 0.0f);
        for (int32_t d = 0; d < D; ++d)
          ASSERT_NEAR(a[x * row + d] / st.l, whole[x * D + d], 1e-5f) << "row " << x << " d " << d;
      }
    }
  }
}

class AttentionGridModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = NewMemEnv();
    // GQA (8 heads over 2 KV heads), head_dim 32. F32 weights: with quantized
    // ones, activations are quantized to Q8_0 before each matrix, which turns
    // rounding differences into whole quantization steps.
    const SynthSpec spec{2, 256, 512, 8, 2, 300, 512, DType::kF32, 11};
    model_ = testing::SynthesizeAndLoad(env_.get(), spec);
    ASSERT_TRUE(model_);
    for (int i = 0; i < 150; ++i) prompt_.push_back(3 + (i * 53) % 290);
  }

  // Greedy tokens and every step's logits.
  void Generate(const AttentionGrid& grid, DType kv_type, int n, std::vector<int32_t>* tokens,
                std::vector<float>* logits) {
    ContextParams p;
    p.n_ctx = 512;
    p.n_batch = 64;  // the prompt in chunks: tiles over cached prefixes
    p.n_threads = 2;
    p.kv_type = kv_type;
    p.kv_block_tokens = 16;
    p.attention_grid = grid;
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::Create(*model_, p, &ctx).ok());
    ASSERT_EQ(ctx->attention_grid(), grid);
    ASSERT_TRUE(ctx->Decode(prompt_, LogitsMode::kAll).ok());
    const int32_t V = model_->hparams().n_vocab;
    logits->assign(ctx->logits(0), ctx->logits(0) + static_cast<size_t>(V) * prompt_.size());
    for (int i = 0; i < n; ++i) {
      const float* l = ctx->logits(0);
      const int32_t best = static_cast<int32_t>(std::max_element(l, l + V) - l);
      tokens->push_back(best);
      ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&best, 1), LogitsMode::kLast).ok());
      logits->insert(logits->end(), ctx->logits(0), ctx->logits(0) + V);
    }
  }

  std::unique_ptr<Env> env_;
  std::unique_ptr<Model> model_;
  std::vector<int32_t> prompt_;
};

TEST_F(AttentionGridModelTest, SameTokensAndLogitsOnEveryGrid) {
  for (DType kv_type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
    SCOPED_TRACE(DTypeName(kv_type));
    std::vector<int32_t> want_tokens;
    std::vector<float> want_logits;
    Generate(AttentionGrid{1, 0}, kv_type, 40, &want_tokens, &want_logits);
    for (const AttentionGrid& grid : {AttentionGrid{4, 1}, AttentionGrid{16, 3}, AttentionGrid{64, 0}}) {
      SCOPED_TRACE(AttentionGridName(grid));
      std::vector<int32_t> tokens;
      std::vector<float> logits;
      Generate(grid, kv_type, 40, &tokens, &logits);
      EXPECT_EQ(tokens, want_tokens);
      ASSERT_EQ(logits.size(), want_logits.size());
      float worst = 0;
      for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - want_logits[i]));
      EXPECT_LT(worst, 1e-4f);
    }
  }
}

TEST_F(AttentionGridModelTest, EngineGivesSameTextOnEveryGrid) {
  auto run = [&](const AttentionGrid& grid) {
    EngineParams p;
    p.n_threads = 2;
    p.parallel = 3;
    p.n_ctx = 256;
    p.max_batch_tokens = 48;  // prompts in chunks next to other requests' decode tokens
    p.kv_block_tokens = 8;
    p.attention_grid = grid;
    std::unique_ptr<Engine> engine;
    EXPECT_TRUE(Engine::Create(*model_, p, &engine).ok());
    std::vector<std::string> texts(3);
    std::vector<std::atomic<bool>> done(3);
    for (int r = 0; r < 3; ++r) {
      GenerationRequest req;
      req.prompt.assign(prompt_.begin() + r * 7, prompt_.begin() + 60 + r * 25);
      req.max_tokens = 24;
      req.sampling.temperature = 0;
      uint64_t id = 0;
      const int32_t last = req.prompt.back();
      EventSink sink = [&, r](const GenerationEvent& e) {
        texts[r] += e.text;
        EXPECT_NE(e.reason, FinishReason::kError) << e.error.ToString();
        if (e.finished) done[r] = true;
        return true;
      };
      EXPECT_TRUE(engine->Submit(std::move(req), TextSink(model_->vocab(), last, {}, std::move(sink)), &id).ok());
    }
    while (!done[0] || !done[1] || !done[2]) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return texts;
  };
  const std::vector<std::string> want = run(AttentionGrid{1, 0});
  EXPECT_EQ(run(AttentionGrid{8, 1}), want);
  EXPECT_EQ(run(AttentionGrid{32, 2}), want);
}

TEST(AttentionGridParams, InvalidGridIsRejected) {
  auto env = NewMemEnv();
  const std::unique_ptr<Model> model =
      testing::SynthesizeAndLoad(env.get(), SynthSpec{1, 64, 128, 2, 1, 300, 64, DType::kF32, 1});
  ASSERT_TRUE(model);
  for (const AttentionGrid& bad : {AttentionGrid{0, 0}, AttentionGrid{65, 0}, AttentionGrid{4, -1}}) {
    ContextParams cp;
    cp.attention_grid = bad;
    std::unique_ptr<Context> ctx;
    EXPECT_EQ(Context::Create(*model, cp, &ctx).code(), StatusCode::kInvalidArgument);
    EngineParams ep;
    ep.attention_grid = bad;
    std::unique_ptr<Engine> engine;
    EXPECT_EQ(Engine::Create(*model, ep, &engine).code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace strata
