// Server: strata's OpenAI-compatible HTTP API over one Engine.
//
//   POST /v1/completions, POST /v1/chat/completions   (stream: true -> SSE)
//   POST /apply-template   (llama-server's: {messages, tools} -> {"prompt"})
//   GET  /v1/models, GET /v1/models/{id}
//   GET  /health     (never needs the API key)
//   GET  /metrics    (Prometheus text format; see metrics.h)
//   GET  /, /<file>  the web chat page (web_assets.h; never needs the API key)
//   /v1/sessions...  durable conversations, with --session-dir (session_api.h)
//
// Every request is judged from its head before its body is read
// (server/request_gate.h): Host (DNS rebinding), Origin (CORS), route and
// method, API key, Content-Type. Errors are OpenAI's {"error": {...}} bodies; docs/SERVER.md
// lists every status. The HTTP layer (http/http_server.h) enforces the
// connection, head, body and time limits. Generations never block an I/O
// thread: the engine's events are drained on the connection's strand.
//
// Thread-safety: Create/Bind/Serve from one thread; Shutdown from any thread
// (e.g. a signal-handling thread), any number of times.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "http/http_handler.h"
#include "http/http_limits.h"
#include "http/http_server.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/access_log.h"
#include "server/chat_template.h"
#include "server/generation_job.h"
#include "server/metrics.h"
#include "server/request_gate.h"
#include "server/session_api.h"
#include "server/session_store.h"

namespace strata::server {


struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (Bind reports it)
  std::string api_key;               // non-empty: every endpoint but /health needs "Authorization: Bearer <key>"
  std::vector<std::string> more_api_keys;  // further keys accepted; with keys, each key has its own sessions
  int32_t max_tokens_limit = 0;      // largest max_tokens accepted; 0: the engine's context size
  int32_t default_max_tokens = 16;   // completions without max_tokens (OpenAI's default); chat runs to the context end
  int io_threads = 2;                // threads serving connections (all connections share them)
  std::chrono::milliseconds heartbeat{1000};  // SSE keep-alive interval while no token arrives
  std::chrono::milliseconds shutdown_grace{10'000};  // running generations may finish this long after Shutdown
  std::string model_id;              // the id /v1/models reports and responses carry
  // The ids of the engine's LoRA adapter sets (EngineParams::adapters, in
  // order), each listed on /v1/models as a model of its own: a request whose
  // `model` or `lora` names one runs with it. Unique, non-empty, not model_id.
  std::vector<std::string> adapter_ids;
  // Host header values accepted besides the bound address (and, on a loopback
  // bind, localhost/127.0.0.1/::1); "*" accepts any. A wildcard bind
  // (0.0.0.0, ::) with none of these accepts any host.
  std::vector<std::string> allowed_hosts;
  // Origins allowed to call the API from a browser (CORS); "*" allows any.
  // Requests carrying another Origin than the server's own are refused.
  std::vector<std::string> cors_origins;
  http::HttpLimits limits;           // max_body_bytes, max_connections, timeouts, ...
  // Sampling of requests that leave a setting out (strata run's defaults).
  SamplerParams sampling{.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f};
  std::function<void(const std::string&)> log;  // notices, one line each; null: stderr
  // One line per answered request (server/access_log.h), in log_format; null: no access log.
  std::function<void(const std::string&)> access_log;
  LogFormat log_format = LogFormat::kText;
  // Sessions (session_store.h); dir "" turns them off: a request naming a
  // session gets 400, the session routes 404.
  SessionStoreOptions sessions;
};

class Server : private http::HttpHandler {
 public:
  // REQUIRES: engine outlives the server.
  [[nodiscard]] static Status Create(Engine* engine, ChatTemplate chat_template, ServerOptions options,
                                     std::unique_ptr<Server>* out);
  ~Server() override;

  // Binds host:port; *port gets the bound port. kIOError if it cannot.
  [[nodiscard]] Status Bind(int* port);
  // Serves until Shutdown; returns once every connection is closed.
  // REQUIRES: Bind succeeded.
  [[nodiscard]] Status Serve();
  // Stops accepting connections and closes idle and slow ones at once; lets
  // running generations finish for up to shutdown_grace, then cancels them
  // (streams end with an error event, waiting requests get 503); returns when
  // every response is over. Idempotent.
  void Shutdown();
  // The session store's counters; nullopt without sessions.
  std::optional<SessionStoreStats> session_stats() const;

