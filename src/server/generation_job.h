// GenerationJob: one generation request from submission to its final event,
// as the HTTP thread serving it sees it. It owns the channel the engine
// streams into, turns events into the OpenAI response (whole or as
// server-sent events), records latency metrics, and cancels the engine
// request if the HTTP side lets go before the end.
//
// Thread-safety: one HTTP thread drives a job; the engine only touches its
// channel. Release may be called from the thread that destroys the response.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "engine/engine.h"
#include "server/api_error.h"
#include "server/api_response.h"
#include "server/generation_channel.h"
#include "server/metrics.h"

namespace strata::server {

class GenerationJob {
 public:
  // REQUIRES: engine and metrics outlive the job.
  GenerationJob(Engine& engine, Metrics& metrics, ResponseBuilder builder, bool include_usage,
                std::chrono::steady_clock::time_point received);

  // Engine::Submit with this job's channel as the sink.
  [[nodiscard]] Status Submit(GenerationRequest request);
  uint64_t id() const { return id_; }

  // stream: false. Blocks until the request ends; on success fills *body,
  // else *error (cancelled: 503, engine error: 500).
  bool AwaitWhole(nlohmann::json* body, ApiError* error);

  // stream: true. The next bytes of the event stream: waits up to timeout for
  // events and returns their chunks, or an SSE comment (": keep-alive") if
  // none came, so that a vanished client is noticed by the failing write.
  // Sets *done with the last piece ("data: [DONE]" or an error event).
  std::string NextSse(std::chrono::milliseconds timeout, bool* done);

  // The HTTP side is done with the job (response sent or client gone):
  // cancels the engine request unless it already ended. Idempotent.
  void Release();

 private:
  // Updates usage, finish state and latency metrics from one event.
  void Observe(const TimedEvent& e);
  // The closing chunks after the final event.
  std::string StreamEnd() const;

  Engine& engine_;
  Metrics& metrics_;
  ResponseBuilder builder_;
  bool include_usage_;
  const std::chrono::steady_clock::time_point received_;
  std::shared_ptr<GenerationChannel> channel_ = std::make_shared<GenerationChannel>();
  uint64_t id_ = 0;
  bool started_ = false;   // stream: the first chunk went out
  bool finished_ = false;  // the final event arrived
  GenerationEvent last_;   // the final event once finished_
  Usage usage_;
  int32_t tokens_seen_ = 0;
  std::chrono::steady_clock::time_point last_token_at_;
  std::vector<TimedEvent> batch_;  // scratch for channel waits
};

}  // namespace strata::server
