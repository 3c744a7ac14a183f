#include "server/server.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <thread>

#include "core/utf8.h"
#include "grammar/gbnf_parser.h"
#include "grammar/vocab_gbnf_options.h"
#include "server/generation_job.h"
#include "server/tool_calls.h"
#include "server/prompt.h"
#include "server/web_assets.h"

namespace strata::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using http::HttpRequestHead;
using http::HttpResponse;

constexpr const char* kCompletionsPath = "/v1/completions";
constexpr const char* kChatPath = "/v1/chat/completions";
// After the grace period, cancelled requests get this long to send their last event.
constexpr std::chrono::seconds kCancelDrain{5};

int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A bounded label for /metrics: known routes as themselves, anything else "other".
// The metrics label of a request: its route's canonical path ("other" for
// unknown paths and for the web page's files but "/").
std::string EndpointLabel(const HttpRequestHead* head) {
  const std::optional<Route> route = head == nullptr ? std::nullopt : RouteOfPath(head->path);
  if (!route) return "other";
  switch (*route) {
    case Route::kCompletions: return kCompletionsPath;
    case Route::kChat: return kChatPath;
    case Route::kApplyTemplate: return "/apply-template";
    case Route::kTokenize: return "/tokenize";
    case Route::kDetokenize: return "/detokenize";
    case Route::kModels: return "/v1/models";
    case Route::kModel: return "/v1/models/{id}";
    case Route::kHealth: return "/health";
    case Route::kMetrics: return "/metrics";
    case Route::kSessions: return "/v1/sessions";
    case Route::kSession: return "/v1/sessions/{id}";
    case Route::kSessionAction: return "/v1/sessions/{id}/{action}";
    case Route::kWebAsset: return head->path == "/" ? "/" : "other";
  }
  return "other";
}

json ModelJson(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "strata"}};
}

// A LoRA adapter's entry: its base model is its parent (vLLM's fields).
json AdapterJson(const std::string& id, const std::string& base, int64_t created) {
  json j = ModelJson(id, created);
  j["parent"] = base;
  j["root"] = base;
  return j;
}

// The request's sampling, the server's defaults where it sets nothing.
SamplerParams SamplingOf(const ApiRequest& r, const SamplerParams& defaults) {
  SamplerParams p = defaults;
  p.temperature = r.temperature.value_or(defaults.temperature);
  p.top_k = r.top_k.value_or(defaults.top_k);
  p.top_p = r.top_p.value_or(defaults.top_p);
  p.min_p = r.min_p.value_or(defaults.min_p);
  p.repeat_penalty = r.repeat_penalty.value_or(defaults.repeat_penalty);
  p.frequency_penalty = r.frequency_penalty.value_or(defaults.frequency_penalty);
  p.presence_penalty = r.presence_penalty.value_or(defaults.presence_penalty);
  p.logit_bias.clear();
  for (const auto& [token, bias] : r.logit_bias) p.logit_bias.push_back(LogitBias{token, bias});
  p.seed = r.seed ? *r.seed : std::random_device{}();
  return p;
}

// Most distinct ignored field names logged (a client cannot grow the set).
constexpr size_t kMaxUnknownFieldsNoted = 64;
// Most names the X-Strata-Ignored-Fields header lists (then "...").
constexpr size_t kMaxIgnoredFieldsHeader = 32;

bool IsGeneration(const HttpRequestHead& head) {
  const std::optional<Route> route = RouteOfPath(head.path);
  return route == Route::kCompletions || route == Route::kChat;
}

// The X-Strata-Ignored-Fields value: the names, comma-separated, each byte
// outside [A-Za-z0-9_.-] as %XX (a header value must not carry what a
// client put in a JSON key).
std::string IgnoredFieldsHeader(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i == kMaxIgnoredFieldsHeader) return out + ",...";
    if (i > 0) out += ',';
    for (const char c : fields[i].substr(0, 64)) {
      const auto u = static_cast<unsigned char>(c);
      if (std::isalnum(u) || c == '_' || c == '.' || c == '-') {
        out += c;
      } else {
        out += fmt::format("%{:02X}", u);
      }
    }
  }
  return out;
}

}  // namespace

