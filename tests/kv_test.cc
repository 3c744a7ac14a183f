// The paged KV cache: pool and manager invariants under long random operation
// sequences, copy-on-write, prefix reuse, disk tier equality, sessions, and
// injected disk faults.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "engine/context.h"
#include "engine/forward.h"
#include "engine/local_kv.h"
#include "fault_env.h"
#include "kv/block_pool.h"
#include "kv/kv_cache_manager.h"
#include "kv/session_file.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

TEST(BlockPoolTest, RandomOperationsKeepInvariants) {
  BlockPool pool(64);
  std::mt19937 rng(7);
  std::vector<BlockId> held;  // one entry per reference we own
  for (int step = 0; step < 20000; ++step) {
    const int op = static_cast<int>(rng() % 3);
    if (op == 0) {
      if (auto id = pool.Allocate()) held.push_back(*id);
      else EXPECT_EQ(pool.n_free(), 0);
    } else if (op == 1 && !held.empty()) {
      BlockId id = held[rng() % held.size()];
      pool.IncRef(id);
      held.push_back(id);
    } else if (!held.empty()) {
      const size_t i = rng() % held.size();
      pool.DecRef(held[i]);
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_TRUE(pool.CheckInvariants().ok()) << step;
  }
  for (BlockId id : held) pool.DecRef(id);
  EXPECT_EQ(pool.n_free(), 64);
  EXPECT_TRUE(pool.CheckInvariants().ok());
}

KvLayout TinyLayout(int32_t block = 4) { return KvLayout{2, 2, 8, block, DType::kF32}; }

std::unique_ptr<KvCacheManager> MakeManager(int32_t blocks, bool prefix_cache = true, Env* env = nullptr,
                                            KvTierConfig tiers = {}) {
  KvCacheConfig c;
  c.layout = TinyLayout();
  c.n_blocks = blocks;
  c.prefix_cache = prefix_cache;
  c.tiers = tiers;
  std::unique_ptr<KvCacheManager> m;
  EXPECT_TRUE(KvCacheManager::Create(env != nullptr ? env : Env::Default(), c, &m).ok());
  return m;
}

// Appends tokens to seq the way the engine does, writing a recognisable pattern into each slice.
Status Append(KvCacheManager& kv, SeqId seq, const std::vector<int32_t>& tokens) {
  KvCacheManager::Append a{seq, tokens};
  StepPlan plan;
  STRATA_RETURN_IF_ERROR(kv.Prepare(std::span(&a, 1), &plan));
  const KvLayout& L = kv.layout();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t pos = kv.length(seq) + static_cast<int32_t>(i);
    const BlockId b = kv.blocks(seq)[static_cast<size_t>(pos / L.block_tokens)];
    for (int32_t il = 0; il < L.n_layer; ++il) {
      uint8_t* data = nullptr;
      STRATA_RETURN_IF_ERROR(kv.store().Pin(b, il, &data));
      auto* row = reinterpret_cast<float*>(data + L.k_offset(0, pos % L.block_tokens));
      row[0] = static_cast<float>(tokens[i]);
      row[1] = static_cast<float>(pos);
      kv.store().Unpin(b, il, true);
    }
  }
  kv.Commit(seq, tokens);
  kv.store().EnforceBudget();
  return kv.store().write_error();
}

// Reads back the pattern Append wrote for every position of seq.
void ExpectContent(KvCacheManager& kv, SeqId seq) {
  const KvLayout& L = kv.layout();
  const std::vector<int32_t>& toks = kv.tokens(seq);
  for (int32_t pos = 0; pos < static_cast<int32_t>(toks.size()); ++pos) {
    uint8_t* data = nullptr;
    const BlockId b = kv.blocks(seq)[static_cast<size_t>(pos / L.block_tokens)];
    ASSERT_TRUE(kv.store().Pin(b, 1, &data).ok());
    auto* row = reinterpret_cast<float*>(data + L.k_offset(0, pos % L.block_tokens));
    EXPECT_EQ(row[0], static_cast<float>(toks[static_cast<size_t>(pos)])) << "pos " << pos;
    EXPECT_EQ(row[1], static_cast<float>(pos));
    kv.store().Unpin(b, 1, false);
  }
}

