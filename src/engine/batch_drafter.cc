#include "engine/batch_drafter.h"

#include <algorithm>
#include <chrono>

#include "vocab/vocab.h"
#include "vocab/vocab_compare.h"

namespace strata {
namespace {

// Differs from the request's seed, so the draft's draws and the verifier's
// uniforms are independent streams.
constexpr uint64_t kDraftSeedSalt = 0x5eed0d7af7ull;

int64_t BlocksFor(int64_t tokens, int32_t block_tokens) { return (tokens + block_tokens - 1) / block_tokens; }

// Cuts a draft after an end-of-generation token: it would end the text there.
void CutAtEog(const Vocab& vocab, std::vector<int32_t>* tokens) {
  for (size_t i = 0; i < tokens->size(); ++i) {
    if (vocab.IsEog((*tokens)[i])) {
      tokens->resize(i + 1);
      return;
    }
  }
}

}  // namespace

std::unique_ptr<BatchDrafter> BatchDrafter::Ngram(const Model& target, const NgramParams& ngram) {
  return std::unique_ptr<BatchDrafter>(new BatchDrafter(target, ngram, nullptr, 0));
}

Status BatchDrafter::WithModel(const Model& target, const Model& draft, RunnerParams rp, int32_t parallel,
                               int32_t max_batch_tokens, std::unique_ptr<BatchDrafter>* out) {
  STRATA_RETURN_IF_ERROR(CheckSameVocabulary(target.vocab(), draft.vocab()));
  rp.kv_type.reset();         // the draft model's default
  rp.kv_tiers = KvTierConfig{};  // a small model's KV stays in RAM
  auto sizing = [parallel](const KvLayout& layout, int32_t n_ctx, KvCacheConfig* kc) {
    kc->n_blocks = static_cast<int32_t>(
        std::min<int64_t>(2 * static_cast<int64_t>(parallel) * BlocksFor(n_ctx, layout.block_tokens), int64_t{1} << 22));
    kc->prefix_cache = true;
    kc->ram_only_min_blocks = 0;
    return Status::Ok();
  };
  std::unique_ptr<Runner> runner;
  STRATA_RETURN_IF_ERROR(Runner::Create(draft, rp, sizing, &runner));
  out->reset(new BatchDrafter(target, NgramParams{}, std::move(runner), max_batch_tokens));
  return Status::Ok();
}

BatchDrafter::BatchDrafter(const Model& target, NgramParams ngram, std::unique_ptr<Runner> runner,
                           int32_t max_batch_tokens)
    : target_(target), ngram_(ngram), runner_(std::move(runner)), max_batch_tokens_(max_batch_tokens) {}

BatchDrafter::~BatchDrafter() = default;

void BatchDrafter::Forget(uint64_t key) {
  auto it = seqs_.find(key);
  if (it == seqs_.end()) return;
  runner_->kv().FreeSequence(it->second.seq);
  seqs_.erase(it);
}

void BatchDrafter::Propose(std::span<const DraftRequest> requests, std::vector<Draft>* drafts) {
  drafts->assign(requests.size(), Draft{});
  if (runner_ == nullptr) {
    ProposeNgram(requests, drafts);
  } else {
    ProposeWithModel(requests, drafts);
  }
}

void BatchDrafter::ProposeNgram(std::span<const DraftRequest> requests, std::vector<Draft>* drafts) const {
  for (size_t i = 0; i < requests.size(); ++i) {
    (*drafts)[i].tokens = NgramDraft(requests[i].tokens, requests[i].k, ngram_);
    CutAtEog(target_.vocab(), &(*drafts)[i].tokens);
  }
}

BatchDrafter::DraftSeq& BatchDrafter::SeqFor(const DraftRequest& r) {
  auto it = seqs_.find(r.key);
  if (it != seqs_.end()) return it->second;
  SamplerParams p = *r.sampling;
  p.repeat_penalty = 1.0f;  // the penalties need the history, which a draft sampler does not keep
  p.frequency_penalty = p.presence_penalty = 0.0f;
  p.seed ^= kDraftSeedSalt;
  return seqs_.emplace(r.key, DraftSeq{runner_->kv().NewSequence(), Sampler(p)}).first->second;
}

void BatchDrafter::ProposeWithModel(std::span<const DraftRequest> requests, std::vector<Draft>* drafts) {
  KvCacheManager& kv = runner_->kv();
  const int32_t n_vocab = runner_->model().hparams().n_vocab;
  const int32_t n_vocab_target = target_.hparams().n_vocab;
  const Vocab& vocab = target_.vocab();
  std::vector<KvCacheManager::Append> appends;
  std::vector<size_t> who;  // appends[j] is requests[who[j]]'s
  std::vector<bool> active(requests.size(), false);
  // Catch up: each draft sequence keeps what it shares with the request and
  // runs the rest (while the pass has room); those that reach the end draft.
  int32_t budget = max_batch_tokens_;
  for (size_t i = 0; i < requests.size() && budget > 0; ++i) {
    const DraftRequest& r = requests[i];
    DraftSeq& ds = SeqFor(r);
    const std::vector<int32_t>& have = kv.tokens(ds.seq);
    const size_t limit = std::min(have.size(), r.tokens.size() - 1);  // the last token runs: its logits draft the first
    const size_t common = std::mismatch(have.begin(), have.begin() + limit, r.tokens.begin()).first - have.begin();
    kv.Truncate(ds.seq, static_cast<int32_t>(common));
    const size_t start = common == 0 ? static_cast<size_t>(kv.AttachCachedPrefix(ds.seq, r.tokens)) : common;
    const int32_t rest = static_cast<int32_t>(r.tokens.size() - start);
    const int32_t n = std::min(rest, budget);
    budget -= n;
    active[i] = n == rest;
    appends.push_back({ds.seq, r.tokens.subspan(start, n), active[i] ? PlanLogits::kLast : PlanLogits::kNone});
    who.push_back(i);
  }
  while (!appends.empty()) {
    StepPlan plan;
    const auto t0 = std::chrono::steady_clock::now();
    if (!runner_->Step(appends, &plan, &logits_).ok()) return;  // no more drafts this step (rolled back)
    pass_times_.Record(plan.n_tokens(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    size_t row = 0;
    std::vector<KvCacheManager::Append> next;
    std::vector<size_t> next_who;
    for (size_t j = 0; j < appends.size(); ++j) {
      kv.Commit(appends[j].seq, appends[j].tokens);
      const size_t i = who[j];
      if (appends[j].logits != PlanLogits::kLast) continue;
      const float* logits = &logits_[row++ * static_cast<size_t>(n_vocab)];
      DraftSeq& ds = seqs_.at(requests[i].key);
      Draft& d = (*drafts)[i];
      std::vector<std::pair<int32_t, float>> q = ds.sampler.Distribution(logits, n_vocab);
      if (q.empty()) continue;
      const int32_t x = Sampler::Draw(q, ds.sampler.NextUniform());
      if (x >= n_vocab_target) continue;  // a padding row of the draft's output: not a token
      d.tokens.push_back(x);
      d.q.push_back(std::move(q));
      if (vocab.IsEog(x) || static_cast<int32_t>(d.tokens.size()) >= requests[i].k) continue;
      next.push_back({ds.seq, std::span<const int32_t>(&d.tokens.back(), 1), PlanLogits::kLast});
      next_who.push_back(i);
    }
    appends.swap(next);
    who.swap(next_who);
  }
}

}  // namespace strata
