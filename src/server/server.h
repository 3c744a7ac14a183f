// Server: strata's OpenAI-compatible HTTP API over one Engine.
//
//   POST /v1/completions, POST /v1/chat/completions   (stream: true -> SSE)
//   GET  /v1/models, GET /v1/models/{id}
//   GET  /health     (never needs the API key)
//   GET  /metrics    (Prometheus text format; see metrics.h)
//
// Errors are OpenAI's {"error": {...}} bodies: 400 invalid request, 401 bad
// or missing key, 404 unknown path, 405 wrong method, 413 body over
// max_body_bytes, 429 engine queue full, 500 internal, 503 shutting down.
// A streaming client that goes away is noticed by the next failed write
// (tokens or a keep-alive comment every heartbeat) and its request is
// cancelled, freeing its slot. See docs/SERVER.md.
//
// Thread-safety: Bind and Serve from one thread; Shutdown from any thread
// (e.g. a signal-handling thread), any number of times.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/status.h"
#include "engine/engine.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/chat_template.h"
#include "server/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace strata::server {

class HttpListener;  // httplib::Server with a usable listen backlog (server.cc)

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (Bind reports it)
  std::string api_key;               // non-empty: every endpoint but /health needs "Authorization: Bearer <key>"
  size_t max_body_bytes = 1 << 20;   // larger request bodies get 413
  int32_t max_tokens_limit = 0;      // largest max_tokens accepted; 0: the engine's context size
  int32_t default_max_tokens = 16;   // completions without max_tokens (OpenAI's default); chat runs to the context end
  int http_threads = 0;              // concurrent connections served; 0: 80
  std::chrono::milliseconds heartbeat{1000};  // SSE keep-alive interval while no token arrives
  std::string model_id;              // the id /v1/models reports and responses carry
};

class Server {
 public:
  // REQUIRES: engine outlives the server.
  [[nodiscard]] static Status Create(Engine* engine, ChatTemplate chat_template, ServerOptions options,
                                     std::unique_ptr<Server>* out);
  ~Server();

  // Binds host:port; *port gets the bound port. kIOError if it cannot.
  [[nodiscard]] Status Bind(int* port);
  // Serves until Shutdown; returns once in-flight requests are finished.
  // REQUIRES: Bind succeeded.
  [[nodiscard]] Status Serve();
  // Stops accepting connections and cancels running requests; Serve returns soon after.
  void Shutdown();

 private:
  Server(Engine* engine, ChatTemplate chat_template, ServerOptions options);
  // Threads, limits, socket options, error bodies and request metrics.
  void ConfigureHttp();
  void Route();
  bool Authorized(const httplib::Request& req) const;
  void Reply(httplib::Response& res, const ApiError& error) const;
  void HandleGeneration(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void HandleModels(const httplib::Request& req, httplib::Response& res) const;
  void HandleModel(const httplib::Request& req, httplib::Response& res) const;
  void HandleMetrics(const httplib::Request& req, httplib::Response& res) const;
  // Fills *g from a validated request and its prompt; 400 if it cannot run.
  bool PlanGeneration(const ApiRequest& request, std::vector<int32_t> prompt, GenerationRequest* g,
                      ApiError* error) const;
  std::string NextResponseId(Endpoint endpoint);
  // Registry of submitted requests, so that Shutdown can cancel them.
  bool Register(uint64_t id);
  void Unregister(uint64_t id);

  Engine& engine_;
  const ChatTemplate chat_template_;
  const ServerOptions options_;
  const RequestLimits limits_;
  const int64_t created_;  // Unix seconds at start, reported as the model's "created"
  const uint64_t instance_;  // random, so response ids differ between runs
  Metrics metrics_;
  std::unique_ptr<HttpListener> http_;
  std::mutex mu_;
  std::set<uint64_t> active_;
  bool shutting_down_ = false;
  bool serving_ = false;  // Serve is between its start and its return
  uint64_t next_response_ = 0;
};

}  // namespace strata::server