Server::Server(Engine* engine, ChatTemplate chat_template, ServerOptions options)
    : engine_(*engine),
      chat_template_(std::move(chat_template)),
      options_(std::move(options)),
      limits_{options_.max_tokens_limit > 0 ? options_.max_tokens_limit : engine->n_ctx()},
      created_(UnixSeconds()),
      instance_(std::random_device{}()),
      gate_(GateOptions{options_.host, options_.allowed_hosts, options_.cors_origins, options_.api_key,
                        options_.more_api_keys}),
      http_(std::make_unique<http::HttpServer>(static_cast<http::HttpHandler*>(this), options_.limits,
                                             options_.io_threads)) {}

Server::~Server() = default;

Status Server::Create(Engine* engine, ChatTemplate chat_template, ServerOptions options,
                      std::unique_ptr<Server>* out) {
  if (options.port < 0 || options.port > 65535) return Status::InvalidArgument("port must be in [0, 65535]");
  if (options.limits.max_body_bytes == 0) return Status::InvalidArgument("max_body_bytes must be > 0");
  if (options.limits.max_connections == 0) return Status::InvalidArgument("max_connections must be > 0");
  if (options.max_tokens_limit < 0) return Status::InvalidArgument("max_tokens_limit must be >= 0");
  if (options.default_max_tokens < 0) return Status::InvalidArgument("default_max_tokens must be >= 0");
  if (options.io_threads < 1) return Status::InvalidArgument("io_threads must be >= 1");
  if (options.shutdown_grace.count() < 0) return Status::InvalidArgument("shutdown_grace must be >= 0");
  if (options.model_id.empty()) options.model_id = engine->model().name();
  if (options.adapter_ids.size() != engine->adapters().size())
    return Status::InvalidArgument(fmt::format("{} adapter ids for the engine's {} adapter sets",
                                               options.adapter_ids.size(), engine->adapters().size()));
  for (size_t i = 0; i < options.adapter_ids.size(); ++i) {
    const std::string& id = options.adapter_ids[i];
    if (id.empty()) return Status::InvalidArgument("a LoRA adapter's id is empty");
    if (id == options.model_id)
      return Status::InvalidArgument(fmt::format("LoRA adapter id '{}' is the model's id (name it: --lora NAME=FILE)", id));
    if (std::find(options.adapter_ids.begin(), options.adapter_ids.begin() + static_cast<std::ptrdiff_t>(i), id) !=
        options.adapter_ids.begin() + static_cast<std::ptrdiff_t>(i))
      return Status::InvalidArgument(fmt::format("two LoRA adapters have the id '{}' (name them: --lora NAME=FILE)", id));
  }
  std::unique_ptr<SessionStore> store;
  if (!options.sessions.dir.empty())
    STRATA_RETURN_IF_ERROR(SessionStore::Create(engine, options.sessions, &store));
  std::unique_ptr<Server> server(new Server(engine, std::move(chat_template), std::move(options)));
  if (store) {
    server->sessions_ = std::make_unique<SessionApi>(store.get(), engine->model().vocab(), server->chat_template_,
                                                     engine->n_ctx());
    server->session_store_ = std::move(store);
  }
  *out = std::move(server);
  return Status::Ok();
}

Status Server::Bind(int* port) { return http_->Bind(options_.host, options_.port, port); }

Status Server::Serve() {
  http_->Run();
  return Status::Ok();
}

std::optional<SessionStoreStats> Server::session_stats() const {
  return session_store_ ? std::optional(session_store_->stats()) : std::nullopt;
}

bool Server::shutting_down() const {
  std::lock_guard<std::mutex> l(mu_);
  return shutting_down_;
}

