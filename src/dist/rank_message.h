// RankMessage: what rank 0 broadcasts to the other ranks of an MPI job
// (dist/cluster.h) — open a runner (the KV pool's shape), run a step plan
// (kv/step_plan.h), close the runner, stop, or only say it is alive (an idle
// server pings so the other ranks can tell idleness from a hung rank 0; they
// answer with a one-float sum, so rank 0 notices a hung rank too); and, for
// sessions, send rank 0 their part of some KV blocks (kGetKv) or receive it
// (kPutKv), one message per block after this one (engine/rank_server.h).
//
// Bytes: u32 magic "SRNK", u8 kind, then for kOpen six i32 (n_ctx,
// kv_type, kv_block_tokens, n_blocks, n_threads, keepalive_ms), for kStep
// the plan's own bytes (framed and checksummed: step_plan.h), for kGetKv and
// kPutKv u32 n then i32 block ids[n] (n <= 2^24, ids >= 0); nothing for
// kClose, kStop and kPing. Under --kv-nodes a step's plan is followed by its
// KV node part (kv/kv_node_step.h); otherwise nothing follows it.
// DecodeRankMessage is kCorrupt for anything else (what a rank receives is
// checked before it is acted on; fuzz/plan_fuzz.cc).
//
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "kv/kv_node_step.h"
#include "kv/step_plan.h"

namespace strata {

enum class RankMessageKind : uint8_t {
  kOpen = 1,
  kStep = 2,
  kClose = 3,
  kStop = 4,
  kPing = 5,
  kGetKv = 6,
  kPutKv = 7,
};

// The runner rank 0 opened: the other ranks build a block store and forward pass like it.
struct RunnerShape {
  int32_t n_ctx = 0;
  DType kv_type = DType::kF32;
  int32_t kv_block_tokens = 0;
  int32_t n_blocks = 0;
  int32_t n_threads = 0;  // rank 0's; each rank uses its own --threads
  // Rank 0 sends a message (kPing when idle) at least this often, in ms, in
  // [0, 86400000]; 0: no promise (the other ranks wait their default).
  int32_t keepalive_ms = 0;
};

struct RankMessage {
  RankMessageKind kind = RankMessageKind::kStop;
  RunnerShape open;  // kOpen
  StepPlan plan;     // kStep
  KvNodeStep nodes;  // kStep under --kv-nodes (empty otherwise)
  std::vector<BlockId> blocks;  // kGetKv, kPutKv
};

inline constexpr uint32_t kRankMessageMagic = 0x4B4E5253;  // "SRNK"

std::vector<uint8_t> EncodeRankMessage(RankMessageKind kind, const RunnerShape* open = nullptr,
                                       const StepPlan* plan = nullptr, const std::vector<BlockId>* blocks = nullptr,
                                       const KvNodeStep* nodes = nullptr);
[[nodiscard]] Status DecodeRankMessage(std::span<const uint8_t> bytes, RankMessage* out);

}  // namespace strata
