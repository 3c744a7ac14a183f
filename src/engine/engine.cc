#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <fmt/format.h>

#include "engine/attention_tuner.h"
#include "vocab/vocab.h"

namespace strata {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
    case FinishReason::kNone: return "";
  }
  return "";
}

// A request being served. Its sequence must come to hold `tokens` (the prompt
// and every token generated so far); each step feeds the next part of it.
struct Engine::Slot {
  uint64_t id;
  GenerationRequest request;
  TokenSink sink;
  Sampler sampler;
  std::vector<int32_t> tokens;              // prompt + generated
  std::vector<TokenLogprob> prompt_logprobs;  // prompt_logprobs requests: scored so far, not yet sent
  bool prompt_scored = false;                 // prompt_logprobs sent
  std::optional<SeqId> seq;                 // nullopt while preempted
  std::optional<SeqId> resume;              // the request's resume sequence until it is taken (or freed)
  int32_t n_generated = 0;
  int32_t cached = -1;  // prompt tokens whose KV was reused when it first started (-1: not started)
  bool done = false;
  int32_t adapter = 0;        // request.lora's index in adapter_sets_ (held until the request finishes)
  uint64_t adapter_key = 0;   // and its content key
  // Speculative decoding: this step's drafts, and what the step runs for
  // them: the last token, then the drafts (empty: no drafts this step).
  DraftLength length;
  Draft draft;
  std::vector<int32_t> run;

  Slot(uint64_t id_, GenerationRequest r, TokenSink s, const EngineSpecParams& spec)
      : id(id_),
        request(std::move(r)),
        sink(std::move(s)),
        sampler(request.sampling),
        length(spec.draft_min, spec.draft_max) {
    tokens = request.prompt;
    for (int32_t t : tokens) sampler.AcceptPrompt(t);
    if (request.sampler_state) {  // a session's RNG and penalty counts continue; the history is the prompt's tail
      SamplerState st = sampler.state();
      st.rng = request.sampler_state->rng;
      st.counts = request.sampler_state->counts;
      sampler.set_state(st);
    }
    resume = request.resume;
    request.resume.reset();
  }
};

namespace {

// log-softmax of logits F32 [n]: logprob of `id` and the `top` best (id, logprob).
TokenLogprob Logprobs(const float* logits, int32_t n, int32_t id, int32_t top) {
  float max = logits[0];
  for (int32_t i = 1; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float log_z = max + static_cast<float>(std::log(sum));
  TokenLogprob lp;
  lp.id = id;
  lp.logprob = logits[id] - log_z;
  if (top > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) ids[i] = i;
    const int32_t k = std::min(top, n);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (int32_t i = 0; i < k; ++i) lp.top.emplace_back(ids[i], logits[ids[i]] - log_z);
  }
  return lp;
}

std::vector<int32_t> EogTokens(const Vocab& vocab) {
  std::vector<int32_t> eog;
  for (int32_t t = 0; t < vocab.n_tokens(); ++t)
    if (vocab.IsEog(t)) eog.push_back(t);
  return eog;
}

int64_t BlocksFor(int64_t tokens, int32_t block_tokens) { return (tokens + block_tokens - 1) / block_tokens; }

}  // namespace

