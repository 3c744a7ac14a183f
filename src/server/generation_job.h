// GenerationJob: one generation request from submission to its final event.
// A request has one or more choices (several prompts, or n > 1), each one
// engine request streaming into its own channel. The job drains the channels
// on the connection's thread whenever events arrive (the engine never waits
// on a socket, and no thread waits on the engine), turns events into the
// OpenAI response — whole, or as server-sent events, each chunk naming its
// choice's index — records latency metrics, and cancels the engine requests
// if the client goes away first. If any choice fails, the others are
// cancelled and the response is that failure.
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
#include "engine/output_processor.h"
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
    bool cached_usage = false;               // usage reports prompt_tokens_details.cached_tokens
  };

  // One choice: its engine request, how its tokens become text, and its
  // response builder (which knows its index).
  struct Choice {
    GenerationRequest request;
    OutputParams output;
    ResponseBuilder builder;
    bool counts_prompt = true;  // usage.prompt_tokens counts its prompt (once per distinct prompt)
    // Wraps the sink the engine gets (sessions hold the final event until the session is saved).
    std::function<EventSink(EventSink)> wrap_sink;
  };

  // REQUIRES: engine and metrics outlive the job.
  GenerationJob(Engine& engine, Metrics& metrics, Output output, std::chrono::steady_clock::time_point received);

  // Submits every choice to the engine and answers through exchange as events
  // arrive; on_end runs once when the job is over (response complete, or the
  // client gone). Not OK (nothing sent, on_end not run, choices already
  // submitted cancelled) if the engine refuses one. REQUIRES: !choices.empty().
  [[nodiscard]] Status Start(std::vector<Choice> choices, std::shared_ptr<http::HttpExchange> exchange,
                             std::function<void()> on_end);

  // Cancels the engine requests; their final events then end the response
  // (503 or an error event). Idempotent.
  void Cancel();

  // For the access log, once on_end ran: the response's status (a stream's
  // is its head's, 200; 499 if the client left before a whole response was
  // sent) and the tokens counted.
  int status() const { return status_; }
  Usage usage() const { return TotalUsage(); }

 private:
  // One choice's progress.
  struct Track {
    explicit Track(ResponseBuilder b) : builder(std::move(b)) {}
    ResponseBuilder builder;
    std::shared_ptr<GenerationChannel> channel = std::make_shared<GenerationChannel>();
    std::atomic<uint64_t> id{0};  // the engine's request id (0 until submitted)
    bool finished = false;        // the final event arrived
    GenerationEvent last;         // the final event once finished
    int32_t tokens_seen = 0;
    std::chrono::steady_clock::time_point last_token_at;
    std::string text;                            // stream: false — the completion so far
    std::vector<TokenLogprob> logprobs;          // stream: false
    std::vector<TokenLogprob> prompt_logprobs;   // stream: false, echo with logprobs
    bool echo_sent = false;                      // stream, echo: the prompt chunk went out
  };

  // Takes the channels' events and writes what they add to the response.
  void Drain();
  // Adds one event of track t to the response (stream) or to t's text.
  void Take(Track& t, const TimedEvent& e, std::string* out);
  // The client is gone: cancel the engine requests, end the job.
  void Abandon();
  void End();
  // Updates usage, finish state and latency metrics from one event.
  void Observe(Track& t, const TimedEvent& e);
  // The first failed choice's final event, or null.
  const GenerationEvent* Failure() const;
  // The closing chunks after every choice's final event.
  std::string StreamEnd() const;
  http::HttpResponse WholeResponse();
  Usage TotalUsage() const;

  Engine& engine_;
  Metrics& metrics_;
  const Output output_;
  const std::chrono::steady_clock::time_point received_;
  std::vector<std::unique_ptr<Track>> tracks_;  // by choice index
  int32_t prompt_tokens_ = 0;                   // usage: distinct prompts' tokens
  std::shared_ptr<http::HttpExchange> exchange_;
  std::function<void()> on_end_;
  size_t n_finished_ = 0;
  bool failed_ = false;    // a choice failed: the others were cancelled
  bool ended_ = false;     // on_end ran
  int status_ = 499;       // the response's, once sent
  std::vector<TimedEvent> batch_;  // scratch for channel takes
};

}  // namespace strata::server
