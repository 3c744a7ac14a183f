#include "engine/context.h"

#include <algorithm>
#include <fmt/format.h>
#include <thread>

#include "engine/attention_tuner.h"
#include "kv/session_file.h"

namespace strata {

Status Context::Create(const Model& model, const ContextParams& params, std::unique_ptr<Context>* out) {
  const HParams& hp = model.hparams();
  const int32_t n_ctx = params.n_ctx > 0 ? params.n_ctx : hp.n_ctx_train;
  if (n_ctx <= 0 || n_ctx > (1 << 22)) return Status::InvalidArgument(fmt::format("invalid context size {}", n_ctx));
  if (params.n_batch <= 0 || params.n_batch > 8192)
    return Status::InvalidArgument(fmt::format("invalid batch size {}", params.n_batch));
  if (params.attention_grid && !params.attention_grid->Valid())
    return Status::InvalidArgument("invalid attention grid " + AttentionGridName(*params.attention_grid));
  int32_t n_threads = params.n_threads > 0 ? params.n_threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  if (n_threads > 1024) return Status::InvalidArgument(fmt::format("invalid thread count {}", n_threads));

  KvCacheConfig kc;
  STRATA_RETURN_IF_ERROR(MakeKvLayout(hp, params.kv_type.value_or(DefaultKvType(model)), params.kv_block_tokens, &kc.layout));
  kc.tiers = params.kv_tiers;
  // One sequence: enough blocks for the whole context, whatever tier holds them.
  const int64_t blocks = (n_ctx + kc.layout.block_tokens - 1) / kc.layout.block_tokens;
  if (kc.tiers.disk_dir.empty() && kc.tiers.ram_bytes != UINT64_MAX &&
      static_cast<uint64_t>(blocks) * kc.layout.block_bytes() > kc.tiers.ram_bytes)
    return Status::InvalidArgument(fmt::format("a context of {} tokens needs {} MiB of KV; the RAM budget is {} MiB and "
                                               "there is no disk tier",
                                               n_ctx, blocks * kc.layout.block_bytes() >> 20, kc.tiers.ram_bytes >> 20));
  kc.n_blocks = static_cast<int32_t>(blocks);
  kc.prefix_cache = false;  // one sequence: nothing to share
  kc.ram_only_min_blocks = kc.n_blocks;  // a failing disk tier must not end a run: RAM holds it all then
  kc.log = params.log;
  std::unique_ptr<KvCacheManager> kv;
  STRATA_RETURN_IF_ERROR(KvCacheManager::Create(params.env != nullptr ? params.env : Env::Default(), kc, &kv));
  out->reset(new Context(model, params, n_ctx, std::min(params.n_batch, n_ctx), n_threads, std::move(kv)));
  return Status::Ok();
}

Context::Context(const Model& model, const ContextParams& params, int32_t n_ctx, int32_t n_batch, int32_t n_threads,
                 std::unique_ptr<KvCacheManager> kv)
    : model_(model),
      n_ctx_(n_ctx),
      n_batch_(n_batch),
      pool_(n_threads),
      kv_(std::move(kv)),
      forward_(model, *kv_, pool_, n_ctx,
               SelectAttentionGrid(params.attention_grid, params.env != nullptr ? params.env : Env::Default(),
                                   params.tune_cache_path, kv_->layout(), model.hparams().n_head, pool_)),
      seq_(kv_->NewSequence()) {}

Context::~Context() = default;

Status Context::SaveSession(Env* env, const std::string& path, const Sampler& sampler) {
  SessionState st;
  st.sampler_history = sampler.history();
  st.rng = sampler.rng().state();
  return strata::SaveSession(env, path, ModelFingerprint(model_), *kv_, seq_, st);
}

Status Context::LoadSession(Env* env, const std::string& path, Sampler* sampler, bool drop_cache) {
  if (!kv_->tokens(seq_).empty()) return Status::InvalidArgument("load a session into a fresh context");
  // Checked before any KV block is taken: a session longer than the context
  // would otherwise fail half-loaded, for want of a free block.
  SessionInfo info;
  STRATA_RETURN_IF_ERROR(ReadSessionInfo(env, path, &info, nullptr));
  if (info.n_tokens > n_ctx_)
    return Status::InvalidArgument(fmt::format("{}: the session holds {} tokens; the context size is {}", path,
                                               info.n_tokens, n_ctx_));
  SessionState st;
  SeqId loaded = 0;
  STRATA_RETURN_IF_ERROR(strata::LoadSession(env, path, ModelFingerprint(model_), *kv_, &loaded, &st, drop_cache));
  if (kv_->length(loaded) > n_ctx_) {  // the file was replaced since: checked again
    kv_->FreeSequence(loaded);
    return Status::InvalidArgument(fmt::format("{}: the session holds {} tokens; the context size is {}", path,
                                               st.tokens.size(), n_ctx_));
  }
  kv_->FreeSequence(seq_);
  seq_ = loaded;
  sampler->rng().set_state(st.rng);
  sampler->set_history(st.sampler_history);
  return Status::Ok();
}

Status Context::Decode(std::span<const int32_t> tokens, LogitsMode mode) {
  const HParams& hp = model_.hparams();
  if (tokens.empty()) return Status::InvalidArgument("no tokens to decode");
  for (int32_t t : tokens)
    if (t < 0 || t >= hp.n_vocab) return Status::InvalidArgument(fmt::format("token id {} out of range [0, {})", t, hp.n_vocab));
  const int32_t start = n_past();
  if (tokens.size() > static_cast<size_t>(n_ctx_ - start))
    return Status::ResourceExhausted(fmt::format("context full: {} tokens cached, {} more requested, context size {}",
                                                 start, tokens.size(), n_ctx_));
  // Positions whose KV was lost on the disk tier are recomputed from `past`
  // first. Each round succeeds or drops a lost block, and the disk tier goes
  // RAM-only after a few such rounds, so they end.
  std::vector<int32_t> past;  // positions [0, start), copied once KV is lost
  const int32_t B = kv_->layout().block_tokens;
  for (int32_t round = 0;; ++round) {
    const int32_t have = n_past();
    const bool replay = have < start;
    Status s = replay ? DecodeChunks(std::span(past).subspan(have, start - have), LogitsMode::kLast)
                      : DecodeChunks(tokens, mode);
    bool lost = false;
    for (const KvCacheManager::LostSuffix& l : kv_->DropLostBlocks()) {
      if (past.empty()) past.assign(kv_->tokens(seq_).begin(), kv_->tokens(seq_).begin() + start);
      kv_->Truncate(l.seq, std::min({n_past(), start, l.first_lost * B}));
      lost = true;
    }
    kv_->MaintainDiskTier();
    if (!lost && (!s.ok() || !replay)) return s;
    if (round > 2 * kv_->capacity_blocks() + 8)
      return s.ok() ? Status::IOError("KV blocks keep getting lost on the disk tier") : s;
  }
}

Status Context::DecodeChunks(std::span<const int32_t> tokens, LogitsMode mode) {
  const int32_t start = n_past();
  const bool all = mode == LogitsMode::kAll;
  logits_.clear();
  for (size_t done = 0; done < tokens.size();) {
    const size_t n = std::min(static_cast<size_t>(n_batch_), tokens.size() - done);
    const bool last = done + n == tokens.size();
    Batch batch;
    batch.entries.push_back(BatchEntry{seq_, tokens.subspan(done, n), last, all});
    const KvCacheManager::Append append{seq_, static_cast<int32_t>(n)};
    Status s = kv_->Prepare(std::span(&append, 1));
    if (s.ok()) s = forward_.Run(batch, &chunk_logits_);
    if (!s.ok()) {
      kv_->Rollback(std::span(&append, 1));
      kv_->Truncate(seq_, start);  // undo earlier chunks of this call too
      return s;
    }
    kv_->Commit(seq_, batch.entries[0].tokens);
    logits_.insert(logits_.end(), chunk_logits_.begin(), chunk_logits_.end());
    done += n;
  }
  return Status::Ok();
}

}  // namespace strata
