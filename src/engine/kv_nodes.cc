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

void KvNodeCosts::ObserveAttention(uint64_t query_blocks, double seconds) {
  if (query_blocks == 0 || seconds <= 0) return;
  seconds_per_query_block += kEwma * (seconds / static_cast<double>(query_blocks) - seconds_per_query_block);
}

void KvNodeCosts::ObserveComputeWait(double seconds, double priced) {
  if (seconds <= 0) return;
  round_trip_s += kEwma * (std::max(seconds - priced, 0.0) - round_trip_s);
}

void KvNodeCosts::ObserveFetchWait(double seconds, double bytes, double latency_share) {
  if (bytes <= 0 || seconds < 0) return;
  // A floor keeps a stream that arrived before rank 0 asked from pricing bytes at nothing.
  const double observed = std::max(std::max(seconds - latency_share, 0.0) / bytes, seconds_per_byte * 0.1);
  fetch_seconds_per_byte += kEwma * (observed - fetch_seconds_per_byte);
}

std::string KvNodesSummary(const KvNodeStats& s) {
  return fmt::format("{} blocks on KV nodes; moved out {}, back {}; remote block reads: {} by computation, {} by data; "
                     "measured: round trip {:.1f} us, link {:.2f} GB/s, fetching {:.2f} GB/s, attention {:.0f} ns per "
                     "query-block",
                     s.blocks_on_nodes, s.moved_out, s.moved_in, s.reads_compute, s.reads_data,
                     s.costs.round_trip_s * 1e6, 1e-9 / s.costs.seconds_per_byte, 1e-9 / s.costs.fetch_seconds_per_byte,
                     s.costs.seconds_per_query_block * 1e9);
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

Status KvNodes::MeasureLink() {
  const auto fastest = [&](int64_t n, double* best) {
    std::vector<float> x(static_cast<size_t>(n), 0.0f);
    *best = 1e9;
    for (int i = 0; i < kKvNodeLinkProbes; ++i) {
      const double t0 = Seconds();
      STRATA_RETURN_IF_ERROR(cluster_.AllReduceSum(x.data(), n));
      *best = std::min(*best, Seconds() - t0);
    }
    return Status::Ok();
  };
  double one = 0, big = 0;
  STRATA_RETURN_IF_ERROR(fastest(1, &one));
  STRATA_RETURN_IF_ERROR(fastest(kKvNodeLinkProbeFloats, &big));
  costs_.round_trip_s = one;
  costs_.seconds_per_byte = std::max(big - one, 1e-7) / (4.0 * kKvNodeLinkProbeFloats);
  costs_.fetch_seconds_per_byte = costs_.seconds_per_byte;
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
                      static_cast<double>(node_blocks) * layout_.slice_bytes() * costs_.fetch_seconds_per_byte +
                      static_cast<double>(node_query_blocks) * costs_.seconds_per_query_block;
  return data < compute ? KvNodeMode::kData : KvNodeMode::kCompute;
}

KvNodes::StepBlocks KvNodes::MarkPlan(const StepPlan& plan) {
  const int32_t B = layout_.block_tokens;
  StepBlocks sb;
  sb.must.assign(home_.size(), 0);
  sb.in_plan.assign(home_.size(), 0);
  for (const PlanEntry& e : plan.entries) {
    for (size_t i = 0; i < e.blocks.size(); ++i) {
      const auto b = static_cast<size_t>(e.blocks[i]);
      // Blocks before the first written one hold positions < start only: full.
      const bool written = static_cast<int64_t>(i) >= e.start / B;
      sb.must[b] |= written;
      full_[b] = !written;
      live_[b] = 1;
      last_read_[b] = step_no_;
      if (!sb.in_plan[b]) sb.order.push_back(e.blocks[i]);
      sb.in_plan[b] = 1;
    }
  }
  for (const BlockCopy& c : plan.copies) {
    sb.must[static_cast<size_t>(c.from)] = sb.must[static_cast<size_t>(c.to)] = 1;
    live_[static_cast<size_t>(c.to)] = 1;
    full_[static_cast<size_t>(c.to)] = 0;
  }
  return sb;
}

void KvNodes::BringHome(const StepBlocks& sb, KvNodeStep* step) {
  for (size_t b = 0; b < home_.size(); ++b) {
    if (!sb.must[b] || home_[b] == 0) continue;
    step->moves.push_back({static_cast<BlockId>(b), home_[b], 0});
    --node_used_[static_cast<size_t>(home_[b])];
    home_[b] = 0;
    ++stats_.moved_in;
  }
}

int32_t KvNodes::RoomiestNode() const {
  int32_t best = 0;
  int64_t room = 0;
  for (int32_t r = 1; r < cluster_.size(); ++r) {
    const int64_t free = node_cap_[static_cast<size_t>(r)] - node_used_[static_cast<size_t>(r)];
    if (free > room) best = r, room = free;
  }
  return best;
}

bool KvNodes::Movable(const StepBlocks& sb, size_t b) const {
  return live_[b] && home_[b] == 0 && full_[b] && !sb.must[b];
}

std::vector<BlockId> KvNodes::IdleLocalBlocks(const StepBlocks& sb) const {
  std::vector<BlockId> idle;
  for (size_t b = 0; b < home_.size(); ++b)
    if (Movable(sb, b) && !sb.in_plan[b]) idle.push_back(static_cast<BlockId>(b));
  std::stable_sort(idle.begin(), idle.end(), [&](BlockId x, BlockId y) {
    return last_read_[static_cast<size_t>(x)] < last_read_[static_cast<size_t>(y)];
  });
  return idle;
}

int64_t KvNodes::LocalBlocks() const {
  int64_t local = 0;
  for (size_t b = 0; b < home_.size(); ++b) local += live_[b] && home_[b] == 0;
  return local;
}

void KvNodes::MoveIn(const StepBlocks& sb, KvNodeStep* step) {
  int64_t local = LocalBlocks();
  // Each idle local block may trade places with a remote block the step reads.
  const std::vector<BlockId> idle = IdleLocalBlocks(sb);
  size_t next_idle = 0;
  int32_t moved = 0;
  for (auto it = sb.order.rbegin(); it != sb.order.rend() && moved < kKvNodeMaxMovesInPerStep; ++it) {
    const auto b = static_cast<size_t>(*it);
    const int32_t node = home_[b];
    if (node == 0) continue;
    const bool room = local < local_cap_;
    if (!room && next_idle == idle.size()) break;
    step->moves.push_back({*it, node, 0});
    home_[b] = 0;
    ++stats_.moved_in;
    ++moved;
    if (room) {
      --node_used_[static_cast<size_t>(node)];
      ++local;
    } else {  // the idle block takes its place on the node
      const BlockId out = idle[next_idle++];
      step->moves.push_back({out, 0, node});
      home_[static_cast<size_t>(out)] = node;
      ++stats_.moved_out;
    }
  }
}

void KvNodes::MoveOut(const StepBlocks& sb, KvNodeStep* step) {
  int64_t local = LocalBlocks();
  if (local <= local_cap_) return;
  // Candidates: full local blocks the step does not write; idle ones, least
  // recently read first, then the batch's, oldest position first.
  std::vector<BlockId> candidates = IdleLocalBlocks(sb);
  for (BlockId b : sb.order)
    if (Movable(sb, static_cast<size_t>(b))) candidates.push_back(b);
  for (size_t c = 0; c < candidates.size() && local > local_cap_; ++c) {
    const int32_t node = RoomiestNode();
    if (node == 0) return;  // the nodes are full: rank 0 holds the rest (the pool's size bounds it)
    step->moves.push_back({candidates[c], 0, node});
    home_[static_cast<size_t>(candidates[c])] = node;
    ++node_used_[static_cast<size_t>(node)];
    --local;
    ++stats_.moved_out;
  }
}

void KvNodes::ChooseModes(const StepPlan& plan, const StepBlocks& sb, KvNodeStep* step) {
  const auto ranks = static_cast<size_t>(cluster_.size());
  std::vector<int64_t> node_blocks(ranks, 0), query_blocks(ranks, 0);  // [rank]; rank 0: the local ones
  for (BlockId b : sb.order) ++node_blocks[static_cast<size_t>(home_[static_cast<size_t>(b)])];
  for (const PlanEntry& e : plan.entries)
    for (BlockId b : e.blocks)
      query_blocks[static_cast<size_t>(home_[static_cast<size_t>(b)])] += static_cast<int64_t>(e.tokens.size());
  std::vector<KvNodeMode> mode(ranks, KvNodeMode::kCompute);
  for (size_t r = 1; r < ranks; ++r)
    if (node_blocks[r] > 0) mode[r] = ChooseMode(plan.n_tokens(), node_blocks[r], query_blocks[r], query_blocks[0]);
  for (BlockId b : sb.order) {
    const auto h = static_cast<size_t>(home_[static_cast<size_t>(b)]);
    if (h == 0) continue;
    step->remote.push_back({b, static_cast<int32_t>(h), mode[h]});
    (mode[h] == KvNodeMode::kCompute ? stats_.reads_compute : stats_.reads_data)++;
  }
}

void KvNodes::Prepare(const StepPlan& plan, KvNodeStep* step) {
  *step = KvNodeStep{};
  step->discards = std::move(discards_);
  discards_.clear();
  ++step_no_;
  const StepBlocks sb = MarkPlan(plan);
  BringHome(sb, step);
  MoveOut(sb, step);
  MoveIn(sb, step);
  ChooseModes(plan, sb, step);
}

Status KvNodes::Transfer(const KvNodeStep& step, BlockStore& store) {
  const std::pair<int32_t, int32_t> all{0, layout_.n_layer};
  std::vector<uint8_t> bytes(layout_.block_bytes());
  for (const KvNodeMove& m : step.moves) {
    if (m.from == 0) {
      STRATA_RETURN_IF_ERROR(ReadKvPart(store, m.block, all, &bytes));
      STRATA_RETURN_IF_ERROR(cluster_.SendBytes(m.to, bytes.data(), static_cast<int64_t>(bytes.size())));
      store.Discard(m.block);
    } else {
      STRATA_RETURN_IF_ERROR(cluster_.RecvBytes(m.from, bytes.data(), static_cast<int64_t>(bytes.size())));
      STRATA_RETURN_IF_ERROR(WriteKvPart(store, m.block, all, bytes));
    }
  }
  return Status::Ok();
}

KvNodeStats KvNodes::stats() const {
  KvNodeStats s = stats_;
  s.costs = costs_;
  s.blocks_on_nodes = 0;
  for (size_t r = 1; r < node_used_.size(); ++r) s.blocks_on_nodes += static_cast<int32_t>(node_used_[r]);
  return s;
}

}  // namespace strata
