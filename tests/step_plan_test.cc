// Step plans: what Prepare returns, its byte form (round trip; every
// truncation, corruption and out-of-range value is an error Status), and that
// the forward pass over a decoded plan equals the one over the original.
#include <gtest/gtest.h>

#include <cstring>
#include <xxhash.h>

#include <algorithm>

#include "engine/forward.h"
#include "engine/local_kv.h"
#include "kv/kv_cache_manager.h"
#include "kv/step_plan.h"
#include "test_util.h"

namespace strata {
namespace {

StepPlan SamplePlan() {
  StepPlan p;
  p.copies = {{3, 7}, {0, 1}};
  p.entries.push_back(PlanEntry{5, 0, {1, 2, 3, 4, 5}, {0, 2}, PlanLogits::kAll});
  p.entries.push_back(PlanEntry{9, 6, {8}, {4, 6}, PlanLogits::kLast});
  p.entries.push_back(PlanEntry{2, 3, {7, 7}, {1, 3}, PlanLogits::kNone, 2});
  return p;
}

void ExpectSame(const StepPlan& a, const StepPlan& b) {
  ASSERT_EQ(a.copies.size(), b.copies.size());
  for (size_t i = 0; i < a.copies.size(); ++i) {
    EXPECT_EQ(a.copies[i].from, b.copies[i].from);
    EXPECT_EQ(a.copies[i].to, b.copies[i].to);
  }
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (size_t i = 0; i < a.entries.size(); ++i) {
    EXPECT_EQ(a.entries[i].seq, b.entries[i].seq);
    EXPECT_EQ(a.entries[i].start, b.entries[i].start);
    EXPECT_EQ(a.entries[i].tokens, b.entries[i].tokens);
    EXPECT_EQ(a.entries[i].blocks, b.entries[i].blocks);
    EXPECT_EQ(a.entries[i].logits, b.entries[i].logits);
    EXPECT_EQ(a.entries[i].adapter, b.entries[i].adapter);
  }
}

const PlanLimits kLimits{/*n_vocab=*/16, /*n_blocks=*/8, /*block_tokens=*/4, /*max_positions=*/32,
                         /*max_tokens=*/1 << 16, /*n_adapters=*/2};

TEST(StepPlanTest, RoundTrip) {
  const StepPlan p = SamplePlan();
  const std::vector<uint8_t> bytes = EncodePlan(p);
  StepPlan q;
  ASSERT_TRUE(DecodePlan(bytes, &q).ok());
  ExpectSame(p, q);
  EXPECT_TRUE(ValidatePlan(q, kLimits).ok());
  EXPECT_EQ(q.n_tokens(), 8);
  EXPECT_EQ(q.n_logit_rows(), 6);
  EXPECT_EQ(EncodePlan(q), bytes);
}

TEST(StepPlanTest, EveryTruncationIsAnError) {
  const std::vector<uint8_t> bytes = EncodePlan(SamplePlan());
  for (size_t n = 0; n < bytes.size(); ++n) {
    StepPlan q = SamplePlan();
    const Status s = DecodePlan(std::span(bytes.data(), n), &q);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << n;
    ExpectSame(q, SamplePlan());  // untouched
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  StepPlan q;
  EXPECT_EQ(DecodePlan(longer, &q).code(), StatusCode::kCorrupt);
}

// Any flipped bit fails the magic, version, length or checksum.
TEST(StepPlanTest, EveryFlippedBitIsAnError) {
  const std::vector<uint8_t> bytes = EncodePlan(SamplePlan());
  for (size_t i = 0; i < bytes.size() * 8; ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    StepPlan q;
    EXPECT_EQ(DecodePlan(bad, &q).code(), StatusCode::kCorrupt) << "bit " << i;
  }
}

// A well-framed payload whose counts lie (the checksum recomputed over them).
TEST(StepPlanTest, LyingCountsAreErrors) {
  const std::vector<uint8_t> bytes = EncodePlan(SamplePlan());
  auto reframe = [](std::vector<uint8_t> b) {
    // A valid header over the edited payload: what a sender with a bug would produce.
    const uint32_t len = static_cast<uint32_t>(b.size() - kPlanHeaderBytes);
    std::memcpy(b.data() + 8, &len, 4);
    const uint64_t sum = XXH3_64bits(b.data() + kPlanHeaderBytes, len);
    std::memcpy(b.data() + 12, &sum, 8);
    return b;
  };
  for (uint32_t lie : {3u, 0xFFFFFFFFu, 0x10000000u}) {
    std::vector<uint8_t> b = bytes;
    std::memcpy(b.data() + kPlanHeaderBytes, &lie, 4);  // the copy count
    StepPlan q;
    EXPECT_EQ(DecodePlan(reframe(b), &q).code(), StatusCode::kCorrupt) << lie;
  }
  std::vector<uint8_t> b = bytes;
  const size_t logits_at = kPlanHeaderBytes + 4 + 2 * 8 + 4 + 8;  // first entry's logits byte
  b[logits_at] = 3;
  StepPlan q;
  EXPECT_EQ(DecodePlan(reframe(b), &q).code(), StatusCode::kCorrupt);
}

TEST(StepPlanTest, ContentsOutOfLimitsAreErrors) {
  auto bad = [](auto edit) {
    StepPlan p = SamplePlan();
    edit(p);
    return ValidatePlan(p, kLimits).code();
  };
  EXPECT_EQ(bad([](StepPlan& p) { p.entries.clear(); }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[0].tokens[2] = 16; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[0].tokens[2] = -1; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].blocks[1] = 8; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].blocks.pop_back(); }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].start = -1; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].start = 40; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[2].tokens.clear(); }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.copies[0].to = -2; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.copies[0].to = p.copies[0].from; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].adapter = 3; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].adapter = -1; }), StatusCode::kCorrupt);
  EXPECT_EQ(bad([](StepPlan& p) { p.entries[1].adapter = 2; }), StatusCode::kOk);
}

