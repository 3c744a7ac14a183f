#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "engine/context.h"
#include "engine/stop_matcher.h"
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

// A running request: its sequence state, sampler and text bookkeeping.
struct Engine::Slot {
  uint64_t id;
  GenerationRequest request;
  EventSink sink;
  std::unique_ptr<Context> ctx;
  Sampler sampler;
  StreamDecoder decoder;
  StopMatcher stop;
  std::vector<TokenLogprob> held_logprobs;  // tokens whose text the stop matcher still holds
  int32_t prev = -1;
  int32_t n_generated = 0;
  bool prefilled = false;

  Slot(uint64_t id_, GenerationRequest r, EventSink s, std::unique_ptr<Context> c, const Vocab& vocab)
      : id(id_),
        request(std::move(r)),
        sink(std::move(s)),
        ctx(std::move(c)),
        sampler(request.sampling),
        decoder(vocab),
        stop(request.stop) {}
};

namespace {

// log-softmax of logits F32 [n]: logprob of `id` and the `top` best (id, logprob).
TokenLogprob Logprobs(const float* logits, int32_t n, int32_t id, int32_t top, const Vocab& vocab) {
  float max = logits[0];
  for (int32_t i = 1; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int32_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float log_z = max + static_cast<float>(std::log(sum));
  TokenLogprob lp;
  lp.id = id;
  lp.text = vocab.TokenToPiece(id);
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

}  // namespace

Status Engine::Create(const Model& model, const EngineParams& params, std::unique_ptr<Engine>* out) {
  if (params.parallel < 1 || params.parallel > 1024) return Status::InvalidArgument("parallel must be in [1, 1024]");
  if (params.max_queue < 0) return Status::InvalidArgument("max_queue must be >= 0");
  const int32_t n_ctx = params.n_ctx > 0 ? params.n_ctx : model.hparams().n_ctx_train;
  out->reset(new Engine(model, params, n_ctx));
  return Status::Ok();
}

Engine::Engine(const Model& model, const EngineParams& params, int32_t n_ctx)
    : model_(model), params_(params), n_ctx_(n_ctx), thread_([this] { StepLoop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status Engine::Submit(GenerationRequest request, EventSink sink, uint64_t* id) {
  if (request.prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  const int32_t n_prompt = static_cast<int32_t>(request.prompt.size());
  if (n_prompt >= n_ctx_)
    return Status::InvalidArgument(fmt::format("the prompt has {} tokens; the context holds {}", n_prompt, n_ctx_));
  for (int32_t t : request.prompt)
    if (t < 0 || t >= model_.hparams().n_vocab) return Status::InvalidArgument(fmt::format("token id {} out of range", t));
  if (request.max_tokens < 0) return Status::InvalidArgument("max_tokens must be >= 0");
  std::lock_guard<std::mutex> l(mu_);
  if (static_cast<int32_t>(queue_.size()) >= params_.max_queue) {
    ++stats_.requests_rejected;
    return Status::ResourceExhausted("the request queue is full");
  }
  *id = next_id_++;
  ++stats_.requests_total;
  queue_.push_back(Pending{*id, std::move(request), std::move(sink)});
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

void Engine::StepLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty() || !slots_.empty() || !cancelled_.empty(); });
      if (stop_) break;
    }
    Admit();
    Step();
  }
  GenerationEvent bye;
  bye.finished = true;
  bye.reason = FinishReason::kCancelled;
  for (auto& s : slots_) s->sink(bye);
  for (auto& p : queue_) p.sink(bye);
}

void Engine::Admit() {
  std::vector<Pending> admitted, dropped;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Cancellations of queued requests.
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (std::find(cancelled_.begin(), cancelled_.end(), it->id) != cancelled_.end()) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    while (!queue_.empty() && slots_.size() + admitted.size() < static_cast<size_t>(params_.parallel)) {
      admitted.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    stats_.queue_depth = static_cast<int32_t>(queue_.size());
  }
  GenerationEvent cancelled;
  cancelled.finished = true;
  cancelled.reason = FinishReason::kCancelled;
  for (Pending& p : dropped) p.sink(cancelled);
  for (Pending& p : admitted) {
    std::unique_ptr<Context> ctx;
    const int32_t threads = params_.n_threads;
    Status s = Context::Create(model_, ContextParams{n_ctx_, 512, threads}, &ctx);
    if (!s.ok()) {
      GenerationEvent e;
      e.finished = true;
      e.reason = FinishReason::kError;
      e.error = s;
      p.sink(e);
      continue;
    }
    slots_.push_back(std::make_unique<Slot>(p.id, std::move(p.request), std::move(p.sink), std::move(ctx), model_.vocab()));
  }
}

void Engine::Step() {
  std::vector<uint64_t> cancelled;
  {
    std::lock_guard<std::mutex> l(mu_);
    cancelled.swap(cancelled_);
  }
  const Vocab& vocab = model_.vocab();
  const int32_t n_vocab = model_.hparams().n_vocab;
  for (auto& slot : slots_) {
    Slot& s = *slot;
    GenerationEvent e;
    e.prompt_tokens = static_cast<int32_t>(s.request.prompt.size());
    auto finish = [&](FinishReason r) {
      e.finished = true;
      e.reason = r;
      if (r == FinishReason::kLength || r == FinishReason::kStop) {
        e.text += s.stop.Flush() + s.decoder.Flush();
        e.logprobs.insert(e.logprobs.end(), s.held_logprobs.begin(), s.held_logprobs.end());
      }
    };
    if (std::find(cancelled.begin(), cancelled.end(), s.id) != cancelled.end()) {
      finish(FinishReason::kCancelled);
    } else if (!s.prefilled) {
      for (int32_t t : s.request.prompt) s.sampler.Accept(t);
      Status st = s.ctx->Decode(s.request.prompt, LogitsMode::kLast);
      s.prefilled = true;
      s.prev = s.request.prompt.back();
      if (!st.ok()) {
        finish(FinishReason::kError);
        e.error = st;
      } else if (s.request.max_tokens == 0) {
        finish(FinishReason::kLength);
      } else {
        continue;  // the first token is sampled next step
      }
    } else {
      const float* logits = s.ctx->logits();
      const int32_t next = s.sampler.Sample(logits, n_vocab);
      if (vocab.IsEog(next)) {
        finish(FinishReason::kStop);
      } else {
        s.sampler.Accept(next);
        ++s.n_generated;
        if (s.request.top_logprobs >= 0)
          s.held_logprobs.push_back(Logprobs(logits, n_vocab, next, s.request.top_logprobs, vocab));
        const bool hit = s.stop.Push(s.decoder.Push(next, s.prev), &e.text);
        if (e.text.size() > 0 || hit) {
          e.logprobs.swap(s.held_logprobs);
          s.held_logprobs.clear();
        }
        s.prev = next;
        if (hit) {
          e.finished = true;
          e.reason = FinishReason::kStop;
        } else if (s.n_generated >= s.request.max_tokens) {
          finish(FinishReason::kLength);
        } else if (s.ctx->n_past() >= s.ctx->n_ctx()) {
          finish(FinishReason::kLength);
        } else {
          Status st = s.ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast);
          if (!st.ok()) {
            finish(FinishReason::kError);
            e.error = st;
          }
        }
      }
    }
    e.completion_tokens = s.n_generated;
    if ((!e.text.empty() || e.finished || !e.logprobs.empty()) && !s.sink(e) && !e.finished) {
      GenerationEvent gone;
      gone.finished = true;
      gone.reason = FinishReason::kCancelled;
      gone.prompt_tokens = e.prompt_tokens;
      gone.completion_tokens = e.completion_tokens;
      s.sink(gone);
      e.finished = true;
    }
    if (e.finished) {
      std::lock_guard<std::mutex> l(mu_);
      stats_.prompt_tokens_total += s.request.prompt.size();
      stats_.completion_tokens_total += s.n_generated;
      slot.reset();
    }
  }
  slots_.erase(std::remove(slots_.begin(), slots_.end(), nullptr), slots_.end());
  std::lock_guard<std::mutex> l(mu_);
  stats_.running = static_cast<int32_t>(slots_.size());
}

}  // namespace strata
