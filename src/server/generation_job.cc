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

GenerationJob::GenerationJob(Engine& engine, Metrics& metrics, ResponseBuilder builder, Output output,
                             Clock::time_point received)
    : engine_(engine), metrics_(metrics), builder_(std::move(builder)), output_(std::move(output)), received_(received) {}

Status GenerationJob::Start(GenerationRequest request, std::shared_ptr<http::HttpExchange> exchange,
                            std::function<void()> on_end) {
  exchange_ = std::move(exchange);
  on_end_ = std::move(on_end);
  usage_.prompt_tokens = static_cast<int32_t>(request.prompt.size());
  std::weak_ptr<GenerationJob> weak = weak_from_this();
  channel_->SetNotifier([weak, exchange = exchange_] {
    exchange->Post([weak] {
      if (auto job = weak.lock()) job->Drain();
    });
  });
  std::shared_ptr<GenerationChannel> channel = channel_;
  uint64_t id = 0;
  if (Status s = engine_.Submit(
          std::move(request), [channel](const GenerationEvent& e) { return channel->Push(e); }, &id);
      !s.ok()) {
    channel_->Abandon();
    return s;
  }
  id_ = id;
  exchange_->OnAbandon([weak] {
    if (auto job = weak.lock()) job->Abandon();
  });
  if (output_.stream) {
    http::HttpResponse head{200, output_.headers, ""};
    head.With("Content-Type", "text/event-stream").With("Cache-Control", "no-cache");
    exchange_->StartStream(std::move(head), http::StreamOptions{output_.heartbeat, ": keep-alive\n\n"});
    if (builder_.HasFirst()) exchange_->Write(ResponseBuilder::Sse(builder_.First()));
    if (builder_.echoes() && !output_.scored_echo) {
      exchange_->Write(ResponseBuilder::Sse(builder_.EchoDelta({})));
      echo_sent_ = true;
    }
  }
  return Status::Ok();
}

void GenerationJob::Cancel() { engine_.Cancel(id_); }

void GenerationJob::Observe(const TimedEvent& e) {
  const int32_t n = e.event.completion_tokens;
  if (n > tokens_seen_) {
    if (tokens_seen_ == 0) {
      metrics_.ObserveTimeToFirstToken(Seconds(e.at - received_));
    } else {
      const double per_token = Seconds(e.at - last_token_at_) / (n - tokens_seen_);
      for (int32_t i = tokens_seen_; i < n; ++i) metrics_.ObserveInterTokenLatency(per_token);
    }
    tokens_seen_ = n;
    last_token_at_ = e.at;
  }
  usage_.completion_tokens = std::max(usage_.completion_tokens, n);
  if (e.event.finished) {
    finished_ = true;
    last_ = e.event;
  }
}

void GenerationJob::Drain() {
  if (ended_) return;
  channel_->Take(&batch_);
  std::string out;
  for (const TimedEvent& e : batch_) {
    Observe(e);
    if (output_.stream) {
      if (builder_.echoes() && !echo_sent_ && (!e.event.prompt_logprobs.empty() || e.event.finished)) {
        out += ResponseBuilder::Sse(builder_.EchoDelta(e.event.prompt_logprobs));
        echo_sent_ = true;
      }
      if (!e.event.text.empty() || !e.event.logprobs.empty())
        out += ResponseBuilder::Sse(builder_.Delta(e.event.text, e.event.logprobs));
    } else {
      text_ += e.event.text;
      prompt_logprobs_.insert(prompt_logprobs_.end(), e.event.prompt_logprobs.begin(), e.event.prompt_logprobs.end());
      logprobs_.insert(logprobs_.end(), e.event.logprobs.begin(), e.event.logprobs.end());
    }
  }
  if (!finished_) {
    if (!out.empty()) exchange_->Write(std::move(out));
    return;
  }
  if (output_.stream) {
    exchange_->Write(out + StreamEnd());
    exchange_->End();
  } else {
    exchange_->Respond(WholeResponse());
  }
  End();
}

http::HttpResponse GenerationJob::WholeResponse() {
  if (!Succeeded(last_.reason)) {
    const ApiError error = FailureOf(last_);
    http::HttpResponse r{error.http_status, output_.headers, error.ToJson()};
    return r.With("Content-Type", "application/json");
  }
  http::HttpResponse r{200, output_.headers, ResponseBuilder::Dump(builder_.Whole(text_, logprobs_, last_.reason, usage_, prompt_logprobs_))};
  return r.With("Content-Type", "application/json");
}

std::string GenerationJob::StreamEnd() const {
  if (!Succeeded(last_.reason)) return "data: " + FailureOf(last_).ToJson() + "\n\n";
  std::string out = ResponseBuilder::Sse(builder_.Finish(last_.reason));
  if (output_.include_usage) out += ResponseBuilder::Sse(builder_.UsageChunk(usage_));
  return out + "data: [DONE]\n\n";
}

void GenerationJob::Abandon() {
  if (ended_) return;
  if (!finished_) engine_.Cancel(id_);
  End();
}

void GenerationJob::End() {
  ended_ = true;
  channel_->Abandon();
  if (std::function<void()> fn = std::move(on_end_)) fn();
}

}  // namespace strata::server
