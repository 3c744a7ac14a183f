// LocalKv: the KV tiers of this process — RAM frames and the disk tier behind
// them (kv/block_store.h) — as the forward pass reads them (engine/kv_tiers.h):
// a layer's slices are pinned (read back from disk, checksum-verified, when
// they are not resident; the next layer's prefetched), attention runs over
// them here, and closing the layer unpins them and enforces the RAM budget.
//
// A subclass whose blocks partly live elsewhere (engine/kv_node_attention.h)
// names them with Elsewhere: those are neither pinned nor prefetched, and
// their slices stay null.
//
// Thread-safety: as KvTiers.
#pragma once

#include <cstdint>
#include <span>

#include "engine/attention_pass.h"
#include "engine/kv_tiers.h"
#include "kernels/thread_pool.h"
#include "kv/block_store.h"

namespace strata {

class LocalKv : public KvTiers {
 public:
  // REQUIRES: store and pool outlive this object.
  LocalKv(BlockStore& store, int32_t n_head, ThreadPool& pool);

  const KvLayout& layout() const override { return store_.layout(); }
  void BeginStep(const StepPlan&) override {}
  [[nodiscard]] Status Open(const StepPlan& plan, int32_t il, Slices* slices) override;
  void Prefetch(const StepPlan& plan, int32_t il) override;
  // Attention over the slices, all of which are here.
  [[nodiscard]] Status Attend(const AttentionGrid& grid, const AttentionMath& math,
                              std::span<const AttentionQuery> queries, const StepPlan& plan, float* q, Slices* slices,
                              float* out) override;
  void Close(const StepPlan& plan, int32_t il) override;

 protected:
  // Whether block id's slices live in another tier this step (not pinned here).
  virtual bool Elsewhere(BlockId) const { return false; }
  AttentionPass& pass() { return pass_; }

 private:
  BlockStore& store_;
  AttentionPass pass_;
};

}  // namespace strata