Status Engine::Create(const Model& model, const EngineParams& params, std::unique_ptr<Engine>* out) {
  if (params.parallel < 1 || params.parallel > 4096) return Status::InvalidArgument("parallel must be in [1, 4096]");
  if (params.max_queue < 0) return Status::InvalidArgument("max_queue must be >= 0");
  if (params.max_batch_tokens < 1 || params.max_batch_tokens > 65536)
    return Status::InvalidArgument("max_batch_tokens must be in [1, 65536]");
  const RunnerParams rp{params.n_ctx,    params.n_threads,      params.kv_type,         params.kv_block_tokens,
                        params.kv_tiers, params.env,            params.attention_grid,  params.tune_cache_path,
                        params.log,      params.keepalive_s};
  // Room for every running sequence at full context, plus as much again for
  // the prefix cache; tier budgets, when given, bound it. A request's KV can
  // never outgrow the pool: that bounds its context (below).
  auto sizing = [&params](const KvLayout& layout, int32_t n_ctx, KvCacheConfig* kc) {
    const int64_t wanted = 2 * static_cast<int64_t>(params.parallel) * BlocksFor(n_ctx, layout.block_tokens);
    const bool unlimited =
        kc->tiers.ram_bytes == UINT64_MAX && (kc->tiers.disk_dir.empty() || kc->tiers.disk_bytes == UINT64_MAX);
    int64_t budget_blocks = wanted;
    if (!unlimited) {
      const uint64_t disk = kc->tiers.disk_dir.empty() ? 0 : std::min<uint64_t>(kc->tiers.disk_bytes, uint64_t{1} << 50);
      const uint64_t ram = std::min<uint64_t>(kc->tiers.ram_bytes, uint64_t{1} << 50);
      const uint64_t nodes = std::min<uint64_t>(kc->node_bytes, uint64_t{1} << 50);
      budget_blocks = static_cast<int64_t>((ram + disk + nodes) / layout.block_bytes());
    }
    kc->n_blocks = static_cast<int32_t>(std::min<int64_t>({wanted, budget_blocks, int64_t{1} << 22}));
    if (kc->n_blocks < 1)
      return Status::InvalidArgument(fmt::format("the KV budget holds no block ({} bytes each)", layout.block_bytes()));
    const int64_t kv_positions = static_cast<int64_t>(kc->n_blocks) * layout.block_tokens;
    if (kv_positions < 2)
      return Status::InvalidArgument(fmt::format("the KV budget holds {} position(s); a request needs at least 2",
                                                 kv_positions));
    kc->prefix_cache = params.prefix_cache;
    kc->ram_only_min_blocks = 0;  // a request RAM cannot hold while the disk tier fails is told to retry later
    return Status::Ok();
  };
  const EngineSpecParams& spec = params.spec;
  if (spec.draft_min < 1 || spec.draft_max < spec.draft_min || spec.draft_max > 64)
    return Status::InvalidArgument("the draft lengths must satisfy 1 <= draft_min <= draft_max <= 64");
  if (spec.ngram.ngram_min < 1 || spec.ngram.ngram_max < spec.ngram.ngram_min || spec.ngram.ngram_max > 64)
    return Status::InvalidArgument("the n-gram lengths must satisfy 1 <= ngram_min <= ngram_max <= 64");
  if (spec.max_batch < 0) return Status::InvalidArgument("the speculation batch limit must be >= 0");
  if ((spec.method == SpecMethod::kDraftModel) != (spec.draft_model != nullptr))
    return Status::InvalidArgument("a draft model is given exactly for the draft model method");
  std::unique_ptr<Runner> runner;
  STRATA_RETURN_IF_ERROR(Runner::Create(model, rp, sizing, &runner));
  std::unique_ptr<BatchDrafter> drafter;
  if (spec.method == SpecMethod::kNgram) drafter = BatchDrafter::Ngram(model, spec.ngram);
  if (spec.method == SpecMethod::kDraftModel) {
    RunnerParams drp = rp;
    drp.n_ctx = runner->n_ctx();
    STRATA_RETURN_IF_ERROR(
        BatchDrafter::WithModel(model, *spec.draft_model, drp, params.parallel, params.max_batch_tokens, &drafter));
  }
  if (params.max_adapter_sets < static_cast<int64_t>(params.adapters.size()))
    return Status::InvalidArgument(fmt::format("max_adapter_sets {} is below the {} adapter sets kept ready",
                                               params.max_adapter_sets, params.adapters.size()));
  STRATA_RETURN_IF_ERROR(runner->SetAdapters(params.adapters));
  const int64_t kv_positions = static_cast<int64_t>(runner->kv().capacity_blocks()) * runner->kv().layout().block_tokens;
  const int32_t n_ctx = runner->n_ctx();
  out->reset(new Engine(model, params, static_cast<int32_t>(std::min<int64_t>(n_ctx, kv_positions)), kv_positions < n_ctx,
                        std::move(runner), std::move(drafter)));
  return Status::Ok();
}

