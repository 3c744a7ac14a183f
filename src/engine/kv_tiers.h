// KvTiers: the forward pass's one way to a step's KV, whichever tiers hold
// it — this process's RAM and disk tier (LocalKv, engine/local_kv.h) or, under
// --kv-nodes, other ranks' RAM (KvNodeReader, engine/kv_node_attention.h).
// The forward pass sees only this interface: it writes the step's new K/V
// into the slices a layer's Open hands out and asks for the layer's
// attention over every block of the plan; where each block's part of that
// attention is computed is the tiers' business, and the partial results are
// merged exactly (log-sum-exp), so the output does not depend on the tiers
// beyond float rounding.
//
// Per step: BeginStep(plan); then per layer il: Open, (Prefetch of the next
// layer), the K/V writes, Attend, Close.
//
// Thread-safety: one step at a time (the step thread); attention uses the pool.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "engine/attention_pass.h"
#include "kv/kv_layout.h"
#include "kv/step_plan.h"

namespace strata {

class KvTiers {
 public:
  // slices[e][b]: the open layer's slice of plan entry e's block b
  // (kv/kv_layout.h), or null where that slice is not readable here.
  using Slices = std::vector<std::vector<uint8_t*>>;

  virtual ~KvTiers() = default;

  virtual const KvLayout& layout() const = 0;

  // The step about to run. REQUIRES: plan stays valid until the next BeginStep.
  virtual void BeginStep(const StepPlan& plan) = 0;

  // Makes layer il's slices of the plan's blocks readable here and returns
  // them; every block a plan entry writes (positions from its start) is
  // here. An error (a slice lost on the disk tier) leaves nothing open.
  [[nodiscard]] virtual Status Open(const StepPlan& plan, int32_t il, Slices* slices) = 0;

  // Hints that layer il comes next (slices on disk start loading).
  virtual void Prefetch(const StepPlan& plan, int32_t il) = 0;

  // out F32 [head_dim * n_head, n_queries] <- the attention of the queries
  // (AttentionPass::Run) over every block of the plan, wherever it lives.
  // slices: as Open returned them for this layer (a tier may fill in null
  // ones). q: rotated, F32 [head_dim * n_head, n_queries], not modified
  // (non-const: a tier may send it to other ranks from where it is).
  [[nodiscard]] virtual Status Attend(const AttentionGrid& grid, const AttentionMath& math,
                                      std::span<const AttentionQuery> queries, const StepPlan& plan, float* q,
                                      Slices* slices, float* out) = 0;

  // Ends layer il: what Open made readable is released (written slices marked
  // modified). REQUIRES: Open(plan, il) succeeded.
  virtual void Close(const StepPlan& plan, int32_t il) = 0;
};

}  // namespace strata
