#include "server/server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <random>
#include <thread>

#include "server/generation_job.h"
#include "server/prompt.h"
#include "server/web_assets.h"

namespace strata::server {

// httplib 0.11 listens with a backlog of 5: a burst of connections (32
// clients starting at once) overflows it, and the kernel then drops
// handshakes or answers them with SYN cookies — one-second stalls and the
// occasional failed request. Linux lets listen() be called again on the
// bound socket to raise the backlog.
class HttpListener : public httplib::Server {
 public:
  bool RaiseBacklog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }
};

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kDefaultHttpThreads = 80;
constexpr const char* kCompletionsPath = "/v1/completions";
constexpr const char* kChatPath = "/v1/chat/completions";

// Compares without an early exit, so response time does not leak the key.
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A bounded label for /metrics: known routes as themselves, anything else "other".
std::string EndpointLabel(const std::string& path) {
  for (const char* known : {kCompletionsPath, kChatPath, "/v1/models", "/health", "/metrics"})
    if (path == known) return known;
  if (path.starts_with("/v1/models/")) return "/v1/models/{id}";
  return "other";
}

// Compact JSON; invalid UTF-8 (e.g. from a model's name) is replaced, never thrown.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json ModelJson(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "strata"}};
}

SamplerParams SamplingOf(const ApiRequest& r) {
  SamplerParams p;
  p.temperature = r.temperature;
  p.top_k = r.top_k;
  p.top_p = r.top_p;
  p.min_p = r.min_p;
  p.repeat_penalty = r.repeat_penalty;
  p.seed = r.seed ? *r.seed : std::random_device{}();
  return p;
}

}  // namespace

Server::Server(Engine* engine, ChatTemplate chat_template, ServerOptions options)
    : engine_(*engine),
      chat_template_(std::move(chat_template)),
      options_(std::move(options)),
      limits_{options_.max_tokens_limit > 0 ? options_.max_tokens_limit : engine->n_ctx()},
      created_(UnixSeconds()),
      instance_(std::random_device{}()),
      http_(std::make_unique<HttpListener>()) {}

Server::~Server() = default;

Status Server::Create(Engine* engine, ChatTemplate chat_template, ServerOptions options,
                      std::unique_ptr<Server>* out) {
  if (options.port < 0 || options.port > 65535) return Status::InvalidArgument("port must be in [0, 65535]");
  if (options.max_body_bytes == 0) return Status::InvalidArgument("max_body_bytes must be > 0");
  if (options.max_tokens_limit < 0) return Status::InvalidArgument("max_tokens_limit must be >= 0");
  if (options.default_max_tokens < 0) return Status::InvalidArgument("default_max_tokens must be >= 0");
  if (options.http_threads < 0) return Status::InvalidArgument("http_threads must be >= 0");
  if (options.model_id.empty()) options.model_id = engine->model().name();
  out->reset(new Server(engine, std::move(chat_template), std::move(options)));
  (*out)->ConfigureHttp();
  (*out)->Route();
  return Status::Ok();
}

Status Server::Bind(int* port) {
  const int bound = options_.port == 0 ? http_->bind_to_any_port(options_.host)
                                       : (http_->bind_to_port(options_.host, options_.port) ? options_.port : -1);
  if (bound < 0 || !http_->RaiseBacklog())
    return Status::IOError(fmt::format("cannot listen on {}:{}", options_.host, options_.port));
  *port = bound;
  return Status::Ok();
}

Status Server::Serve() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shutting_down_) return Status::Ok();
    serving_ = true;
  }
  const bool ok = http_->listen_after_bind();
  std::lock_guard<std::mutex> l(mu_);
  serving_ = false;
  return ok || shutting_down_ ? Status::Ok() : Status::IOError("the HTTP listener failed");
}

