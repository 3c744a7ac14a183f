#include "kv/kv_shard.h"

#include <algorithm>
#include <cstring>

namespace strata {

namespace {

bool ByHeads(const ModelShard& shard) { return shard.split == Split::kTensor && shard.size > 1; }

}  // namespace

KvLayout WholeKvLayout(const KvLayout& rank_layout, const ModelShard& shard) {
  KvLayout whole = rank_layout;
  if (ByHeads(shard)) whole.n_head_kv *= shard.size;
  return whole;
}

std::pair<int32_t, int32_t> KvLayersOfRank(const KvLayout& whole, const ModelShard& shard, int32_t rank) {
  if (shard.split == Split::kLayer && shard.size > 1) return LayerRange(whole.n_layer, rank, shard.size);
  return {0, whole.n_layer};
}

uint64_t KvSliceBytesOfRank(const KvLayout& whole, const ModelShard& shard) {
  return ByHeads(shard) ? whole.slice_bytes() / static_cast<uint64_t>(shard.size) : whole.slice_bytes();
}

void CopyKvPartToWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* part,
                       uint8_t* whole_slice) {
  if (!ByHeads(shard)) {
    std::memcpy(whole_slice, part, whole.slice_bytes());
    return;
  }
  const uint64_t half = whole.half_bytes() / static_cast<uint64_t>(shard.size);
  std::memcpy(whole_slice + static_cast<uint64_t>(rank) * half, part, half);
  std::memcpy(whole_slice + whole.half_bytes() + static_cast<uint64_t>(rank) * half, part + half, half);
}

void CopyKvPartFromWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* whole_slice,
                         uint8_t* part) {
  if (!ByHeads(shard)) {
    std::memcpy(part, whole_slice, whole.slice_bytes());
    return;
  }
  const uint64_t half = whole.half_bytes() / static_cast<uint64_t>(shard.size);
  std::memcpy(part, whole_slice + static_cast<uint64_t>(rank) * half, half);
  std::memcpy(part + half, whole_slice + whole.half_bytes() + static_cast<uint64_t>(rank) * half, half);
}

Status ReadKvPart(BlockStore& store, BlockId id, std::pair<int32_t, int32_t> layers, std::vector<uint8_t>* out) {
  const uint64_t slice = store.layout().slice_bytes();
  out->resize(slice * static_cast<uint64_t>(layers.second - layers.first));
  for (int32_t il = layers.first; il < layers.second; ++il) {
    uint8_t* data = nullptr;
    STRATA_RETURN_IF_ERROR(store.Pin(id, il, &data));
    std::memcpy(out->data() + slice * static_cast<uint64_t>(il - layers.first), data, slice);
    store.Unpin(id, il, false);
  }
  return Status::Ok();
}

Status WriteKvPart(BlockStore& store, BlockId id, std::pair<int32_t, int32_t> layers, std::span<const uint8_t> bytes) {
  const uint64_t slice = store.layout().slice_bytes();
  if (bytes.size() != slice * static_cast<uint64_t>(layers.second - layers.first))
    return Status::Internal("a KV block part of the wrong size");
  for (int32_t il = layers.first; il < layers.second; ++il) {
    uint8_t* data = nullptr;
    STRATA_RETURN_IF_ERROR(store.Pin(id, il, &data));
    std::memcpy(data, bytes.data() + slice * static_cast<uint64_t>(il - layers.first), slice);
    store.Unpin(id, il, true);
  }
  return Status::Ok();
}

Status NewWholeKvStore(Env* env, const KvLayout& layout, int32_t n_blocks, std::unique_ptr<BlockStore>* out,
                       std::vector<BlockId>* ids) {
  STRATA_RETURN_IF_ERROR(BlockStore::Create(env, layout, KvTierConfig{}, std::max(n_blocks, 1), out));
  ids->resize(static_cast<size_t>(n_blocks));
  for (int32_t i = 0; i < n_blocks; ++i) (*ids)[static_cast<size_t>(i)] = i;
  return Status::Ok();
}

}  // namespace strata
