// Rank messages (dist/rank_message.h): every kind round-trips, and what a rank
// must not act on — a truncated or padded message, an unknown kind, a runner
// shape out of range, a lying block count or negative block id — is a
// kCorrupt Status, not a crash.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace strata
