// Rank messages (dist/rank_message.h): every kind round-trips, and what a rank
// must not act on — a truncated or padded message, an unknown kind, a runner
// shape out of range, a lying block count or negative block id, a KV node
// part that is truncated or names blocks and ranks out of range — is a
// kCorrupt Status, not a crash.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "dist/rank_message.h"

namespace strata {
namespace {

RunnerShape SampleShape() { return RunnerShape{4096, DType::kF16, 32, 900, 2, 30000}; }

TEST(RankMessageTest, OpenRoundTripsWithItsKeepalive) {
  const RunnerShape shape = SampleShape();
  RankMessage m;
  ASSERT_TRUE(DecodeRankMessage(EncodeRankMessage(RankMessageKind::kOpen, &shape), &m).ok());
  EXPECT_EQ(m.kind, RankMessageKind::kOpen);
  EXPECT_EQ(m.open.n_ctx, 4096);
  EXPECT_EQ(m.open.kv_type, DType::kF16);
  EXPECT_EQ(m.open.kv_block_tokens, 32);
  EXPECT_EQ(m.open.n_blocks, 900);
  EXPECT_EQ(m.open.n_threads, 2);
  EXPECT_EQ(m.open.keepalive_ms, 30000);
}

TEST(RankMessageTest, BodilessKindsRoundTrip) {
  for (RankMessageKind kind : {RankMessageKind::kClose, RankMessageKind::kStop, RankMessageKind::kPing}) {
    RankMessage m;
    ASSERT_TRUE(DecodeRankMessage(EncodeRankMessage(kind), &m).ok());
    EXPECT_EQ(m.kind, kind);
  }
}

TEST(RankMessageTest, KvTransfersRoundTripWithTheirBlocks) {
  const std::vector<BlockId> blocks = {4, 0, 17};
  for (RankMessageKind kind : {RankMessageKind::kGetKv, RankMessageKind::kPutKv}) {
    RankMessage m;
    ASSERT_TRUE(DecodeRankMessage(EncodeRankMessage(kind, nullptr, nullptr, &blocks), &m).ok());
    EXPECT_EQ(m.kind, kind);
    EXPECT_EQ(m.blocks, blocks);
  }
  const std::vector<BlockId> negative = {3, -1};
  std::vector<uint8_t> bytes = EncodeRankMessage(RankMessageKind::kGetKv, nullptr, nullptr, &negative);
  RankMessage m;
  EXPECT_EQ(DecodeRankMessage(bytes, &m).code(), StatusCode::kCorrupt);
  bytes = EncodeRankMessage(RankMessageKind::kPutKv, nullptr, nullptr, &blocks);
  bytes[5] = 4;  // claims 4 blocks, holds 3
  EXPECT_EQ(DecodeRankMessage(bytes, &m).code(), StatusCode::kCorrupt);
}

TEST(RankMessageTest, TruncatedOrPaddedMessagesAreCorrupt) {
  const RunnerShape shape = SampleShape();
  const std::vector<uint8_t> open = EncodeRankMessage(RankMessageKind::kOpen, &shape);
  RankMessage m;
  for (size_t n = 0; n < open.size(); ++n)
    EXPECT_EQ(DecodeRankMessage(std::span(open.data(), n), &m).code(), StatusCode::kCorrupt) << n << " bytes";
  std::vector<uint8_t> ping = EncodeRankMessage(RankMessageKind::kPing);
  ping.push_back(0);
  EXPECT_EQ(DecodeRankMessage(ping, &m).code(), StatusCode::kCorrupt);
  std::vector<uint8_t> unknown = EncodeRankMessage(RankMessageKind::kPing);
  unknown[4] = 8;  // no such kind
  EXPECT_EQ(DecodeRankMessage(unknown, &m).code(), StatusCode::kCorrupt);
}

TEST(RankMessageTest, ShapesOutOfRangeAreCorrupt) {
  RankMessage m;
  for (int field = 0; field < 6; ++field) {
    RunnerShape shape = SampleShape();
    switch (field) {
      case 0: shape.n_ctx = 1; break;
      case 1: shape.kv_type = static_cast<DType>(9999); break;
      case 2: shape.kv_block_tokens = 0; break;
      case 3: shape.n_blocks = 0; break;
      case 4: shape.n_threads = 1025; break;
      case 5: shape.keepalive_ms = -1; break;
    }
    EXPECT_EQ(DecodeRankMessage(EncodeRankMessage(RankMessageKind::kOpen, &shape), &m).code(), StatusCode::kCorrupt)
        << "field " << field;
  }
}

KvNodeStep SampleNodeStep() {
  KvNodeStep s;
  s.discards = {{3, 1}, {9, 2}};
  s.moves = {{5, 2, 0}, {1, 0, 1}};
  s.remote = {{1, 1, KvNodeMode::kCompute}, {7, 2, KvNodeMode::kData}};
  return s;
}

StepPlan SamplePlan() {
  StepPlan p;
  p.entries.push_back(PlanEntry{0, 64, {5}, {1, 7, 5}, PlanLogits::kLast, 0});
  return p;
}

// A step under --kv-nodes carries its KV node part after the plan; without
// one nothing follows the plan.
TEST(RankMessageTest, StepsRoundTripWithTheirKvNodePart) {
  const StepPlan plan = SamplePlan();
  const KvNodeStep nodes = SampleNodeStep();
  RankMessage m;
  ASSERT_TRUE(DecodeRankMessage(EncodeRankMessage(RankMessageKind::kStep, nullptr, &plan, nullptr, &nodes), &m).ok());
  EXPECT_EQ(m.plan.entries.at(0).blocks, plan.entries[0].blocks);
  ASSERT_EQ(m.nodes.discards.size(), 2u);
  EXPECT_EQ(m.nodes.discards[1].block, 9);
  EXPECT_EQ(m.nodes.discards[1].rank, 2);
  ASSERT_EQ(m.nodes.moves.size(), 2u);
  EXPECT_EQ(m.nodes.moves[0].from, 2);
  EXPECT_EQ(m.nodes.moves[1].to, 1);
  ASSERT_EQ(m.nodes.remote.size(), 2u);
  EXPECT_EQ(m.nodes.remote[1].mode, KvNodeMode::kData);
  EXPECT_TRUE(m.nodes.any_compute());
  EXPECT_TRUE(ValidateKvNodeStep(m.nodes, 10, 3).ok());
  ASSERT_TRUE(DecodeRankMessage(EncodeRankMessage(RankMessageKind::kStep, nullptr, &plan), &m).ok());
  EXPECT_TRUE(m.nodes.remote.empty() && m.nodes.moves.empty() && m.nodes.discards.empty());
}

TEST(RankMessageTest, TruncatedOrPaddedKvNodePartsAreCorrupt) {
  const std::vector<uint8_t> bytes = EncodeKvNodeStep(SampleNodeStep());
  KvNodeStep out;
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_EQ(DecodeKvNodeStep(std::span<const uint8_t>(bytes.data(), n), &out).code(), StatusCode::kCorrupt) << n;
  std::vector<uint8_t> padded = bytes;
  padded.push_back(0);
  EXPECT_EQ(DecodeKvNodeStep(padded, &out).code(), StatusCode::kCorrupt);
  std::vector<uint8_t> lying = bytes;
  lying[0] = 0xFF;  // a discard count far past the end
  EXPECT_EQ(DecodeKvNodeStep(lying, &out).code(), StatusCode::kCorrupt);
}

// Ids and ranks a rank does not have, an unknown mode, a move between two
// nodes, a block read twice: kCorrupt before anything is acted on.
TEST(RankMessageTest, KvNodePartsOutOfRangeAreCorrupt) {
  const auto bad = [](const std::function<void(KvNodeStep*)>& edit) {
    KvNodeStep s = SampleNodeStep();
    edit(&s);
    return ValidateKvNodeStep(s, 10, 3).code() == StatusCode::kCorrupt;
  };
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->discards[0].block = 10; }));
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->discards[0].rank = 0; }));
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->moves[0].block = -1; }));
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->moves[0].to = 1; }));  // node to node
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->moves[1].to = 3; }));
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->remote[0].mode = static_cast<KvNodeMode>(7); }));
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->remote[1].block = 1; }));  // read twice
  EXPECT_TRUE(bad([](KvNodeStep* s) { s->remote[1].rank = 0; }));
  EXPECT_FALSE(bad([](KvNodeStep*) {}));
}

}  // namespace
}  // namespace strata