Engine::Engine(const Model& model, const EngineParams& params, int32_t n_ctx, bool ctx_bound_by_kv,
               std::unique_ptr<Runner> runner, std::unique_ptr<BatchDrafter> drafter)
    : model_(model),
      params_(params),
      n_ctx_(n_ctx),
      ctx_bound_by_kv_(ctx_bound_by_kv),
      runner_(std::move(runner)),
      kv_(&runner_->kv()),
      eog_tokens_(EogTokens(model.vocab())),
      drafter_(std::move(drafter)),
      adapter_sets_(params.adapters, params.max_adapter_sets),
      thread_([this] { StepLoop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status Engine::Submit(GenerationRequest request, TokenSink sink, uint64_t* id) {
  if (request.prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  const int32_t n_prompt = static_cast<int32_t>(request.prompt.size());
  if (n_prompt >= n_ctx_)
    return Status::OutOfRange(fmt::format("the prompt has {} tokens; the context holds {}{}", n_prompt, n_ctx_,
                                          ctx_bound_by_kv_ ? " (all the KV cache budget holds)" : ""));
  for (int32_t t : request.prompt)
    if (t < 0 || t >= model_.hparams().n_vocab) return Status::InvalidArgument(fmt::format("token id {} out of range", t));
  if (request.grammar != nullptr) {
    for (const grammar::Element& e : request.grammar->elements)
      if ((e.kind == grammar::ElementKind::kToken || e.kind == grammar::ElementKind::kNotToken) &&
          e.value >= static_cast<uint32_t>(model_.vocab().n_tokens()))
        return Status::InvalidArgument(fmt::format("the grammar names token {}, beyond the vocabulary", e.value));
  }
  if (request.max_tokens < 0) return Status::InvalidArgument("max_tokens must be >= 0");
  if (request.min_tokens < 0) return Status::InvalidArgument("min_tokens must be >= 0");
  const int32_t n_vocab = model_.hparams().n_vocab;
  for (int32_t t : request.stop_token_ids)
    if (t < 0 || t >= n_vocab) return Status::InvalidArgument(fmt::format("stop token id {} out of range", t));
  for (const LogitBias& b : request.sampling.logit_bias) {
    if (b.token < 0 || b.token >= n_vocab)
      return Status::InvalidArgument(fmt::format("logit bias for token id {}, out of range", b.token));
    if (std::isnan(b.bias) || b.bias == std::numeric_limits<float>::infinity())
      return Status::InvalidArgument(fmt::format("logit bias {} for token id {}: must be finite or -infinity", b.bias, b.token));
  }
  STRATA_RETURN_IF_ERROR(runner_->CheckAdapters(request.lora));
  std::lock_guard<std::mutex> l(mu_);
  if (static_cast<int32_t>(queue_.size()) >= params_.max_queue) {
    ++stats_.requests_rejected;
    return Status::ResourceExhausted("the request queue is full");
  }
  int32_t adapter = 0;
  STRATA_RETURN_IF_ERROR(adapter_sets_.Acquire(request.lora, &adapter));
  *id = next_id_++;
  ++stats_.requests_total;
  queue_.push_back(Pending{*id, std::move(request), std::move(sink), adapter});
  stats_.queue_depth = static_cast<int32_t>(queue_.size());
  cv_.notify_all();
  return Status::Ok();
}

void Engine::Cancel(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  cancelled_.push_back(id);
  cv_.notify_all();
}

EngineStats Engine::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

Status Engine::GatherKv(std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> into) {
  std::promise<Status> done;
  RunOnStepThread([&](KvCacheManager&) { done.set_value(runner_->GatherKv(blocks, whole, into)); });
  return done.get_future().get();
}

Status Engine::ScatterKv(BlockStore& whole, std::span<const BlockId> from, std::span<const BlockId> blocks) {
  std::promise<Status> done;
  RunOnStepThread([&](KvCacheManager&) { done.set_value(runner_->ScatterKv(whole, from, blocks)); });
  return done.get_future().get();
}

void Engine::RunOnStepThread(std::function<void(KvCacheManager&)> task) {
  std::lock_guard<std::mutex> l(mu_);
  tasks_.push_back(std::move(task));
  cv_.notify_all();
}

void Engine::RunTasks() {
  for (;;) {
    std::function<void(KvCacheManager&)> task;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task(*kv_);
  }
}

void Engine::ReleaseAdapter(int32_t adapter) {
  std::lock_guard<std::mutex> l(mu_);
  adapter_sets_.Release(adapter);
}

void Engine::UpdateAdapters() {
  std::vector<LoraSet> sets;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!adapter_sets_.TakeChanged()) return;
    sets = adapter_sets_.sets();
  }
  // Submit checked every set (Runner::CheckAdapters); should the runner
  // still refuse them, the requests with adapters end with its error.
  const Status st = runner_->SetAdapters(std::move(sets));
  if (st.ok()) return;
  for (auto& s : slots_) {
    if (s->done || s->adapter == 0) continue;
    TokenEvent e;
    e.error = st;
    Finish(s.get(), e, FinishReason::kError);
  }
}

void Engine::FreeResume(std::optional<SeqId>& resume) {
  if (resume && kv_->exists(*resume)) kv_->FreeSequence(*resume);
  resume.reset();
}

bool Engine::ResumeFits(const Slot& s) const {
  if (!s.resume || !kv_->exists(*s.resume) || kv_->adapter(*s.resume) != s.adapter ||
      kv_->adapter_key(*s.resume) != s.adapter_key)
    return false;
  const std::vector<int32_t>& have = kv_->tokens(*s.resume);
  return have.size() < s.tokens.size() && std::equal(have.begin(), have.end(), s.tokens.begin());
}

int64_t Engine::BlocksToStart(const std::vector<int32_t>& tokens, const std::optional<SeqId>& resume) const {
  const int64_t need = BlocksFor(static_cast<int64_t>(tokens.size()) + 1, kv_->layout().block_tokens);
  const int64_t own = resume && kv_->exists(*resume) ? static_cast<int64_t>(kv_->blocks(*resume).size()) : 0;
  return std::max<int64_t>(0, need - own);
}

void Engine::StepLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] { return stop_ || !queue_.empty() || !slots_.empty() || !cancelled_.empty() || !tasks_.empty(); };
      if (!runner_->distributed() || params_.keepalive_s <= 0) {
        cv_.wait(lock, ready);
      } else if (!cv_.wait_for(lock, std::chrono::duration<double>(params_.keepalive_s), ready)) {
        lock.unlock();
        // A failed ping leaves the cluster broken: the next step fails its requests and the job ends aborted.
        (void)runner_->KeepAlive();
        continue;
      }
      if (stop_) break;
    }
    RunTasks();
    Admit();
    Step();
  }
  TokenEvent bye;
  bye.finished = true;
  bye.reason = FinishReason::kCancelled;
  for (auto& s : slots_) {
    if (s->seq) kv_->FreeSequence(*s->seq);
    FreeResume(s->resume);
    s->sink(bye);
  }
  std::deque<Pending> queued;
  {
    std::lock_guard<std::mutex> l(mu_);
    queued.swap(queue_);
  }
  for (auto& p : queued) {
    FreeResume(p.request.resume);
    p.sink(bye);
  }
  RunTasks();
}

