#include "engine/kv_nodes.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>

#include "kv/kv_shard.h"

namespace strata {

namespace {

constexpr double kEwma = 0.2;  // weight of a new measurement
constexpr uint64_t kMaxNodeBytes = uint64_t{1} << 50;

double Seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void KvNodeCosts::ObserveLink(uint64_t bytes, double seconds) {
  if (bytes < 4096 || seconds <= 0) return;  // small messages measure latency, not the link
  const double past_latency = std::max(seconds - round_trip_s / 2, seconds / 4);
  seconds_per_byte += kEwma * (past_latency / static_cast<double>(bytes) - seconds_per_byte);
}

void KvNodeCosts::ObserveAttention(uint64_t query_blocks, double seconds) {
  if (query_blocks == 0 || seconds <= 0) return;
  seconds_per_query_block += kEwma * (seconds / static_cast<double>(query_blocks) - seconds_per_query_block);
}

std::string KvNodesSummary(const KvNodeStats& s) {
  return fmt::format("{} blocks on KV nodes; moved out {}, back {}; remote block reads: {} by computation, {} by data",
                     s.blocks_on_nodes, s.moved_out, s.moved_in, s.reads_compute, s.reads_data);
}

uint64_t KvNodes::NodeBytes(const Cluster& cluster, const KvLayout& layout) {
  uint64_t total = 0;
  for (int32_t r = 1; r < cluster.size(); ++r)
    total += std::min(cluster.kv_budget(r), kMaxNodeBytes) / layout.block_bytes() * layout.block_bytes();
  return total;
}

KvNodes::KvNodes(Cluster& cluster, const KvLayout& layout, int32_t n_head, int32_t n_blocks, uint64_t local_ram_bytes)
    : cluster_(cluster),
      layout_(layout),
      n_head_(n_head),
      local_cap_(static_cast<int64_t>(std::min(local_ram_bytes, kMaxNodeBytes) / layout.block_bytes())),
      node_cap_(static_cast<size_t>(cluster.size()), 0),
      node_used_(static_cast<size_t>(cluster.size()), 0),
      home_(static_cast<size_t>(n_blocks), 0),
      live_(static_cast<size_t>(n_blocks), 0),
      full_(static_cast<size_t>(n_blocks), 0),
      last_read_(static_cast<size_t>(n_blocks), 0) {
  for (int32_t r = 1; r < cluster.size(); ++r)
    node_cap_[static_cast<size_t>(r)] =
        static_cast<int64_t>(std::min(cluster.kv_budget(r), kMaxNodeBytes) / layout.block_bytes());
}

Status KvNodes::MeasureRoundTrip() {
  double best = 1e9;
  for (int i = 0; i < kKvNodeLatencyProbes; ++i) {
    float x = 0;
    const double t0 = Seconds();
    STRATA_RETURN_IF_ERROR(cluster_.AllReduceSum(&x, 1));
    best = std::min(best, Seconds() - t0);
  }
  costs_.round_trip_s = best;
  return Status::Ok();
}

void KvNodes::Freed(BlockId id) {
  const auto i = static_cast<size_t>(id);
  if (home_[i] != 0) {
    discards_.push_back({id, home_[i]});
    --node_used_[static_cast<size_t>(home_[i])];
    home_[i] = 0;
  }
  live_[i] = full_[i] = 0;
}

KvNodeMode KvNodes::ChooseMode(int64_t n_tokens, int64_t node_blocks, int64_t node_query_blocks,
                               int64_t local_query_blocks) const {
  switch (cluster_.kv_node_policy()) {
    case KvNodePolicy::kCompute: return KvNodeMode::kCompute;
    case KvNodePolicy::kData: return KvNodeMode::kData;
    case KvNodePolicy::kAuto: break;
  }
  // Per layer. Computing there: a round trip with q out and the softmax
  // state back, the node's attention overlapping rank 0's own; fetching: the
  // slices, streamed (one latency per step), then rank 0 attends over them too.
  const double q_bytes = 4.0 * n_tokens * n_head_ * layout_.head_dim;
  const double state_bytes = 4.0 * n_tokens * n_head_ * (layout_.head_dim + 2);
  const double compute = costs_.round_trip_s + (q_bytes + state_bytes) * costs_.seconds_per_byte +
                         std::max<double>(0, node_query_blocks - local_query_blocks) * costs_.seconds_per_query_block;
  const double data = costs_.round_trip_s / (2.0 * layout_.n_layer) +
                      static_cast<double>(node_blocks) * layout_.slice_bytes() * costs_.seconds_per_byte +
                      static_cast<double>(node_query_blocks) * costs_.seconds_per_query_block;
  return data < compute ? KvNodeMode::kData : KvNodeMode::kCompute;
}

void KvNodes::Prepare(const StepPlan& plan, KvNodeStep* step) {
  *step = KvNodeStep{};
  step->discards = std::move(discards_);
  discards_.clear();
  ++step_no_;
  const int32_t B = layout_.block_tokens;
  const size_t n_blocks = home_.size();
  std::vector<uint8_t> must(n_blocks, 0), in_plan(n_blocks, 0);
  std::vector<BlockId> plan_order;  // the plan's blocks, each once, oldest position first per entry
  for (const PlanEntry& e : plan.entries) {
    for (size_t i = 0; i < e.blocks.size(); ++i) {
      const auto b = static_cast<size_t>(e.blocks[i]);
      const bool written = static_cast<int64_t>(i) >= e.start / B;
      if (written) must[b] = 1;
      live_[b] = 1;
      last_read_[b] = step_no_;
      full_[b] = written ? 0 : (static_cast<int64_t>(i + 1) * B <= e.start ? 1 : full_[b]);
      if (!in_plan[b]) plan_order.push_back(e.blocks[i]);
      in_plan[b] = 1;
    }
  }
  for (const BlockCopy& c : plan.copies) {
    must[static_cast<size_t>(c.from)] = must[static_cast<size_t>(c.to)] = 1;
    live_[static_cast<size_t>(c.to)] = 1;
    full_[static_cast<size_t>(c.to)] = 0;
  }
  // Blocks the step writes or copies come home first.
  for (size_t b = 0; b < n_blocks; ++b) {
    if (!must[b] || home_[b] == 0) continue;
    step->moves.push_back({static_cast<BlockId>(b), home_[b], 0});
    --node_used_[static_cast<size_t>(home_[b])];
    home_[b] = 0;
    ++stats_.moved_in;
  }
  int64_t local = 0;
  for (size_t b = 0; b < n_blocks; ++b) local += live_[b] && home_[b] == 0;
  if (local > local_cap_) {
    // Candidates: idle blocks, least recently read first, then the batch's, oldest first.
    std::vector<BlockId> idle, candidates;
    for (size_t b = 0; b < n_blocks; ++b)
      if (live_[b] && home_[b] == 0 && full_[b] && !in_plan[b]) idle.push_back(static_cast<BlockId>(b));
    std::stable_sort(idle.begin(), idle.end(), [&](BlockId x, BlockId y) {
      return last_read_[static_cast<size_t>(x)] < last_read_[static_cast<size_t>(y)];
    });
    candidates = std::move(idle);
    for (BlockId b : plan_order)
      if (home_[static_cast<size_t>(b)] == 0 && full_[static_cast<size_t>(b)] && !must[static_cast<size_t>(b)])
        candidates.push_back(b);
    for (size_t c = 0; c < candidates.size() && local > local_cap_; ++c) {
      int32_t best = 0;
      int64_t room = 0;
      for (int32_t r = 1; r < cluster_.size(); ++r) {
        const int64_t free = node_cap_[static_cast<size_t>(r)] - node_used_[static_cast<size_t>(r)];
        if (free > room) best = r, room = free;
      }
      if (best == 0) break;  // the nodes are full: rank 0 holds the rest (the pool's size bounds it)
      const BlockId b = candidates[c];
      step->moves.push_back({b, 0, best});
      home_[static_cast<size_t>(b)] = best;
      ++node_used_[static_cast<size_t>(best)];
      --local;
      ++stats_.moved_out;
    }
  }
  // How the step reads each node's blocks.
  const int32_t ranks = cluster_.size();
  std::vector<int64_t> node_blocks(static_cast<size_t>(ranks), 0), node_qb(static_cast<size_t>(ranks), 0);
  int64_t local_qb = 0;
  for (BlockId b : plan_order) node_blocks[static_cast<size_t>(home_[static_cast<size_t>(b)])]++;
  for (const PlanEntry& e : plan.entries)
    for (BlockId b : e.blocks) {
      const int32_t h = home_[static_cast<size_t>(b)];
      (h == 0 ? local_qb : node_qb[static_cast<size_t>(h)]) += static_cast<int64_t>(e.tokens.size());
    }
  std::vector<KvNodeMode> mode(static_cast<size_t>(ranks), KvNodeMode::kCompute);
  for (int32_t r = 1; r < ranks; ++r)
    if (node_blocks[static_cast<size_t>(r)] > 0)
      mode[static_cast<size_t>(r)] =
          ChooseMode(plan.n_tokens(), node_blocks[static_cast<size_t>(r)], node_qb[static_cast<size_t>(r)], local_qb);
  for (BlockId b : plan_order) {
    const int32_t h = home_[static_cast<size_t>(b)];
    if (h == 0) continue;
    step->remote.push_back({b, h, mode[static_cast<size_t>(h)]});
    (mode[static_cast<size_t>(h)] == KvNodeMode::kCompute ? stats_.reads_compute : stats_.reads_data)++;
  }
}

Status KvNodes::Transfer(const KvNodeStep& step, BlockStore& store) {
  const std::pair<int32_t, int32_t> all{0, layout_.n_layer};
  std::vector<uint8_t> bytes(layout_.block_bytes());
  for (const KvNodeMove& m : step.moves) {
    const double t0 = Seconds();
    if (m.from == 0) {
      STRATA_RETURN_IF_ERROR(ReadKvPart(store, m.block, all, &bytes));
      STRATA_RETURN_IF_ERROR(cluster_.SendBytes(m.to, bytes.data(), static_cast<int64_t>(bytes.size())));
      store.Discard(m.block);
    } else {
      STRATA_RETURN_IF_ERROR(cluster_.RecvBytes(m.from, bytes.data(), static_cast<int64_t>(bytes.size())));
      STRATA_RETURN_IF_ERROR(WriteKvPart(store, m.block, all, bytes));
    }
    costs_.ObserveLink(bytes.size(), Seconds() - t0);
  }
  return Status::Ok();
}

KvNodeStats KvNodes::stats() const {
  KvNodeStats s = stats_;
  s.blocks_on_nodes = 0;
  for (size_t r = 1; r < node_used_.size(); ++r) s.blocks_on_nodes += static_cast<int32_t>(node_used_[r]);
  return s;
}

}  // namespace strata