void Server::Shutdown() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (shutting_down_) return;
    shutting_down_ = true;
  }
  http_->StopAccepting();  // idle and slow connections close now
  std::vector<std::shared_ptr<GenerationJob>> late;
  {
    std::unique_lock<std::mutex> l(mu_);
    jobs_done_.wait_for(l, options_.shutdown_grace, [&] { return jobs_.empty(); });
    for (auto& [key, job] : jobs_) late.push_back(job);
  }
  for (auto& job : late) job->Cancel();
  {
    std::unique_lock<std::mutex> l(mu_);
    jobs_done_.wait_for(l, kCancelDrain, [&] { return jobs_.empty(); });
  }
  // Connections close themselves once their last response is written; give
  // them a moment to flush, then drop what is left.
  for (int i = 0; i < 100 && http_->connections() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  http_->CloseAll();
}

bool Server::Register(uint64_t key, std::shared_ptr<GenerationJob> job) {
  std::lock_guard<std::mutex> l(mu_);
  if (shutting_down_) return false;
  jobs_.emplace(key, std::move(job));
  return true;
}

void Server::Unregister(uint64_t key) {
  std::lock_guard<std::mutex> l(mu_);
  jobs_.erase(key);
  if (jobs_.empty()) jobs_done_.notify_all();
}

// ---- judging a request from its head ----