void Server::Shutdown() {
  std::set<uint64_t> running;
  {
    std::lock_guard<std::mutex> l(mu_);
    shutting_down_ = true;
    running.swap(active_);
  }
  for (uint64_t id : running) engine_.Cancel(id);
  // httplib's stop() does nothing before its listener runs, so a Serve that
  // is just starting is waited for rather than missed.
  for (;;) {
    if (http_->is_running()) return http_->stop();
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!serving_) return;  // Serve is over, or will see shutting_down_
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool Server::Register(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  if (shutting_down_) return false;
  active_.insert(id);
  return true;
}

void Server::Unregister(uint64_t id) {
  std::lock_guard<std::mutex> l(mu_);
  active_.erase(id);
}

void Server::Reply(httplib::Response& res, const ApiError& error) const {
  res.status = error.http_status;
  res.set_content(error.ToJson(), "application/json");
}

bool Server::Authorized(const httplib::Request& req) const {
  return options_.api_key.empty() ||
         ConstantTimeEquals(req.get_header_value("Authorization"), "Bearer " + options_.api_key);
}

void Server::ConfigureHttp() {
  const size_t threads = options_.http_threads > 0 ? options_.http_threads : kDefaultHttpThreads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_->set_payload_max_length(options_.max_body_bytes);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a
  // second server silently share the port instead of failing to bind.
  http_->set_socket_options([](int sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http_->set_tcp_nodelay(true);  // each SSE chunk goes out at once, not after the peer's delayed ACK
  // Fills in OpenAI error bodies for statuses no handler explained (404, 413, ...).
  httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e = ApiError::ForHttpStatus(res.status, req.method, req.path);
    if (res.status == 413) e.message = fmt::format("the request body exceeds {} bytes", options_.max_body_bytes);
    Reply(res, e);
    return httplib::Server::HandlerResponse::Handled;
  };
  http_->set_error_handler(std::move(on_error));
  http_->set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    Reply(res, ApiError{500, "internal error", "server_error", "", "internal_error"});
  });
  http_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountRequest(EndpointLabel(req.path), res.status);
  });
}

void Server::Route() {
  // Every route but /health checks the key first.
  auto guarded = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req)) {
        return Reply(res, ApiError{401, "missing or incorrect API key (send 'Authorization: Bearer <key>')",
                                   "invalid_request_error", "", "invalid_api_key"});
      }
      handler(req, res);
    };
  };
  http_->Post(kCompletionsPath, guarded([this](const auto& req, auto& res) {
                HandleGeneration(Endpoint::kCompletions, req, res);
              }));
  http_->Post(kChatPath, guarded([this](const auto& req, auto& res) { HandleGeneration(Endpoint::kChat, req, res); }));
  http_->Get("/v1/models", guarded([this](const auto& req, auto& res) { HandleModels(req, res); }));
  http_->Get(R"(/v1/models/(.+))", guarded([this](const auto& req, auto& res) { HandleModel(req, res); }));
  http_->Get("/metrics", guarded([this](const auto& req, auto& res) { HandleMetrics(req, res); }));
  http_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> l(mu_);
    res.status = shutting_down_ ? 503 : 200;
    res.set_content(shutting_down_ ? R"({"status":"shutting down"})" : R"({"status":"ok"})", "application/json");
  });
  // The web chat page (web_assets.h): public like /health; no asset -> 404 with an error body.
  http_->Get(R"(/[^/]*)", [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* asset = FindWebAsset(req.path);
    if (asset == nullptr) return void(res.status = 404);
    for (const auto& [name, value] : kWebAssetHeaders) res.set_header(std::string(name), std::string(value));
    res.set_content(asset->bytes.data(), asset->bytes.size(), std::string(asset->content_type));
  });
  // Known paths with the wrong method: 405 (unknown paths fall through to 404).
  auto not_allowed = [](const char* allow) {
    return [allow](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", allow);
    };
  };
  for (const char* path : {kCompletionsPath, kChatPath}) http_->Get(path, not_allowed("POST"));
  for (const char* path : {"/v1/models", "/health", "/metrics"}) http_->Post(path, not_allowed("GET"));
}

void Server::HandleModels(const httplib::Request&, httplib::Response& res) const {
  const json body = {{"object", "list"}, {"data", json::array({ModelJson(options_.model_id, created_)})}};
  res.set_content(Dump(body), "application/json");
}

