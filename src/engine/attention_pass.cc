#include "engine/attention_pass.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <limits>

namespace strata {
namespace {

// Asks for the first `bytes` of one KV head's K and V rows of a block, into
// L2: every token's weights stream through the caches and evict the KV cache,
// and the kernel's own loads would miss 16 rows at a time (decode attention
// on the 134M shape: 25-35 -> 16-25 us per layer; into L1 it gained ~5%).
void PrefetchBlock(const uint8_t* k, const uint8_t* v, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) {
    __builtin_prefetch(k + o, 0, 2);
    __builtin_prefetch(v + o, 0, 2);
  }
}

}  // namespace

AttentionMath LayerAttentionMath(const HParams& hp, int32_t il) {
  return AttentionMath{{hp.attn_scale, hp.attn_softcap}, hp.is_swa(il) ? hp.n_swa : 0};
}

std::string AttentionGridName(const AttentionGrid& g) { return fmt::format("tile={} split={}", g.q_tile, g.split_blocks); }

AttentionPass::AttentionPass(const KvLayout& layout, int32_t n_head, ThreadPool& pool)
    : layout_(layout), n_head_(n_head), group_(n_head / layout.n_head_kv), pool_(pool) {}

void AttentionPass::Plan(const AttentionGrid& grid, int32_t window, std::span<const AttentionQuery> queries) {
  const int32_t n_q = static_cast<int32_t>(queries.size()), n_kv = layout_.n_head_kv, B = layout_.block_tokens;
  tiles_.clear();
  jobs_.clear();
  tile_of_.resize(queries.size());
  for (int32_t i = 0; i < n_q;) {
    int32_t j = i + 1;
    while (j < n_q && j - i < grid.q_tile && queries[j].seq == queries[i].seq && queries[j].pos == queries[j - 1].pos + 1)
      ++j;
    for (int32_t x = i; x < j; ++x) tile_of_[x] = static_cast<int32_t>(tiles_.size());
    tiles_.push_back({i, j - i, 0, 0});
    i = j;
  }
  // Ranges per tile: at most split_blocks blocks each, and enough that every thread has a job.
  const int64_t base_jobs = static_cast<int64_t>(tiles_.size()) * n_kv;
  const int32_t min_splits = static_cast<int32_t>((pool_.n_threads() + base_jobs - 1) / base_jobs);
  const size_t row = static_cast<size_t>(layout_.head_dim) + 2;
  size_t offset = 0;
  for (size_t ti = 0; ti < tiles_.size(); ++ti) {
    Tile& tile = tiles_[ti];
    const int32_t b_end = queries[tile.first + tile.n - 1].pos / B + 1;
    const int32_t b_begin = window > 0 ? std::max(0, queries[tile.first].pos - window + 1) / B : 0;
    const int32_t nb = b_end - b_begin;
    int32_t splits = std::max(min_splits, grid.split_blocks > 0 ? (nb + grid.split_blocks - 1) / grid.split_blocks : 1);
    splits = std::min(splits, nb);
    const int32_t per = (nb + splits - 1) / splits;
    tile.jobs0 = static_cast<int32_t>(jobs_.size());
    tile.ranges = (nb + per - 1) / per;
    for (int32_t g = 0; g < n_kv; ++g) {
      for (int32_t b0 = b_begin; b0 < b_end; b0 += per) {
        jobs_.push_back({static_cast<int32_t>(ti), g, b0, std::min(b_end, b0 + per), offset});
        offset += static_cast<size_t>(tile.n) * group_ * row;
      }
    }
  }
  partial_.resize(offset);
}