std::optional<HttpResponse> Server::Admit(const HttpRequestHead& head) {
  if (shutting_down()) {
    return gate_.Reply(ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"}, head)
        .With("Connection", "close");
  }
  return gate_.Judge(head).answer;
}

HttpResponse Server::Error(int status, std::string_view message, const HttpRequestHead* head) {
  ApiError e = ApiError::ForHttpStatus(status, head ? head->method : "", head ? head->path : "");
  e.message = std::string(message);
  if (head == nullptr) {
    HttpResponse r = HttpResponse::Json(status, e.ToJson());
    if (status == 503) r.With("Retry-After", "1");
    return r;
  }
  return gate_.Reply(e, *head);
}

void Server::Responded(const HttpRequestHead* head, int status) {
  metrics_.CountRequest(EndpointLabel(head), status);
  // A generation's successful response is logged when it ends (with its tokens).
  if (head != nullptr && status == 200 && IsGeneration(*head)) return;
  LogAccess(head, status, Usage{});
}

void Server::LogAccess(const HttpRequestHead* head, int status, const Usage& usage) const {
  if (!options_.access_log) return;
  const double ms = head == nullptr ? 0.0
                                    : std::chrono::duration<double, std::milli>(Clock::now() - head->received).count();
  options_.access_log(AccessLine(AccessRecord{head ? std::string_view(head->method) : "-",
                                              head ? std::string_view(head->path) : "-", status, usage.prompt_tokens,
                                              usage.completion_tokens, ms},
                                 options_.log_format));
}

HttpResponse Server::ReplyJson(std::string body, const HttpRequestHead& head) const {
  HttpResponse r{200, gate_.CorsHeaders(head), std::move(body)};
  return r.With("Content-Type", "application/json");
}

// ---- answering ----

void Server::Handle(http::HttpRequest request, std::shared_ptr<http::HttpExchange> exchange) {
  const HttpRequestHead& head = request.head;
  const std::optional<Route> route = RouteOfPath(head.path);  // Admit lets only known routes through
  if (!route) return exchange->Respond(gate_.Reply(ApiError::ForHttpStatus(404, head.method, head.path), head));
  switch (*route) {
    case Route::kCompletions:
    case Route::kChat:
      return HandleGeneration(*route, std::move(request), std::move(exchange));
    case Route::kHealth: {
      const bool down = shutting_down();
      HttpResponse r{down ? 503 : 200, gate_.CorsHeaders(head),
                     down ? R"({"status":"shutting down"})" : R"({"status":"ok"})"};
      return exchange->Respond(r.With("Content-Type", "application/json"));
    }
    case Route::kMetrics: {
      const std::optional<SessionStoreStats> sessions = session_stats();
      HttpResponse r{200, gate_.CorsHeaders(head), metrics_.Render(engine_.Stats(), sessions ? &*sessions : nullptr)};
      return exchange->Respond(r.With("Content-Type", "text/plain; version=0.0.4; charset=utf-8"));
    }
    case Route::kModels: {
      json data = json::array({ModelJson(options_.model_id, created_)});
      for (const std::string& id : options_.adapter_ids) data.push_back(AdapterJson(id, options_.model_id, created_));
      const json body = {{"object", "list"}, {"data", data}};
      return exchange->Respond(ReplyJson(ResponseBuilder::Dump(body), head));
    }
    case Route::kModel:
      return exchange->Respond(HandleModel(head));
    case Route::kWebAsset:
      return exchange->Respond(HandleWebAsset(head));
    case Route::kApplyTemplate:
      return exchange->Respond(HandleApplyTemplate(request));
    case Route::kTokenize:
      return exchange->Respond(HandleTokenize(request));
    case Route::kDetokenize:
      return exchange->Respond(HandleDetokenize(request));
    case Route::kSessions:
    case Route::kSession:
    case Route::kSessionAction:
      return HandleSession(*route, request, std::move(exchange));
  }
}

void Server::HandleSession(Route route, const http::HttpRequest& request, std::shared_ptr<http::HttpExchange> exchange) {
  const HttpRequestHead& head = request.head;
  if (!sessions_) {
    return exchange->Respond(gate_.Reply(ApiError{404, "sessions are not enabled on this server (start it with "
                                                       "--session-dir)",
                                                  "invalid_request_error", "", "sessions_disabled"},
                                         head));
  }
  auto shared_head = std::make_shared<HttpRequestHead>(head);
  sessions_->Handle(
      route, request, SessionStore::NamespaceOf(gate_.KeyOf(head)),
      [this, shared_head, exchange](std::string body) { exchange->Respond(ReplyJson(std::move(body), *shared_head)); },
      [this, shared_head, exchange](const ApiError& e) { exchange->Respond(gate_.Reply(e, *shared_head)); });
}

HttpResponse Server::HandleModel(const HttpRequestHead& head) const {
  constexpr std::string_view kModels = "models/";  // the id follows /v1/models/ or /models/
  const std::string id = head.path.substr(head.path.find(kModels) + kModels.size());
  for (const std::string& a : options_.adapter_ids)
    if (id == a) return ReplyJson(ResponseBuilder::Dump(AdapterJson(a, options_.model_id, created_)), head);
  if (id != options_.model_id) {
    return gate_.Reply(ApiError{404, fmt::format("no model '{}' (this server has '{}')", id, options_.model_id),
                          "invalid_request_error", "model", "model_not_found"},
                 head);
  }
  return ReplyJson(ResponseBuilder::Dump(ModelJson(options_.model_id, created_)), head);
}

HttpResponse Server::HandleApplyTemplate(const http::HttpRequest& request) const {
  ChatConversation conversation;
  std::string param;
  if (Status s = ParseChatConversation(request.body, &conversation, &param); !s.ok())
    return gate_.Reply(ApiError::InvalidRequest(s.message(), param), request.head);
  std::string prompt;
  if (Status s = chat_template_.Apply(conversation, &prompt); !s.ok())
    return gate_.Reply(ApiError::InvalidRequest(s.message(), "messages"), request.head);
  return ReplyJson(ResponseBuilder::Dump(json{{"prompt", prompt}}), request.head);
}

HttpResponse Server::HandleTokenize(const http::HttpRequest& request) const {
  TokenizeRequest t;
  std::string param;
  if (Status s = ParseTokenizeRequest(request.body, &t, &param); !s.ok())
    return gate_.Reply(ApiError::InvalidRequest(s.message(), param), request.head);
  const Vocab& vocab = engine_.model().vocab();
  const std::vector<TokenId> ids = vocab.Encode(t.content, t.add_special, t.parse_special);
  json tokens = json::array();
  for (TokenId id : ids) {
    if (!t.with_pieces) {
      tokens.push_back(id);
      continue;
    }
    // A piece that is not whole UTF-8 (part of a character) as its bytes.
    const std::string piece = vocab.TokenToPiece(id, true);
    json p = json::array();
    if (utf8::IsValid(piece)) {
      p = piece;
    } else {
      for (unsigned char c : piece) p.push_back(static_cast<int>(c));
    }
    tokens.push_back(json{{"id", id}, {"piece", std::move(p)}});
  }
  return ReplyJson(ResponseBuilder::Dump(json{{"tokens", std::move(tokens)}}), request.head);
}

HttpResponse Server::HandleDetokenize(const http::HttpRequest& request) const {
  const Vocab& vocab = engine_.model().vocab();
  std::vector<int32_t> ids;
  std::string param;
  if (Status s = ParseDetokenizeRequest(request.body, vocab.n_tokens(), &ids, &param); !s.ok())
    return gate_.Reply(ApiError::InvalidRequest(s.message(), param), request.head);
  // Each token's piece as it stands, control tokens included (llama-server's
  // /detokenize); bytes that are not UTF-8 become U+FFFD in the JSON.
  std::string content;
  for (int32_t id : ids) content += vocab.TokenToPiece(id, true);
  return ReplyJson(ResponseBuilder::Dump(json{{"content", std::move(content)}}), request.head);
}

void Server::NoteUnknownFields(const std::vector<std::string>& fields) {
  std::string fresh;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const std::string& f : fields) {
      if (unknown_fields_noted_.size() >= kMaxUnknownFieldsNoted) break;
      if (!unknown_fields_noted_.insert(f).second) continue;
      fresh += (fresh.empty() ? "'" : ", '") + f.substr(0, 64) + "'";
    }
  }
  if (fresh.empty()) return;
  const std::string line = "requests carry fields strata ignores: " + fresh + " (each name is logged once)";
  if (options_.log) {
    options_.log(line);
  } else {
    fmt::print(stderr, "strata serve: {}\n", line);
  }
}

