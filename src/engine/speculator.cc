#include "engine/speculator.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>

#include "vocab/vocab.h"
#include "vocab/vocab_compare.h"

namespace strata {
namespace {

// Speculative rounds between plain ones (which time a one-token pass again:
// the machine's memory bandwidth drifts).
constexpr int32_t kPlainRoundEvery = 64;
// The first plain round comes after this many speculative ones (so that a
// short generation speculates from the start); until then a one-token pass
// is taken to cost what the shortest measured pass costs (PassTimes).
constexpr int32_t kFirstPlainRound = 4;

// Differs from the target sampler's seed, so the draft's draws and the
// verifier's uniforms are independent streams.
constexpr uint64_t kDraftSeedSalt = 0x5eed0d7af7ull;

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}


}  // namespace

Status CheckSpecParams(const SpecParams& p) {
  if (p.draft_min < 1 || p.draft_min > 64) return Status::InvalidArgument("draft_min must be in [1, 64]");
  if (p.draft_max < p.draft_min || p.draft_max > 64)
    return Status::InvalidArgument(fmt::format("draft_max must be in [draft_min = {}, 64]", p.draft_min));
  if (p.ngram.ngram_min < 1 || p.ngram.ngram_min > 64) return Status::InvalidArgument("ngram_min must be in [1, 64]");
  if (p.ngram.ngram_max < p.ngram.ngram_min || p.ngram.ngram_max > 64)
    return Status::InvalidArgument(fmt::format("ngram_max must be in [ngram_min = {}, 64]", p.ngram.ngram_min));
  return Status::Ok();
}

Status Speculator::Create(Context* target, Context* draft, const SpecParams& params, std::unique_ptr<Speculator>* out) {
  STRATA_RETURN_IF_ERROR(CheckSpecParams(params));
  if (draft != nullptr) {
    STRATA_RETURN_IF_ERROR(CheckSameVocabulary(target->model().vocab(), draft->model().vocab()));
    if (draft->n_ctx() < target->n_ctx())
      return Status::InvalidArgument(fmt::format("the draft model's context ({}) is shorter than the model's ({})",
                                                 draft->n_ctx(), target->n_ctx()));
  }
  out->reset(new Speculator(target, draft, params));
  return Status::Ok();
}

Speculator::Speculator(Context* target, Context* draft, const SpecParams& params)
    : target_(target),
      draft_(draft),
      params_(params),
      length_(params.draft_min, params.draft_max) {}

bool Speculator::IsEog(int32_t token) const { return target_->model().vocab().IsEog(token); }

double Speculator::RoundSeconds(int32_t k) const {
  // A round's draft passes run one token each, but the first (which catches up on 1-2).
  // (The prior until a short pass is measured: the first one catches up on the prompt.)
  const double draft = draft_ == nullptr                   ? 0
                       : !draft_times_.measured_up_to(2) ? DraftLength::kPriorDraftCost * pass_times_.Seconds(1)
                                                           : draft_times_.Seconds(1);
  return pass_times_.Seconds(k + 1) + k * draft;
}

Status Speculator::Next(Sampler* sampler, int32_t max_tokens, std::vector<int32_t>* out) {
  out->clear();
  if (max_tokens < 1) return Status::InvalidArgument("max_tokens must be >= 1");
  const int32_t n_vocab = target_->model().hparams().n_vocab;
  auto emit_next = [&](int32_t next) {
    out->push_back(next);
    pending_.reset();
    if (next < 0 || IsEog(next)) return;
    sampler->Accept(next);  // a sampled token is one the grammar allows
    pending_ = next;
  };
  if (!pending_) {  // the first token: the context's logits predict it
    emit_next(sampler->Sample(target_->logits(0), n_vocab));
    return Status::Ok();
  }
  const int32_t last = *pending_;
  const int32_t start = target_->n_past();
  // Room for the last token and k drafts in the context, and at most max_tokens out.
  const int32_t k_max = std::min({params_.draft_max, max_tokens - 1, target_->n_ctx() - start - 1});
  // A plain round now and then measures what drafting is compared with.
  const bool measure_plain =
      rounds_since_plain_ >= (pass_times_.measured(1) ? kPlainRoundEvery : kFirstPlainRound);
  int32_t k = 0;
  if (!params_.adapt) {
    k = k_max;
  } else if (k_max >= params_.draft_min && !measure_plain) {
    // Tokens per second of a round (DraftLength's prior before anything is measured).
    k = std::min(k_max, length_.Choose([this](int32_t k, double tokens) {
      return pass_times_.empty() ? DraftLength::PriorRate(k, tokens) : tokens / RoundSeconds(k);
    }));
  }
  rounds_since_plain_ = k == 0 ? 0 : rounds_since_plain_ + 1;
  Draft draft;
  if (k > 0) STRATA_RETURN_IF_ERROR(MakeDraft(last, k, *sampler, &draft));
  std::vector<int32_t> run = {last};
  run.insert(run.end(), draft.tokens.begin(), draft.tokens.end());
  const auto t0 = std::chrono::steady_clock::now();
  STRATA_RETURN_IF_ERROR(target_->Decode(run, draft.tokens.empty() ? LogitsMode::kLast : LogitsMode::kAll));
  pass_times_.Record(static_cast<int32_t>(run.size()), Since(t0));
  if (draft.tokens.empty()) {
    emit_next(sampler->Sample(target_->logits(0), n_vocab));
    return Status::Ok();
  }
  const Verdict v = verifier_.Verify(*sampler, target_->logits(0), n_vocab, draft,
                                     [this](int32_t t) { return IsEog(t); });
  target_->Truncate(start + 1 + v.n_accepted);
  const int32_t drafted = static_cast<int32_t>(draft.tokens.size());
  length_.Record(drafted, v.n_accepted);
  ++stats_.rounds;
  stats_.drafted += static_cast<uint64_t>(drafted);
  stats_.accepted += static_cast<uint64_t>(v.n_accepted);
  out->assign(draft.tokens.begin(), draft.tokens.begin() + v.n_accepted);  // Accept()ed by the verifier
  emit_next(v.next);
  return Status::Ok();
}