TEST(KvCacheManagerTest, RandomOperationsKeepInvariantsAndContent) {
  auto mem = NewMemEnv();
  KvTierConfig tiers;
  tiers.ram_bytes = 10 * TinyLayout().slice_bytes();  // most slices live on the (in-memory) disk tier
  tiers.disk_dir = "/kv";
  auto kv = MakeManager(48, true, mem.get(), tiers);
  std::mt19937 rng(11);
  std::vector<SeqId> seqs;
  for (int step = 0; step < 3000; ++step) {
    const int op = static_cast<int>(rng() % 6);
    if (op == 0 || seqs.empty()) {
      SeqId s = kv->NewSequence();
      std::vector<int32_t> prompt(1 + rng() % 12);
      for (int32_t& t : prompt) t = static_cast<int32_t>(rng() % 3);  // few distinct tokens: prefixes repeat
      const int32_t attached = kv->AttachCachedPrefix(s, prompt);
      std::vector<int32_t> rest(prompt.begin() + attached, prompt.end());
      if (Append(*kv, s, rest).ok()) {
        seqs.push_back(s);
      } else {
        kv->FreeSequence(s);
      }
    } else {
      const size_t i = rng() % seqs.size();
      const SeqId s = seqs[i];
      if (op == 1) {
        std::vector<int32_t> more(1 + rng() % 6, static_cast<int32_t>(rng() % 50));
        Status st = Append(*kv, s, more);
        ASSERT_TRUE(st.ok() || st.code() == StatusCode::kResourceExhausted) << st.ToString();
      } else if (op == 2) {
        SeqId f = 0;
        ASSERT_TRUE(kv->Fork(s, &f).ok());
        seqs.push_back(f);
      } else if (op == 3) {
        kv->Truncate(s, static_cast<int32_t>(rng() % (kv->length(s) + 1)));
      } else {
        kv->FreeSequence(s);
        seqs.erase(seqs.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    ASSERT_TRUE(kv->CheckInvariants().ok()) << kv->CheckInvariants().ToString() << " at step " << step;
    if (step % 97 == 0)
      for (SeqId s : seqs) ExpectContent(*kv, s);
  }
  for (SeqId s : seqs) ExpectContent(*kv, s);
  for (SeqId s : seqs) kv->FreeSequence(s);
  ASSERT_TRUE(kv->CheckInvariants().ok());
  EXPECT_EQ(kv->stats().blocks_used, kv->stats().blocks_cached);  // only the prefix cache holds blocks
  EXPECT_GT(kv->stats().store.writes, 0u);
  EXPECT_GT(kv->stats().prefix_hits, 0u);
}

TEST(KvCacheManagerTest, CopyOnWriteLeavesTheOriginalIntact) {
  auto kv = MakeManager(16, false);
  SeqId a = kv->NewSequence();
  ASSERT_TRUE(Append(*kv, a, {1, 2, 3, 4, 5, 6}).ok());  // block 1 half full
  SeqId b = 0;
  ASSERT_TRUE(kv->Fork(a, &b).ok());
  EXPECT_EQ(kv->blocks(a), kv->blocks(b));  // O(1)-ish: shared, nothing copied
  ASSERT_TRUE(Append(*kv, b, {70, 71}).ok());
  EXPECT_EQ(kv->blocks(a)[0], kv->blocks(b)[0]);  // full block still shared
  EXPECT_NE(kv->blocks(a)[1], kv->blocks(b)[1]);  // written block copied
  ASSERT_TRUE(Append(*kv, a, {90}).ok());
  ExpectContent(*kv, a);
  ExpectContent(*kv, b);
  EXPECT_TRUE(kv->CheckInvariants().ok());
}

TEST(KvCacheManagerTest, NoFreeBlockIsANormalResultAndChangesNothing) {
  auto kv = MakeManager(2, false);
  SeqId a = kv->NewSequence();
  ASSERT_TRUE(Append(*kv, a, {1, 2, 3, 4, 5}).ok());
  const auto blocks = kv->blocks(a);
  const std::vector<int32_t> eight(8, 1);
  KvCacheManager::Append big{a, eight};
  StepPlan plan;
  EXPECT_EQ(kv->Prepare(std::span(&big, 1), &plan).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(kv->blocks(a), blocks);
  EXPECT_TRUE(kv->CheckInvariants().ok());
}

// Parked sequences stay until blocks run short, then go least recently parked
// first (after unused prefix blocks), and n_available_blocks counts what
// evicting them frees.
TEST(KvCacheManagerTest, ParkedSequencesAreEvictedOnlyWhenBlocksRunShort) {
  auto kv = MakeManager(8, true);
  SeqId a = kv->NewSequence(), b = kv->NewSequence();
  ASSERT_TRUE(Append(*kv, a, {1, 2, 3, 4, 5, 6}).ok());  // 2 blocks, the first full (cached too)
  ASSERT_TRUE(Append(*kv, b, {7, 8, 9, 10, 11}).ok());   // 2 blocks
  kv->Park(a);
  kv->Park(b);
  EXPECT_EQ(kv->stats().parked_sequences, 2);
  EXPECT_EQ(kv->stats().parked_blocks, 4);
  EXPECT_EQ(kv->n_available_blocks(), 8);  // everything is evictable
  // A sequence that fits in the free blocks evicts nothing.
  SeqId c = kv->NewSequence();
  ASSERT_TRUE(Append(*kv, c, {20, 21, 22, 23, 24, 25, 26, 27}).ok());  // 2 blocks
  EXPECT_TRUE(kv->exists(a) && kv->exists(b));
  // One that needs more evicts a (parked first), not b.
  ASSERT_TRUE(Append(*kv, c, {28, 29, 30, 31, 32, 33, 34, 35, 36}).ok());  // 3 more blocks: 1 short
  EXPECT_FALSE(kv->exists(a));
  EXPECT_TRUE(kv->exists(b));
  EXPECT_EQ(kv->stats().parked_evictions, 1u);
  EXPECT_FALSE(kv->Unpark(a));
  ASSERT_TRUE(kv->Unpark(b));  // taken back: no longer evictable
  ExpectContent(*kv, b);
  ExpectContent(*kv, c);
  EXPECT_LE(kv->n_available_blocks(), 1);
  // Truncating and freeing parked sequences keeps the accounting right.
  kv->Park(b);
  kv->Truncate(b, 2);
  EXPECT_EQ(kv->stats().parked_blocks, 1);
  kv->FreeSequence(b);
  EXPECT_EQ(kv->stats().parked_sequences, 0);
  EXPECT_EQ(kv->stats().parked_blocks, 0);
  EXPECT_TRUE(kv->CheckInvariants().ok());
}

// A fork of a parked sequence shares its blocks: evicting one frees only what the other does not hold.
TEST(KvCacheManagerTest, ParkedForksShareBlocks) {
  auto kv = MakeManager(6, false);
  SeqId a = kv->NewSequence();
  ASSERT_TRUE(Append(*kv, a, {1, 2, 3, 4, 5, 6, 7, 8, 9}).ok());  // 3 blocks
  SeqId b = 0;
  ASSERT_TRUE(kv->Fork(a, &b).ok());
  kv->Park(a);
  EXPECT_EQ(kv->n_available_blocks(), 3);  // a's blocks are b's too
  kv->Park(b);
  EXPECT_EQ(kv->n_available_blocks(), 6);
  EXPECT_EQ(kv->stats().parked_blocks, 3);
  ASSERT_TRUE(kv->Unpark(b));
  ASSERT_TRUE(Append(*kv, b, {10}).ok());  // copy on write of the shared partial block
  ExpectContent(*kv, a);
  ExpectContent(*kv, b);
  EXPECT_TRUE(kv->CheckInvariants().ok());
}

// ---- disk tier faults at the manager level ----

struct FaultyTier {
  std::unique_ptr<Env> mem = NewMemEnv();
  testing::Faults faults;
  testing::FaultInjectionEnv env{mem.get(), &faults};
  std::vector<std::string> log;

  // RAM budget 0: every slice lives on the (in-memory) disk tier.
  std::unique_ptr<KvCacheManager> Manager(int32_t blocks, uint64_t disk_slices = UINT64_MAX) {
    KvCacheConfig c;
    c.layout = TinyLayout();
    c.n_blocks = blocks;
    c.tiers.ram_bytes = 0;
    c.tiers.disk_dir = "/kv";
    c.tiers.disk_bytes = disk_slices == UINT64_MAX ? UINT64_MAX : disk_slices * c.layout.slice_bytes();
    c.log = [this](const std::string& line) { log.push_back(line); };
    std::unique_ptr<KvCacheManager> m;
    EXPECT_TRUE(KvCacheManager::Create(&env, c, &m).ok());
    return m;
  }
  bool Logged(const std::string& what) const {
    return std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(what) != std::string::npos; });
  }
};

// A slice that fails its checksum or a read is lost: Pin reports it (naming
// no path) until the block is released, DropLostBlocks reports it once, takes
// it out of the prefix cache and names the sequences to truncate.
TEST(KvTierFaultTest, LostBlockLeavesThePrefixCacheAndItsSequences) {
  for (const bool flip : {true, false}) {
    FaultyTier t;
    auto kv = t.Manager(16);
    const std::vector<int32_t> toks = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const SeqId a = kv->NewSequence();
    ASSERT_TRUE(Append(*kv, a, toks).ok());
    ASSERT_EQ(kv->stats().blocks_cached, 2);
    (flip ? t.faults.flip_bit : t.faults.short_read) = true;
    uint8_t* data = nullptr;
    Status st = kv->store().Pin(kv->blocks(a)[1], 1, &data);
    EXPECT_EQ(st.code(), flip ? StatusCode::kCorrupt : StatusCode::kIOError) << st.ToString();
    EXPECT_EQ(st.message().find("/kv"), std::string::npos) << st.message();
    t.faults.flip_bit = t.faults.short_read = false;
    EXPECT_EQ(kv->store().Pin(kv->blocks(a)[1], 1, &data).code(), st.code());  // still lost: no wrong data
    const KvCacheStats before = kv->stats();
    EXPECT_EQ(flip ? before.store.checksum_failures : before.store.read_failures, 1u);

    const std::vector<KvCacheManager::LostSuffix> lost = kv->DropLostBlocks();
    ASSERT_EQ(lost.size(), 1u);
    EXPECT_EQ(lost[0].seq, a);
    EXPECT_EQ(lost[0].first_lost, 1);
    EXPECT_TRUE(kv->DropLostBlocks().empty());  // reported once
    EXPECT_EQ(kv->stats().blocks_lost, 1u);
    EXPECT_EQ(kv->stats().blocks_cached, 1);
    EXPECT_TRUE(t.Logged("lost on the disk tier")) << (t.log.empty() ? "" : t.log[0]);
    kv->Truncate(a, lost[0].first_lost * kv->layout().block_tokens);
    ASSERT_TRUE(kv->CheckInvariants().ok()) << kv->CheckInvariants().ToString();
    // A later sequence attaches only the intact block; the lost one is recomputed.
    const SeqId b = kv->NewSequence();
    EXPECT_EQ(kv->AttachCachedPrefix(b, toks), 4);
    ASSERT_TRUE(Append(*kv, a, std::vector<int32_t>(toks.begin() + 4, toks.end())).ok());
    ExpectContent(*kv, a);
    ExpectContent(*kv, b);
    EXPECT_TRUE(kv->CheckInvariants().ok());
    EXPECT_FALSE(kv->stats().ram_only);  // one bad block is not a failing disk
  }
}

// A write the tier refuses (budget used up) first evicts cached blocks; a
// disk that keeps refusing makes the cache RAM-only (at most the RAM budget's
// blocks: none here) until a retry finds it writable again.
TEST(KvTierFaultTest, FullDiskEvictsCachedBlocksThenServesFromRamAndRecovers) {
  FaultyTier t;
  auto kv = t.Manager(16, 8);  // the disk holds 8 slices: 4 blocks
  for (int32_t first : {1, 11}) {
    const SeqId s = kv->NewSequence();
    ASSERT_TRUE(Append(*kv, s, {first, first + 1, first + 2, first + 3, first + 4, first + 5, first + 6, first + 7}).ok());
    kv->FreeSequence(s);  // its two full blocks stay cached, on disk
  }
  ASSERT_EQ(kv->stats().blocks_cached, 4);
  const SeqId c = kv->NewSequence();
  EXPECT_EQ(Append(*kv, c, {21, 22, 23}).code(), StatusCode::kResourceExhausted);  // no slot left: writes suspended
  EXPECT_TRUE(kv->stats().store.writes_suspended);
  kv->MaintainDiskTier();
  EXPECT_FALSE(kv->stats().store.writes_suspended);
  EXPECT_FALSE(kv->ram_only());
  EXPECT_EQ(kv->stats().blocks_cached, 3);  // one evicted made room
  ExpectContent(*kv, c);

  t.faults.write_error = true;
  const SeqId d = kv->NewSequence();
  ASSERT_FALSE(Append(*kv, d, {31, 32, 33}).ok());  // the tier is full, and writes fail anyway
  kv->MaintainDiskTier();
  EXPECT_TRUE(kv->ram_only());
  EXPECT_EQ(kv->stats().blocks_cached, 0);  // all evicted before giving up on the disk
  EXPECT_EQ(kv->stats().ram_only_fallbacks, 1u);
  EXPECT_TRUE(t.Logged("serving from RAM only")) << (t.log.empty() ? "" : t.log.back());
  EXPECT_EQ(kv->n_available_blocks(), 0);  // a RAM budget of 0 holds no more blocks
  const std::vector<int32_t> four(4, 1);
  KvCacheManager::Append more{d, four};
  StepPlan plan;
  EXPECT_EQ(kv->Prepare(std::span(&more, 1), &plan).code(), StatusCode::kResourceExhausted);
  ExpectContent(*kv, c);  // still read from disk
  ExpectContent(*kv, d);  // kept in RAM
  kv->MaintainDiskTier();  // retries are spaced out: still failing, nothing changes
  EXPECT_TRUE(kv->ram_only());

  t.faults.write_error = false;
  for (int i = 0; i < 64 && kv->ram_only(); ++i) kv->MaintainDiskTier();
  EXPECT_FALSE(kv->ram_only());
  EXPECT_TRUE(t.Logged("takes writes again"));
  EXPECT_GT(kv->n_available_blocks(), 0);
  ASSERT_TRUE(Append(*kv, d, {34, 35, 36, 37}).ok());
  ExpectContent(*kv, d);
  EXPECT_TRUE(kv->CheckInvariants().ok());
}

// ---- engine-level: the model through the paged cache ----

std::unique_ptr<Model> LoadStories() {
  ModelLoadOptions o;
  o.path = testing::SharedPath("models/stories260K.gguf");
  std::unique_ptr<Model> m;
  EXPECT_TRUE(Model::Load(Env::Default(), o, &m).ok());
  return m;
}

std::vector<int32_t> Greedy(Context& ctx, std::vector<int32_t> prompt, int n, Status* status = nullptr) {
  std::vector<int32_t> out;
  Status s = ctx.Decode(prompt, LogitsMode::kLast);
  for (int i = 0; s.ok() && i < n; ++i) {
    const float* l = ctx.logits();
    int32_t best = 0;
    for (int32_t j = 1; j < ctx.model().hparams().n_vocab; ++j)
      if (l[j] > l[best]) best = j;
    out.push_back(best);
    s = ctx.Decode(std::span<const int32_t>(&best, 1), LogitsMode::kLast);
  }
  if (status != nullptr) *status = s;
  return out;
}

std::unique_ptr<Context> MakeCtx(const Model& m, ContextParams p) {
  std::unique_ptr<Context> c;
  Status s = Context::Create(m, p, &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return c;
}

TEST(KvTierTest, DiskTierWithZeroRamEqualsAllInRam) {
  auto model = LoadStories();
  std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time, there was a dog", true, false);
  ContextParams ram;
  ram.n_ctx = 512;
  ram.n_threads = 2;
  auto a = MakeCtx(*model, ram);
  ContextParams disk = ram;
  disk.kv_tiers.ram_bytes = 0;
  disk.kv_tiers.disk_dir = testing::MakeTempDir();
  disk.kv_block_tokens = 8;
  auto b = MakeCtx(*model, disk);
  EXPECT_EQ(Greedy(*a, prompt, 400), Greedy(*b, prompt, 400));
  EXPECT_GT(b->kv().stats().store.loads, 1000u);
}

TEST(KvTierTest, SyntheticF16ModelWithQuarterInRamEqualsAllInRam) {
  auto mem = NewMemEnv();
  SynthSpec spec{3, 128, 256, 4, 2, 400, 1024, DType::kF16, 5};
  const std::unique_ptr<Model> model = testing::SynthesizeAndLoad(mem.get(), spec);
  ASSERT_TRUE(model);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 200; ++i) prompt.push_back(3 + (i * 37) % 390);
  ContextParams ram;
  ram.n_ctx = 600;
  ram.n_threads = 2;
  ram.n_batch = 64;
  auto a = MakeCtx(*model, ram);
  ContextParams tiered = ram;
  KvLayout L;
  ASSERT_TRUE(MakeKvLayout(model->hparams(), DType::kF16, 16, &L).ok());
  tiered.kv_tiers.ram_bytes = L.block_bytes() * 600 / 16 / 4;
  tiered.kv_tiers.disk_dir = "/kv";
  tiered.env = mem.get();
  auto b = MakeCtx(*model, tiered);
  EXPECT_EQ(Greedy(*a, prompt, 300), Greedy(*b, prompt, 300));
}

TEST(KvTierTest, PrefixReuseEqualsColdRun) {
  auto model = LoadStories();
  KvCacheConfig c;
  ASSERT_TRUE(MakeKvLayout(model->hparams(), DType::kF32, 8, &c.layout).ok());
  c.n_blocks = 256;
  std::unique_ptr<KvCacheManager> kv;
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv).ok());
  ThreadPool pool(2);
  LocalKv tiers(kv->store(), model->hparams().n_head, pool);
  Forward fwd(*model, tiers, pool, 256 * 8);
  auto run = [&](SeqId s, const std::vector<int32_t>& toks, std::vector<float>* logits) {
    KvCacheManager::Append a{s, toks};
    StepPlan plan;
    ASSERT_TRUE(kv->Prepare(std::span(&a, 1), &plan).ok());
    ASSERT_TRUE(fwd.Run(plan, logits).ok());
    kv->Commit(s, toks);
  };
  const std::vector<int32_t> shared = model->vocab().Encode("Once upon a time, there was a little girl named Lily. She", true, false);
  std::vector<int32_t> full = shared;
  for (int32_t t : model->vocab().Encode(" liked to play", false, false)) full.push_back(t);
  std::vector<float> first, cold, warm;
  run(kv->NewSequence(), shared, &first);
  SeqId s2 = kv->NewSequence();
  const int32_t attached = kv->AttachCachedPrefix(s2, full);
  EXPECT_GE(attached, 8 * (static_cast<int32_t>(shared.size()) / 8));
  run(s2, std::vector<int32_t>(full.begin() + attached, full.end()), &warm);
  // Cold: a manager without a prefix cache.
  c.prefix_cache = false;
  std::unique_ptr<KvCacheManager> kv2;
  ASSERT_TRUE(KvCacheManager::Create(Env::Default(), c, &kv2).ok());
  LocalKv tiers2(kv2->store(), model->hparams().n_head, pool);
  Forward fwd2(*model, tiers2, pool, 256 * 8);
  SeqId s3 = kv2->NewSequence();
  KvCacheManager::Append a{s3, full};
  StepPlan plan;
  ASSERT_TRUE(kv2->Prepare(std::span(&a, 1), &plan).ok());
  ASSERT_TRUE(fwd2.Run(plan, &cold).ok());
  ASSERT_EQ(cold.size(), warm.size());
  for (size_t i = 0; i < cold.size(); ++i) ASSERT_NEAR(cold[i], warm[i], 1e-5);
  EXPECT_GT(kv->stats().prefix_hits, 0u);
}