HttpResponse Server::HandleWebAsset(const HttpRequestHead& head) const {
  const WebAsset* asset = FindWebAsset(head.path);
  if (asset == nullptr) return gate_.Reply(ApiError::ForHttpStatus(404, head.method, head.path), head);
  HttpResponse r{200, {}, std::string(asset->bytes)};
  r.With("Content-Type", std::string(asset->content_type));
  for (const auto& [name, value] : kWebAssetHeaders) r.With(std::string(name), std::string(value));
  return r;
}

std::string Server::NextResponseId(Endpoint endpoint) {
  std::lock_guard<std::mutex> l(mu_);
  return fmt::format("{}-{:08x}{:08x}", endpoint == Endpoint::kChat ? "chatcmpl" : "cmpl",
                     static_cast<uint32_t>(instance_), ++next_response_);
}

bool Server::ChooseAdapter(const ApiRequest& request, LoraSet* lora, std::string* model_id, ApiError* error) const {
  const std::vector<std::string>& ids = options_.adapter_ids;
  const auto index = [&](const std::string& id) -> int32_t {
    const auto it = std::find(ids.begin(), ids.end(), id);
    return it == ids.end() ? 0 : static_cast<int32_t>(it - ids.begin()) + 1;
  };
  const auto have = [&] { return ids.empty() ? std::string("none") : fmt::format("{}", fmt::join(ids, ", ")); };
  lora->clear();
  *model_id = options_.model_id;
  const int32_t by_model = request.model == options_.model_id ? 0 : index(request.model);
  int32_t adapter = 0;
  if (request.lora_is_array) {
    if (by_model != 0) {
      *error = ApiError::InvalidRequest(
          fmt::format("'model' names the LoRA adapter '{}' and 'lora' lists adapters: give its scale in 'lora'",
                      request.model),
          "lora");
      return false;
    }
    // llama-server's rule: the adapters listed run at their scales (the last
    // entry of one wins), the others not at all.
    std::vector<float> scales(ids.size(), 0.0f);
    for (size_t i = 0; i < request.lora_scales.size(); ++i) {
      const LoraScale& ls = request.lora_scales[i];
      const int64_t k = ls.index >= 0 ? ls.index : index(ls.id) - 1;
      if (k < 0 || k >= static_cast<int64_t>(ids.size())) {
        *error = ApiError::InvalidRequest(
            fmt::format("no LoRA adapter {} (this server has {}: {})",
                        ls.index >= 0 ? std::to_string(ls.index) : "'" + ls.id + "'", ids.size(), have()),
            fmt::format("lora[{}].id", i));
        return false;
      }
      scales[static_cast<size_t>(k)] = ls.scale;
    }
    const std::vector<LoraSet>& sets = engine_.adapters();
    for (size_t k = 0; k < ids.size(); ++k)
      if (scales[k] != 0.0f)
        for (const LoraUse& use : sets[k]) lora->push_back(LoraUse{use.adapter, scales[k]});
    return true;
  }
  if (!request.lora.empty()) {
    adapter = index(request.lora);
    if (adapter == 0) {
      *error = ApiError::InvalidRequest(fmt::format("no LoRA adapter '{}' (this server has: {})", request.lora, have()),
                                        "lora");
      return false;
    }
    if (by_model != 0 && by_model != adapter) {
      *error = ApiError::InvalidRequest("'model' and 'lora' name different LoRA adapters", "lora");
      return false;
    }
  } else if (!ids.empty() && !request.model.empty() && request.model != options_.model_id) {
    adapter = by_model;
    if (adapter == 0) {
      *error = ApiError{404, fmt::format("no model '{}' (this server has '{}' and its LoRA adapters {})", request.model,
                                         options_.model_id, fmt::join(ids, ", ")),
                        "invalid_request_error", "model", "model_not_found"};
      return false;
    }
  }
  if (adapter > 0) {
    *lora = engine_.adapters()[static_cast<size_t>(adapter - 1)];
    *model_id = ids[static_cast<size_t>(adapter - 1)];
  }
  return true;
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
  // Token ids the request names must be in the vocabulary.
  const int32_t n_vocab = engine_.model().hparams().n_vocab;
  for (const auto& [token, bias] : request.logit_bias) {
    if (token >= n_vocab) {
      *error = ApiError::InvalidRequest(
          fmt::format("'logit_bias' names token {}; the vocabulary has {} tokens", token, n_vocab), "logit_bias");
      return false;
    }
  }
  for (int32_t token : request.stop_token_ids) {
    if (token >= n_vocab) {
      *error = ApiError::InvalidRequest(
          fmt::format("'stop_token_ids' names token {}; the vocabulary has {} tokens", token, n_vocab),
          "stop_token_ids");
      return false;
    }
  }
  g->prompt = std::move(prompt);
  g->max_tokens = request.max_tokens.value_or(fallback);
  g->sampling = SamplingOf(request, options_.sampling);
  g->stop_token_ids = request.stop_token_ids;
  g->ignore_eos = request.ignore_eos;
  g->min_tokens = request.min_tokens;
  g->top_logprobs = request.logprobs;
  g->prompt_logprobs = request.echo && request.logprobs >= 0;
  g->speculate = request.speculative;
  return true;
}