 private:
  Server(Engine* engine, ChatTemplate chat_template, ServerOptions options);

  // http::HttpHandler
  std::optional<http::HttpResponse> Admit(const http::HttpRequestHead& head) override;
  void Handle(http::HttpRequest request, std::shared_ptr<http::HttpExchange> exchange) override;
  http::HttpResponse Error(int status, std::string_view message, const http::HttpRequestHead* head) override;
  void Responded(const http::HttpRequestHead* head, int status) override;

  http::HttpResponse ReplyJson(std::string body, const http::HttpRequestHead& head) const;

  void HandleGeneration(Route route, http::HttpRequest request, std::shared_ptr<http::HttpExchange> exchange);
  // Plans and starts the job of a parsed request (turn: its session's, or null).
  void StartGeneration(const ApiRequest& request, std::chrono::steady_clock::time_point received,
                       const http::HttpRequestHead& head, std::shared_ptr<http::HttpExchange> exchange,
                       std::shared_ptr<SessionTurn> turn);
  void HandleSession(Route route, const http::HttpRequest& request, std::shared_ptr<http::HttpExchange> exchange);
  http::HttpResponse HandleModel(const http::HttpRequestHead& head) const;
  http::HttpResponse HandleWebAsset(const http::HttpRequestHead& head) const;
  http::HttpResponse HandleApplyTemplate(const http::HttpRequest& request) const;
  http::HttpResponse HandleTokenize(const http::HttpRequest& request) const;
  http::HttpResponse HandleDetokenize(const http::HttpRequest& request) const;
  // Logs request fields strata ignores, each name once per server (bounded).
  void NoteUnknownFields(const std::vector<std::string>& fields);
  // Writes the access log line of a response (head null: the head could not be read).
  void LogAccess(const http::HttpRequestHead* head, int status, const Usage& usage) const;
  // The adapters a request runs with (empty: none) and the model id its
  // responses carry: `lora` (an id, or an array of adapters with scales:
  // the model's id), else `model` when it names an adapter; with adapters
  // loaded, a `model` naming nothing served is a 404.
  bool ChooseAdapter(const ApiRequest& request, LoraSet* lora, std::string* model_id, ApiError* error) const;
  // Fills *g from a validated request and its prompt; 400 if it cannot run.
  bool PlanGeneration(const ApiRequest& request, std::vector<int32_t> prompt, GenerationRequest* g,
                      ApiError* error) const;
  // One choice per prompt and sample (index = prompt * n + sample); 400 if a prompt cannot run.
  // session_prompt: the whole prompt of a request on a session (instead of building it).
  bool PlanChoices(const ApiRequest& request, std::vector<GenerationJob::Choice>* choices, ApiError* error,
                   const std::vector<int32_t>* session_prompt = nullptr);
  std::string NextResponseId(Endpoint endpoint);
  // Registry of running jobs, so that Shutdown can wait for and cancel them.
  bool Register(uint64_t key, std::shared_ptr<GenerationJob> job);
  void Unregister(uint64_t key);
  bool shutting_down() const;

  Engine& engine_;
  const ChatTemplate chat_template_;
  const ServerOptions options_;
  const RequestLimits limits_;
  const int64_t created_;    // Unix seconds at start, reported as the model's "created"
  const uint64_t instance_;  // random, so response ids differ between runs
  const RequestGate gate_;
  Metrics metrics_;
  std::unique_ptr<http::HttpServer> http_;
  mutable std::mutex mu_;
  std::condition_variable jobs_done_;
  std::map<uint64_t, std::shared_ptr<GenerationJob>> jobs_;
  bool shutting_down_ = false;
  uint64_t next_response_ = 0;
  uint64_t next_job_ = 0;
  std::set<std::string, std::less<>> unknown_fields_noted_;
  // Sessions (null without --session-dir). The store is destroyed first: it
  // finishes the work posted to it, which may use the API object.
  std::unique_ptr<SessionApi> sessions_;
  std::unique_ptr<SessionStore> session_store_;
};

}  // namespace strata::server
