#include "engine/context.h"

#include <algorithm>
#include <optional>
#include <fmt/format.h>

#include "engine/adapter_sets.h"
#include "kv/session_file.h"

namespace strata {

Status Context::Create(const Model& model, const ContextParams& params, std::unique_ptr<Context>* out) {
  if (params.n_batch <= 0 || params.n_batch > 8192)
    return Status::InvalidArgument(fmt::format("invalid batch size {}", params.n_batch));
  const RunnerParams rp{params.n_ctx,    params.n_threads, params.kv_type,         params.kv_block_tokens, params.kv_tiers,
                        params.env,      params.attention_grid, params.tune_cache_path, params.log};
  // One sequence: enough blocks for the whole context, whatever tier holds them.
  auto sizing = [](const KvLayout& layout, int32_t n_ctx, KvCacheConfig* kc) {
    const int64_t blocks = (n_ctx + layout.block_tokens - 1) / layout.block_tokens;
    const uint64_t ram = kc->tiers.ram_bytes > UINT64_MAX - kc->node_bytes ? UINT64_MAX
                                                                             : kc->tiers.ram_bytes + kc->node_bytes;
    if (kc->tiers.disk_dir.empty() && ram != UINT64_MAX && static_cast<uint64_t>(blocks) * layout.block_bytes() > ram)
      return Status::InvalidArgument(fmt::format("a context of {} tokens needs {} MiB of KV; the RAM budget is {} MiB{} "
                                                 "and there is no disk tier",
                                                 n_ctx, blocks * layout.block_bytes() >> 20, kc->tiers.ram_bytes >> 20,
                                                 kc->node_bytes > 0 ? fmt::format(" (+ {} MiB on KV nodes)",
                                                                                  kc->node_bytes >> 20)
                                                                    : ""));
    kc->n_blocks = static_cast<int32_t>(blocks);
    kc->prefix_cache = false;             // one sequence: nothing to share
    kc->ram_only_min_blocks = kc->n_blocks;  // a failing disk tier must not end a run: RAM holds it all then
    return Status::Ok();
  };
  std::unique_ptr<Runner> runner;
  STRATA_RETURN_IF_ERROR(Runner::Create(model, rp, sizing, &runner));
  const int32_t n_batch = std::min(params.n_batch, runner->n_ctx());
  out->reset(new Context(model, n_batch, std::move(runner)));
  return Status::Ok();
}

Context::Context(const Model& model, int32_t n_batch, std::unique_ptr<Runner> runner)
    : model_(model), n_batch_(n_batch), runner_(std::move(runner)), kv_(&runner_->kv()), seq_(kv_->NewSequence()) {}

Context::~Context() = default;

Status Context::SetAdapters(LoraSet set) {
  if (n_past() > 0) return Status::InvalidArgument("adapters are set before the sequence's first token");
  const bool none = set.empty();
  const uint64_t key = LoraSetKey(set);
  STRATA_RETURN_IF_ERROR(runner_->SetAdapters(none ? std::vector<LoraSet>{} : std::vector<LoraSet>{std::move(set)}));
  kv_->FreeSequence(seq_);
  seq_ = kv_->NewSequence(none ? 0 : 1, key);
  return Status::Ok();
}

Status Context::SaveSession(Env* env, const std::string& path, const Sampler& sampler) {
  if (runner_->n_adapters() > 0) return Status::Unsupported("sessions of a context with LoRA adapters");
  const SamplerState sampler_state = sampler.state();
  SessionState st;
  st.sampler_history = sampler_state.history;
  st.rng = sampler_state.rng;
  st.sampler_counts = sampler_state.counts;
  st.meta = session_meta_;
  const std::optional<KvRelay> relay = Relay();
  return strata::SaveSession(env, path, ModelFingerprint(model_), *kv_, seq_, st, relay ? &*relay : nullptr);
}

std::optional<KvRelay> Context::Relay() const {
  if (!runner_->distributed()) return std::nullopt;
  Runner* runner = runner_.get();
  return KvRelay{runner->whole_kv_layout(),
                 [runner](std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> ids) {
                   return runner->GatherKv(blocks, whole, ids);
                 },
                 [runner](BlockStore& whole, std::span<const BlockId> ids, std::span<const BlockId> blocks) {
                   return runner->ScatterKv(whole, ids, blocks);
                 }};
}

Status Context::LoadSession(Env* env, const std::string& path, Sampler* sampler, bool drop_cache) {
  if (!kv_->tokens(seq_).empty()) return Status::InvalidArgument("load a session into a fresh context");
  if (runner_->n_adapters() > 0) return Status::Unsupported("sessions of a context with LoRA adapters");
  // Checked before any KV block is taken: a session longer than the context
  // would otherwise fail half-loaded, for want of a free block.
  SessionInfo info;
  STRATA_RETURN_IF_ERROR(ReadSessionInfo(env, path, &info, nullptr));
  if (info.n_tokens > n_ctx())
    return Status::InvalidArgument(fmt::format("{}: the session holds {} tokens; the context size is {}", path,
                                               info.n_tokens, n_ctx()));
  SessionState st;
  SeqId loaded = 0;
  const std::optional<KvRelay> relay = Relay();
  STRATA_RETURN_IF_ERROR(strata::LoadSession(env, path, ModelFingerprint(model_), *kv_, &loaded, &st, drop_cache,
                                             relay ? &*relay : nullptr));
  if (kv_->length(loaded) > n_ctx()) {  // the file was replaced since: checked again
    kv_->FreeSequence(loaded);
    return Status::InvalidArgument(fmt::format("{}: the session holds {} tokens; the context size is {}", path,
                                               st.tokens.size(), n_ctx()));
  }
  const SeqId before = seq_;
  seq_ = loaded;
  // Tokens saved without KV (a server's session ends with the last sampled
  // token pending) are computed now, so the sequence holds them all.
  if (st.n_kv < static_cast<int32_t>(st.tokens.size())) {
    const std::span<const int32_t> pending(st.tokens.data() + st.n_kv, st.tokens.size() - st.n_kv);
    if (Status s = Decode(pending, LogitsMode::kLast); !s.ok()) {
      kv_->FreeSequence(loaded);
      seq_ = before;
      return s;
    }
  }
  kv_->FreeSequence(before);
  sampler->set_state(SamplerState{st.rng, st.sampler_history, st.sampler_counts});
  session_meta_ = std::move(st.meta);
  return Status::Ok();
}

Status Context::Decode(std::span<const int32_t> tokens, LogitsMode mode) {
  const HParams& hp = model_.hparams();
  if (tokens.empty()) return Status::InvalidArgument("no tokens to decode");
  for (int32_t t : tokens)
    if (t < 0 || t >= hp.n_vocab) return Status::InvalidArgument(fmt::format("token id {} out of range [0, {})", t, hp.n_vocab));
  const int32_t start = n_past();
  if (tokens.size() > static_cast<size_t>(n_ctx() - start))
    return Status::ResourceExhausted(fmt::format("context full: {} tokens cached, {} more requested, context size {}",
                                                 start, tokens.size(), n_ctx()));
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
    const KvCacheManager::Append append{seq_, tokens.subspan(done, n),
                                        all ? PlanLogits::kAll : (last ? PlanLogits::kLast : PlanLogits::kNone)};
    StepPlan plan;
    Status s = runner_->Step(std::span(&append, 1), &plan, &chunk_logits_);
    if (!s.ok()) {
      kv_->Truncate(seq_, start);  // undo earlier chunks of this call too
      return s;
    }
    kv_->Commit(seq_, append.tokens);
    logits_.insert(logits_.end(), chunk_logits_.begin(), chunk_logits_.end());
    done += n;
  }
  return Status::Ok();
}

}  // namespace strata