void Server::HandleGeneration(Route route, http::HttpRequest req, std::shared_ptr<http::HttpExchange> exchange) {
  const Clock::time_point received = Clock::now();
  const HttpRequestHead& head = req.head;
  const Endpoint endpoint = route == Route::kChat ? Endpoint::kChat : Endpoint::kCompletions;
  ApiRequest request;
  std::string param;
  if (Status s = ParseApiRequest(endpoint, req.body, limits_, &request, &param); !s.ok())
    return exchange->Respond(gate_.Reply(ApiError::InvalidRequest(s.message(), param), head));
  if (!request.unknown_fields.empty()) NoteUnknownFields(request.unknown_fields);
  if (request.session.empty()) return StartGeneration(request, received, head, std::move(exchange), nullptr);
  if (!sessions_) {
    return exchange->Respond(gate_.Reply(
        ApiError::InvalidRequest("sessions are not enabled on this server (start it with --session-dir)", "session",
                                 "sessions_disabled"),
        head));
  }
  // A session's KV is the base model's: a turn under a LoRA adapter would mix
  // the two (resumed, the KV of one set would run under the other).
  LoraSet lora;
  std::string model_id;
  ApiError error;
  if (!ChooseAdapter(request, &lora, &model_id, &error)) return exchange->Respond(gate_.Reply(error, head));
  if (!lora.empty()) {
    return exchange->Respond(gate_.Reply(
        ApiError::InvalidRequest(fmt::format("a session runs with the base model '{}', not LoRA adapters ('{}')",
                                             options_.model_id, request.lora_is_array ? "lora" : model_id),
                                 request.lora.empty() && !request.lora_is_array ? "model" : "lora", "session_with_adapter"),
        head));
  }
  // The session is read and its KV attached off this thread; the job starts back on it.
  auto shared_head = std::make_shared<HttpRequestHead>(head);
  sessions_->BeginTurn(
      std::move(request), SessionStore::NamespaceOf(gate_.KeyOf(head)),
      [exchange](std::function<void()> fn) { exchange->Post(std::move(fn)); },
      [this, received, shared_head, exchange](ApiRequest r, std::shared_ptr<SessionTurn> turn) {
        StartGeneration(r, received, *shared_head, exchange, std::move(turn));
      },
      [this, shared_head, exchange](const ApiError& e) { exchange->Respond(gate_.Reply(e, *shared_head)); });
}

