#include "model/model_shard.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <fmt/format.h>

namespace strata {

const char* SplitName(Split split) {
  switch (split) {
    case Split::kNone: return "none";
    case Split::kTensor: return "tensor";
    case Split::kLayer: return "layer";
  }
  return "?";
}

Status ParseSplit(std::string_view name, Split* out) {
  for (Split s : {Split::kNone, Split::kTensor, Split::kLayer})
    if (name == SplitName(s)) {
      *out = s;
      return Status::Ok();
    }
  return Status::InvalidArgument(fmt::format("unknown split '{}' (none, tensor or layer)", name));
}

std::vector<int32_t> BalancedLayerBounds(std::span<const uint64_t> layer_bytes, uint64_t rank0_bytes, int32_t size) {
  const auto n = static_cast<int32_t>(layer_bytes.size());
  std::vector<uint64_t> prefix(static_cast<size_t>(n) + 1, 0);
  for (int32_t i = 0; i < n; ++i) prefix[static_cast<size_t>(i) + 1] = prefix[static_cast<size_t>(i)] + layer_bytes[static_cast<size_t>(i)];
  const auto part = [&](int32_t r, int32_t begin, int32_t end) {
    return prefix[static_cast<size_t>(end)] - prefix[static_cast<size_t>(begin)] + (r == 0 ? rank0_bytes : 0);
  };
  // best[r][j]: the least maximum over ranks 0..r computing layers [0, j);
  // cut[r][j]: where rank r's layers start in it.
  constexpr uint64_t kNone = UINT64_MAX;
  std::vector<std::vector<uint64_t>> best(static_cast<size_t>(size), std::vector<uint64_t>(static_cast<size_t>(n) + 1, kNone));
  std::vector<std::vector<int32_t>> cut(static_cast<size_t>(size), std::vector<int32_t>(static_cast<size_t>(n) + 1, 0));
  for (int32_t j = 1; j <= n; ++j) best[0][static_cast<size_t>(j)] = part(0, 0, j);
  for (int32_t r = 1; r < size; ++r)
    for (int32_t j = r + 1; j <= n; ++j)
      for (int32_t i = j - 1; i >= r; --i) {  // rank r computes [i, j); the latest start first: earlier ranks take more
        const uint64_t before = best[static_cast<size_t>(r - 1)][static_cast<size_t>(i)];
        if (before == kNone) continue;
        const uint64_t m = std::max(before, part(r, i, j));
        if (m < best[static_cast<size_t>(r)][static_cast<size_t>(j)]) {
          best[static_cast<size_t>(r)][static_cast<size_t>(j)] = m;
          cut[static_cast<size_t>(r)][static_cast<size_t>(j)] = i;
        }
      }
  std::vector<int32_t> bounds(static_cast<size_t>(size) + 1, 0);
  bounds[static_cast<size_t>(size)] = n;
  for (int32_t r = size - 1; r > 0; --r)
    bounds[static_cast<size_t>(r)] = cut[static_cast<size_t>(r)][static_cast<size_t>(bounds[static_cast<size_t>(r) + 1])];
  return bounds;
}

namespace {

// Rows [first, first + n) of m (and of its F32 bias).
Linear RowSlice(const Linear& m, int64_t first, int64_t n) {
  Linear out;
  out.w = m.w;
  out.w.ne = {m.w.ne[0], n, 1, 1};
  out.w.data = m.w.row(first);
  if (m.b.data != nullptr) out.b = Tensor{DType::kF32, {n, 1, 1, 1}, static_cast<const float*>(m.b.data) + first};
  return out;
}

// Input columns [first, first + n) of every row of m, copied into *owned; the bias stays whole.
Status ColumnSlice(const Linear& m, const char* name, int64_t first, int64_t n, std::vector<std::vector<uint8_t>>* owned,
                   Linear* out) {
  const DTypeInfo& t = Info(m.w.type);
  if (first % t.block_size != 0 || n % t.block_size != 0)
    return Status::Unsupported(fmt::format("cannot split {} ({}) by columns at {} + {}: its blocks hold {} columns",
                                           name, DTypeName(m.w.type), first, n, t.block_size));
  const uint64_t offset = static_cast<uint64_t>(first / t.block_size) * t.type_size;
  const uint64_t bytes = static_cast<uint64_t>(n / t.block_size) * t.type_size;
  std::vector<uint8_t>& buf = owned->emplace_back(bytes * static_cast<uint64_t>(m.w.rows()));
  for (int64_t r = 0; r < m.w.rows(); ++r) std::memcpy(buf.data() + r * bytes, m.w.row(r) + offset, bytes);
  *out = m;
  out->w.ne = {n, m.w.rows(), 1, 1};
  out->w.data = buf.data();
  return Status::Ok();
}

void Drop(Linear* m) {
  m->w.data = nullptr;
  m->b.data = nullptr;
}

}  // namespace

Status ApplyShard(ModelShard* shard, HParams* hp, ModelWeights* w, std::vector<std::vector<uint8_t>>* owned,
                  const std::function<void(const Tensor&)>& release) {
  const int32_t N = shard->size, r = shard->rank;
  shard->first_layer = 0;
  shard->end_layer = hp->n_layer;
  if (N == 1) return Status::Ok();
  const uint64_t head_bytes = HeadStreamedBytes(*w);  // before a rank drops the output matrix: every rank counts alike
  if (!shard->holds_output()) Drop(&w->output);
  switch (shard->split) {
    case Split::kNone:
      // Rank 0 runs the whole model; the others are KV nodes (engine/kv_nodes.h) and compute no layer.
      if (r == 0) return Status::Ok();
      shard->end_layer = 0;
      for (LayerWeights& l : w->layers)
        for (Linear* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) Drop(m);
      return Status::Ok();
    case Split::kLayer: {
      if (hp->n_layer < N)
        return Status::Unsupported(fmt::format("--split layer: {} layers cannot be spread over {} ranks", hp->n_layer, N));
      std::vector<uint64_t> layer_bytes;
      for (const LayerWeights& l : w->layers) layer_bytes.push_back(LayerStreamedBytes(l));
      shard->layer_bounds = BalancedLayerBounds(layer_bytes, head_bytes, N);
      shard->first_layer = shard->layer_bounds[static_cast<size_t>(r)];
      shard->end_layer = shard->layer_bounds[static_cast<size_t>(r) + 1];
      for (int32_t il = 0; il < hp->n_layer; ++il) {
        if (il >= shard->first_layer && il < shard->end_layer) continue;
        LayerWeights& l = w->layers[static_cast<size_t>(il)];
        for (Linear* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) Drop(m);
      }
      return Status::Ok();
    }
    case Split::kTensor: break;
  }
  if (hp->n_head_kv % N != 0 || hp->n_ff % N != 0)
    return Status::Unsupported(fmt::format("--split tensor over {} ranks needs the KV heads ({}) and the FFN width ({}) "
                                           "divisible by {}",
                                           N, hp->n_head_kv, hp->n_ff, N));
  const int64_t D = hp->head_dim;
  const int64_t q_heads = hp->n_head / N, kv_heads = hp->n_head_kv / N, ff = hp->n_ff / N;
  for (LayerWeights& l : w->layers) {
    l.wq = RowSlice(l.wq, r * q_heads * D, q_heads * D);
    l.wk = RowSlice(l.wk, r * kv_heads * D, kv_heads * D);
    l.wv = RowSlice(l.wv, r * kv_heads * D, kv_heads * D);
    l.ffn_gate = RowSlice(l.ffn_gate, r * ff, ff);
    l.ffn_up = RowSlice(l.ffn_up, r * ff, ff);
    const Linear wo = l.wo, ffn_down = l.ffn_down;
    STRATA_RETURN_IF_ERROR(ColumnSlice(wo, "attn_output", r * q_heads * D, q_heads * D, owned, &l.wo));
    STRATA_RETURN_IF_ERROR(ColumnSlice(ffn_down, "ffn_down", r * ff, ff, owned, &l.ffn_down));
    if (release) {
      release(wo.w);
      release(ffn_down.w);
    }
  }
  hp->n_head = static_cast<int32_t>(q_heads);
  hp->n_head_kv = static_cast<int32_t>(kv_heads);
  hp->n_ff = static_cast<int32_t>(ff);
  return Status::Ok();
}

}  // namespace strata
