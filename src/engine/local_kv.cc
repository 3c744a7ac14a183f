#include "engine/local_kv.h"

#include <utility>

namespace strata {

LocalKv::LocalKv(BlockStore& store, int32_t n_head, ThreadPool& pool)
    : store_(store), pass_(store.layout(), n_head, pool) {}

Status LocalKv::Open(const StepPlan& plan, int32_t il, Slices* slices) {
  slices->resize(plan.entries.size());
  for (size_t e = 0; e < plan.entries.size(); ++e) {
    const std::vector<BlockId>& blocks = plan.entries[e].blocks;
    std::vector<uint8_t*>& out = (*slices)[e];
    out.assign(blocks.size(), nullptr);
    for (size_t b = 0; b < blocks.size(); ++b) {
      if (Elsewhere(blocks[b])) continue;
      Status s = store_.Pin(blocks[b], il, &out[b]);
      if (!s.ok()) {
        // Unpin what this call pinned so far, then report.
        for (size_t e2 = 0; e2 <= e; ++e2)
          for (size_t b2 = 0; b2 < (e2 < e ? (*slices)[e2].size() : b); ++b2)
            if ((*slices)[e2][b2] != nullptr) store_.Unpin(plan.entries[e2].blocks[b2], il, false);
        return s;
      }
    }
  }
  return Status::Ok();
}

void LocalKv::Prefetch(const StepPlan& plan, int32_t il) {
  if (!store_.has_disk()) return;
  std::vector<std::pair<BlockId, int32_t>> want;
  for (const PlanEntry& e : plan.entries)
    for (BlockId b : e.blocks)
      if (!Elsewhere(b)) want.emplace_back(b, il);
  store_.Prefetch(want);
}

Status LocalKv::Attend(const AttentionGrid& grid, const AttentionMath& math, std::span<const AttentionQuery> queries,
                       const StepPlan&, float* q, Slices* slices, float* out) {
  pass_.Run(grid, math, queries, q, *slices, out);
  return Status::Ok();
}

void LocalKv::Close(const StepPlan& plan, int32_t il) {
  const int32_t B = store_.layout().block_tokens;
  for (const PlanEntry& e : plan.entries) {
    const size_t first_written = static_cast<size_t>(e.start / B);
    for (size_t b = 0; b < e.blocks.size(); ++b)
      if (!Elsewhere(e.blocks[b])) store_.Unpin(e.blocks[b], il, b >= first_written);
  }
  store_.EnforceBudget();
}

}  // namespace strata