void Engine::Admit() {
  std::vector<Pending> admitted, dropped;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (std::find(cancelled_.begin(), cancelled_.end(), it->id) != cancelled_.end()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    // Admission by free KV blocks: a new request must fit its prompt now
    // (an idle engine always takes one; Schedule reports it if it can never fit).
    int64_t available = kv_->n_available_blocks();
    while (!queue_.empty() && slots_.size() + admitted.size() < static_cast<size_t>(params_.parallel)) {
      const int64_t need = BlocksToStart(queue_.front().request.prompt, queue_.front().request.resume);
      if (need > available && !(slots_.empty() && admitted.empty())) break;
      available -= need;
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    stats_.queue_depth = static_cast<int32_t>(queue_.size());
    stats_.running = static_cast<int32_t>(slots_.size() + admitted.size());
  }
  TokenEvent cancelled;
  cancelled.finished = true;
  cancelled.reason = FinishReason::kCancelled;
  for (Pending& p : dropped) {
    FreeResume(p.request.resume);
    ReleaseAdapter(p.adapter);
    p.sink(cancelled);
  }
  for (Pending& p : admitted) {
    std::unique_ptr<grammar::GrammarMatcher> matcher;
    if (p.request.grammar != nullptr) {
      if (token_trie_ == nullptr) token_trie_ = grammar::TokenTrie::Build(model_.vocab());
      if (Status st = grammar::GrammarMatcher::Create(p.request.grammar, token_trie_, &matcher); !st.ok()) {
        TokenEvent e;
        e.finished = true;
        e.reason = FinishReason::kError;
        e.error = st;
        FreeResume(p.request.resume);
        ReleaseAdapter(p.adapter);
        p.sink(e);
        continue;
      }
    }
    slots_.push_back(std::make_unique<Slot>(p.id, std::move(p.request), std::move(p.sink), params_.spec));
    slots_.back()->adapter = p.adapter;
    {
      std::lock_guard<std::mutex> l(mu_);
      slots_.back()->adapter_key = adapter_sets_.key(p.adapter);
    }
    slots_.back()->sampler.set_grammar(std::move(matcher));  // it constrains the completion only
    slots_.back()->sampler.set_banned(Banned(*slots_.back()));
  }
}

bool Engine::TruncateLost() {
  const std::vector<KvCacheManager::LostSuffix> lost = kv_->DropLostBlocks();
  for (const auto& l : lost) kv_->Truncate(l.seq, l.first_lost * kv_->layout().block_tokens);
  return !lost.empty();
}

void Engine::Preempt(Slot* slot) {
  kv_->FreeSequence(*slot->seq);  // full blocks stay in the prefix cache for the resume
  slot->seq.reset();
  slot->run.clear();
  if (drafter_ != nullptr) drafter_->Forget(slot->id);
  std::lock_guard<std::mutex> l(mu_);
  ++stats_.preemptions;
}

bool Engine::WaitsForSibling(const Slot& s) const {
  if (!params_.prefix_cache || s.request.prompt_logprobs) return false;
  const int32_t bt = kv_->layout().block_tokens;
  for (const auto& up : slots_) {
    const Slot& o = *up;
    if (&o == &s || o.done || !o.seq || o.adapter != s.adapter) continue;
    // Whole blocks both start with (leaving s at least one token to compute).
    const size_t limit = std::min(s.tokens.size() - 1, o.tokens.size());
    const size_t common = std::mismatch(s.tokens.begin(), s.tokens.begin() + limit, o.tokens.begin()).first -
                          s.tokens.begin();
    const int32_t shared = static_cast<int32_t>(common) / bt * bt;
    if (shared > 0 && kv_->length(*o.seq) < shared) return true;
  }
  return false;
}

bool Engine::Schedule(std::vector<KvCacheManager::Append>* appends, StepPlan* plan, std::vector<Slot*>* order,
                      std::vector<bool>* to_end) {
  bool preempted = false;  // a request preempted now is not resumed in the same step
  for (;;) {
    appends->clear();
    order->clear();
    to_end->clear();
    int32_t budget = params_.max_batch_tokens;
    // Decode tokens first (they keep streams flowing), then prefill chunks, oldest request first.
    for (int pass = 0; pass < 2; ++pass) {
      for (auto& up : slots_) {
        Slot* s = up.get();
        if (s->done || budget == 0) continue;
        if (!s->seq) {
          if (pass == 0 || preempted || WaitsForSibling(*s)) continue;
          const int64_t need = BlocksToStart(s->tokens, s->resume);
          if (need > kv_->n_available_blocks() && !order->empty()) continue;  // stays preempted for now
          int32_t cached = 0;
          if (ResumeFits(*s)) {
            s->seq = s->resume;  // a session's KV: only the rest of the prompt is computed
            s->resume.reset();
            cached = kv_->length(*s->seq);
          } else {
            FreeResume(s->resume);
            s->seq = kv_->NewSequence(s->adapter, s->adapter_key);
            // A scored prompt is computed whole: cached positions have no logits.
            cached = s->request.prompt_logprobs ? 0 : kv_->AttachCachedPrefix(*s->seq, s->tokens);
          }
          if (s->cached < 0) s->cached = cached;
          std::lock_guard<std::mutex> l(mu_);
          stats_.prompt_tokens_cached += static_cast<uint64_t>(cached);
        }
        const int32_t len = kv_->length(*s->seq);
        const int32_t rest = static_cast<int32_t>(s->tokens.size()) - len;
        if ((pass == 0) != (rest == 1)) continue;
        if (pass == 0 && !s->run.empty() && static_cast<int32_t>(s->run.size()) <= budget) {
          // The last token and its drafts: logits of every position, for the verifier.
          budget -= static_cast<int32_t>(s->run.size());
          appends->push_back({*s->seq, std::span<const int32_t>(s->run), PlanLogits::kAll});
          order->push_back(s);
          to_end->push_back(true);
          continue;
        }
        s->run.clear();
        const int32_t n = std::min(rest, budget);
        budget -= n;
        const bool end = len + n == static_cast<int32_t>(s->tokens.size());
        const bool score =
            s->request.prompt_logprobs && !s->prompt_scored && len < static_cast<int32_t>(s->request.prompt.size());
        appends->push_back({*s->seq, std::span<const int32_t>(s->tokens.data() + len, n),
                            score ? PlanLogits::kAll : (end ? PlanLogits::kLast : PlanLogits::kNone)});
        order->push_back(s);
        to_end->push_back(end);
      }
    }
    if (order->empty()) return false;
    Status st = kv_->Prepare(*appends, plan);
    if (st.ok()) return true;
    if (st.code() != StatusCode::kResourceExhausted) {
      // A copy-on-write read a block lost on the disk tier: recompute it. Anything else ends the batch.
      if (!TruncateLost()) {
        for (Slot* s : *order) {
          TokenEvent e;
          e.error = st;
          Finish(s, e, FinishReason::kError);
        }
      }
      continue;
    }
    // Out of KV blocks: drop this step's drafts first, then preempt the
    // youngest request holding any and try again.
    bool drafts = false;
    for (auto& up : slots_) {
      drafts = drafts || !up->run.empty();
      up->run.clear();
    }
    if (drafts) continue;
    Slot* victim = nullptr;
    int holders = 0;
    for (auto& up : slots_) {
      if (up->done || !up->seq) continue;
      victim = up.get();
      ++holders;
    }
    if (holders > 1) {
      Preempt(victim);
      preempted = true;
      continue;
    }
    // It has the pool to itself, so its context fits in it unless the cache
    // serves from RAM only: try the disk again, else the client retries later.
    if (kv_->RetryDiskTier()) continue;
    TokenEvent e;
    e.error = Status::Unavailable(
        kv_->ram_only() ? "the KV disk tier is failing and the KV cache's RAM budget cannot hold this request now"
                        : "the KV cache cannot hold this request now: " + st.message());
    Finish(victim, e, FinishReason::kError);
  }
}

void Engine::Finish(Slot* slot, TokenEvent& e, FinishReason reason) {
  e.finished = true;
  e.reason = reason;
  e.prompt_tokens = static_cast<int32_t>(slot->request.prompt.size());
  e.completion_tokens = slot->n_generated;
  e.cached_tokens = std::max(slot->cached, 0);
  if (slot->request.retain && (reason == FinishReason::kLength || reason == FinishReason::kStop)) {
    // The sequence goes to the sink (a request that computed nothing hands over its resume sequence, or a new one).
    if (!slot->seq) slot->seq = ResumeFits(*slot) ? *slot->resume : kv_->NewSequence(slot->adapter, slot->adapter_key);
    if (slot->resume == slot->seq) slot->resume.reset();
    auto r = std::make_shared<RetainedSequence>();
    r->seq = *slot->seq;
    r->tokens = slot->tokens;
    r->n_kv = kv_->length(*slot->seq);
    r->blocks = kv_->blocks(*slot->seq);
    r->sampler = slot->sampler.state();
    e.retained = std::move(r);
  } else if (slot->seq) {
    kv_->FreeSequence(*slot->seq);
  }
  FreeResume(slot->resume);
  slot->seq.reset();
  slot->done = true;
  ReleaseAdapter(slot->adapter);
  slot->adapter = 0;
  if (drafter_ != nullptr) drafter_->Forget(slot->id);
  RecordFinish(*slot);
  // Last: a client woken by its final event sees the stats without it.
  slot->sink(e);
}

std::vector<int32_t> Engine::Banned(const Slot& slot) const {
  const bool early = slot.n_generated < slot.request.min_tokens;
  std::vector<int32_t> banned;
  if (slot.request.ignore_eos || early) banned = eog_tokens_;
  if (early) banned.insert(banned.end(), slot.request.stop_token_ids.begin(), slot.request.stop_token_ids.end());
  return banned;
}

void Engine::ScorePrompt(Slot* slot, const float* logits, int32_t start, int32_t n) {
  const std::vector<int32_t>& prompt = slot->request.prompt;
  const int32_t n_vocab = model_.hparams().n_vocab;
  const int32_t top = std::max(slot->request.top_logprobs, 0);
  // Row j holds the logits after position start + j: they score the prompt
  // token at start + j + 1, kept at index start + j. Positions computed again
  // (after a preemption or a lost KV block) are already scored.
  for (int32_t j = 0; j < n && start + j + 1 < static_cast<int32_t>(prompt.size()); ++j) {
    if (start + j < static_cast<int32_t>(slot->prompt_logprobs.size())) continue;
    slot->prompt_logprobs.push_back(
        Logprobs(logits + static_cast<size_t>(j) * n_vocab, n_vocab, prompt[start + j + 1], top));
  }
}

void Engine::RecordFinish(const Slot& slot) {
  std::lock_guard<std::mutex> l(mu_);
  stats_.prompt_tokens_total += slot.request.prompt.size();
  stats_.completion_tokens_total += static_cast<uint64_t>(slot.n_generated);
  --stats_.running;
  stats_.kv = kv_->stats();
}

void Engine::TakeSampled(Slot* s, int32_t next, const float* logits, TokenEvent& e) {
  if (next < 0) {  // no token is left to draw
    const grammar::GrammarMatcher* g = s->sampler.grammar();
    if (g != nullptr && g->CanEnd() && !g->overflowed()) {  // complete, and no end-of-generation token may follow
      Finish(s, e, FinishReason::kStop);
      return;
    }
    e.error = Status::InvalidArgument(
        g == nullptr ? "the logit biases and banned tokens leave no token to draw"
        : g->overflowed()
            ? fmt::format("the grammar is too ambiguous: matching it needs more than {} parse stacks",
                          grammar::kMaxStacks)
            : "no token of the vocabulary continues the grammar (with the logit biases and banned tokens)");
    Finish(s, e, FinishReason::kError);
    return;
  }
  if (EndsGeneration(*s, next)) {
    Finish(s, e, FinishReason::kStop);
    return;
  }
  s->sampler.Accept(next);  // a sampled token is one the grammar allows
  EmitToken(s, next, logits, e);
}

bool Engine::EndsGeneration(const Slot& s, int32_t token) const {
  return model_.vocab().IsEog(token) ||
         std::find(s.request.stop_token_ids.begin(), s.request.stop_token_ids.end(), token) !=
             s.request.stop_token_ids.end();
}

bool Engine::EmitToken(Slot* s, int32_t token, const float* logits, TokenEvent& e) {
  if (++s->n_generated == s->request.min_tokens) s->sampler.set_banned(Banned(*s));
  if (s->request.top_logprobs >= 0)
    e.logprobs.push_back(Logprobs(logits, model_.hparams().n_vocab, token, s->request.top_logprobs));
  e.tokens.push_back(token);
  s->tokens.push_back(token);
  if (s->n_generated >= s->request.max_tokens || static_cast<int32_t>(s->tokens.size()) >= n_ctx_) {
    Finish(s, e, FinishReason::kLength);
    return false;
  }
  e.prompt_tokens = static_cast<int32_t>(s->request.prompt.size());
  e.completion_tokens = s->n_generated;
  const SinkReply reply = s->sink(e);
  if (reply != SinkReply::kContinue) {
    TokenEvent end;
    Finish(s, end, reply == SinkReply::kStop ? FinishReason::kStop : FinishReason::kCancelled);
    return false;
  }
  return true;
}

void Engine::ProposeDrafts() {
  for (auto& up : slots_) up->run.clear();
  if (drafter_ == nullptr) return;
  // The step's generating requests: their KV holds all their tokens but the last.
  std::vector<Slot*> generating;
  for (auto& up : slots_) {
    Slot* s = up.get();
    if (s->done) continue;
    if (!s->seq || kv_->length(*s->seq) + 1 != static_cast<int32_t>(s->tokens.size()))
      return;  // a prompt to compute: the step is large already
    generating.push_back(s);
  }
  if (generating.empty() || static_cast<int32_t>(generating.size()) > params_.spec.max_batch) return;
  // Each request's length is chosen for the step's tokens per second, with
  // the drafts chosen before it: its own expected tokens plus one for each
  // other request (and those others' expected extras), over the time of the
  // step's pass and of the draft passes.
  int32_t step_tokens = static_cast<int32_t>(generating.size());
  double step_expected = step_tokens;
  int32_t draft_passes = 0;
  std::vector<DraftRequest> requests;
  std::vector<Slot*> who;
  for (Slot* s : generating) {
    if (!s->request.speculate || (s->request.prompt_logprobs && !s->prompt_scored)) continue;
    // Every position of a draft is verified under the bans of now: a draft
    // ends before min_tokens lifts them.
    const int32_t before_unban =
        s->n_generated < s->request.min_tokens ? s->request.min_tokens - s->n_generated - 1 : params_.spec.draft_max;
    const int32_t room = std::min({params_.spec.draft_max, s->request.max_tokens - s->n_generated - 1,
                                   n_ctx_ - static_cast<int32_t>(s->tokens.size()) - 1,
                                   params_.max_batch_tokens - step_tokens, before_unban});
    if (room < params_.spec.draft_min) continue;
    const int32_t k = !params_.spec.adapt ? room : std::min(room, s->length.Choose([&](int32_t k, double tokens) {
      if (pass_times_.empty()) return DraftLength::PriorRate(k, tokens);
      const double plain = pass_times_.Seconds(step_tokens);
      // A draft pass runs one token for each request drafting so far and this one.
      const PassTimes& draft_times = drafter_->pass_times();
      // (Until such short passes are measured, the prior: the passes seen may be long catch-ups.)
      const int32_t draft_tokens = static_cast<int32_t>(requests.size()) + 1;
      const double per_draft = !drafter_->uses_model() ? 0
                               : !draft_times.measured_up_to(2 * draft_tokens) ? DraftLength::kPriorDraftCost * plain
                                                                               : draft_times.Seconds(draft_tokens);
      const double seconds = pass_times_.Seconds(step_tokens + k) + per_draft * std::max(0, k - draft_passes);
      return (step_expected - 1 + tokens) / seconds;
    }));
    if (k == 0) continue;
    step_tokens += k;
    step_expected += s->length.ExpectedTokens(k) - 1;
    draft_passes = std::max(draft_passes, k);
    requests.push_back({s->id, s->tokens, k, &s->request.sampling});
    who.push_back(s);
  }
  if (requests.empty()) return;
  std::vector<Draft> drafts;
  drafter_->Propose(requests, &drafts);
  for (size_t i = 0; i < who.size(); ++i) {
    if (drafts[i].tokens.empty()) continue;
    Slot* s = who[i];
    s->draft = std::move(drafts[i]);
    s->run.assign(1, s->tokens.back());
    s->run.insert(s->run.end(), s->draft.tokens.begin(), s->draft.tokens.end());
  }
}

void Engine::VerifyDrafts(Slot* s, const KvCacheManager::Append& entry, const float* logits) {
  const int32_t n_vocab = model_.hparams().n_vocab;
  const Verdict v =
      verifier_.Verify(s->sampler, logits, n_vocab, s->draft, [&](int32_t t) { return EndsGeneration(*s, t); });
  // Keep the last token and the accepted drafts; the blocks only rejected ones used go back to the pool.
  kv_->Commit(*s->seq, entry.tokens.first(static_cast<size_t>(1 + v.n_accepted)));
  kv_->Rollback(std::span(&entry, 1));
  const int32_t drafted = static_cast<int32_t>(s->draft.tokens.size());
  s->length.Record(drafted, v.n_accepted);
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.spec_verifications;
    stats_.spec_drafted += static_cast<uint64_t>(drafted);
    stats_.spec_accepted += static_cast<uint64_t>(v.n_accepted);
  }
  const std::vector<int32_t> kept(s->draft.tokens.begin(), s->draft.tokens.begin() + v.n_accepted);
  s->run.clear();
  for (int32_t j = 0; j < v.n_accepted; ++j) {  // each in its own event, as if sampled one by one
    TokenEvent e;
    if (!EmitToken(s, kept[j], logits + static_cast<size_t>(j) * n_vocab, e)) return;
  }
  TokenEvent e;
  TakeSampled(s, v.next, logits + static_cast<size_t>(v.n_accepted) * n_vocab, e);
}