Status Speculator::Flush() {
  if (!pending_) return Status::Ok();
  const int32_t last = *pending_;
  STRATA_RETURN_IF_ERROR(target_->Decode(std::span<const int32_t>(&last, 1), LogitsMode::kLast));
  pending_.reset();
  return Status::Ok();
}

Status Speculator::MakeDraft(int32_t last, int32_t k, const Sampler& sampler, Draft* draft) {
  if (draft_ != nullptr) return DraftWithModel(last, k, sampler, draft);
  std::vector<int32_t> history = target_->tokens();
  history.push_back(last);
  draft->tokens = NgramDraft(history, k, params_.ngram);
  // Nothing past an end of generation: it would end the text there.
  for (size_t i = 0; i < draft->tokens.size(); ++i) {
    if (IsEog(draft->tokens[i])) {
      draft->tokens.resize(i + 1);
      break;
    }
  }
  return Status::Ok();
}

Status Speculator::DraftWithModel(int32_t last, int32_t k, const Sampler& sampler, Draft* draft) {
  if (draft_sampler_ == nullptr) {
    SamplerParams p = sampler.params();
    p.repeat_penalty = 1.0f;  // the penalties need the history, which a draft sampler does not keep
    p.frequency_penalty = p.presence_penalty = 0.0f;
    p.seed ^= kDraftSeedSalt;
    draft_sampler_ = std::make_unique<Sampler>(p);
  }
  // The draft context catches up: it keeps what it shares with the
  // sequence (its rejected drafts are cut) and runs the rest.
  std::vector<int32_t> history = target_->tokens();
  history.push_back(last);
  const std::vector<int32_t>& have = draft_->tokens();
  size_t common = std::mismatch(have.begin(), have.begin() + std::min(have.size(), history.size()), history.begin()).first -
                  have.begin();
  common = std::min(common, history.size() - 1);  // at least the last token runs: its logits draft the first
  draft_->Truncate(static_cast<int32_t>(common));
  const std::span<const int32_t> behind = std::span(history).subspan(common);
  auto t0 = std::chrono::steady_clock::now();
  STRATA_RETURN_IF_ERROR(draft_->Decode(behind, LogitsMode::kLast));
  draft_times_.Record(static_cast<int32_t>(behind.size()), Since(t0));
  const int32_t n_vocab_target = target_->model().hparams().n_vocab;
  const int32_t n_vocab = draft_->model().hparams().n_vocab;
  // Room in the draft context for the drafts it runs (all but the last).
  k = std::min(k, draft_->n_ctx() - draft_->n_past() + 1);
  for (int32_t i = 0; i < k; ++i) {
    std::vector<std::pair<int32_t, float>> q = draft_sampler_->Distribution(draft_->logits(0), n_vocab);
    if (q.empty()) break;
    const int32_t x = Sampler::Draw(q, draft_sampler_->NextUniform());
    if (x >= n_vocab_target) break;  // a padding row of the draft's output: not a token
    draft->tokens.push_back(x);
    draft->q.push_back(std::move(q));
    if (IsEog(x) || i + 1 == k) break;
    t0 = std::chrono::steady_clock::now();
    STRATA_RETURN_IF_ERROR(draft_->Decode(std::span<const int32_t>(&x, 1), LogitsMode::kLast));
    draft_times_.Record(1, Since(t0));
  }
  return Status::Ok();
}

}  // namespace strata
