#include "server/generation_job.h"

#include <algorithm>

namespace strata::server {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

bool Succeeded(FinishReason r) { return r == FinishReason::kStop || r == FinishReason::kLength; }

ApiError FailureOf(const GenerationEvent& e) {
  if (e.reason == FinishReason::kCancelled)
    return ApiError{503, "the request was cancelled (the server is shutting down)", "server_error", "", "cancelled"};
  return ApiError::FromStatus(e.error.ok() ? Status::Internal("generation failed") : e.error);
}

}  // namespace

GenerationJob::GenerationJob(Engine& engine, Metrics& metrics, Output output, Clock::time_point received)
    : engine_(engine), metrics_(metrics), output_(std::move(output)), received_(received) {}

Status GenerationJob::Start(std::vector<Choice> choices, std::shared_ptr<http::HttpExchange> exchange,
                            std::function<void()> on_end) {
  exchange_ = std::move(exchange);
  on_end_ = std::move(on_end);
  std::weak_ptr<GenerationJob> weak = weak_from_this();
  for (Choice& c : choices) {
    if (c.counts_prompt) prompt_tokens_ += static_cast<int32_t>(c.request.prompt.size());
    Track& t = *tracks_.emplace_back(std::make_unique<Track>(std::move(c.builder)));
    t.channel->SetNotifier([weak, exchange = exchange_] {
      exchange->Post([weak] {
        if (auto job = weak.lock()) job->Drain();
      });
    });
  }
  for (size_t i = 0; i < choices.size(); ++i) {
    std::shared_ptr<GenerationChannel> channel = tracks_[i]->channel;
    uint64_t id = 0;
    const std::vector<int32_t>& prompt = choices[i].request.prompt;  // empty: Submit refuses it
    const int32_t last_prompt_token = prompt.empty() ? -1 : prompt.back();
    EventSink text_sink = [channel](const GenerationEvent& e) { return channel->Push(e); };
    TokenSink sink = TextSink(engine_.model().vocab(), last_prompt_token, std::move(choices[i].output),
                              choices[i].wrap_sink ? choices[i].wrap_sink(std::move(text_sink)) : std::move(text_sink));
    if (Status s = engine_.Submit(std::move(choices[i].request), std::move(sink), &id); !s.ok()) {
      for (auto& t : tracks_) {
        t->channel->Abandon();
        engine_.Cancel(t->id);
      }
      return s;
    }
    tracks_[i]->id = id;
  }
  exchange_->OnAbandon([weak] {
    if (auto job = weak.lock()) job->Abandon();
  });
  if (output_.stream) {
    http::HttpResponse head{200, output_.headers, ""};
    head.With("Content-Type", "text/event-stream").With("Cache-Control", "no-cache");
    status_ = head.status;
    exchange_->StartStream(std::move(head), http::StreamOptions{output_.heartbeat, ": keep-alive\n\n"});
    std::string out;
    for (auto& t : tracks_) {
      if (t->builder.HasFirst()) out += ResponseBuilder::Sse(t->builder.First());
      if (t->builder.echoes() && !output_.scored_echo) {
        out += ResponseBuilder::Sse(t->builder.EchoDelta({}));
        t->echo_sent = true;
      }
    }
    if (!out.empty()) exchange_->Write(std::move(out));
  }
  return Status::Ok();
}

void GenerationJob::Cancel() {
  for (auto& t : tracks_) engine_.Cancel(t->id);
}

void GenerationJob::Observe(Track& t, const TimedEvent& e) {
  const int32_t n = e.event.completion_tokens;
  if (n > t.tokens_seen) {
    if (t.tokens_seen == 0) {
      metrics_.ObserveTimeToFirstToken(Seconds(e.at - received_));
    } else {
      const double per_token = Seconds(e.at - t.last_token_at) / (n - t.tokens_seen);
      for (int32_t i = t.tokens_seen; i < n; ++i) metrics_.ObserveInterTokenLatency(per_token);
    }
    t.tokens_seen = n;
    t.last_token_at = e.at;
  }
  if (e.event.finished) {
    t.finished = true;
    t.last = e.event;
    ++n_finished_;
  }
}