void Server::StartGeneration(const ApiRequest& request, Clock::time_point received, const HttpRequestHead& head,
                             std::shared_ptr<http::HttpExchange> exchange, std::shared_ptr<SessionTurn> turn) {
  std::vector<GenerationJob::Choice> choices;
  ApiError error;
  if (!PlanChoices(request, &choices, &error, turn ? &turn->prompt() : nullptr)) {
    turn.reset();  // a session's lease is released before the reply
    return exchange->Respond(gate_.Reply(error, head));
  }
  if (turn) {
    turn->Prepare(&choices.front().request, request.seed.has_value());
    choices.front().wrap_sink = [turn](EventSink next) { return turn->Wrap(std::move(next)); };
  }

  std::vector<http::HttpHeader> headers = gate_.CorsHeaders(head);
  if (!request.unknown_fields.empty())
    headers.push_back({"X-Strata-Ignored-Fields", IgnoredFieldsHeader(request.unknown_fields)});
  GenerationJob::Output output{request.stream, request.stream && request.include_usage,
                               choices.front().request.prompt_logprobs, std::move(headers), options_.heartbeat,
                               turn != nullptr};
  auto job = std::make_shared<GenerationJob>(engine_, metrics_, std::move(output), received);
  uint64_t key;
  {
    std::lock_guard<std::mutex> l(mu_);
    key = ++next_job_;
  }
  if (!Register(key, job))
    return exchange->Respond(gate_.Reply(ApiError{503, "the server is shutting down", "server_error", "", "shutting_down"}, head));
  // Logged at the end unless its response was an error, which Responded logs.
  auto on_end = [this, key, job = job.get(), head] {
    if (job->status() == 200 || job->status() == 499) LogAccess(&head, job->status(), job->usage());
    Unregister(key);
  };
  if (Status s = job->Start(std::move(choices), exchange, std::move(on_end)); !s.ok()) {
    Unregister(key);
    turn.reset();
    return exchange->Respond(gate_.Reply(ApiError::FromStatus(s), head));
  }
  if (turn) turn->Submitted();
}

