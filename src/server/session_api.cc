#include "server/session_api.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/output_processor.h"
#include "server/prompt.h"

namespace strata::server {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kSessionsPrefix = "/v1/sessions/";

int32_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  return static_cast<int32_t>(std::mismatch(a.begin(), a.begin() + static_cast<ptrdiff_t>(n), b.begin()).first -
                              a.begin());
}

// The id and action of /v1/sessions/{id}[/{action}].
void SplitSessionPath(const std::string& path, std::string* id, std::string* action) {
  const std::string rest = path.substr(kSessionsPrefix.size());
  const size_t slash = rest.find('/');
  *id = rest.substr(0, slash);
  *action = slash == std::string::npos ? "" : rest.substr(slash + 1);
}

ApiError BadId(const std::string& id) {
  return ApiError::InvalidRequest(fmt::format("'{}' is not a session id: 1 to 128 letters, digits, '.', '_' or '-', "
                                              "not starting with '.'",
                                              id.substr(0, 160)),
                                  "id", "invalid_session_id");
}

// An optional JSON object body ("" is {}); *error set if it is not one.
bool ParseObject(const std::string& body, json* out, ApiError* error) {
  if (body.empty()) {
    *out = json::object();
    return true;
  }
  *out = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (out->is_object()) return true;
  *error = ApiError::InvalidRequest("the body must be a JSON object");
  return false;
}

// A non-negative integer field; nullopt if absent, *error if malformed.
std::optional<int32_t> Count(const json& body, const char* key, ApiError* error) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > INT32_MAX) {
    *error = ApiError::InvalidRequest(fmt::format("'{}' must be a non-negative integer", key), key);
    return -1;
  }
  return it->get<int32_t>();
}

json PointsJson(const std::vector<SessionPoint>& points) {
  json out = json::array();
  for (const SessionPoint& p : points) out.push_back({{"tokens", p.tokens}, {"messages", p.messages}});
  return out;
}

}  // namespace

// ---- SessionTurn ----

SessionTurn::SessionTurn(SessionStore* store, std::unique_ptr<SessionStore::Lease> lease, Endpoint endpoint)
    : store_(store), lease_(std::move(lease)), endpoint_(endpoint) {}

SessionTurn::~SessionTurn() {
  if (resume_ && !submitted_) store_->FreeSequence(*resume_);
}

void SessionTurn::Prepare(GenerationRequest* g, bool reseed) {
  g->resume = resume_;
  // Completions continue the penalty counts (one long completion); a chat reply starts with none.
  if (!reseed && !loaded_.state.tokens.empty())
    g->sampler_state = SamplerState{loaded_.state.rng, {},
                                    endpoint_ == Endpoint::kChat ? decltype(SamplerState::counts){}
                                                                 : loaded_.state.sampler_counts};
  g->retain = true;
}

EventSink SessionTurn::Wrap(EventSink next) {
  return [self = shared_from_this(), next = std::move(next)](const GenerationEvent& e) {
    self->text_ += e.text;
    if (!e.finished) return next(e);
    self->store_->Post([self, next, e] { self->Finish(e, next); });
    return true;
  };
}

void SessionTurn::Finish(GenerationEvent e, const EventSink& next) {
  if (e.retained) {
    SessionRecord record = loaded_.record;
    const RetainedSequence& r = *e.retained;
    const int32_t n = static_cast<int32_t>(r.tokens.size());
    if (endpoint_ == Endpoint::kChat) {
      record.kind = SessionKind::kChat;
      record.messages = messages_;
      record.messages.push_back(json{{"role", "assistant"}, {"content", text_}});
      record.ends = ends_;
      record.ends.push_back(n);
    } else {
      record.kind = SessionKind::kCompletion;
    }
    record.tokens = n;
    record.AddPoint(SessionPoint{n, r.n_kv, static_cast<int32_t>(record.messages.size()), r.sampler.rng,
                                 endpoint_ == Endpoint::kChat ? decltype(SamplerState::counts){} : r.sampler.counts});
    if (Status s = store_->Save(*lease_, r, EncodeSessionRecord(record)); !s.ok()) {
      e.reason = FinishReason::kError;
      e.error = Status::IOError("the completion was generated but the session could not be saved: " + s.message());
    }
    e.retained.reset();
  }
  lease_.reset();  // released before the client hears of the end, so that its next request finds the session free
  next(e);
}