// Prepare's plan: each entry's start, tokens, block table and logits, and
// the copy-on-write a fork's shared partial block needs.
TEST(StepPlanTest, PrepareReturnsThePlan) {
  KvCacheConfig c;
  c.layout = KvLayout{2, 2, 8, 4, DType::kF32};
  c.n_blocks = 16;
  c.prefix_cache = false;
  std::unique_ptr<KvCacheManager> kv;
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv).ok());
  const SeqId a = kv->NewSequence();
  const std::vector<int32_t> six = {1, 2, 3, 4, 5, 6};
  KvCacheManager::Append first{a, six, PlanLogits::kAll};
  StepPlan plan;
  ASSERT_TRUE(kv->Prepare(std::span(&first, 1), &plan).ok());
  ASSERT_EQ(plan.entries.size(), 1u);
  EXPECT_EQ(plan.entries[0].start, 0);
  EXPECT_EQ(plan.entries[0].tokens, six);
  EXPECT_EQ(plan.entries[0].blocks, kv->blocks(a));
  EXPECT_EQ(plan.entries[0].blocks.size(), 2u);
  EXPECT_TRUE(plan.copies.empty());
  kv->Commit(a, six);
  SeqId b = 0;
  ASSERT_TRUE(kv->Fork(a, &b).ok());
  const std::vector<int32_t> one = {9};
  KvCacheManager::Append next[] = {{a, one, PlanLogits::kLast}, {b, one, PlanLogits::kNone}};
  ASSERT_TRUE(kv->Prepare(next, &plan).ok());
  ASSERT_EQ(plan.entries.size(), 2u);
  EXPECT_EQ(plan.entries[0].start, 6);
  EXPECT_EQ(plan.entries[1].logits, PlanLogits::kNone);
  ASSERT_EQ(plan.copies.size(), 1u);  // a's shared second block, copied before a writes into it
  EXPECT_EQ(plan.copies[0].to, kv->blocks(a)[1]);
  EXPECT_EQ(plan.copies[0].from, kv->blocks(b)[1]);
  EXPECT_EQ(plan.entries[0].blocks, kv->blocks(a));
  EXPECT_TRUE(ValidatePlan(plan, PlanLimits{16, 16, 4, 64}).ok());
}