// Every disk fault, injected mid-generation and left on for a while: each
// Decode still succeeds (lost blocks recomputed, a failing disk replaced by
// RAM), the text equals the all-RAM run, the counters record it, and the
// tier is used again once the fault clears.
TEST(KvTierTest, FaultsAreRecoveredAndNeverGiveWrongOutput) {
  auto model = LoadStories();
  auto mem = NewMemEnv();
  testing::Faults faults;
  testing::FaultInjectionEnv env(mem.get(), &faults);
  const std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time", true, false);
  ContextParams ram;
  ram.n_ctx = 256;
  ram.n_threads = 1;
  const std::vector<int32_t> want = Greedy(*MakeCtx(*model, ram), prompt, 120);

  std::vector<std::string> log;
  ContextParams disk = ram;
  disk.kv_tiers.ram_bytes = 0;
  disk.kv_tiers.disk_dir = "/kv";
  disk.kv_block_tokens = 8;
  disk.env = &env;
  disk.log = [&](const std::string& line) { log.push_back(line); };
  struct Case {
    const char* name;
    std::function<void()> inject;
    bool writes;  // a write fault (else a read fault)
  } cases[] = {
      {"disk full", [&] { faults.write_budget = 0; }, true},
      {"write error", [&] { faults.write_error = true; }, true},
      {"short read", [&] { faults.short_read = true; }, false},
      {"flipped bit", [&] { faults.flip_bit = true; }, false},
  };
  for (const Case& c : cases) {
    log.clear();
    auto ctx = MakeCtx(*model, disk);
    Status s;
    std::vector<int32_t> got = Greedy(*ctx, prompt, 40, &s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto argmax = [&] {
      const float* l = ctx->logits();
      int32_t best = 0;
      for (int32_t j = 1; j < model->hparams().n_vocab; ++j)
        if (l[j] > l[best]) best = j;
      return best;
    };
    int32_t next = argmax();
    got.push_back(next);
    c.inject();
    auto step = [&] {
      ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok()) << c.name;
      next = argmax();
      got.push_back(next);
    };
    for (int i = 0; i < 8; ++i) step();
    const KvCacheStats hurt = ctx->kv().stats();
    if (c.writes) {
      EXPECT_GT(hurt.store.write_failures, 0u) << c.name;
    } else {
      EXPECT_GT(hurt.store.checksum_failures + hurt.store.read_failures, 0u) << c.name;
      EXPECT_GT(hurt.blocks_lost, 0u) << c.name;
    }
    EXPECT_TRUE(hurt.ram_only) << c.name;  // a disk failing at every access is given up on
    EXPECT_FALSE(log.empty()) << c.name;
    faults.write_budget = INT64_MAX;
    faults.write_error = faults.short_read = faults.flip_bit = false;
    while (got.size() < want.size()) step();
    EXPECT_EQ(got, want) << c.name;
    EXPECT_FALSE(ctx->kv().stats().ram_only) << c.name;  // retried and recovered
    EXPECT_EQ(ctx->kv().stats().ram_only_fallbacks, 1u) << c.name;
    EXPECT_TRUE(ctx->kv().CheckInvariants().ok()) << c.name;
  }
}