// ---- SessionApi ----

SessionApi::SessionApi(SessionStore* store, const Vocab& vocab, const ChatTemplate& chat_template, int32_t n_ctx)
    : store_(*store), vocab_(vocab), chat_template_(chat_template), n_ctx_(n_ctx) {}

ApiError SessionApi::ErrorOf(const Status& s, const std::string& param) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return ApiError::InvalidRequest(s.message(), param);
    case StatusCode::kNotFound:
      return ApiError{404, s.message(), "invalid_request_error", param, "session_not_found"};
    case StatusCode::kBusy:
      return ApiError{409, s.message() + "; retry when it is done", "invalid_request_error", param, "session_busy"};
    case StatusCode::kUnsupported:
      return ApiError{409, s.message(), "invalid_request_error", param, "session_incompatible"};
    case StatusCode::kCorrupt:
      return ApiError{500, s.message(), "server_error", param, "session_corrupt"};
    case StatusCode::kResourceExhausted:
      return ApiError{429, s.message(), "invalid_request_error", param, "too_many_sessions"};
    case StatusCode::kOutOfRange:
      return ApiError{507, s.message(), "server_error", param, "session_store_full"};
    default:
      return ApiError::FromStatus(s);
  }
}

json SessionApi::SummaryJson(const SessionSummary& s) {
  json j = {{"id", s.id}, {"object", "session"}};
  if (!s.error.empty()) {
    j["error"] = s.error;
    return j;
  }
  j["kind"] = SessionKindName(s.kind);
  j["tokens"] = s.tokens;
  j["message_count"] = s.messages;
  j["stack_depth"] = s.stack_depth;
  j["bytes"] = s.bytes;
  j["resident"] = s.resident;
  j["busy"] = s.busy;
  return j;
}

