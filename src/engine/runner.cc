#include "engine/runner.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <thread>

#include "dist/rank_message.h"
#include "engine/attention_tuner.h"
#include "kv/kv_shard.h"

namespace strata {

Status Runner::Create(const Model& model, const RunnerParams& params, const KvSizing& sizing,
                      std::unique_ptr<Runner>* out) {
  const HParams& hp = model.hparams();
  const int32_t n_ctx = params.n_ctx > 0 ? params.n_ctx : hp.n_ctx_train;
  if (n_ctx < 2 || n_ctx > (1 << 22)) return Status::InvalidArgument(fmt::format("invalid context size {}", n_ctx));
  if (params.attention_grid && !params.attention_grid->Valid())
    return Status::InvalidArgument("invalid attention grid " + AttentionGridName(*params.attention_grid));
  int32_t n_threads = params.n_threads > 0 ? params.n_threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  if (n_threads > 1024) return Status::InvalidArgument(fmt::format("invalid thread count {}", n_threads));

  Cluster* cluster = model.shard().size > 1 ? Cluster::World() : nullptr;
  if (model.shard().size > 1) {
    if (cluster == nullptr) return Status::Internal("a model shard outside an MPI job");
    if (cluster->rank() != 0) return Status::Internal("only rank 0 runs a Runner; the others serve its plans");
    if (!params.kv_tiers.disk_dir.empty())
      return Status::Unsupported("a KV disk tier under MPI (the other ranks hold their KV in RAM)");
    if (!(params.keepalive_s >= 0 && params.keepalive_s <= 3600))
      return Status::InvalidArgument(fmt::format("invalid keepalive period {} s", params.keepalive_s));
  }
  KvCacheConfig kc;
  STRATA_RETURN_IF_ERROR(MakeKvLayout(hp, params.kv_type.value_or(DefaultKvType(model)), params.kv_block_tokens, &kc.layout));
  kc.tiers = params.kv_tiers;
  kc.log = params.log;
  const bool kv_nodes = cluster != nullptr && cluster->kv_nodes();
  if (kv_nodes) kc.node_bytes = KvNodes::NodeBytes(*cluster, kc.layout);
  STRATA_RETURN_IF_ERROR(sizing(kc.layout, n_ctx, &kc));
  std::unique_ptr<KvNodes> nodes;
  if (kv_nodes) {
    nodes = std::make_unique<KvNodes>(*cluster, kc.layout, hp.n_head, kc.n_blocks, kc.tiers.ram_bytes);
    kc.on_free = [p = nodes.get()](BlockId id) { p->Freed(id); };
  }
  std::unique_ptr<KvCacheManager> kv;
  STRATA_RETURN_IF_ERROR(KvCacheManager::Create(params.env != nullptr ? params.env : Env::Default(), kc, &kv));
  const int32_t n_blocks = kv->capacity_blocks();
  const DType kv_type = kv->layout().type;
  out->reset(new Runner(model, params, n_ctx, n_threads, std::move(kv), cluster));
  (*out)->nodes_ = std::move(nodes);
  if (cluster != nullptr) {
    const RunnerShape shape{n_ctx,     kv_type, kc.layout.block_tokens, n_blocks,
                            n_threads, static_cast<int32_t>(std::lround(params.keepalive_s * 1000))};
    std::vector<uint8_t> open = EncodeRankMessage(RankMessageKind::kOpen, &shape);
    Status s = cluster->Broadcast(&open);
    if (s.ok() && (*out)->nodes_ != nullptr) s = (*out)->nodes_->MeasureLink();
    if (!s.ok()) {
      out->reset();
      return s;
    }
  }
  return Status::Ok();
}

Runner::Runner(const Model& model, const RunnerParams& params, int32_t n_ctx, int32_t n_threads,
               std::unique_ptr<KvCacheManager> kv, Cluster* cluster)
    : model_(model),
      cluster_(cluster),
      n_ctx_(n_ctx),
      pool_(n_threads),
      kv_(std::move(kv)),
      tiers_(cluster != nullptr && cluster->kv_nodes()
                 ? std::make_unique<KvNodeReader>(*cluster, kv_->store(), model.hparams().n_head, pool_)
                 : std::make_unique<LocalKv>(kv_->store(), model.hparams().n_head, pool_)),
      node_reader_(cluster != nullptr && cluster->kv_nodes() ? static_cast<KvNodeReader*>(tiers_.get()) : nullptr),
      forward_(model, *tiers_, pool_, n_ctx,
               SelectAttentionGrid(params.attention_grid, params.env != nullptr ? params.env : Env::Default(),
                                   params.tune_cache_path, kv_->layout(), model.hparams().n_head, pool_),
               cluster) {}

Runner::~Runner() {
  if (cluster_ == nullptr || cluster_->broken()) return;
  std::vector<uint8_t> close = EncodeRankMessage(RankMessageKind::kClose);
  (void)cluster_->Broadcast(&close);  // a failure marks the cluster broken: the job ends aborted
}

Status Runner::CheckAdapters(const LoraSet& set) const {
  if (set.empty()) return Status::Ok();
  if (cluster_ != nullptr) return Status::Unsupported("LoRA adapters under MPI");
  for (const LoraUse& use : set) {
    if (use.adapter == nullptr || use.adapter->base() != &model_.weights())
      return Status::InvalidArgument("a LoRA adapter bound to another model");
    if (!std::isfinite(use.scale)) return Status::InvalidArgument("a LoRA adapter scale that is not finite");
  }
  return Status::Ok();
}

Status Runner::SetAdapters(std::vector<LoraSet> sets) {
  for (const LoraSet& set : sets) STRATA_RETURN_IF_ERROR(CheckAdapters(set));
  forward_.SetAdapters(std::move(sets));
  return Status::Ok();
}

Status Runner::KeepAlive() {
  if (cluster_ == nullptr) return Status::Ok();
  std::vector<uint8_t> ping = EncodeRankMessage(RankMessageKind::kPing);
  STRATA_RETURN_IF_ERROR(cluster_->Broadcast(&ping));
  // The answer: a broadcast may complete without its receivers (buffered),
  // the sum cannot, so a hung rank is noticed within --mpi-timeout.
  float alive = 1;
  return cluster_->AllReduceSum(&alive, 1);
}

KvLayout Runner::whole_kv_layout() const { return WholeKvLayout(kv_->layout(), model_.shard()); }

Status Runner::GatherKv(std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> into) {
  return MoveKv(/*gather=*/true, blocks, whole, into);
}

Status Runner::ScatterKv(BlockStore& whole, std::span<const BlockId> from, std::span<const BlockId> blocks) {
  return MoveKv(/*gather=*/false, blocks, whole, from);
}

Status Runner::MoveKv(bool gather, std::span<const BlockId> blocks, BlockStore& whole,
                      std::span<const BlockId> whole_ids) {
  if (nodes_ != nullptr) return MoveKvWithNodes(gather, blocks, whole, whole_ids);
  const ModelShard& shard = model_.shard();
  const KvLayout W = whole_kv_layout();
  const int32_t n_ranks = cluster_ != nullptr ? cluster_->size() : 1;
  if (cluster_ != nullptr) {
    const std::vector<BlockId> ids(blocks.begin(), blocks.end());
    std::vector<uint8_t> m =
        EncodeRankMessage(gather ? RankMessageKind::kGetKv : RankMessageKind::kPutKv, nullptr, nullptr, &ids);
    STRATA_RETURN_IF_ERROR(cluster_->Broadcast(&m));
  }
  const uint64_t part_slice = KvSliceBytesOfRank(W, shard);
  std::vector<uint8_t> part;
  for (size_t i = 0; i < blocks.size(); ++i) {
    for (int32_t r = 0; r < n_ranks; ++r) {
      const std::pair<int32_t, int32_t> layers = KvLayersOfRank(W, shard, r);
      part.resize(part_slice * static_cast<uint64_t>(layers.second - layers.first));
      if (gather && r == 0) STRATA_RETURN_IF_ERROR(ReadKvPart(kv_->store(), blocks[i], layers, &part));
      if (gather && r > 0) STRATA_RETURN_IF_ERROR(cluster_->RecvBytes(r, part.data(), static_cast<int64_t>(part.size())));
      for (int32_t il = layers.first; il < layers.second; ++il) {
        uint8_t* data = nullptr;
        STRATA_RETURN_IF_ERROR(whole.Pin(whole_ids[i], il, &data));
        uint8_t* p = part.data() + part_slice * static_cast<uint64_t>(il - layers.first);
        if (gather) {
          CopyKvPartToWhole(W, shard, r, p, data);
        } else {
          CopyKvPartFromWhole(W, shard, r, data, p);
        }
        whole.Unpin(whole_ids[i], il, gather);
      }
      if (!gather && r == 0) STRATA_RETURN_IF_ERROR(WriteKvPart(kv_->store(), blocks[i], layers, part));
      if (!gather && r > 0) STRATA_RETURN_IF_ERROR(cluster_->SendBytes(r, part.data(), static_cast<int64_t>(part.size())));
    }
  }
  return Status::Ok();
}

Status Runner::MoveKvWithNodes(bool gather, std::span<const BlockId> blocks, BlockStore& whole,
                               std::span<const BlockId> whole_ids) {
  const std::pair<int32_t, int32_t> all{0, kv_->layout().n_layer};
  // Scattered blocks are new (rank 0's until a step moves them out); gathered
  // ones on a node come from it, one message per block in this order.
  std::vector<BlockId> remote;
  if (gather)
    for (BlockId b : blocks)
      if (nodes_->home(b) != 0) remote.push_back(b);
  if (!remote.empty()) {
    std::vector<uint8_t> m = EncodeRankMessage(RankMessageKind::kGetKv, nullptr, nullptr, &remote);
    STRATA_RETURN_IF_ERROR(cluster_->Broadcast(&m));
  }
  std::vector<uint8_t> bytes(kv_->layout().block_bytes());
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (!gather) {
      STRATA_RETURN_IF_ERROR(ReadKvPart(whole, whole_ids[i], all, &bytes));
      STRATA_RETURN_IF_ERROR(WriteKvPart(kv_->store(), blocks[i], all, bytes));
      continue;
    }
    const int32_t home = nodes_->home(blocks[i]);
    if (home == 0) {
      STRATA_RETURN_IF_ERROR(ReadKvPart(kv_->store(), blocks[i], all, &bytes));
    } else {
      STRATA_RETURN_IF_ERROR(cluster_->RecvBytes(home, bytes.data(), static_cast<int64_t>(bytes.size())));
    }
    STRATA_RETURN_IF_ERROR(WriteKvPart(whole, whole_ids[i], all, bytes));
  }
  return Status::Ok();
}