TEST(SessionTest, SaveLoadContinueEqualsUninterrupted) {
  auto model = LoadStories();
  const std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time", true, false);
  ContextParams p;
  p.n_ctx = 512;
  p.n_threads = 2;
  const std::vector<int32_t> want = Greedy(*MakeCtx(*model, p), prompt, 150);
  const std::string dir = testing::MakeTempDir();
  {
    auto ctx = MakeCtx(*model, p);
    std::vector<int32_t> part = Greedy(*ctx, prompt, 70);
    ASSERT_TRUE(std::equal(part.begin(), part.end(), want.begin()));
    Sampler sampler(SamplerParams{});
    ASSERT_TRUE(ctx->SaveSession(Env::Default(), dir + "/s.session", sampler).ok());
  }
  auto ctx = MakeCtx(*model, p);
  Sampler sampler(SamplerParams{});
  ASSERT_TRUE(ctx->LoadSession(Env::Default(), dir + "/s.session", &sampler, /*drop_cache=*/true).ok());
  EXPECT_EQ(ctx->n_past(), static_cast<int32_t>(prompt.size()) + 70);
  // The saved sequence ends with the 70th token decoded; continue from there.
  std::vector<int32_t> rest;
  int32_t last = ctx->tokens().back();
  ctx->Truncate(ctx->n_past() - 1);
  rest = Greedy(*ctx, {last}, 80);
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), want.begin() + 70));
}

