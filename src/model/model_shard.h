// ModelShard: which part of a model one MPI rank holds (dist/cluster.h).
//
// kTensor (tensor parallelism): rank r of N holds KV heads
// [r·n_head_kv/N, (r+1)·n_head_kv/N) with their query heads (rows of wq, wk,
// wv and their biases), FFN columns [r·n_ff/N, (r+1)·n_ff/N) (rows of
// ffn_gate and ffn_up), and the matching input columns of wo and ffn_down
// (copied out of the file's rows); its hparams are the shard's (n_head,
// n_head_kv and n_ff divided by N), so the forward pass runs unchanged but for
// an all-reduce after wo and after ffn_down. Norms and embeddings are whole.
// kLayer (pipeline parallelism): rank r holds layers [layer_bounds[r],
// layer_bounds[r + 1]) (BalancedLayerBounds) and nothing of the others. kNone (--kv-nodes): rank 0 holds the whole model,
// the other ranks no layer (they hold KV blocks, engine/kv_nodes.h).
// Either way only rank 0 holds the output matrix (it alone computes logits),
// and a matrix a rank does not hold has data == nullptr: it is never packed
// or touched, so a rank's resident weights are about its share.
//
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "model/hparams.h"
#include "model/weights.h"

namespace strata {

enum class Split : uint8_t { kNone = 0, kTensor = 1, kLayer = 2 };
const char* SplitName(Split split);  // "none", "tensor", "layer"
[[nodiscard]] Status ParseSplit(std::string_view name, Split* out);

struct ModelShard {
  Split split = Split::kNone;
  int32_t rank = 0;
  int32_t size = 1;
  // Layers [first, end) this rank computes (all of them unless kLayer).
  int32_t first_layer = 0;
  int32_t end_layer = 0;
  // kLayer over size > 1: [size + 1], rank r computes [layer_bounds[r],
  // layer_bounds[r + 1]) (every rank computes them alike from the model).
  std::vector<int32_t> layer_bounds;
  bool holds_output() const { return rank == 0; }
};

// kLayer's contiguous ranges: bounds [size + 1] (0 first, the number of
// layers last), at least one layer per rank, such that the most any rank
// streams per token is least — its layers' bytes (layer_bytes[il]), rank 0's
// plus rank0_bytes (the output matrix: it alone computes logits). Decode
// reads every weight byte once per token, at the memory's bandwidth
// (docs/BENCHMARKS.md), so bytes are what a layer costs; of equal choices,
// the one giving the earlier ranks more layers.
// REQUIRES: 1 <= size <= layer_bytes.size().
std::vector<int32_t> BalancedLayerBounds(std::span<const uint64_t> layer_bytes, uint64_t rank0_bytes, int32_t size);

// Cuts hp and w down to rank's part. kTensor needs n_head_kv and n_ff
// divisible by size and every column slice aligned to its type's blocks
// (kUnsupported naming the tensor otherwise); kLayer needs n_layer >= size.
// Column slices are copied into *owned (w points into it); release, if set,
// is then called with the whole matrix each was copied from (the loader drops
// its file pages, so the whole matrices are never all resident at once).
// REQUIRES: w's biases are F32; shard.rank < shard.size.
[[nodiscard]] Status ApplyShard(ModelShard* shard, HParams* hp, ModelWeights* w,
                                std::vector<std::vector<uint8_t>>* owned,
                                const std::function<void(const Tensor&)>& release = nullptr);

}  // namespace strata