void SessionApi::Handle(Route route, const http::HttpRequest& request, const std::string& ns, Ok ok, Fail fail) {
  if (route == Route::kSessions) {
    store_.Post([this, ns, ok, fail] {
      std::vector<SessionSummary> all;
      if (Status s = store_.List(ns, &all); !s.ok()) return fail(ErrorOf(s));
      json data = json::array();
      for (const SessionSummary& x : all) data.push_back(SummaryJson(x));
      ok(json{{"object", "list"}, {"data", std::move(data)}}.dump(-1, ' ', false, json::error_handler_t::replace));
    });
    return;
  }
  std::string id, action;
  SplitSessionPath(request.head.path, &id, &action);
  if (!IsValidSessionName(id)) return fail(BadId(id));
  const std::string& method = request.head.method;
  if (route == Route::kSession && method == "GET") {
    store_.Post([this, ns, id, ok, fail] {
      SessionSummary summary;
      SessionRecord record;
      if (Status s = store_.Describe(ns, id, &summary, &record); !s.ok()) return fail(ErrorOf(s));
      json j = SummaryJson(summary);
      if (summary.error.empty()) {
        if (record.kind == SessionKind::kChat) j["messages"] = record.messages;
        j["stack"] = PointsJson(record.stack);
      }
      ok(j.dump(-1, ' ', false, json::error_handler_t::replace));
    });
    return;
  }
  // The rest change the session: it must exist (checked before locking, so
  // that a mistyped id leaves nothing behind) and be free.
  if (!store_.Exists(ns, id)) return fail(ErrorOf(Status::NotFound(fmt::format("session '{}' does not exist", id))));
  json body;
  ApiError error;
  if (!ParseObject(request.body, &body, &error)) return fail(error);
  std::unique_ptr<SessionStore::Lease> lease;
  if (action == "fork") {
    const auto to = body.find("to");
    if (to == body.end() || !to->is_string())
      return fail(ApiError::InvalidRequest("fork needs \"to\": the new session's id", "to"));
    const std::string dst = to->get<std::string>();
    if (!IsValidSessionName(dst)) {
      ApiError e = BadId(dst);
      e.param = "to";
      return fail(e);
    }
    if (dst == id) return fail(ApiError::InvalidRequest("a session cannot be forked onto itself", "to"));
    if (store_.Exists(ns, dst))
      return fail(ApiError{409, fmt::format("session '{}' already exists", dst), "invalid_request_error", "to",
                           "session_exists"});
    std::unique_ptr<SessionStore::Lease> dst_lease;
    if (Status s = store_.Acquire(ns, id, &lease); !s.ok()) return fail(ErrorOf(s));
    if (Status s = store_.Acquire(ns, dst, &dst_lease); !s.ok()) return fail(ErrorOf(s, "to"));
    auto leases = std::make_shared<std::pair<std::unique_ptr<SessionStore::Lease>, std::unique_ptr<SessionStore::Lease>>>(
        std::move(lease), std::move(dst_lease));
    store_.Post([this, ns, dst, leases, ok, fail] {
      const Status s = store_.Fork(*leases->first, *leases->second);
      // Released before the reply, so that the client's next request finds both free.
      leases->first.reset();
      leases->second.reset();
      if (!s.ok())
        return fail(s.code() == StatusCode::kInvalidArgument
                        ? ApiError{409, s.message(), "invalid_request_error", "to", "session_exists"}
                        : ErrorOf(s));
      SessionSummary summary;
      if (Status s = store_.Describe(ns, dst, &summary, nullptr); !s.ok()) return fail(ErrorOf(s));
      ok(SummaryJson(summary).dump(-1, ' ', false, json::error_handler_t::replace));
    });
    return;
  }
  std::optional<int32_t> tokens, messages;
  if (action == "rollback") {
    tokens = Count(body, "tokens", &error);
    messages = Count(body, "messages", &error);
    if (!error.message.empty()) return fail(error);
    if (tokens.has_value() == messages.has_value())
      return fail(ApiError::InvalidRequest("rollback takes one of \"tokens\" or \"messages\": how many to keep"));
  }
  if (Status s = store_.Acquire(ns, id, &lease); !s.ok()) return fail(ErrorOf(s));
  auto held = std::shared_ptr<SessionStore::Lease>(std::move(lease));
  if (route == Route::kSession) {  // DELETE
    store_.Post([this, id, held, ok, fail]() mutable {
      const Status s = store_.Remove(*held);
      held.reset();
      if (!s.ok()) return fail(ErrorOf(s));
      ok(json{{"id", id}, {"object", "session.deleted"}, {"deleted", true}}.dump());
    });
    return;
  }
  store_.Post([this, ns, id, action, tokens, messages, held, ok, fail]() mutable {
    // Every reply releases the lease first, so that the client's next request finds the session free.
    auto reply_error = [&](const ApiError& e) {
      held.reset();
      fail(e);
    };
    SessionStore::Loaded loaded;
    if (Status s = store_.Read(*held, &loaded); !s.ok()) return reply_error(ErrorOf(s));
    if (!loaded.exists) return reply_error(ErrorOf(Status::NotFound(fmt::format("session '{}' does not exist", id))));
    SessionRecord record = loaded.record;
    const SessionState& st = loaded.state;
    const int32_t n_now = static_cast<int32_t>(st.tokens.size());
    int32_t n = n_now, max_kv = INT32_MAX;
    std::array<uint64_t, 4> rng = st.rng;
    std::vector<std::pair<int32_t, int32_t>> counts = st.sampler_counts;
    if (action == "push") {
      if (record.stack.size() >= kMaxStackDepth)
        return reply_error(ApiError::InvalidRequest(fmt::format("the context stack holds at most {} points", kMaxStackDepth)));
      record.stack.push_back(
          SessionPoint{n_now, st.n_kv, static_cast<int32_t>(record.messages.size()), st.rng, st.sampler_counts});
    } else {
      // rollback or pop: to a point, whose KV length and RNG come back with it when known.
      std::optional<SessionPoint> to;
      if (action == "pop") {
        if (record.stack.empty())
          return reply_error(ApiError{409, fmt::format("session '{}' has nothing pushed to pop", id), "invalid_request_error",
                               "", "session_stack_empty"});
        to = record.stack.back();
        record.stack.pop_back();
      } else if (tokens) {
        if (*tokens > n_now)
          return reply_error(ApiError::InvalidRequest(fmt::format("cannot keep {} tokens: session '{}' has {}", *tokens, id, n_now),
                                               "tokens"));
        const SessionPoint* p = record.PointAt(*tokens);
        to = p != nullptr ? *p : SessionPoint{*tokens, *tokens, -1, st.rng, st.sampler_counts};
      } else {
        if (record.kind != SessionKind::kChat)
          return reply_error(ApiError::InvalidRequest(
              fmt::format("session '{}' is a {} session: roll it back by tokens", id, SessionKindName(record.kind)),
              "messages"));
        const int32_t have = static_cast<int32_t>(record.messages.size());
        if (*messages > have)
          return reply_error(ApiError::InvalidRequest(
              fmt::format("cannot keep {} messages: session '{}' has {}", *messages, id, have), "messages"));
        const int32_t at = *messages == 0 ? 0 : record.ends[static_cast<size_t>(*messages - 1)];
        const SessionPoint* p = record.PointAt(at, *messages);
        to = p != nullptr ? *p : SessionPoint{at, at, *messages, st.rng, {}};
      }
      n = to->tokens;
      max_kv = to->n_kv;
      rng = to->rng;
      counts = to->counts;
      record.FitToTokens(n);
      if (to->messages >= 0 && static_cast<int32_t>(record.messages.size()) > to->messages) {
        record.messages.erase(record.messages.begin() + to->messages, record.messages.end());
        record.ends.resize(static_cast<size_t>(to->messages));
      }
    }
    if (Status s = store_.Rewrite(*held, n, max_kv, record, rng, counts); !s.ok()) return reply_error(ErrorOf(s));
    held.reset();
    SessionSummary summary;
    if (Status s = store_.Describe(ns, id, &summary, nullptr); !s.ok()) return reply_error(ErrorOf(s));
    ok(SummaryJson(summary).dump(-1, ' ', false, json::error_handler_t::replace));
  });
}

