// BlockPool: reference-counted KV block ids. A block id names one block of
// positions across all layers; its bytes live in a BlockStore. Running out of
// blocks is a normal result (nullopt), which the caller answers by evicting
// cached prefixes or preempting a sequence — never an exception.
//
// Thread-safety: not thread-safe; owned by the KV cache manager.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/status.h"

namespace strata {

using BlockId = int32_t;

class BlockPool {
 public:
  // REQUIRES: capacity >= 0.
  explicit BlockPool(int32_t capacity);

  // A free block with reference count 1, or nullopt if none is free.
  std::optional<BlockId> Allocate();
  // REQUIRES: refcount(id) > 0.
  void IncRef(BlockId id);
  // Drops one reference; returns true if that freed the block.
  // REQUIRES: refcount(id) > 0.
  bool DecRef(BlockId id);

  int32_t refcount(BlockId id) const { return refs_[static_cast<size_t>(id)]; }
  int32_t capacity() const { return static_cast<int32_t>(refs_.size()); }
  int32_t n_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t n_used() const { return capacity() - n_free(); }

  // Free list and counts agree: every id is either free with refcount 0 or
  // used with refcount > 0, and no id is listed free twice.
  [[nodiscard]] Status CheckInvariants() const;

 private:
  std::vector<int32_t> refs_;   // [capacity] reference counts
  std::vector<BlockId> free_;   // stack of free ids
};

}  // namespace strata
