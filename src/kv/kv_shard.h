// KvShard: which part of the whole model's KV one MPI rank holds
// (model/model_shard.h), and the copies between a rank's slices and the
// whole model's — what a session file stores, whatever the ranks were.
//
// kTensor: every rank holds every layer's slices for its n_head_kv / N KV
// heads; a slice is K then V, each [head_dim, block_tokens, n_head_kv] with
// the head outermost (kv/kv_layout.h), so rank r's K and V are each one
// contiguous run of the whole slice's (at r · its half_bytes()).
// kLayer: rank r holds whole slices of its layers (ModelShard::layer_bounds) only.
// kNone (or one rank): the whole.
//
// Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <utility>

#include <span>
#include <vector>

#include "core/status.h"
#include "kv/block_store.h"
#include "kv/kv_layout.h"
#include "model/model_shard.h"

namespace strata {

// The whole model's KV layout, from one rank's (rank_layout) and its shard.
KvLayout WholeKvLayout(const KvLayout& rank_layout, const ModelShard& shard);
// Layers [first, end) whose KV rank `rank` of shard's job holds.
std::pair<int32_t, int32_t> KvLayersOfRank(const KvLayout& whole, const ModelShard& shard, int32_t rank);
// The bytes of one layer's slice rank `rank` holds (its layout's slice_bytes()).
uint64_t KvSliceBytesOfRank(const KvLayout& whole, const ModelShard& shard);
// Copies rank `rank`'s slice `part` (KvSliceBytesOfRank bytes) into its
// place in the whole slice `whole_slice`, or back (FromWhole).
void CopyKvPartToWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* part,
                       uint8_t* whole_slice);
void CopyKvPartFromWhole(const KvLayout& whole, const ModelShard& shard, int32_t rank, const uint8_t* whole_slice,
                         uint8_t* part);

// A rank's part of one block in its own store: the slices of layers
// [layers.first, layers.second), one after another (what a rank sends or
// receives for the block). Write marks the slices dirty.
[[nodiscard]] Status ReadKvPart(BlockStore& store, BlockId id, std::pair<int32_t, int32_t> layers,
                                std::vector<uint8_t>* out);
[[nodiscard]] Status WriteKvPart(BlockStore& store, BlockId id, std::pair<int32_t, int32_t> layers,
                                 std::span<const uint8_t> bytes);

}  // namespace strata
