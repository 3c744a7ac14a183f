#include "engine/rank_server.h"

#include <algorithm>
#include <fmt/format.h>
#include <thread>

#include "dist/rank_message.h"
#include "engine/attention_tuner.h"
#include "engine/forward.h"
#include "engine/kv_node_attention.h"
#include "engine/kv_nodes.h"
#include "kernels/thread_pool.h"
#include "engine/local_kv.h"
#include "kv/block_store.h"
#include "kv/kv_shard.h"

namespace strata {

namespace {

// Loading a big model or tuning attention on a busy machine can take a
// while; the handshake waits this long for every rank to arrive.
constexpr double kStartupTimeoutS = 600;
// Between messages rank 0 works alone (tokenizing, sampling, a benchmark's
// bandwidth probe), so the other ranks wait longer for its next message than
// --mpi-timeout; inside a step every collective keeps to --mpi-timeout (a
// rank 0 that dies is ended by mpirun at once, whatever it was doing).
constexpr double kIdleTimeoutS = 120;
// A runner that promises a message every keepalive period (an idle server
// pings) is given this many periods before it counts as hung.
constexpr double kKeepaliveMisses = 4;

// kGetKv: sends rank 0 this rank's part of each block (kv/kv_shard.h), one
// message per block; kPutKv: receives and stores it.
Status TransferKv(const RankMessage& m, const Model& model, BlockStore& store, int32_t n_blocks, Cluster& cluster) {
  const KvLayout whole = WholeKvLayout(store.layout(), model.shard());
  const std::pair<int32_t, int32_t> layers = KvLayersOfRank(whole, model.shard(), cluster.rank());
  std::vector<uint8_t> part(store.layout().slice_bytes() * static_cast<uint64_t>(layers.second - layers.first));
  for (BlockId id : m.blocks) {
    if (id >= n_blocks) return Status::Corrupt(fmt::format("from rank 0: KV block {} of {}", id, n_blocks));
    if (m.kind == RankMessageKind::kGetKv) {
      STRATA_RETURN_IF_ERROR(ReadKvPart(store, id, layers, &part));
      STRATA_RETURN_IF_ERROR(cluster.SendBytes(0, part.data(), static_cast<int64_t>(part.size())));
    } else {
      STRATA_RETURN_IF_ERROR(cluster.RecvBytes(0, part.data(), static_cast<int64_t>(part.size())));
      STRATA_RETURN_IF_ERROR(WriteKvPart(store, id, layers, part));
    }
  }
  return Status::Ok();
}

}  // namespace

Status LoadRankModel(Env* env, ModelLoadOptions options, std::unique_ptr<Model>* out) {
  Cluster* cluster = Cluster::World();
  if (cluster != nullptr) options.shard = cluster->shard();
  std::unique_ptr<Model> model;
  STRATA_RETURN_IF_ERROR(Model::Load(env, options, &model));
  if (cluster != nullptr) STRATA_RETURN_IF_ERROR(cluster->Handshake(model->fingerprint(), kStartupTimeoutS));
  *out = std::move(model);
  return Status::Ok();
}

Status ServeRank(const Model& model, Cluster& cluster, const RankServerParams& params) {
  Env* env = params.env != nullptr ? params.env : Env::Default();
  int32_t n_threads = params.n_threads > 0 ? params.n_threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  n_threads = std::max(n_threads, 1);
  // The runner rank 0 has open: this rank's block store and forward pass.
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<BlockStore> store;
  std::unique_ptr<LocalKv> tiers;            // --split tensor|layer: the forward pass's view of store
  std::unique_ptr<Forward> forward;          // --split tensor|layer: this rank's shard
  std::unique_ptr<KvNodeServer> node;        // --kv-nodes: this rank lends its RAM for KV blocks
  PlanLimits limits;
  std::vector<float> logits;
  double idle_wait_s = kIdleTimeoutS;  // the open runner's wait for rank 0's next message
  for (;;) {
    std::vector<uint8_t> bytes;
    const bool open = forward != nullptr || node != nullptr;
    STRATA_RETURN_IF_ERROR(cluster.Broadcast(&bytes, open ? idle_wait_s : kStartupTimeoutS));
    RankMessage m;
    STRATA_RETURN_IF_ERROR(DecodeRankMessage(bytes, &m).WithContext("from rank 0"));
    switch (m.kind) {
      case RankMessageKind::kOpen: {
        if (cluster.kv_nodes()) {  // KvNodes::MeasureLink's other end, at once
          std::vector<float> x(static_cast<size_t>(kKvNodeLinkProbeFloats));
          for (const int64_t n : {int64_t{1}, kKvNodeLinkProbeFloats})
            for (int i = 0; i < kKvNodeLinkProbes; ++i) STRATA_RETURN_IF_ERROR(cluster.AllReduceSum(x.data(), n));
        }
        node.reset();
        forward.reset();
        tiers.reset();
        store.reset();
        KvLayout layout;
        STRATA_RETURN_IF_ERROR(MakeKvLayout(model.hparams(), m.open.kv_type, m.open.kv_block_tokens, &layout));
        STRATA_RETURN_IF_ERROR(BlockStore::Create(env, layout, KvTierConfig{}, m.open.n_blocks, &store));
        if (!pool) pool = std::make_unique<ThreadPool>(n_threads);
        const AttentionGrid grid =
            SelectAttentionGrid(std::nullopt, env, params.tune_cache_path, layout, model.hparams().n_head, *pool);
        if (cluster.kv_nodes()) {
          const uint64_t budget = std::min(cluster.kv_budget(cluster.rank()), uint64_t{1} << 50);
          node = std::make_unique<KvNodeServer>(model, cluster, *store, *pool, grid,
                                                static_cast<int64_t>(budget / layout.block_bytes()));
        } else {
          tiers = std::make_unique<LocalKv>(*store, model.hparams().n_head, *pool);
          forward = std::make_unique<Forward>(model, *tiers, *pool, m.open.n_ctx, grid, &cluster);
        }
        limits = PlanLimits{model.hparams().n_vocab, m.open.n_blocks, m.open.kv_block_tokens, m.open.n_ctx, 1 << 20};
        idle_wait_s = m.open.keepalive_ms > 0 ? kKeepaliveMisses * m.open.keepalive_ms / 1000.0 : kIdleTimeoutS;
        break;
      }
      case RankMessageKind::kStep: {
        if (!open) return Status::Corrupt("from rank 0: a step before any runner was opened");
        STRATA_RETURN_IF_ERROR(ValidatePlan(m.plan, limits).WithContext("from rank 0"));
        if (!node && (!m.nodes.remote.empty() || !m.nodes.moves.empty() || !m.nodes.discards.empty()))
          return Status::Corrupt("from rank 0: a KV node part of a step outside --kv-nodes");
        if (node) {
          STRATA_RETURN_IF_ERROR(ValidateKvNodeStep(m.nodes, limits.n_blocks, cluster.size()).WithContext("from rank 0"));
          STRATA_RETURN_IF_ERROR(node->RunStep(m.plan, m.nodes));
          break;
        }
        for (const BlockCopy& c : m.plan.copies) STRATA_RETURN_IF_ERROR(store->CopyBlock(c.from, c.to));
        STRATA_RETURN_IF_ERROR(forward->Run(m.plan, &logits));
        break;
      }
      case RankMessageKind::kClose:
        node.reset();
        forward.reset();
        tiers.reset();
        store.reset();
        break;
      case RankMessageKind::kPing: {
        float alive = 1;  // the answer Runner::KeepAlive waits for
        STRATA_RETURN_IF_ERROR(cluster.AllReduceSum(&alive, 1));
        break;
      }
      case RankMessageKind::kGetKv:
      case RankMessageKind::kPutKv:
        if (node && m.kind == RankMessageKind::kGetKv) {
          STRATA_RETURN_IF_ERROR(node->SendHeld(m.blocks));
          break;
        }
        if (!forward) return Status::Corrupt("from rank 0: a KV transfer without a runner of a model shard open");
        STRATA_RETURN_IF_ERROR(TransferKv(m, model, *store, limits.n_blocks, cluster));
        break;
      case RankMessageKind::kStop: return Status::Ok();
    }
  }
}

int FinishRank(int exit_code) {
  Cluster* cluster = Cluster::World();
  if (cluster == nullptr) return exit_code;
  if (exit_code == 0 && !cluster->broken() && cluster->rank() == 0) {
    std::vector<uint8_t> stop = EncodeRankMessage(RankMessageKind::kStop);
    if (!cluster->Broadcast(&stop).ok()) exit_code = 1;
  }
  cluster->Finalize(exit_code != 0);
  return exit_code;
}

}  // namespace strata
