// KvNodeStep: the part of a step that concerns KV nodes (--split none
// --kv-nodes under mpirun: rank 0 runs the whole model, the other ranks lend
// RAM for KV blocks; engine/kv_nodes.h), as plain data rank 0 sends with the
// step plan (dist/rank_message.h):
// - discards: blocks rank 0 freed whose bytes a node still holds;
// - moves: whole blocks (every layer) sent between rank 0 and a node before
//   the step, in order (rank 0 -> node: out of rank 0's RAM budget; node ->
//   rank 0: a block the step writes or copies must be local);
// - remote: the plan's blocks that live on a node, and how the step reads
//   each: kCompute (rank 0 sends q, the node attends over its blocks and
//   returns the partial softmax state, merged exactly by log-sum-exp) or
//   kData (the node sends the block's slice, rank 0 attends over it).
//
// Wire format, little-endian, after the plan's bytes in a step message:
//   u32 n_discards, n x (i32 block, i32 rank)
//   u32 n_moves,    n x (i32 block, i32 from, i32 to)
//   u32 n_remote,   n x (i32 block, i32 rank, i32 mode)
// DecodeKvNodeStep is kCorrupt for anything else; ValidateKvNodeStep checks
// ids and ranks against what the receiver holds.
//
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kv/block_pool.h"

namespace strata {

// How a step reads a block that lives on a KV node.
enum class KvNodeMode : int32_t { kCompute = 0, kData = 1 };

// How rank 0 picks the mode: by measured cost, or forced (benchmarks, tests).
enum class KvNodePolicy : uint8_t { kAuto = 0, kCompute = 1, kData = 2 };
const char* KvNodePolicyName(KvNodePolicy p);  // "auto", "compute", "data"
[[nodiscard]] Status ParseKvNodePolicy(std::string_view name, KvNodePolicy* out);

struct KvNodeDiscard {
  BlockId block = 0;
  int32_t rank = 0;
};
struct KvNodeMove {
  BlockId block = 0;
  int32_t from = 0, to = 0;  // one of them is 0
};
struct KvNodeBlock {
  BlockId block = 0;
  int32_t rank = 0;
  KvNodeMode mode = KvNodeMode::kCompute;
};

struct KvNodeStep {
  std::vector<KvNodeDiscard> discards;
  std::vector<KvNodeMove> moves;
  std::vector<KvNodeBlock> remote;
  bool any_compute() const;
};

std::vector<uint8_t> EncodeKvNodeStep(const KvNodeStep& step);
// kCorrupt unless bytes is exactly one encoded step; *out untouched then.
[[nodiscard]] Status DecodeKvNodeStep(std::span<const uint8_t> bytes, KvNodeStep* out);
// kCorrupt naming the first block id outside [0, n_blocks), rank outside
// [1, n_ranks) (a move: exactly one end is 0), unknown mode, or a block listed
// twice in remote.
[[nodiscard]] Status ValidateKvNodeStep(const KvNodeStep& step, int32_t n_blocks, int32_t n_ranks);

}  // namespace strata
