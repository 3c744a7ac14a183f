#include "engine/runner.h"

#include <fmt/format.h>
#include <thread>

#include "engine/attention_tuner.h"

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

  KvCacheConfig kc;
  STRATA_RETURN_IF_ERROR(MakeKvLayout(hp, params.kv_type.value_or(DefaultKvType(model)), params.kv_block_tokens, &kc.layout));
  kc.tiers = params.kv_tiers;
  kc.log = params.log;
  STRATA_RETURN_IF_ERROR(sizing(kc.layout, n_ctx, &kc));
  std::unique_ptr<KvCacheManager> kv;
  STRATA_RETURN_IF_ERROR(KvCacheManager::Create(params.env != nullptr ? params.env : Env::Default(), kc, &kv));
  out->reset(new Runner(model, params, n_ctx, n_threads, std::move(kv)));
  return Status::Ok();
}

Runner::Runner(const Model& model, const RunnerParams& params, int32_t n_ctx, int32_t n_threads,
               std::unique_ptr<KvCacheManager> kv)
    : model_(model),
      n_ctx_(n_ctx),
      pool_(n_threads),
      kv_(std::move(kv)),
      forward_(model, kv_->store(), pool_, n_ctx,
               SelectAttentionGrid(params.attention_grid, params.env != nullptr ? params.env : Env::Default(),
                                   params.tune_cache_path, kv_->layout(), model.hparams().n_head, pool_)) {}

Runner::~Runner() = default;

Status Runner::Step(std::span<const KvCacheManager::Append> appends, StepPlan* plan, std::vector<float>* logits) {
  STRATA_RETURN_IF_ERROR(kv_->Prepare(appends, plan));
  Status s = Run(*plan, logits);
  if (!s.ok()) kv_->Rollback(appends);
  return s;
}

Status Runner::Run(const StepPlan& plan, std::vector<float>* logits) { return forward_.Run(plan, logits); }

}  // namespace strata