void AttentionPass::Run(const AttentionGrid& grid, const AttentionMath& math, std::span<const AttentionQuery> queries,
                        const float* q, const std::vector<std::vector<uint8_t*>>& slices, float* out, float* partial,
                        kernels::Path path) {
  if (queries.empty()) return;
  Plan(grid, math.window, queries);
  const KvLayout& L = layout_;
  const int32_t D = L.head_dim, B = L.block_tokens, n_kv = L.n_head_kv, group = group_, nth = pool_.n_threads();
  const size_t E = static_cast<size_t>(n_head_) * D, row = static_cast<size_t>(D) + 2, row_bytes = L.row_bytes();
  // Keys of position p0 are visible from p iff p0 <= p and, with a window, p - p0 < window.
  const int32_t window = math.window > 0 ? math.window : std::numeric_limits<int32_t>::max();
  scratch_.resize(static_cast<size_t>(D) * nth);
  state_.resize(static_cast<size_t>(nth));
  for (auto& s : state_) s.resize(static_cast<size_t>(grid.q_tile) * group);

  // Later tiles see more blocks: hand out the jobs from the last, heaviest first.
  pool_.ParallelTasks(static_cast<int64_t>(jobs_.size()), [&](int64_t task, int ith) {
    const Job& job = jobs_[jobs_.size() - 1 - static_cast<size_t>(task)];
    const Tile& tile = tiles_[static_cast<size_t>(job.tile)];
    const AttentionQuery* tq = &queries[static_cast<size_t>(tile.first)];
    const std::vector<uint8_t*>& blocks = slices[static_cast<size_t>(tq->seq)];
    const int32_t rows = tile.n * group;
    kernels::SoftmaxPartial* state = state_[static_cast<size_t>(ith)].data();
    std::fill(state, state + rows, kernels::SoftmaxPartial{});
    float* acc = &partial_[job.partial];
    for (int32_t r = 0; r < rows; ++r) std::fill(acc + r * row, acc + r * row + D, 0.0f);
    // The group's query heads are contiguous in q and share KV head g.
    const float* qt = q + static_cast<size_t>(tile.first) * E + static_cast<size_t>(job.g) * group * D;
    int32_t first_key[AttentionGrid::kMaxQueryTile], n_keys[AttentionGrid::kMaxQueryTile];
    // The rows of block b that the tile's last (furthest) query sees.
    const auto prefetch = [&](int32_t b) {
      const uint8_t* slice = blocks[static_cast<size_t>(b)];
      if (slice == nullptr) return;
      const size_t rows = static_cast<size_t>(std::clamp(tq[tile.n - 1].pos + 1 - b * B, 0, B));
      PrefetchBlock(slice + L.k_offset(job.g, 0), slice + L.v_offset(job.g, 0), rows * row_bytes);
    };
    prefetch(job.b0);
    for (int32_t b = job.b0; b < job.b1; ++b) {
      if (b + 1 < job.b1) prefetch(b + 1);  // one block ahead
      for (int32_t t = 0; t < tile.n; ++t) {
        const int64_t p = tq[t].pos, p0 = int64_t{b} * B;
        n_keys[t] = static_cast<int32_t>(std::clamp<int64_t>(p + 1 - p0, 0, B));
        first_key[t] = static_cast<int32_t>(std::clamp<int64_t>(p - window + 1 - p0, 0, B));
      }
      const uint8_t* slice = blocks[static_cast<size_t>(b)];
      if (slice == nullptr) continue;  // held by another rank (partial mode)
      kernels::AttendTile(qt, E, tile.n, group, first_key, n_keys, slice + L.k_offset(job.g, 0),
                          slice + L.v_offset(job.g, 0), row_bytes, L.type, D, math.score, state, acc, row,
                          &scratch_[static_cast<size_t>(ith) * D], path);
    }
    if (tile.ranges == 1 && partial != nullptr) {  // the tile's only range: its state is the result
      for (int32_t r = 0; r < rows; ++r) {
        float* dst = partial + (static_cast<size_t>(tile.first + r / group) * n_head_ + job.g * group + r % group) * row;
        std::copy(acc + r * row, acc + r * row + D, dst);
        dst[D] = state[r].m;
        dst[D + 1] = state[r].l;
      }
      return;
    }
    if (tile.ranges == 1) {  // the tile's only range: normalize straight into out, nothing to merge
      for (int32_t r = 0; r < rows; ++r) {
        float* dst =
            out + static_cast<size_t>(tile.first + r / group) * E + static_cast<size_t>(job.g * group + r % group) * D;
        const float inv = 1.0f / state[r].l;
        for (int32_t d = 0; d < D; ++d) dst[d] = acc[r * row + d] * inv;
      }
      return;
    }
    for (int32_t r = 0; r < rows; ++r) {
      acc[r * row + D] = state[r].m;
      acc[r * row + D + 1] = state[r].l;
    }
  });

  // Decode on a short context usually has one range per tile: no merge pass.
  if (std::all_of(tiles_.begin(), tiles_.end(), [](const Tile& t) { return t.ranges == 1; })) return;
  const int64_t n_q = static_cast<int64_t>(queries.size());
  if (partial != nullptr) merge_scratch_.resize(static_cast<size_t>(n_q * n_kv) * D);
  pool_.ParallelFor(n_q * n_kv, 1, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; ++x) {
      const int64_t i = x / n_kv;
      const int32_t g = static_cast<int32_t>(x % n_kv);
      const Tile& tile = tiles_[static_cast<size_t>(tile_of_[static_cast<size_t>(i)])];
      if (tile.ranges == 1) continue;  // written by its job
      const int32_t t = static_cast<int32_t>(i) - tile.first;
      const Job* jobs = &jobs_[static_cast<size_t>(tile.jobs0 + g * tile.ranges)];
      for (int32_t hq = 0; hq < group; ++hq) {
        // In partial mode the merge runs in this thread's scratch row.
        float* dst = partial != nullptr ? &merge_scratch_[static_cast<size_t>(x) * D]
                                        : out + static_cast<size_t>(i) * E + static_cast<size_t>(g * group + hq) * D;
        kernels::SoftmaxPartial total;
        std::fill(dst, dst + D, 0.0f);
        for (int32_t j = 0; j < tile.ranges; ++j) {
          const float* src = &partial_[jobs[j].partial + static_cast<size_t>(t * group + hq) * row];
          kernels::MergePartial(&total, dst, kernels::SoftmaxPartial{src[D], src[D + 1]}, src, D);
        }
        if (partial != nullptr) {
          float* p = partial + (static_cast<size_t>(i) * n_head_ + g * group + hq) * row;
          std::copy(dst, dst + D, p);
          p[D] = total.m;
          p[D + 1] = total.l;
          continue;
        }
        const float inv = 1.0f / total.l;
        for (int32_t d = 0; d < D; ++d) dst[d] *= inv;
      }
    }
  });
}

}  // namespace strata
