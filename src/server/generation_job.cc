#include "server/generation_job.h"

namespace strata::server {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::milliseconds kWholeWait{1000};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

bool Succeeded(FinishReason r) { return r == FinishReason::kStop || r == FinishReason::kLength; }

ApiError FailureOf(const GenerationEvent& e) {
  if (e.reason == FinishReason::kCancelled)
    return ApiError{503, "the request was cancelled (the server is shutting down)", "server_error", "", "cancelled"};
  return ApiError::FromStatus(e.error.ok() ? Status::Internal("generation failed") : e.error);
}

}  // namespace

GenerationJob::GenerationJob(Engine& engine, Metrics& metrics, ResponseBuilder builder, bool include_usage,
                             Clock::time_point received)
    : engine_(engine),
      metrics_(metrics),
      builder_(std::move(builder)),
      include_usage_(include_usage),
      received_(received) {}

Status GenerationJob::Submit(GenerationRequest request) {
  usage_.prompt_tokens = static_cast<int32_t>(request.prompt.size());
  std::shared_ptr<GenerationChannel> channel = channel_;
  return engine_.Submit(
      std::move(request), [channel](const GenerationEvent& e) { return channel->Push(e); }, &id_);
}

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

bool GenerationJob::AwaitWhole(nlohmann::json* body, ApiError* error) {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  while (!finished_) {
    if (!channel_->Wait(kWholeWait, &batch_)) continue;
    for (const TimedEvent& e : batch_) {
      Observe(e);
      text += e.event.text;
      logprobs.insert(logprobs.end(), e.event.logprobs.begin(), e.event.logprobs.end());
    }
  }
  if (!Succeeded(last_.reason)) {
    *error = FailureOf(last_);
    return false;
  }
  *body = builder_.Whole(text, logprobs, last_.reason, usage_);
  return true;
}

std::string GenerationJob::NextSse(std::chrono::milliseconds timeout, bool* done) {
  std::string out;
  if (!started_) {
    started_ = true;
    if (builder_.HasFirst()) out += ResponseBuilder::Sse(builder_.First());
  }
  *done = false;
  if (!channel_->Wait(timeout, &batch_)) return out.empty() ? ": keep-alive\n\n" : out;
  for (const TimedEvent& e : batch_) {
    Observe(e);
    if (!e.event.text.empty() || !e.event.logprobs.empty())
      out += ResponseBuilder::Sse(builder_.Delta(e.event.text, e.event.logprobs));
  }
  if (finished_) {
    out += StreamEnd();
    *done = true;
  }
  return out;
}

std::string GenerationJob::StreamEnd() const {
  if (!Succeeded(last_.reason)) return "data: " + FailureOf(last_).ToJson() + "\n\n";
  std::string out = ResponseBuilder::Sse(builder_.Finish(last_.reason));
  if (include_usage_) out += ResponseBuilder::Sse(builder_.UsageChunk(usage_));
  return out + "data: [DONE]\n\n";
}

void GenerationJob::Release() {
  channel_->Abandon();
  if (!finished_ && id_ != 0) engine_.Cancel(id_);
  finished_ = true;
}

}  // namespace strata::server