void Engine::Step() {
  std::vector<uint64_t> cancelled;
  {
    std::lock_guard<std::mutex> l(mu_);
    cancelled.swap(cancelled_);
  }
  for (auto& s : slots_) {
    if (std::find(cancelled.begin(), cancelled.end(), s->id) == cancelled.end()) continue;
    TokenEvent e;
    Finish(s.get(), e, FinishReason::kCancelled);
  }
  // max_tokens 0: nothing to generate, nothing to compute (unless the prompt is scored).
  for (auto& s : slots_) {
    if (!s->done && s->request.max_tokens == 0 && !s->request.prompt_logprobs) {
      TokenEvent e;
      Finish(s.get(), e, FinishReason::kLength);
    }
  }

  UpdateAdapters();
  ProposeDrafts();
  std::vector<KvCacheManager::Append> appends;
  StepPlan plan;
  std::vector<Slot*> order;
  std::vector<bool> to_end;
  if (Schedule(&appends, &plan, &order, &to_end)) {
    const auto t0 = std::chrono::steady_clock::now();
    Status st = runner_->Run(plan, &logits_);
    // Steps that only generate time the speculation's cost model.
    if (st.ok() && std::all_of(to_end.begin(), to_end.end(), [](bool e) { return e; }) &&
        std::all_of(appends.begin(), appends.end(),
                    [](const auto& a) { return a.tokens.size() == 1 || a.logits == PlanLogits::kAll; }) &&
        std::none_of(order.begin(), order.end(), [](Slot* s) { return s->request.prompt_logprobs && !s->prompt_scored; }))
      pass_times_.Record(plan.n_tokens(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!st.ok()) {
      kv_->Rollback(appends);
      // A KV block lost on the disk tier is recomputed in the next steps; other errors end the batch.
      if (!TruncateLost()) {
        for (Slot* s : order) {
          TokenEvent e;
          e.error = st;
          Finish(s, e, FinishReason::kError);
        }
      }
    } else {
      const int32_t n_vocab = model_.hparams().n_vocab;
      size_t row = 0;
      for (size_t i = 0; i < order.size(); ++i) {
        Slot* s = order[i];
        const KvCacheManager::Append& entry = appends[i];
        if (!s->run.empty() && entry.tokens.data() == s->run.data()) {  // speculative: k + 1 rows
          VerifyDrafts(s, entry, &logits_[row * static_cast<size_t>(n_vocab)]);
          row += entry.tokens.size();
          continue;
        }
        const bool all = entry.logits == PlanLogits::kAll;
        const int32_t start = kv_->length(*s->seq);
        kv_->Commit(*s->seq, entry.tokens);
        if (all) {
          ScorePrompt(s, &logits_[row * static_cast<size_t>(n_vocab)], start, static_cast<int32_t>(entry.tokens.size()));
          row += entry.tokens.size() - 1;  // the last row is the entry's own, below
        }
        if (!to_end[i]) {
          if (all) ++row;
          continue;
        }
        const float* logits = &logits_[row++ * static_cast<size_t>(n_vocab)];
        TokenEvent e;
        if (s->request.prompt_logprobs && !s->prompt_scored) {
          e.prompt_logprobs.swap(s->prompt_logprobs);
          s->prompt_scored = true;
        }
        if (s->request.max_tokens == 0) {  // a scored prompt, nothing to generate
          Finish(s, e, FinishReason::kLength);
          continue;
        }
        TakeSampled(s, s->sampler.Sample(logits, n_vocab), logits, e);
      }
    }
  }
  TruncateLost();  // blocks the prefetcher found lost
  kv_->MaintainDiskTier();
  const KvCacheStats kv = kv_->stats();
  std::optional<KvNodeStats> nodes;
  if (runner_->kv_nodes() != nullptr) nodes = runner_->kv_nodes()->stats();
  std::lock_guard<std::mutex> l(mu_);
  slots_.erase(std::remove_if(slots_.begin(), slots_.end(), [](const auto& s) { return s->done; }), slots_.end());
  ++stats_.steps;
  stats_.running = static_cast<int32_t>(slots_.size());
  stats_.kv = kv;
  stats_.kv_nodes = nodes;
}

}  // namespace strata