void SessionApi::BeginTurn(ApiRequest request, const std::string& ns, std::function<void(std::function<void()>)> post,
                           std::function<void(ApiRequest, std::shared_ptr<SessionTurn>)> start, Fail fail) {
  const bool chat = request.endpoint == Endpoint::kChat;
  if (request.n != 1) return fail(ApiError::InvalidRequest("a request on a session has one choice (n = 1)", "n"));
  if (!chat && request.prompts.size() != 1)
    return fail(ApiError::InvalidRequest("a request on a session has one prompt, not a batch", "prompt"));
  if (!chat && request.echo) return fail(ApiError::InvalidRequest("'echo' is not supported on a session", "echo"));
  std::unique_ptr<SessionStore::Lease> lease;
  if (Status s = store_.Acquire(ns, request.session, &lease); !s.ok()) return fail(ErrorOf(s, "session"));
  auto turn = std::make_shared<SessionTurn>(&store_, std::move(lease), request.endpoint);
  auto shared = std::make_shared<ApiRequest>(std::move(request));
  store_.Post([this, turn, shared, post = std::move(post), start = std::move(start), fail = std::move(fail)]() mutable {
    ApiError error;
    if (!PrepareTurn(*shared, turn.get(), &error)) {
      turn.reset();  // the lease is released before the reply
      return fail(error);
    }
    post([turn, shared, start = std::move(start)]() mutable { start(std::move(*shared), std::move(turn)); });
  });
}

