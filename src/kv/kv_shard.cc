#include "kv/kv_shard.h"

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
  if (shard.split == Split::kLayer && shard.size > 1)
    return {shard.layer_bounds[static_cast<size_t>(rank)], shard.layer_bounds[static_cast<size_t>(rank) + 1]};
  return {0, whole.n_layer};
}

uint64_t KvSliceBytesOfRank(const KvLayout& whole, const ModelShard& shard) {
  return ByHeads(shard) ? whole.slice_bytes() / static_cast<uint64_t>(shard.size) : whole.slice_bytes();
}

namespace {

// Copies between rank's part of a slice and its place in the whole slice.
void CopyKvPart(const KvLayout& whole, const ModelShard& shard, int32_t rank, uint8_t* part, uint8_t* whole_slice,
                bool to_whole) {
  auto copy = [to_whole](uint8_t* in_part, uint8_t* in_whole, uint64_t n) {
    if (to_whole) {
      std::memcpy(in_whole, in_part, n);
    } else {
      std::memcpy(in_part, in_whole, n);
    }
  };
  if (!ByHeads(shard)) return copy(part, whole_slice, whole.slice_bytes());
  // Rank r's K rows, then its V rows: one run each in the whole slice's K and V halves.
  const uint64_t half = whole.half_bytes() / static_cast<uint64_t>(shard.size);
  const uint64_t at = static_cast<uint64_t>(rank) * half;
  copy(part, whole_slice + at, half);
  copy(part + half, whole_slice + whole.half_bytes() + at, half);
}

}  // namespace

void CopyKvPartToWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* part,
                       uint8_t* whole_slice) {
  CopyKvPart(whole, shard, rank, const_cast<uint8_t*>(part), whole_slice, /*to_whole=*/true);
}

void CopyKvPartFromWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* whole_slice,
                         uint8_t* part) {
  CopyKvPart(whole, shard, rank, part, const_cast<uint8_t*>(whole_slice), /*to_whole=*/false);
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

}  // namespace strata