TEST(SessionTest, CorruptionAndCrashesAreDetected) {
  auto model = LoadStories();
  auto mem = NewMemEnv();
  testing::Faults faults;
  testing::FaultInjectionEnv env(mem.get(), &faults);
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 1;
  auto ctx = MakeCtx(*model, p);
  Greedy(*ctx, model->vocab().Encode("Once upon a time", true, false), 30);
  Sampler sampler(SamplerParams{});
  const uint64_t fp = ModelFingerprint(*model);
  ASSERT_TRUE(ctx->SaveSession(&env, "/s.session", sampler).ok());
  const std::vector<int32_t> v1 = ctx->tokens();
  // Killed in the middle of saving a longer version: the previous one stays valid.
  Greedy(*ctx, {5}, 10);
  faults.crash_after = 5000;
  EXPECT_FALSE(ctx->SaveSession(&env, "/s.session", sampler).ok());
  faults.crash_after = INT64_MAX;
  {
    auto fresh = MakeCtx(*model, p);
    Sampler s2(SamplerParams{});
    ASSERT_TRUE(fresh->LoadSession(&env, "/s.session", &s2).ok());
    EXPECT_EQ(fresh->tokens(), v1);
  }
  // A flipped bit anywhere is reported as corruption and changes nothing.
  std::string bytes;
  ASSERT_TRUE(mem->ReadFile("/s.session", UINT64_MAX, &bytes).ok());
  for (size_t pos : {size_t{20}, size_t{100}, bytes.size() / 2, bytes.size() - 12}) {
    std::string bad = bytes;
    bad[pos] ^= 0x04;
    ASSERT_TRUE(WriteFileAtomic(mem.get(), "/bad.session", bad).ok());
    auto fresh = MakeCtx(*model, p);
    Sampler s2(SamplerParams{});
    Status s = fresh->LoadSession(mem.get(), "/bad.session", &s2);
    EXPECT_FALSE(s.ok()) << pos;
    EXPECT_EQ(fresh->n_past(), 0);
    EXPECT_TRUE(fresh->kv().CheckInvariants().ok());
  }
  // Truncated files, other models, missing files.
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/short.session", bytes.substr(0, bytes.size() - 100)).ok());
  auto fresh = MakeCtx(*model, p);
  EXPECT_EQ(fresh->LoadSession(mem.get(), "/short.session", &sampler).code(), StatusCode::kCorrupt);
  EXPECT_EQ(fresh->LoadSession(mem.get(), "/missing.session", &sampler).code(), StatusCode::kNotFound);
  SessionInfo info;
  ASSERT_TRUE(ReadSessionInfo(mem.get(), "/s.session", &info, nullptr).ok());
  EXPECT_EQ(info.model_fingerprint, fp);
  EXPECT_EQ(info.n_tokens, static_cast<int32_t>(v1.size()));
}

