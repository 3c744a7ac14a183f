#include "engine/kv_node_attention.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fmt/format.h>

#include "kernels/attention.h"
#include "kv/kv_shard.h"

namespace strata {

namespace {

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

KvNodeReader::KvNodeReader(Cluster& cluster, BlockStore& store, int32_t n_head, ThreadPool& pool)
    : LocalKv(store, n_head, pool), cluster_(cluster), n_head_(n_head), pool_(pool) {}

void KvNodeReader::SetStep(const KvNodeStep* step, KvNodeCosts* costs) {
  next_step_ = step;
  costs_ = costs;
}

void KvNodeReader::BeginStep(const StepPlan& plan) {
  const KvNodeStep* step = next_step_;
  next_step_ = nullptr;
  active_ = step != nullptr && !step->remote.empty();
  for (std::vector<BlockId>& d : data_) d.clear();
  compute_ranks_.clear();
  if (!active_) {
    remote_of_.clear();
    return;
  }
  any_compute_ = step->any_compute();
  data_.resize(static_cast<size_t>(cluster_.size()));
  std::vector<uint8_t> computes(static_cast<size_t>(cluster_.size()), 0);
  BlockId max_id = 0;
  for (const PlanEntry& e : plan.entries)
    for (BlockId b : e.blocks) max_id = std::max(max_id, b);
  for (const KvNodeBlock& r : step->remote) max_id = std::max(max_id, r.block);
  remote_of_.assign(static_cast<size_t>(max_id) + 1, 0);
  for (const KvNodeBlock& r : step->remote) {
    remote_of_[static_cast<size_t>(r.block)] = r.mode == KvNodeMode::kCompute ? 1 : 2;
    if (r.mode == KvNodeMode::kData) data_[static_cast<size_t>(r.rank)].push_back(r.block);
    if (r.mode == KvNodeMode::kCompute) computes[static_cast<size_t>(r.rank)] = 1;
  }
  for (int32_t r = 1; r < cluster_.size(); ++r)
    if (computes[static_cast<size_t>(r)]) compute_ranks_.push_back(r);
  local_query_blocks_ = 0;
  std::vector<int64_t> node_query_blocks(static_cast<size_t>(cluster_.size()), 0);
  std::vector<int32_t> rank_of(remote_of_.size(), 0);
  for (const KvNodeBlock& r : step->remote) rank_of[static_cast<size_t>(r.block)] = r.rank;
  for (const PlanEntry& e : plan.entries)
    for (BlockId b : e.blocks) {
      const auto tokens = static_cast<int64_t>(e.tokens.size());
      if (remote_of_[static_cast<size_t>(b)] != 1) local_query_blocks_ += tokens;
      else node_query_blocks[static_cast<size_t>(rank_of[static_cast<size_t>(b)])] += tokens;
    }
  node_query_blocks_ = *std::max_element(node_query_blocks.begin(), node_query_blocks.end());
}

Status KvNodeReader::Attend(const AttentionGrid& grid, const AttentionMath& math,
                            std::span<const AttentionQuery> queries, const StepPlan& plan, float* q, Slices* slices,
                            float* out) {
  if (!active_) return LocalKv::Attend(grid, math, queries, plan, q, slices, out);
  const int32_t D = layout().head_dim;
  const int64_t n_q = static_cast<int64_t>(queries.size()), E = int64_t{n_head_} * D, row = D + 2;
  const double t_bcast = Seconds();
  if (any_compute_) STRATA_RETURN_IF_ERROR(cluster_.BroadcastFloats(q, n_q * E));
  double compute_wait = Seconds() - t_bcast;
  // Data mode: each node's slices of this layer, one message per node.
  fetched_.resize(data_.size());
  std::vector<std::pair<BlockId, uint8_t*>> at;
  const double t_fetch = Seconds();
  double fetched_bytes = 0;
  for (size_t r = 1; r < data_.size(); ++r) {
    if (data_[r].empty()) continue;
    fetched_[r].resize(data_[r].size() * layout().slice_bytes());
    STRATA_RETURN_IF_ERROR(cluster_.RecvBytes(static_cast<int32_t>(r), fetched_[r].data(),
                                              static_cast<int64_t>(fetched_[r].size())));
    for (size_t k = 0; k < data_[r].size(); ++k) at.emplace_back(data_[r][k], &fetched_[r][k * layout().slice_bytes()]);
    fetched_bytes += static_cast<double>(fetched_[r].size());
  }
  if (costs_ != nullptr && fetched_bytes > 0)
    costs_->ObserveFetchWait(Seconds() - t_fetch, fetched_bytes, costs_->round_trip_s / (2.0 * layout().n_layer));
  std::sort(at.begin(), at.end());
  for (size_t e = 0; e < plan.entries.size(); ++e)
    for (size_t b = 0; b < plan.entries[e].blocks.size(); ++b) {
      const BlockId id = plan.entries[e].blocks[b];
      if (remote_of_[static_cast<size_t>(id)] != 2) continue;
      const auto it = std::lower_bound(at.begin(), at.end(), std::make_pair(id, static_cast<uint8_t*>(nullptr)));
      (*slices)[e][b] = it->second;
    }
  partial_.resize(static_cast<size_t>(n_q * n_head_ * row));
  const double t0 = Seconds();
  pass().Run(grid, math, queries, q, *slices, nullptr, partial_.data());
  if (costs_ != nullptr) costs_->ObserveAttention(static_cast<uint64_t>(local_query_blocks_), Seconds() - t0);
  // Compute mode: each node's softmax state, merged into rank 0's.
  theirs_.resize(partial_.size());
  for (int32_t r : compute_ranks_) {
    const double t_recv = Seconds();
    STRATA_RETURN_IF_ERROR(cluster_.Recv(r, theirs_.data(), static_cast<int64_t>(theirs_.size())));
    compute_wait += Seconds() - t_recv;
    pool_.ParallelFor(n_q * n_head_, 64, [&](int64_t begin, int64_t end) {
      for (int64_t x = begin; x < end; ++x) {
        float* mine = &partial_[static_cast<size_t>(x * row)];
        const float* other = &theirs_[static_cast<size_t>(x * row)];
        kernels::SoftmaxPartial s{mine[D], mine[D + 1]};
        kernels::MergePartial(&s, mine, kernels::SoftmaxPartial{other[D], other[D + 1]}, other, D);
        mine[D] = s.m;
        mine[D + 1] = s.l;
      }
    });
  }
  if (costs_ != nullptr && !compute_ranks_.empty()) {
    // What the model prices besides the round trip (KvNodes::ChooseMode).
    const double bytes = 4.0 * static_cast<double>(n_q * E + n_q * n_head_ * row);
    const double priced = bytes * costs_->seconds_per_byte +
                          static_cast<double>(std::max<int64_t>(node_query_blocks_ - local_query_blocks_, 0)) *
                              costs_->seconds_per_query_block;
    costs_->ObserveComputeWait(compute_wait, priced);
  }
  pool_.ParallelFor(n_q * n_head_, 64, [&](int64_t begin, int64_t end) {
    for (int64_t x = begin; x < end; ++x) {
      const float* p = &partial_[static_cast<size_t>(x * row)];
      const float inv = p[D + 1] > 0 ? 1.0f / p[D + 1] : 0.0f;
      for (int32_t d = 0; d < D; ++d) out[x * D + d] = p[d] * inv;
    }
  });
  return Status::Ok();
}

KvNodeServer::KvNodeServer(const Model& model, Cluster& cluster, BlockStore& store, ThreadPool& pool,
                           AttentionGrid grid, int64_t capacity_blocks)
    : model_(model),
      cluster_(cluster),
      store_(store),
      pool_(pool),
      grid_(grid),
      pass_(store.layout(), model.hparams().n_head, pool),
      capacity_(capacity_blocks),
      held_(static_cast<size_t>(store.n_blocks()), 0) {}

Status KvNodeServer::RunStep(const StepPlan& plan, const KvNodeStep& step) {
  STRATA_RETURN_IF_ERROR(ApplyDiscardsAndMoves(step));
  if (step.remote.empty()) return Status::Ok();
  return AttendLayers(plan, step);
}

Status KvNodeServer::SendHeld(const std::vector<BlockId>& blocks) {
  std::vector<uint8_t> bytes;
  for (BlockId b : blocks) {
    if (b >= static_cast<BlockId>(held_.size()))
      return Status::Corrupt(fmt::format("from rank 0: KV block {} of {}", b, held_.size()));
    if (!held_[static_cast<size_t>(b)]) continue;
    STRATA_RETURN_IF_ERROR(ReadKvPart(store_, b, {0, store_.layout().n_layer}, &bytes));
    STRATA_RETURN_IF_ERROR(cluster_.SendBytes(0, bytes.data(), static_cast<int64_t>(bytes.size())));
  }
  return Status::Ok();
}

Status KvNodeServer::ApplyDiscardsAndMoves(const KvNodeStep& step) {
  const int32_t me = cluster_.rank();
  const KvLayout& L = store_.layout();
  const auto held = [&](BlockId b) { return held_[static_cast<size_t>(b)] != 0; };
  for (const KvNodeDiscard& d : step.discards) {
    if (d.rank != me) continue;
    if (!held(d.block)) return Status::Corrupt(fmt::format("from rank 0: discard of block {}, not held here", d.block));
    store_.Discard(d.block);
    held_[static_cast<size_t>(d.block)] = 0;
    --n_held_;
  }
  const std::pair<int32_t, int32_t> all{0, L.n_layer};
  std::vector<uint8_t> bytes;
  for (const KvNodeMove& m : step.moves) {
    if (m.to == me) {
      if (held(m.block)) return Status::Corrupt(fmt::format("from rank 0: block {} moved here twice", m.block));
      if (n_held_ >= capacity_)
        return Status::Corrupt(fmt::format("from rank 0: more than the {} blocks this node's --kv-ram holds", capacity_));
      bytes.resize(L.block_bytes());
      STRATA_RETURN_IF_ERROR(cluster_.RecvBytes(0, bytes.data(), static_cast<int64_t>(bytes.size())));
      STRATA_RETURN_IF_ERROR(WriteKvPart(store_, m.block, all, bytes));
      held_[static_cast<size_t>(m.block)] = 1;
      ++n_held_;
    } else if (m.from == me) {
      if (!held(m.block)) return Status::Corrupt(fmt::format("from rank 0: block {} asked back, not held here", m.block));
      STRATA_RETURN_IF_ERROR(ReadKvPart(store_, m.block, all, &bytes));
      STRATA_RETURN_IF_ERROR(cluster_.SendBytes(0, bytes.data(), static_cast<int64_t>(bytes.size())));
      store_.Discard(m.block);
      held_[static_cast<size_t>(m.block)] = 0;
      --n_held_;
    }
  }
  return Status::Ok();
}

Status KvNodeServer::AttendLayers(const StepPlan& plan, const KvNodeStep& step) {
  const int32_t me = cluster_.rank();
  const KvLayout& L = store_.layout();
  const auto held = [&](BlockId b) { return held_[static_cast<size_t>(b)] != 0; };
  // This node's blocks of the step: data mode in message order, compute mode as a set.
  std::vector<BlockId> data;
  std::vector<uint8_t> compute(held_.size(), 0);
  for (const KvNodeBlock& r : step.remote) {
    if (r.rank != me) continue;
    if (!held(r.block)) return Status::Corrupt(fmt::format("from rank 0: block {} read here, not held", r.block));
    if (r.mode == KvNodeMode::kData) data.push_back(r.block);
    if (r.mode == KvNodeMode::kCompute) compute[static_cast<size_t>(r.block)] = 1;
  }
  const bool computes = std::find(compute.begin(), compute.end(), 1) != compute.end();
  const HParams& hp = model_.hparams();
  std::vector<AttentionQuery> queries;
  for (size_t e = 0; e < plan.entries.size(); ++e)
    for (size_t t = 0; t < plan.entries[e].tokens.size(); ++t)
      queries.push_back({static_cast<int32_t>(e), plan.entries[e].start + static_cast<int32_t>(t)});
  const int64_t n_q = static_cast<int64_t>(queries.size()), E = int64_t{hp.n_head} * hp.head_dim;
  std::vector<float> q(static_cast<size_t>(n_q * E)), partial(static_cast<size_t>(n_q * hp.n_head * (hp.head_dim + 2)));
  std::vector<std::vector<uint8_t*>> slices(plan.entries.size());
  std::vector<uint8_t> bytes;
  const bool q_broadcast = step.any_compute();  // any node's blocks read by computation
  for (int32_t il = 0; il < L.n_layer; ++il) {
    if (q_broadcast) STRATA_RETURN_IF_ERROR(cluster_.BroadcastFloats(q.data(), n_q * E));
    if (!data.empty()) {
      bytes.resize(data.size() * L.slice_bytes());
      for (size_t k = 0; k < data.size(); ++k) {
        uint8_t* p = nullptr;
        STRATA_RETURN_IF_ERROR(store_.Pin(data[k], il, &p));
        std::memcpy(&bytes[k * L.slice_bytes()], p, L.slice_bytes());
        store_.Unpin(data[k], il, false);
      }
      STRATA_RETURN_IF_ERROR(cluster_.SendBytes(0, bytes.data(), static_cast<int64_t>(bytes.size())));
    }
    if (!computes) continue;
    for (size_t e = 0; e < plan.entries.size(); ++e) {
      const std::vector<BlockId>& blocks = plan.entries[e].blocks;
      slices[e].assign(blocks.size(), nullptr);
      for (size_t b = 0; b < blocks.size(); ++b)
        if (compute[static_cast<size_t>(blocks[b])]) STRATA_RETURN_IF_ERROR(store_.Pin(blocks[b], il, &slices[e][b]));
    }
    pass_.Run(grid_, LayerAttentionMath(hp, il), queries, q.data(), slices, nullptr, partial.data());
    for (size_t e = 0; e < plan.entries.size(); ++e)
      for (size_t b = 0; b < slices[e].size(); ++b)
        if (slices[e][b] != nullptr) store_.Unpin(plan.entries[e].blocks[b], il, false);
    STRATA_RETURN_IF_ERROR(cluster_.Send(0, partial.data(), static_cast<int64_t>(partial.size())));
  }
  return Status::Ok();
}

}  // namespace strata