// The forward pass reads only the plan: a decoded copy gives the same logits
// as the original, on a second store holding the same block contents.
TEST(StepPlanTest, DecodedPlanRunsLikeTheOriginal) {
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::Load(Env::Default(), {testing::SharedPath("models/stories260K.gguf")}, &model).ok());
  KvCacheConfig c;
  ASSERT_TRUE(MakeKvLayout(model->hparams(), DType::kF32, 8, &c.layout).ok());
  c.n_blocks = 32;
  std::unique_ptr<KvCacheManager> kv;
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv).ok());
  std::unique_ptr<BlockStore> replica;
  ASSERT_TRUE(BlockStore::Create(Env::Default(), c.layout, {}, c.n_blocks, &replica).ok());
  ThreadPool pool(2);
  LocalKv tiers(kv->store(), model->hparams().n_head, pool), tiers2(*replica, model->hparams().n_head, pool);
  Forward fwd(*model, tiers, pool, 256), fwd2(*model, tiers2, pool, 256);
  const SeqId s = kv->NewSequence();
  const std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time, there was", true, false);
  std::vector<int32_t> toks = prompt;
  for (int step = 0; step < 6; ++step) {
    const std::vector<int32_t> feed = step == 0 ? prompt : std::vector<int32_t>{toks.back()};
    KvCacheManager::Append a{s, feed, PlanLogits::kLast};
    StepPlan plan, copy;
    ASSERT_TRUE(kv->Prepare(std::span(&a, 1), &plan).ok());
    ASSERT_TRUE(DecodePlan(EncodePlan(plan), &copy).ok());
    std::vector<float> l1, l2;
    ASSERT_TRUE(fwd.Run(plan, &l1).ok());
    ASSERT_TRUE(fwd2.Run(copy, &l2).ok());
    EXPECT_EQ(l1, l2) << step;
    kv->Commit(s, feed);
    toks.push_back(static_cast<int32_t>(std::max_element(l1.begin(), l1.end()) - l1.begin()));
  }
}

TEST(StepPlanTest, SplitPlanCutsTheTokensInOrder) {
  StepPlan plan;
  plan.copies = {{1, 2}};
  plan.entries = {{.seq = 3, .start = 0, .tokens = {1, 2, 3, 4, 5}, .blocks = {10, 11}, .logits = PlanLogits::kLast},
                  {.seq = 4, .start = 37, .tokens = {6}, .blocks = {12, 13, 14}, .logits = PlanLogits::kLast, .adapter = 2},
                  {.seq = 5, .start = 14, .tokens = {7, 8, 9, 10, 11, 12, 13}, .blocks = {15, 16, 17}, .logits = PlanLogits::kAll}};
  const std::vector<StepPlan> micro = SplitPlan(plan, 4, 16);
  ASSERT_EQ(micro.size(), 4u);  // 13 tokens, 4 at a time
  std::vector<int32_t> tokens;
  int32_t logit_rows = 0;
  for (const StepPlan& m : micro) {
    EXPECT_LE(m.n_tokens(), 4);
    EXPECT_TRUE(m.copies.empty());
    logit_rows += m.n_logit_rows();
    for (const PlanEntry& e : m.entries) {
      tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
      EXPECT_EQ(e.blocks.size(), static_cast<size_t>((e.start + static_cast<int32_t>(e.tokens.size()) + 15) / 16));
    }
  }
  EXPECT_EQ(tokens, (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}));
  EXPECT_EQ(logit_rows, plan.n_logit_rows());
  // Entry 0 is cut after 4 tokens: the first piece returns no logits, the second its last.
  ASSERT_EQ(micro[0].entries.size(), 1u);
  EXPECT_EQ(micro[0].entries[0].logits, PlanLogits::kNone);
  EXPECT_EQ(micro[0].entries[0].blocks, (std::vector<BlockId>{10}));
  ASSERT_EQ(micro[1].entries.size(), 3u);
  EXPECT_EQ(micro[1].entries[0].start, 4);
  EXPECT_EQ(micro[1].entries[0].logits, PlanLogits::kLast);
  EXPECT_EQ(micro[1].entries[1].adapter, 2);
  EXPECT_EQ(micro[1].entries[1].blocks, (std::vector<BlockId>{12, 13, 14}));
  EXPECT_EQ(micro[1].entries[2].start, 14);
  EXPECT_EQ(micro[1].entries[2].tokens, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(micro[1].entries[2].blocks, (std::vector<BlockId>{15}));  // positions 14, 15
  EXPECT_EQ(micro[1].entries[2].logits, PlanLogits::kAll);
  EXPECT_EQ(micro[3].entries[0].start, 20);
  EXPECT_EQ(micro[3].entries[0].blocks, (std::vector<BlockId>{15, 16}));
  EXPECT_EQ(SplitPlan(plan, 100, 16).size(), 1u);
  EXPECT_EQ(SplitPlan(plan, 1, 16).size(), 13u);
}

