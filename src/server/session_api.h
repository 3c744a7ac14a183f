// SessionApi: sessions over HTTP (strata's extension; docs/SERVER.md,
// "Sessions") — the routes
//   GET    /v1/sessions                the key's sessions
//   GET    /v1/sessions/{id}           one (a chat session's messages, the stack)
//   DELETE /v1/sessions/{id}
//   POST   /v1/sessions/{id}/fork      {"to": id2}: a copy (parked KV shared, copy on write)
//   POST   /v1/sessions/{id}/rollback  {"tokens": n} or {"messages": n}: keep the first n
//   POST   /v1/sessions/{id}/push      save the current point on the session's context stack
//   POST   /v1/sessions/{id}/pop       return to the point pushed last (what came after is dropped)
// and the session side of a completion or chat request naming a `session`
// (SessionTurn): the session's tokens are the prefix of the request's prompt
// and their KV is reused, not computed.
//
//   completions: the prompt's tokens are appended to the session's (BOS only
//                if the session is empty; "" continues it), as `strata run
//                --session` does.
//   chat:        the request sends only its new messages; the server keeps
//                the conversation, renders all of it with the chat template,
//                and reuses the KV of the longest common prefix of the new
//                rendering's tokens and the session's tokens (a template
//                that renders earlier turns differently — or a reply whose
//                text tokenizes differently than it was generated — costs
//                the recomputation of what differs, never a wrong prefix).
// The sampler's RNG continues from the session's unless the request sets a
// seed. The final event reaches the client only once the session is saved
// (so the next request on it sees it), or the request fails saying it was not.
//
// Thread-safety: Handle and BeginTurn may be called from any thread; their
// replies come from the store's worker thread (or the caller's).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/output_processor.h"
#include "http/http_message.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/chat_template.h"
#include "server/request_gate.h"
#include "server/session_store.h"
#include "vocab/vocab.h"

namespace strata::server {

// One request on a session, from its lease to its save.
class SessionTurn : public std::enable_shared_from_this<SessionTurn> {
 public:
  SessionTurn(SessionStore* store, std::unique_ptr<SessionStore::Lease> lease, Endpoint endpoint);
  // Frees a resume sequence the engine never took; releases the lease.
  ~SessionTurn();

  // The request's whole prompt: the session's tokens and the new ones.
  const std::vector<int32_t>& prompt() const { return prompt_; }
  // Sets g's session fields: the sequence to resume, the RNG to continue
  // (unless reseed), retain.
  void Prepare(GenerationRequest* g, bool reseed);
  // The engine accepted the request (it owns the resume sequence now).
  void Submitted() { submitted_ = true; }
  // The sink for the engine: passes events to next, except the final one,
  // which goes on once the session is saved (or with the save's error).
  EventSink Wrap(EventSink next);

 private:
  friend class SessionApi;
  // (store worker) Saves the session from the final event, releases the lease, passes the event on.
  void Finish(GenerationEvent e, const EventSink& next);

  SessionStore* store_;
  std::unique_ptr<SessionStore::Lease> lease_;
  const Endpoint endpoint_;
  SessionStore::Loaded loaded_;
  std::vector<int32_t> prompt_;
  std::optional<SeqId> resume_;
  bool submitted_ = false;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();  // chat: the conversation this request continues
  std::vector<int32_t> ends_;  // chat: where each of messages_ ends in prompt_
  std::string text_;           // what the request generated (chat: the reply)
};

class SessionApi {
 public:
  using Ok = std::function<void(std::string json_body)>;
  using Fail = std::function<void(const ApiError& error)>;

  // REQUIRES: store, vocab and chat_template outlive it.
  SessionApi(SessionStore* store, const Vocab& vocab, const ChatTemplate& chat_template, int32_t n_ctx);

  // Answers one of the session routes for namespace ns (the gate checked method and key).
  void Handle(Route route, const http::HttpRequest& request, const std::string& ns, Ok ok, Fail fail);

  // A validated request with a `session`: leases the session (409 if in
  // use), then on the store's worker reads it, builds the prompt and
  // attaches its KV, and calls start (through post, on the connection's
  // thread) with the turn — or fail.
  void BeginTurn(ApiRequest request, const std::string& ns, std::function<void(std::function<void()>)> post,
                 std::function<void(ApiRequest, std::shared_ptr<SessionTurn>)> start, Fail fail);

  // The client's view of a store error on session id.
  static ApiError ErrorOf(const Status& s, const std::string& param = "");

  SessionStoreStats stats() const { return store_.stats(); }

 private:
  // The worker's part of BeginTurn: *error set on failure.
  bool PrepareTurn(const ApiRequest& request, SessionTurn* turn, ApiError* error);
  // GET /v1/sessions/{id}'s body.
  static nlohmann::ordered_json SummaryJson(const SessionSummary& s);

  SessionStore& store_;
  const Vocab& vocab_;
  const ChatTemplate& chat_template_;
  const int32_t n_ctx_;
};

}  // namespace strata::server
