// Runner: what executes forward passes for one model — the thread pool, the
// paged KV cache, the attention grid and the forward pass — shared by its two
// clients: Context (one sequence) and Engine (continuous batching). The
// checks of the shared parameters (context size, threads, attention grid)
// live here once; each client sizes the KV pool its own way.
//
// A step: Prepare (the KV cache manager's plan, kv/step_plan.h), then the
// forward pass over that plan. When the model is a shard of an MPI job
// (model/model_shard.h), the runner is rank 0's: it broadcasts its shape
// when created, each plan before running it and its end when destroyed, and
// the other ranks mirror them (engine/rank_server.h). Under --kv-nodes each
// plan goes with its KV node part (engine/kv_nodes.h), whose block moves run
// before the forward pass.
//
// Thread-safety: one thread at a time (the client's step thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "engine/attention_pass.h"
#include "engine/forward.h"
#include "engine/kv_node_attention.h"
#include "engine/kv_nodes.h"
#include "engine/local_kv.h"
#include "kernels/thread_pool.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"

namespace strata {

// The parameters every runner client has (ContextParams and EngineParams carry them by these names).
struct RunnerParams {
  int32_t n_ctx = 0;        // positions per sequence; 0: the model's training context
  int32_t n_threads = 0;    // 0: all cores
  std::optional<DType> kv_type;  // nullopt: DefaultKvType(model)
  int32_t kv_block_tokens = 32;
  KvTierConfig kv_tiers;
  Env* env = nullptr;       // for the disk tier and the tune cache; null: Env::Default()
  // Attention grid: attention_grid if set; else tuned on this machine and
  // cached in tune_cache_path if that is non-empty; else the defaults.
  std::optional<AttentionGrid> attention_grid;
  std::string tune_cache_path;
  std::function<void(const std::string&)> log;  // KV disk tier warnings, one line each; null: stderr
  // Under MPI: the client promises to call Step, Run or KeepAlive at least
  // this often (seconds, [0, 3600]); the other ranks count a longer silence
  // as a hung rank 0. 0: no promise (they wait their default, minutes).
  double keepalive_s = 0;
};

// The client's KV pool sizing: given the layout and the checked context
// size, fills the block count, prefix caching and RAM-only floor of *config
// (tiers, layout and log are set already); an error refuses the runner.
using KvSizing = std::function<Status(const KvLayout& layout, int32_t n_ctx, KvCacheConfig* config)>;

class Runner {
 public:
  // kInvalidArgument for a context size outside [2, 2^22], a thread count
  // above 1024, an invalid grid, or what sizing refuses; under MPI also a KV
  // disk tier (not supported there yet), a keepalive outside [0, 3600] s
  // and any rank but 0.
  [[nodiscard]] static Status Create(const Model& model, const RunnerParams& params, const KvSizing& sizing,
                                     std::unique_ptr<Runner>* out);
  ~Runner();

  const Model& model() const { return model_; }
  int32_t n_ctx() const { return n_ctx_; }
  ThreadPool& pool() { return pool_; }
  KvCacheManager& kv() { return *kv_; }
  const KvCacheManager& kv() const { return *kv_; }
  const AttentionGrid& attention_grid() const { return forward_.grid(); }
  // Whether this runner leads an MPI job (its steps run on other ranks too).
  bool distributed() const { return cluster_ != nullptr; }
  // Under --kv-nodes: where the KV blocks live; else null.
  const KvNodes* kv_nodes() const { return nodes_.get(); }
  // Under MPI: tells the other ranks rank 0 is alive while it has no step to
  // run (RunnerParams::keepalive_s) and waits for their answer (at most
  // --mpi-timeout: a hung rank is an error); outside MPI: nothing.
  [[nodiscard]] Status KeepAlive();

  // The adapter sets sequences may run with (KvCacheManager::NewSequence's
  // adapter k is sets[k - 1]); replaces the previous ones. The errors of
  // CheckAdapters. REQUIRES: the adapters outlive the runner (or the next call).
  [[nodiscard]] Status SetAdapters(std::vector<LoraSet> sets);
  // Whether set can run here: kInvalidArgument for a null adapter, one bound
  // to another model or a scale not finite; kUnsupported under MPI.
  // Thread-safe.
  [[nodiscard]] Status CheckAdapters(const LoraSet& set) const;
  int32_t n_adapters() const { return forward_.n_adapters(); }

  // The whole model's KV layout (kv/kv_shard.h): kv()'s, or under MPI the
  // one of all ranks' parts together (what session files hold).
  KvLayout whole_kv_layout() const;
  // Copies the KV of blocks (kv()'s, every rank's part) into blocks `into`
  // of whole (whole_kv_layout(), in RAM), or back (ScatterKv). Under MPI the
  // other ranks send or receive their parts (kGetKv, kPutKv); under
  // --kv-nodes the nodes send the blocks they hold (kGetKv) and scattered
  // blocks start in rank 0's RAM.
  // REQUIRES: into.size() == blocks.size(); whole.layout() is whole_kv_layout().
  [[nodiscard]] Status GatherKv(std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> into);
  [[nodiscard]] Status ScatterKv(BlockStore& whole, std::span<const BlockId> from, std::span<const BlockId> blocks);

  // Prepares the appends and runs their forward pass: *plan is the step
  // (entries in append order), *logits F32 [n_vocab, plan->n_logit_rows()].
  // On error nothing is prepared (rolled back); on success the caller
  // commits each entry's tokens.
  [[nodiscard]] Status Step(std::span<const KvCacheManager::Append> appends, StepPlan* plan, std::vector<float>* logits);
  // The forward pass over a plan kv().Prepare made; the caller commits on
  // success or rolls back on failure.
  [[nodiscard]] Status Run(const StepPlan& plan, std::vector<float>* logits);

 private:
  Runner(const Model& model, const RunnerParams& params, int32_t n_ctx, int32_t n_threads,
         std::unique_ptr<KvCacheManager> kv, Cluster* cluster);
  // GatherKv (gather) or ScatterKv: blocks of kv() <-> whole_ids of whole, rank by rank.
  [[nodiscard]] Status MoveKv(bool gather, std::span<const BlockId> blocks, BlockStore& whole,
                              std::span<const BlockId> whole_ids);
  // MoveKv under --kv-nodes: whole blocks, gathered from wherever they live
  // (kGetKv for those on nodes), scattered into rank 0's RAM.
  [[nodiscard]] Status MoveKvWithNodes(bool gather, std::span<const BlockId> blocks, BlockStore& whole,
                                       std::span<const BlockId> whole_ids);

  const Model& model_;
  Cluster* cluster_;  // the MPI job this runner leads, or null
  int32_t n_ctx_;
  ThreadPool pool_;
  std::unique_ptr<KvNodes> nodes_;  // under --kv-nodes: where blocks live (before kv_: its on_free calls it)
  std::unique_ptr<KvCacheManager> kv_;
  // The forward pass's KV tiers: rank 0's RAM and disk tier, and under
  // --kv-nodes the nodes' RAM too (then a KvNodeReader, node_reader_).
  std::unique_ptr<LocalKv> tiers_;
  KvNodeReader* node_reader_;  // tiers_ under --kv-nodes, else null
  Forward forward_;
};

}  // namespace strata