void Server::HandleModel(const httplib::Request& req, httplib::Response& res) const {
  const std::string id = req.matches[1];
  if (id != options_.model_id) {
    return Reply(res, ApiError{404, fmt::format("no model '{}' (this server has '{}')", id, options_.model_id),
                               "invalid_request_error", "model", "model_not_found"});
  }
  res.set_content(Dump(ModelJson(options_.model_id, created_)), "application/json");
}

void Server::HandleMetrics(const httplib::Request&, httplib::Response& res) const {
  res.set_content(metrics_.Render(engine_.Stats()), "text/plain; version=0.0.4; charset=utf-8");
}

std::string Server::NextResponseId(Endpoint endpoint) {
  std::lock_guard<std::mutex> l(mu_);
  return fmt::format("{}-{:08x}{:08x}", endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl",
                     static_cast<uint32_t>(instance_), ++next_response_);
}

bool Server::PlanGeneration(const ApiRequest& request, std::vector<int32_t> prompt, GenerationRequest* g,
                            ApiError* error) const {
  const int32_t n_prompt = static_cast<int32_t>(prompt.size());
  const int32_t n_ctx = engine_.n_ctx();
  if (n_prompt >= n_ctx) {
    *error = ApiError::InvalidRequest(
        fmt::format("the prompt has {} tokens but the context holds {} (including the completion)", n_prompt, n_ctx),
        request.endpoint == Endpoint::kChat ? "messages" : "prompt", "context_length_exceeded");
    return false;
  }
  // Without max_tokens, completions take OpenAI's default and chat runs to the
  // end of the context (or the server's limit).
  const int32_t fallback = request.endpoint == Endpoint::kChat ? std::min(n_ctx - n_prompt, limits_.max_tokens_limit)
                                                               : options_.default_max_tokens;
  g->prompt = std::move(prompt);
  g->max_tokens = request.max_tokens.value_or(fallback);
  g->sampling = SamplingOf(request);
  g->stop = request.stop;
  g->top_logprobs = request.logprobs;
  return true;
}

void Server::HandleGeneration(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  const Clock::time_point received = Clock::now();
  ApiRequest request;
  std::string param;
  if (Status s = ParseApiRequest(endpoint, req.body, limits_, &request, &param); !s.ok())
    return Reply(res, ApiError::InvalidRequest(s.message(), param));
  std::vector<int32_t> prompt;
  if (Status s = BuildPrompt(request, engine_.model().vocab(), chat_template_, &prompt); !s.ok())
    return Reply(res, ApiError::InvalidRequest(s.message(), endpoint == Endpoint::kChat ? "messages" : "prompt"));
  // Where completion logprobs' text_offset starts (chat has no offsets).
  const size_t prompt_bytes = endpoint == Endpoint::kChat ? 0
                              : request.prompt_is_ids     ? engine_.model().vocab().Decode(prompt).size()
                                                          : request.prompt_text.size();
  GenerationRequest g;
  ApiError error;
  if (!PlanGeneration(request, std::move(prompt), &g, &error)) return Reply(res, error);

  ResponseIdentity identity{NextResponseId(endpoint), UnixSeconds(), options_.model_id};
  auto job = std::make_shared<GenerationJob>(
      engine_, metrics_, ResponseBuilder(request, std::move(identity), engine_.model().vocab(), prompt_bytes),
      request.stream && request.include_usage, received);
  if (Status s = job->Submit(std::move(g)); !s.ok()) return Reply(res, ApiError::FromStatus(s));
  if (!Register(job->id())) {
    job->Release();
    return Reply(res, ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"});
  }
  if (!request.stream) {
    json body;
    const bool ok = job->AwaitWhole(&body, &error);
    job->Release();
    Unregister(job->id());
    if (!ok) return Reply(res, error);
    return res.set_content(Dump(body), "application/json");
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job](size_t, httplib::DataSink& sink) {
        bool done = false;
        const std::string piece = job->NextSse(options_.heartbeat, &done);
        if (!sink.write(piece.data(), piece.size())) return false;  // client gone: the releaser cancels
        if (done) sink.done();
        return true;
      },
      [this, job](bool) {
        job->Release();
        Unregister(job->id());
      });
}

}  // namespace strata::server