// The sampler's penalty counts persist; version 1 (no counts) and 2 files
// still load; another version is refused naming it.
TEST(SessionTest, SamplerCountsPersistAndVersionOneStillLoads) {
  auto model = LoadStories();
  auto mem = NewMemEnv();
  ContextParams p;
  p.n_ctx = 128;
  p.n_threads = 1;
  auto ctx = MakeCtx(*model, p);
  Greedy(*ctx, model->vocab().Encode("Once upon a time", true, false), 10);
  SamplerParams sp;
  sp.frequency_penalty = 0.5f;
  sp.repeat_last_n = 3;
  Sampler sampler(sp);
  for (int32_t t : {7, 7, 9, 11}) sampler.Accept(t);
  ASSERT_TRUE(ctx->SaveSession(mem.get(), "/s.session", sampler).ok());
  {
    auto fresh = MakeCtx(*model, p);
    Sampler loaded(sp);
    ASSERT_TRUE(fresh->LoadSession(mem.get(), "/s.session", &loaded).ok());
    EXPECT_EQ(loaded.state().counts, (std::vector<std::pair<int32_t, int32_t>>{{7, 2}, {9, 1}, {11, 1}}));
    EXPECT_EQ(loaded.state().history, (std::vector<int32_t>{7, 9, 11}));
    EXPECT_EQ(loaded.state().rng, sampler.state().rng);
  }
  // The same session as versions 1 and 2 wrote it: version 1 without
  // n_counts, n_kv, n_meta and the counts; version 2 without n_kv and n_meta;
  // each with its header checksum over the rest.
  std::string v3;
  ASSERT_TRUE(mem->ReadFile("/s.session", UINT64_MAX, &v3).ok());
  uint32_t n_tokens = 0, n_history = 0, n_counts = 0, n_meta = 0;
  std::memcpy(&n_tokens, v3.data() + 40, 4);
  std::memcpy(&n_history, v3.data() + 44, 4);
  std::memcpy(&n_counts, v3.data() + 80, 4);
  std::memcpy(&n_meta, v3.data() + 88, 4);
  ASSERT_EQ(n_counts, 3u);
  const size_t var_v3 = 4ull * (n_tokens + n_history) + 8ull * n_counts + n_meta;
  const std::string blocks = v3.substr(92 + var_v3 + 8);
  auto older = [&](uint32_t version, size_t fixed, size_t var) {
    std::string v = v3.substr(0, fixed) + v3.substr(92, var);
    std::memcpy(v.data() + 8, &version, 4);
    const uint64_t sum = XXH3_64bits(v.data(), v.size());
    v.append(reinterpret_cast<const char*>(&sum), 8);
    return v + blocks;
  };
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/v1.session", older(1, 80, 4ull * (n_tokens + n_history))).ok());
  ASSERT_TRUE(
      WriteFileAtomic(mem.get(), "/v2.session", older(2, 84, 4ull * (n_tokens + n_history) + 8ull * n_counts)).ok());
  {
    auto fresh = MakeCtx(*model, p);
    Sampler loaded(sp);
    ASSERT_TRUE(fresh->LoadSession(mem.get(), "/v2.session", &loaded).ok());
    EXPECT_EQ(fresh->tokens(), ctx->tokens());
    EXPECT_EQ(loaded.state().counts, (std::vector<std::pair<int32_t, int32_t>>{{7, 2}, {9, 1}, {11, 1}}));
  }
  std::string v9 = v3;
  const uint32_t nine = 9;
  std::memcpy(v9.data() + 8, &nine, 4);
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/v9.session", v9).ok());
  auto fresh = MakeCtx(*model, p);
  Sampler loaded(sp);
  const Status st = fresh->LoadSession(mem.get(), "/v9.session", &loaded);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_NE(st.message().find("version 9"), std::string::npos) << st.message();
}

