// GenerationJob: one generation request from submission to its final event.
// It owns the channel the engine streams into, drains it on the connection's
// thread whenever events arrive (the engine never waits on a socket, and no
// thread waits on the engine), turns events into the OpenAI response — whole,
// or as server-sent events — records latency metrics, and cancels the engine
// request if the client goes away first.
//
// Thread-safety: Start from the thread handling the request; Cancel from any
// thread; everything else runs on the exchange's connection thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "http/http_exchange.h"
#include "server/api_error.h"
#include "server/api_response.h"
#include "server/generation_channel.h"
#include "server/metrics.h"

namespace strata::server {

class GenerationJob : public std::enable_shared_from_this<GenerationJob> {
 public:
  struct Output {
    bool stream = false;
    bool include_usage = false;              // stream: a usage chunk before [DONE]
    bool scored_echo = false;                // echo with logprobs: the prompt's logprobs come with the first event
    std::vector<http::HttpHeader> headers;   // added to the response (e.g. CORS)
    std::chrono::milliseconds heartbeat{0};  // stream: ": keep-alive" after this long without a token
  };

  // REQUIRES: engine and metrics outlive the job.
  GenerationJob(Engine& engine, Metrics& metrics, ResponseBuilder builder, Output output,
                std::chrono::steady_clock::time_point received);

  // Submits request to the engine and answers through exchange as events
  // arrive; on_end runs once when the job is over (response complete, or the
  // client gone). Not OK (and nothing sent, on_end not run) if the engine
  // refuses the request.
  [[nodiscard]] Status Start(GenerationRequest request, std::shared_ptr<http::HttpExchange> exchange,
                             std::function<void()> on_end);

  // Cancels the engine request; its final event then ends the response
  // (503 or an error event). Idempotent.
  void Cancel();

 private:
  // Takes the channel's events and writes what they add to the response.
  void Drain();
  // The client is gone: cancel the engine request, end the job.
  void Abandon();
  void End();
  // Updates usage, finish state and latency metrics from one event.
  void Observe(const TimedEvent& e);
  // The closing chunks after the final event.
  std::string StreamEnd() const;
  http::HttpResponse WholeResponse();

  Engine& engine_;
  Metrics& metrics_;
  ResponseBuilder builder_;
  const Output output_;
  const std::chrono::steady_clock::time_point received_;
  std::shared_ptr<GenerationChannel> channel_ = std::make_shared<GenerationChannel>();
  std::shared_ptr<http::HttpExchange> exchange_;
  std::function<void()> on_end_;
  std::atomic<uint64_t> id_{0};  // the engine's request id (0 until submitted)
  bool finished_ = false;  // the final event arrived
  bool ended_ = false;     // on_end ran
  GenerationEvent last_;   // the final event once finished_
  Usage usage_;
  int32_t tokens_seen_ = 0;
  std::chrono::steady_clock::time_point last_token_at_;
  std::string text_;                    // stream: false — the completion so far
  std::vector<TokenLogprob> logprobs_;  // stream: false
  std::vector<TokenLogprob> prompt_logprobs_;  // stream: false, echo with logprobs
  bool echo_sent_ = false;                     // stream, echo: the prompt chunk went out
  std::vector<TimedEvent> batch_;       // scratch for channel takes
};

}  // namespace strata::server
