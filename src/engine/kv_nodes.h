// KvNodes: rank 0's placement of KV blocks under --split none --kv-nodes —
// the remote tier, below rank 0's RAM (its --kv-ram budget) and in the other
// ranks' RAM (each its own --kv-ram, told at the handshake; dist/cluster.h).
//
// Before each step Prepare decides, as plain data sent with the plan
// (kv/kv_node_step.h):
// - every block the step writes or copies comes (back) to rank 0;
// - while rank 0 holds more blocks than its budget, full blocks move out to
//   the node with the most room: blocks no step read lately first (parked
//   sessions, the prefix cache), then the oldest positions of the batch;
// - the step's remote blocks come home, newest positions first, into room
//   rank 0 has (blocks were freed) or in exchange for an idle local block
//   (which takes its place on the node): a block a running sequence reads
//   is read again every step, so once local its reads cost no link at all;
//   at most kKvNodeMaxMovesInPerStep a step, to bound a step's delay;
// - for each node, how the step reads its blocks: moving the computation (q
//   out, the partial softmax state back: bytes ~ queries, and a round trip
//   per layer) or moving the data (the blocks' slices to rank 0: bytes ~
//   blocks, streamed by the node without waiting, so one latency per step,
//   and rank 0 attends over them), whichever the measured costs (KvNodeCosts:
//   round trip and link seconds per byte probed at open, rank 0's attention
//   seconds per query-block) make cheaper, or as --kv-remote forces.
// Blocks rank 0 frees (Freed, from the KV cache manager) are discarded on
// their node with the next step. Transfer carries out rank 0's half of the
// moves after the step message went out; the nodes mirror it
// (engine/kv_node_attention.h).
//
// Thread-safety: one thread (the runner's step thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "dist/cluster.h"
#include "kv/block_store.h"
#include "kv/kv_node_step.h"
#include "kv/step_plan.h"

namespace strata {

// Measured costs the mode choice compares. The link is probed when the
// runner opens; then every step's waits correct it, since a probe can miss
// what the step's own exchanges see (a delaying link that batches packets,
// a node whose core is busy): computing there corrects the round trip,
// fetching the seconds per fetched byte.
struct KvNodeCosts {
  double round_trip_s = 50e-6;            // probed (a one-float all-reduce), then as computing there waited
  double seconds_per_byte = 1e-9;         // probed (a 1 MiB all-reduce past the round trip), per byte
  double fetch_seconds_per_byte = 1e-9;   // the probe's, then as fetching waited per slice byte
  double seconds_per_query_block = 2e-7;  // attention of one query token over one block, one layer (rank 0's, averaged)
  void ObserveAttention(uint64_t query_blocks, double seconds);
  // One layer computed there: rank 0 waited `seconds` for q to go out and
  // the states to come back, of which the model prices `priced` as bytes
  // and the node's attention beyond rank 0's own; the rest is round trip.
  void ObserveComputeWait(double seconds, double priced);
  // One layer's slices fetched: rank 0 waited `seconds` for `bytes`, past
  // the latency share the model charges per layer.
  void ObserveFetchWait(double seconds, double bytes, double latency_share);
};

// The all-reduces each side runs when a runner opens (KvNodes::MeasureLink):
// one float, then 1 MiB, this many times each (the fastest counts).
inline constexpr int kKvNodeLinkProbes = 5;
inline constexpr int64_t kKvNodeLinkProbeFloats = 1 << 18;
// Remote blocks one step brings home at most.
inline constexpr int32_t kKvNodeMaxMovesInPerStep = 8;

struct KvNodeStats {
  int32_t blocks_on_nodes = 0;
  uint64_t moved_out = 0, moved_in = 0;      // whole blocks
  uint64_t reads_compute = 0, reads_data = 0; // remote block reads per step by mode
  KvNodeCosts costs;                          // as measured now
};

// "N blocks on KV nodes; moved out X, back Y; remote block reads: A by
// computation, B by data; measured: ...", for logs.
std::string KvNodesSummary(const KvNodeStats& s);

class KvNodes {
 public:
  // The RAM the nodes lend, in whole blocks of layout (for the KV pool's sizing).
  static uint64_t NodeBytes(const Cluster& cluster, const KvLayout& layout);