void GenerationJob::Take(Track& t, const TimedEvent& e, std::string* out) {
  Observe(t, e);
  if (output_.stream) {
    if (t.builder.echoes() && !t.echo_sent && (!e.event.prompt_logprobs.empty() || e.event.finished)) {
      *out += ResponseBuilder::Sse(t.builder.EchoDelta(e.event.prompt_logprobs));
      t.echo_sent = true;
    }
    if (!e.event.text.empty() || !e.event.logprobs.empty()) {
      const nlohmann::json delta = t.builder.Delta(e.event.text, e.event.logprobs);
      if (!delta.is_null()) *out += ResponseBuilder::Sse(delta);
    }
    if (e.event.finished && Succeeded(e.event.reason))
      for (const nlohmann::json& chunk : t.builder.Finish(e.event.reason)) *out += ResponseBuilder::Sse(chunk);
  } else {
    t.text += e.event.text;
    t.prompt_logprobs.insert(t.prompt_logprobs.end(), e.event.prompt_logprobs.begin(), e.event.prompt_logprobs.end());
    t.logprobs.insert(t.logprobs.end(), e.event.logprobs.begin(), e.event.logprobs.end());
  }
}

void GenerationJob::Drain() {
  if (ended_) return;
  std::string out;
  for (auto& t : tracks_) {
    t->channel->Take(&batch_);
    for (const TimedEvent& e : batch_) Take(*t, e, &out);
  }
  if (!failed_ && Failure() != nullptr) {
    failed_ = true;
    Cancel();  // the response is that failure: the other choices stop
  }
  if (n_finished_ < tracks_.size()) {
    if (!out.empty() && output_.stream) exchange_->Write(std::move(out));
    return;
  }
  if (output_.stream) {
    exchange_->Write(out + StreamEnd());
    exchange_->End();
  } else {
    http::HttpResponse whole = WholeResponse();
    status_ = whole.status;
    exchange_->Respond(std::move(whole));
  }
  End();
}

const GenerationEvent* GenerationJob::Failure() const {
  // A choice cancelled because another failed is not the failure to report.
  const GenerationEvent* cancelled = nullptr;
  for (const auto& t : tracks_) {
    if (!t->finished || Succeeded(t->last.reason)) continue;
    if (t->last.reason != FinishReason::kCancelled) return &t->last;
    if (cancelled == nullptr) cancelled = &t->last;
  }
  return cancelled;
}

Usage GenerationJob::TotalUsage() const {
  Usage u;
  u.prompt_tokens = prompt_tokens_;
  for (const auto& t : tracks_) u.completion_tokens += std::max(t->tokens_seen, t->last.completion_tokens);
  if (output_.cached_usage) {
    u.cached_tokens = 0;
    for (const auto& t : tracks_) *u.cached_tokens += t->last.cached_tokens;
  }
  return u;
}

http::HttpResponse GenerationJob::WholeResponse() {
  if (const GenerationEvent* failure = Failure()) {
    const ApiError error = FailureOf(*failure);
    http::HttpResponse r{error.http_status, output_.headers, error.ToJson()};
    return r.With("Content-Type", "application/json");
  }
  nlohmann::json choices = nlohmann::json::array();
  for (auto& t : tracks_) choices.push_back(t->builder.WholeChoice(t->text, t->logprobs, t->last.reason, t->prompt_logprobs));
  const nlohmann::json body = tracks_.front()->builder.Whole(std::move(choices), TotalUsage());
  http::HttpResponse r{200, output_.headers, ResponseBuilder::Dump(body)};
  return r.With("Content-Type", "application/json");
}

std::string GenerationJob::StreamEnd() const {
  if (const GenerationEvent* failure = Failure()) return "data: " + FailureOf(*failure).ToJson() + "\n\n";
  std::string out;
  if (output_.include_usage) out += ResponseBuilder::Sse(tracks_.front()->builder.UsageChunk(TotalUsage()));
  return out + "data: [DONE]\n\n";
}

void GenerationJob::Abandon() {
  if (ended_) return;
  for (auto& t : tracks_)
    if (!t->finished) engine_.Cancel(t->id);
  End();
}

void GenerationJob::End() {
  ended_ = true;
  for (auto& t : tracks_) t->channel->Abandon();
  if (std::function<void()> fn = std::move(on_end_)) fn();
}

}  // namespace strata::server