Status Runner::Step(std::span<const KvCacheManager::Append> appends, StepPlan* plan, std::vector<float>* logits) {
  STRATA_RETURN_IF_ERROR(kv_->Prepare(appends, plan));
  Status s = Run(*plan, logits);
  if (!s.ok()) kv_->Rollback(appends);
  return s;
}

Status Runner::Run(const StepPlan& plan, std::vector<float>* logits) {
  if (cluster_ == nullptr) return forward_.Run(plan, logits);
  KvNodeStep nodes;
  if (nodes_ != nullptr) nodes_->Prepare(plan, &nodes);
  std::vector<uint8_t> step =
      EncodeRankMessage(RankMessageKind::kStep, nullptr, &plan, nullptr, nodes_ != nullptr ? &nodes : nullptr);
  STRATA_RETURN_IF_ERROR(cluster_->Broadcast(&step));
  if (nodes_ == nullptr) return forward_.Run(plan, logits);
  STRATA_RETURN_IF_ERROR(nodes_->Transfer(nodes, kv_->store()));
  // Prepare copied a block before it came back from its node: copy again.
  if (std::any_of(nodes.moves.begin(), nodes.moves.end(), [](const KvNodeMove& m) { return m.to == 0; }))
    for (const BlockCopy& c : plan.copies) STRATA_RETURN_IF_ERROR(kv_->store().CopyBlock(c.from, c.to));
  node_reader_->SetStep(&nodes, &nodes_->costs());
  return forward_.Run(plan, logits);
}

}  // namespace strata