bool Server::PlanChoices(const ApiRequest& request, std::vector<GenerationJob::Choice>* choices, ApiError* error,
                         const std::vector<int32_t>* session_prompt) {
  const Vocab& vocab = engine_.model().vocab();
  // Tools: the calls the model writes are read back out of its text; a
  // required or named call is also what the grammar lets it write.
  const bool tools = request.endpoint == Endpoint::kChat && !request.chat.tools.is_null();
  const ToolCallFormat tool_format = DetectToolCallFormat(chat_template_.tool_source());
  std::string gbnf = request.grammar, gbnf_param = request.grammar_param;
  if (tools && (request.tool_choice == ToolChoice::kRequired || request.tool_choice == ToolChoice::kFunction)) {
    if (!gbnf.empty()) {
      *error = ApiError::InvalidRequest(
          fmt::format("'tool_choice' asks for a tool call and '{}' constrains the output too; send one", gbnf_param),
          "tool_choice");
      return false;
    }
    if (Status s = ToolCallGrammar(tool_format, request.chat.tools, request.tool_name, request.parallel_tool_calls,
                                   &gbnf);
        !s.ok()) {
      *error = ApiError::InvalidRequest(s.message(), "tools");
      return false;
    }
    gbnf_param = "tools";
  }
  std::shared_ptr<const grammar::Grammar> structured;  // shared by every choice
  if (!gbnf.empty()) {
    auto g = std::make_shared<grammar::Grammar>();
    if (Status s = grammar::ParseGbnf(gbnf, grammar::VocabGbnfOptions(vocab), g.get()); !s.ok()) {
      const std::string what = gbnf_param == "grammar" ? "grammar" : "the grammar of '" + gbnf_param + "'";
      *error = ApiError::InvalidRequest(what + ": " + s.message(), gbnf_param);
      return false;
    }
    structured = std::move(g);
  }
  LoraSet lora;
  std::string model_id;
  if (!ChooseAdapter(request, &lora, &model_id, error)) return false;
  const ResponseIdentity identity{NextResponseId(request.endpoint), UnixSeconds(), model_id};
  const size_t n_prompts = request.endpoint == Endpoint::kChat ? 1 : request.prompts.size();
  for (size_t p = 0; p < n_prompts; ++p) {
    std::vector<int32_t> prompt;
    if (session_prompt != nullptr) {
      prompt = *session_prompt;
    } else if (Status s = BuildPrompt(request, p, vocab, chat_template_, &prompt); !s.ok()) {
      *error = ApiError::InvalidRequest(s.message(), request.endpoint == Endpoint::kChat ? "messages" : "prompt");
      return false;
    }
    GenerationRequest g;
    if (!PlanGeneration(request, std::move(prompt), &g, error)) return false;
    g.grammar = structured;
    g.lora = lora;
    // Completions' text: the prompt as sent (or its ids' decoding), where
    // logprobs' text_offset starts and what echo repeats; chat has neither.
    std::string prompt_text;
    if (request.endpoint == Endpoint::kCompletions)
      prompt_text = request.prompts[p].is_ids ? vocab.Decode(g.prompt) : request.prompts[p].text;
    for (int32_t i = 0; i < request.n; ++i) {
      const int32_t index = static_cast<int32_t>(p) * request.n + i;
      GenerationJob::Choice c{g, OutputParams{request.stop, request.min_tokens},
                              ResponseBuilder(request, identity, vocab, prompt_text.size(), index), i == 0, {}};
      // The n samples of one prompt draw from distinct seeds (reproducible when the request sets one).
      c.request.sampling.seed += static_cast<uint64_t>(i);
      if (request.echo) c.builder.Echo(prompt_text, c.request.prompt.front());
      if (tools) c.builder.Tools(tool_format);
      choices->push_back(std::move(c));
    }
  }
  return true;
}

}  // namespace strata::server