  // local_ram_bytes: rank 0's budget (UINT64_MAX: every block stays local).
  // REQUIRES: cluster.kv_nodes(), cluster.rank() == 0.
  KvNodes(Cluster& cluster, const KvLayout& layout, int32_t n_head, int32_t n_blocks, uint64_t local_ram_bytes);

  // Measures the round trip and the link to the nodes (kKvNodeLinkProbes
  // all-reduces of one float and of 1 MiB); the nodes run as many when the runner opens.
  [[nodiscard]] Status MeasureLink();
  // Block id was freed by its last owner (KvCacheConfig::on_free).
  void Freed(BlockId id);
  // The step's KV node part (see the header comment); updates the placement.
  void Prepare(const StepPlan& plan, KvNodeStep* step);
  // Rank 0's half of step.moves (after the step message was broadcast).
  [[nodiscard]] Status Transfer(const KvNodeStep& step, BlockStore& store);

  // The rank holding block id now (0: rank 0).
  int32_t home(BlockId id) const { return home_[static_cast<size_t>(id)]; }
  KvNodeCosts& costs() { return costs_; }
  KvNodeStats stats() const;

 private:
  // The step's blocks: [n_blocks] written or copied (must be local), in the
  // plan; and the plan's blocks each once, oldest position first per entry.
  struct StepBlocks {
    std::vector<uint8_t> must, in_plan;
    std::vector<BlockId> order;
  };
  // Marks the plan's blocks live, read now, and full or not.
  StepBlocks MarkPlan(const StepPlan& plan);
  // Moves to rank 0 every block the step must have local.
  void BringHome(const StepBlocks& sb, KvNodeStep* step);
  // Moves full blocks out while rank 0 holds more than its budget.
  void MoveOut(const StepBlocks& sb, KvNodeStep* step);
  // Brings the step's remote blocks home (see the header comment).
  void MoveIn(const StepBlocks& sb, KvNodeStep* step);
  // Live blocks rank 0 holds.
  int64_t LocalBlocks() const;
  // Block b is local, full and not written by the step: it may leave rank 0.
  bool Movable(const StepBlocks& sb, size_t b) const;
  // The movable blocks the step does not read, least recently read first.
  std::vector<BlockId> IdleLocalBlocks(const StepBlocks& sb) const;
  // The node with the most free room, or 0 if all are full.
  int32_t RoomiestNode() const;
  // How the step reads each node's blocks (step->remote).
  void ChooseModes(const StepPlan& plan, const StepBlocks& sb, KvNodeStep* step);
  KvNodeMode ChooseMode(int64_t n_tokens, int64_t node_blocks, int64_t node_query_blocks,
                        int64_t local_query_blocks) const;

  Cluster& cluster_;
  KvLayout layout_;
  int32_t n_head_;
  int64_t local_cap_;                 // blocks rank 0 keeps
  std::vector<int64_t> node_cap_;     // [ranks] blocks each node takes (0 for rank 0)
  std::vector<int64_t> node_used_;    // [ranks]
  std::vector<int32_t> home_;         // [n_blocks] the rank holding the block
  std::vector<uint8_t> live_;         // [n_blocks] in use (seen in a plan, not freed)
  std::vector<uint8_t> full_;         // [n_blocks] every position written: never written again until freed
  std::vector<uint64_t> last_read_;   // [n_blocks] the step that last read it
  uint64_t step_no_ = 0;
  std::vector<KvNodeDiscard> discards_;  // for the next step
  KvNodeCosts costs_;
  KvNodeStats stats_;
};

}  // namespace strata