// A session whose last token has no KV (as the server saves one) loads with
// that token computed; its meta survives a load and save by `strata run`.
TEST(SessionTest, PendingTokensAreComputedAndMetaIsKept) {
  auto model = LoadStories();
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 1;
  const std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time", true, false);
  auto ctx = MakeCtx(*model, p);
  const std::vector<int32_t> gen = Greedy(*ctx, prompt, 20);
  // Saved as the server does: every token, KV for all but the last.
  std::vector<int32_t> tokens = ctx->tokens();
  const int32_t last = tokens.back();
  ctx->Truncate(ctx->n_past() - 1);
  SessionState st;
  st.tokens = tokens;
  st.n_kv = ctx->n_past();
  st.meta = R"({"kind":"completion","tokens":1})";
  const std::string path = testing::MakeTempDir() + "/p.session";
  ASSERT_TRUE(WriteSession(Env::Default(), path, ModelFingerprint(*model), ctx->kv().store(), ctx->kv().blocks(ctx->seq()),
                           st).ok());
  SessionInfo info;
  ASSERT_TRUE(ReadSessionInfo(Env::Default(), path, &info, nullptr).ok());
  EXPECT_EQ(info.n_tokens, static_cast<int32_t>(tokens.size()));
  EXPECT_EQ(info.n_kv, static_cast<int32_t>(tokens.size()) - 1);
  auto fresh = MakeCtx(*model, p);
  Sampler sampler(SamplerParams{});
  ASSERT_TRUE(fresh->LoadSession(Env::Default(), path, &sampler).ok());
  EXPECT_EQ(fresh->tokens(), tokens);
  ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&last, 1), LogitsMode::kLast).ok());
  for (int i = 0; i < model->hparams().n_vocab; ++i) ASSERT_EQ(ctx->logits()[i], fresh->logits()[i]);
  ASSERT_TRUE(fresh->SaveSession(Env::Default(), path, sampler).ok());
  SessionState back;
  ASSERT_TRUE(ReadSessionInfo(Env::Default(), path, &info, &back).ok());
  EXPECT_EQ(back.meta, st.meta);
  EXPECT_EQ(back.n_kv, static_cast<int32_t>(tokens.size()));
}

