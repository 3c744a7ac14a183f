// AttentionPass: causal grouped-query attention of a batch of query tokens
// over their sequences' paged KV slices, on a thread pool, on a given grid.
//
// Work is cut into jobs (query tile, KV head, range of KV blocks). A query
// tile is a run of up to grid.q_tile consecutive positions of one sequence:
// each KV block is read once per tile (kernels::AttendTile) instead of once
// per token. A tile's KV blocks are split into ranges of at most
// grid.split_blocks blocks, and further while there are fewer jobs than
// threads, so that a decode step (one token) keeps every core busy; the
// ranges' partial results are merged by log-sum-exp (a tile with a single
// range is normalized by its job, with no merge pass). The output does not
// depend on the grid beyond float rounding.
//
// Thread-safety: one Run at a time; Run uses the pool.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/thread_pool.h"
#include "kv/kv_layout.h"
#include "model/hparams.h"

namespace strata {

struct AttentionGrid {
  int32_t q_tile = 8;        // query tokens per tile, 1..kMaxQueryTile
  int32_t split_blocks = 0;  // KV blocks per job at most; 0: no limit
  static constexpr int32_t kMaxQueryTile = 64;
  bool Valid() const { return q_tile >= 1 && q_tile <= kMaxQueryTile && split_blocks >= 0; }
  bool operator==(const AttentionGrid&) const = default;
};
// "tile=T split=S", for logs.
std::string AttentionGridName(const AttentionGrid& g);

// The attention of one layer: how scores are formed, and which keys a query sees.
struct AttentionMath {
  kernels::ScoreParams score;  // scale (1/sqrt(head_dim) for most models) and soft-cap
  // > 0: a query at position p sees the keys at positions p - window + 1 .. p
  // (a sliding window); 0: every key up to p.
  int32_t window = 0;
};

// Layer il's attention math as hp says (scale, soft-cap, sliding window).
AttentionMath LayerAttentionMath(const HParams& hp, int32_t il);

// One query token: the sequence whose blocks it reads (an index into the
// slices passed to Run) and its absolute position.
struct AttentionQuery {
  int32_t seq;
  int32_t pos;
};

class AttentionPass {
 public:
  // REQUIRES: layout.n_head_kv divides n_head; pool outlives this object.
  AttentionPass(const KvLayout& layout, int32_t n_head, ThreadPool& pool);

  // out[i] = softmax(scores(q[i], K)) · V over the positions queries[i].pos
  // sees in sequence queries[i].seq (0..pos, or its window), head by head
  // (query head h reads KV head h / (n_head / n_head_kv)); scores as math.score.
  // q, out: F32 [head_dim * n_head, n_queries]; q rotated, out does not alias q.
  // slices[s][b]: the layer's slice of block b of sequence s, holding every
  // position up to the largest pos queried in s (blocks wholly before every
  // window are not read).
  // REQUIRES: grid.Valid(), math.window >= 0.
  //
  // With partial (KV blocks spread over ranks, engine/kv_node_attention.h):
  // null slices are skipped (held elsewhere), out is not written, and each
  // query row's and head's softmax state over the slices given is written
  // instead: partial F32 [head_dim + 2, n_head, n_queries], the unnormalized
  // sum of values then m and l (kernels::SoftmaxPartial; l == 0: no key seen),
  // to be merged exactly with other ranks' (kernels::MergePartial).
  void Run(const AttentionGrid& grid, const AttentionMath& math, std::span<const AttentionQuery> queries,
           const float* q, const std::vector<std::vector<uint8_t*>>& slices, float* out, float* partial = nullptr,
           kernels::Path path = kernels::BestPath());

 private:
  struct Job {
    int32_t tile, g, b0, b1;
    size_t partial;  // offset into partial_
  };
  struct Tile {
    int32_t first, n;  // queries [first, first + n)
    int32_t jobs0;     // its jobs: ranges jobs for KV head 0 from jobs0, then KV head 1, ...
    int32_t ranges;    // block ranges per KV head
  };
  // Tiles and their jobs; a tile's blocks start at the first its first query's window reaches.
  void Plan(const AttentionGrid& grid, int32_t window, std::span<const AttentionQuery> queries);

  KvLayout layout_;
  int32_t n_head_, group_;
  ThreadPool& pool_;
  std::vector<Tile> tiles_;
  std::vector<Job> jobs_;
  std::vector<int32_t> tile_of_;  // [n_queries] index into tiles_
  std::vector<float> partial_;  // per job: F32 [head_dim + 2, tile tokens * group] (acc, m, l per query row)
  std::vector<float> merge_scratch_;  // F32 [head_dim, n_kv_heads, n_queries] (partial mode's merge)
  std::vector<float> scratch_;  // F32 [head_dim, n_threads] dequantized rows (scalar path)
  std::vector<std::vector<kernels::SoftmaxPartial>> state_;  // per thread: [q_tile * group]
};

}  // namespace strata
