#include "kv/block_pool.h"

#include <cassert>
#include <fmt/format.h>

namespace strata {

BlockPool::BlockPool(int32_t capacity) : refs_(static_cast<size_t>(capacity), 0) {
  free_.reserve(refs_.size());
  for (int32_t i = capacity - 1; i >= 0; --i) free_.push_back(i);  // low ids first
}

std::optional<BlockId> BlockPool::Allocate() {
  if (free_.empty()) return std::nullopt;
  BlockId id = free_.back();
  free_.pop_back();
  refs_[static_cast<size_t>(id)] = 1;
  return id;
}

void BlockPool::IncRef(BlockId id) {
  assert(refs_[static_cast<size_t>(id)] > 0);
  ++refs_[static_cast<size_t>(id)];
}

bool BlockPool::DecRef(BlockId id) {
  int32_t& r = refs_[static_cast<size_t>(id)];
  assert(r > 0);
  if (--r > 0) return false;
  free_.push_back(id);
  return true;
}

Status BlockPool::CheckInvariants() const {
  std::vector<char> listed(refs_.size(), 0);
  for (BlockId id : free_) {
    if (id < 0 || static_cast<size_t>(id) >= refs_.size()) return Status::Internal(fmt::format("free id {} out of range", id));
    if (listed[static_cast<size_t>(id)]++) return Status::Internal(fmt::format("block {} listed free twice", id));
    if (refs_[static_cast<size_t>(id)] != 0) return Status::Internal(fmt::format("free block {} has references", id));
  }
  for (size_t id = 0; id < refs_.size(); ++id) {
    if (refs_[id] < 0) return Status::Internal(fmt::format("block {} has a negative refcount", id));
    if (refs_[id] == 0 && !listed[id]) return Status::Internal(fmt::format("block {} leaked", id));
  }
  return Status::Ok();
}

}  // namespace strata