// A fork is a second name for the file (no bytes copied); the two part when
// either is rewritten.
TEST(SessionTest, ForkIsALinkUntilEitherChanges) {
  auto model = LoadStories();
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 1;
  auto ctx = MakeCtx(*model, p);
  Greedy(*ctx, model->vocab().Encode("Once upon a time", true, false), 30);
  Sampler sampler(SamplerParams{});
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(ctx->SaveSession(Env::Default(), dir + "/a.session", sampler).ok());
  ASSERT_TRUE(CopySessionFile(Env::Default(), dir + "/a.session", dir + "/b.session").ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/b.session").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(CopySessionFile(Env::Default(), dir + "/a.session", dir + "/b.session").code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(TruncateSessionFile(Env::Default(), dir + "/a.session", 5).ok());
  SessionInfo a, b;
  ASSERT_TRUE(ReadSessionInfo(Env::Default(), dir + "/a.session", &a, nullptr).ok());
  ASSERT_TRUE(ReadSessionInfo(Env::Default(), dir + "/b.session", &b, nullptr).ok());
  EXPECT_EQ(a.n_tokens, 5);
  EXPECT_EQ(b.n_tokens, static_cast<int32_t>(ctx->tokens().size()));
  auto fresh = MakeCtx(*model, p);
  ASSERT_TRUE(fresh->LoadSession(Env::Default(), dir + "/b.session", &sampler).ok());
  EXPECT_EQ(fresh->tokens(), ctx->tokens());
  // In memory too.
  auto mem = NewMemEnv();
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/x", "data").ok());
  ASSERT_TRUE(mem->LinkFile("/x", "/y").ok());
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/x", "new").ok());
  std::string y;
  ASSERT_TRUE(mem->ReadFile("/y", 100, &y).ok());
  EXPECT_EQ(y, "data");
}

TEST(SessionTest, RollbackFileKeepsPrefix) {
  auto model = LoadStories();
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 1;
  auto ctx = MakeCtx(*model, p);
  const std::vector<int32_t> prompt = model->vocab().Encode("Once upon a time", true, false);
  Greedy(*ctx, prompt, 40);
  Sampler sampler(SamplerParams{});
  const std::string path = testing::MakeTempDir() + "/r.session";
  ASSERT_TRUE(ctx->SaveSession(Env::Default(), path, sampler).ok());
  ASSERT_TRUE(TruncateSessionFile(Env::Default(), path, 13).ok());
  auto fresh = MakeCtx(*model, p);
  ASSERT_TRUE(fresh->LoadSession(Env::Default(), path, &sampler).ok());
  EXPECT_EQ(fresh->n_past(), 13);
  EXPECT_TRUE(std::equal(fresh->tokens().begin(), fresh->tokens().end(), ctx->tokens().begin()));
  // Continuing from the rolled-back point equals continuing the original at that point.
  ctx->Truncate(13);
  int32_t t = 77;
  ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  ASSERT_TRUE(fresh->Decode(std::span<const int32_t>(&t, 1), LogitsMode::kLast).ok());
  for (int i = 0; i < model->hparams().n_vocab; ++i) ASSERT_EQ(ctx->logits()[i], fresh->logits()[i]);
  EXPECT_EQ(TruncateSessionFile(Env::Default(), path, 99).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
