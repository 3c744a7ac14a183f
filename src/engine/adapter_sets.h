// AdapterSets: the LoRA adapter sets the requests an engine runs name, each
// under a small index (a step plan's PlanEntry::adapter), interned by
// content so that requests with equal sets share one index, its prefix
// cache and its rows' group in a batch.
//
// The first sets (the engine's fixed ones, EngineParams::adapters) are
// pinned at 1..n; the others come and go with the requests that hold them
// (Acquire / Release), and a freed index is reused. A KV sequence records
// its set's Key() besides the index, so that a reused index never passes KV
// computed under another set for its own (prefix cache, resumed sequences).
//
// Thread-safety: none; the engine guards it with its mutex.
#pragma once
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/lora_adapter.h"

namespace strata {

// A fingerprint of a set's content (its adapters and scales, in order); 0
// only for the empty set. Equal sets have equal keys within one process.
uint64_t LoraSetKey(const LoraSet& set);

class AdapterSets {
 public:
  // pinned: sets at indices 1..pinned.size(), never released.
  // max_sets: indices in use at most (pinned ones included).
  AdapterSets(std::vector<LoraSet> pinned, int32_t max_sets);

  // The index of set (0 for the empty set), counting one more holder.
  // kResourceExhausted when max_sets different sets are in use.
  [[nodiscard]] Status Acquire(const LoraSet& set, int32_t* index);
  // Drops a holder of index (0: nothing). REQUIRES: it was acquired.
  void Release(int32_t index);

  uint64_t key(int32_t index) const { return index == 0 ? 0 : slots_[static_cast<size_t>(index - 1)].key; }
  // Every index's set (a free index's is empty), for Runner::SetAdapters.
  std::vector<LoraSet> sets() const;
  // True once after the sets changed (a new set took an index).
  bool TakeChanged();
  int32_t n_in_use() const;

 private:
  struct Slot {
    LoraSet set;
    uint64_t key = 0;
    int64_t holders = 0;  // -1: pinned
  };
  std::vector<Slot> slots_;  // index k is slots_[k - 1]
  int32_t max_sets_;
  bool changed_ = true;
};

}  // namespace strata