bool SessionApi::PrepareTurn(const ApiRequest& request, SessionTurn* turn, ApiError* error) {
  const bool chat = request.endpoint == Endpoint::kChat;
  const std::string& id = request.session;
  SessionStore::Loaded& loaded = turn->loaded_;
  if (Status s = store_.Read(*turn->lease_, &loaded); !s.ok()) {
    *error = ErrorOf(s, "session");
    return false;
  }
  const SessionKind kind = loaded.record.kind;
  if (kind != SessionKind::kNew && (kind == SessionKind::kChat) != chat) {
    *error = ApiError::InvalidRequest(fmt::format("session '{}' is a {} session: continue it with {}", id,
                                                  SessionKindName(kind),
                                                  chat ? "/v1/completions" : "/v1/chat/completions"),
                                      "session");
    return false;
  }
  const std::vector<int32_t>& have = loaded.state.tokens;
  std::vector<int32_t>& prompt = turn->prompt_;
  int32_t common = 0;  // tokens the session and the new prompt agree on
  if (chat) {
    // The stored conversation and the new messages, rendered whole.
    ApiRequest whole = request;
    json messages = loaded.record.messages;
    for (const json& m : request.chat.messages) messages.push_back(m);
    whole.chat.messages = messages;
    if (Status s = BuildPrompt(whole, 0, vocab_, chat_template_, &prompt); !s.ok()) {
      *error = ApiError::InvalidRequest(s.message(), "messages");
      return false;
    }
    common = CommonPrefix(have, prompt);
    // Where each message ends: the stored ones at most where the renderings
    // part (see below); each new one where the rendering up to it does.
    turn->ends_ = loaded.record.ends;
    for (int32_t& end : turn->ends_) end = std::min(end, common);
    for (size_t k = loaded.record.messages.size(); k < messages.size(); ++k) {
      ApiRequest upto = whole;
      upto.chat.messages = json(messages.begin(), messages.begin() + static_cast<ptrdiff_t>(k + 1));
      upto.chat.add_generation_prompt = false;
      std::vector<int32_t> tokens;
      const int32_t before = turn->ends_.empty() ? 0 : turn->ends_.back();
      turn->ends_.push_back(BuildPrompt(upto, 0, vocab_, chat_template_, &tokens).ok()
                                ? std::max(before, CommonPrefix(tokens, prompt))
                                : before);
    }
    turn->messages_ = std::move(messages);
  } else {
    const PromptInput& p = request.prompts.front();
    std::vector<int32_t> added;
    if (p.is_ids) {
      for (int32_t t : p.ids) {
        if (t >= vocab_.n_tokens()) {
          *error = ApiError::InvalidRequest(
              fmt::format("token id {} in 'prompt' is outside the vocabulary (size {})", t, vocab_.n_tokens()), "prompt");
          return false;
        }
      }
      added = p.ids;
    } else {
      added = vocab_.Encode(p.text, /*add_special=*/have.empty(), /*parse_special=*/false);
    }
    prompt = have;
    prompt.insert(prompt.end(), added.begin(), added.end());
    common = static_cast<int32_t>(have.size());
    if (prompt.empty()) {
      *error = ApiError::InvalidRequest("the prompt is empty (and the model adds no BOS token)", "prompt");
      return false;
    }
  }
  const int32_t n = static_cast<int32_t>(prompt.size());
  if (n >= n_ctx_) {
    *error = ApiError::InvalidRequest(
        fmt::format("session '{}' and the new {} come to {} tokens but the context holds {} (including the completion)",
                    id, chat ? "messages" : "prompt", n, n_ctx_),
        chat ? "messages" : "prompt", "context_length_exceeded");
    return false;
  }
  // Past the tokens both agree on, the session's tokens are replaced by the
  // new rendering's: points, stack entries and message ends there now mean
  // "that many messages", at most `common` tokens (their RNG still applies).
  SessionRecord& record = loaded.record;
  for (std::vector<SessionPoint>* list : {&record.points, &record.stack}) {
    for (SessionPoint& p : *list) {
      p.tokens = std::min(p.tokens, common);
      p.n_kv = std::min(p.n_kv, common);
    }
  }

  const int64_t after = std::min<int64_t>(n_ctx_, static_cast<int64_t>(n) + request.max_tokens.value_or(n_ctx_));
  if (Status s = store_.CheckRoom(*turn->lease_, loaded, after); !s.ok()) {
    *error = ErrorOf(s, "session");
    return false;
  }
  // The KV reused: what both agree on and the session computed, leaving the last prompt token to compute.
  const int32_t keep = std::min({common, loaded.state.n_kv, n - 1});
  if (Status s = store_.Attach(*turn->lease_, loaded, keep, &turn->resume_); !s.ok()) {
    *error = ErrorOf(s, "session");
    return false;
  }
  return true;
}

}  // namespace strata::server
