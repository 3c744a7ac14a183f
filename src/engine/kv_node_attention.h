// KvNodeAttention: one layer's attention when some of the step's KV blocks
// live on KV nodes (engine/kv_nodes.h, kv/kv_node_step.h) — both ends of the
// exchange, so they mirror each other.
//
// Per layer, when the step reads any remote block:
//   rank 0                                   node r
//   broadcast q (if any block is kCompute)   receive q
//   receive r's kData slices, one message    send its kData slices of the layer
//   attend over local + fetched slices       attend over its kCompute blocks
//     (partial softmax state)                  (partial softmax state)
//   receive r's state, merge (exact LSE)     send the state
//   normalize into the attention output
// The merge is exact (kernels::MergePartial), so the output equals
// all-local attention up to float rounding.
//
// Thread-safety: one thread (the step thread); the pool is used inside.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "dist/cluster.h"
#include "engine/attention_pass.h"
#include "engine/kv_nodes.h"
#include "engine/local_kv.h"
#include "kv/block_store.h"
#include "kv/kv_node_step.h"
#include "kv/step_plan.h"

namespace strata {

// Rank 0's end: its KV tiers (engine/kv_tiers.h) — its own RAM (LocalKv)
// and the blocks on KV nodes, read as each step's KvNodeStep says.
// REQUIRES: cluster, store, pool outlive it.
class KvNodeReader : public LocalKv {
 public:
  KvNodeReader(Cluster& cluster, BlockStore& store, int32_t n_head, ThreadPool& pool);

  // Where the next step's blocks live (kv/kv_node_step.h; null: all here)
  // and where to record rank 0's measured costs (may be null); read by the
  // next BeginStep. REQUIRES: step stays valid until then.
  void SetStep(const KvNodeStep* step, KvNodeCosts* costs);
  void BeginStep(const StepPlan& plan) override;

  // Layer attention over local and remote blocks: slices null for remote
  // blocks (data-mode ones are filled in here).
  [[nodiscard]] Status Attend(const AttentionGrid& grid, const AttentionMath& math,
                              std::span<const AttentionQuery> queries, const StepPlan& plan, float* q, Slices* slices,
                              float* out) override;

 protected:
  // Whether a block lives on a node this step (its slice is not pinned locally).
  bool Elsewhere(BlockId id) const override {
    return !remote_of_.empty() && remote_of_[static_cast<size_t>(id)] != 0;
  }

 private:
  Cluster& cluster_;
  int32_t n_head_;
  ThreadPool& pool_;
  const KvNodeStep* next_step_ = nullptr;
  KvNodeCosts* costs_ = nullptr;
  bool active_ = false, any_compute_ = false;  // the step reads a remote block; one by computation
  std::vector<int8_t> remote_of_;           // [n_blocks] 0 local, 1 compute, 2 data (this step)
  std::vector<std::vector<BlockId>> data_;  // [ranks] each node's data-mode blocks, in message order
  std::vector<int32_t> compute_ranks_;      // nodes with compute-mode blocks
  std::vector<std::vector<uint8_t>> fetched_;  // [ranks] the layer's slices received
  std::vector<float> partial_, theirs_;     // F32 [head_dim + 2, n_head, n_queries]
  int64_t local_query_blocks_ = 0;
  int64_t node_query_blocks_ = 0;           // the most any compute-mode node attends over (query-blocks)
};

// A node's end: its store of the blocks rank 0 placed here, and its part of
// each step. REQUIRES: model, store, pool outlive it.
class KvNodeServer {
 public:
  KvNodeServer(const Model& model, Cluster& cluster, BlockStore& store, ThreadPool& pool, AttentionGrid grid,
               int64_t capacity_blocks);
  // Discards, moves, then every layer's exchange. Errors: kCorrupt for a
  // step rank 0 could not have sent (a block this node does not hold, more
  // blocks than its budget), MPI failures.
  [[nodiscard]] Status RunStep(const StepPlan& plan, const KvNodeStep& step);
  // kGetKv (a session is saved): sends rank 0 each of blocks this node
  // holds, whole, in order; the others are held elsewhere.
  [[nodiscard]] Status SendHeld(const std::vector<BlockId>& blocks);

 private:
  // The step's discards and moves that concern this node, in order.
  [[nodiscard]] Status ApplyDiscardsAndMoves(const KvNodeStep& step);
  // Every layer's exchange with rank 0 (see the header comment).
  [[nodiscard]] Status AttendLayers(const StepPlan& plan, const KvNodeStep& step);

  const Model& model_;
  Cluster& cluster_;
  BlockStore& store_;
  ThreadPool& pool_;
  AttentionGrid grid_;
  AttentionPass pass_;
  int64_t capacity_;
  std::vector<uint8_t> held_;  // [n_blocks]
  int64_t n_held_ = 0;
};

}  // namespace strata