// Micro-batches run in order compute what the whole plan does: the same
// logit rows (the pipeline of --split layer relies on it).
TEST(StepPlanTest, SplitPlanRunsLikeTheWholePlan) {
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::Load(Env::Default(), {testing::SharedPath("models/stories260K.gguf")}, &model).ok());
  KvCacheConfig c;
  ASSERT_TRUE(MakeKvLayout(model->hparams(), DType::kF32, 8, &c.layout).ok());
  c.n_blocks = 32;
  std::unique_ptr<KvCacheManager> kv, kv2;
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv).ok());
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv2).ok());
  ThreadPool pool(2);
  LocalKv tiers(kv->store(), model->hparams().n_head, pool), tiers2(kv2->store(), model->hparams().n_head, pool);
  Forward fwd(*model, tiers, pool, 256), fwd2(*model, tiers2, pool, 256);
  const std::vector<int32_t> a = model->vocab().Encode("Once upon a time, there was a little girl named Lily", true, false);
  const std::vector<int32_t> b = model->vocab().Encode("The dog ran", true, false);
  const SeqId s = kv->NewSequence(), t = kv->NewSequence();
  ASSERT_EQ(kv2->NewSequence(), s);
  ASSERT_EQ(kv2->NewSequence(), t);
  for (int step = 0; step < 2; ++step) {  // the prompts, then one more token each over their cached KV
    const std::vector<int32_t> fa = step == 0 ? a : std::vector<int32_t>{42};
    const std::vector<int32_t> fb = step == 0 ? b : std::vector<int32_t>{7, 8, 9};
    KvCacheManager::Append appends[] = {{s, fa, PlanLogits::kAll}, {t, fb, PlanLogits::kLast}};
    StepPlan plan, plan2;
    ASSERT_TRUE(kv->Prepare(appends, &plan).ok());
    ASSERT_TRUE(kv2->Prepare(appends, &plan2).ok());
    ASSERT_EQ(EncodePlan(plan), EncodePlan(plan2));
    std::vector<float> whole;
    ASSERT_TRUE(fwd.Run(plan, &whole).ok());
    std::vector<float> pieces, part;
    for (const StepPlan& m : SplitPlan(plan2, 3, c.layout.block_tokens)) {
      ASSERT_TRUE(fwd2.Run(m, &part).ok());
      pieces.insert(pieces.end(), part.begin(), part.end());
    }
    ASSERT_EQ(pieces.size(), whole.size()) << step;
    for (size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(pieces[i], whole[i], 1e-4f) << step << " " << i;
    for (KvCacheManager* m : {kv.get(), kv2.get()}) {
      m->Commit(s, fa);
      m->Commit(t, fb);
    }
  }
}

}  // namespace
}  // namespace strata
