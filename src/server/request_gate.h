// RequestGate: judges a request from its head alone, before any byte of its
// body is read — the checks a browser-reachable, key-protected API needs:
//   Host     against the bound address and --allowed-host (DNS rebinding)
//   Origin   same origin, or one of --cors-origin (cross-site requests); a
//            CORS preflight (OPTIONS) is answered here
//   route    known path (404) and method (405 with Allow)
//   key      "Authorization: Bearer KEY" on every route but /health and the
//            web page's files (401)
//   type     JSON endpoints need application/json (415); curl -d's
//            application/x-www-form-urlencoded is read as the JSON it is
//
// Thread-safety: immutable after construction; Judge may run concurrently.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http/http_message.h"
#include "server/api_error.h"

namespace strata::server {

// kWebAsset: "/" or "/<name>", the web chat page's files (server/web_assets.h).
// kApplyTemplate: llama-server's POST /apply-template ({messages, tools} -> {prompt}).
// kTokenize, kDetokenize: llama-server's POST /tokenize and /detokenize.
// The OpenAI routes also answer without the /v1 prefix (as llama-server's do).
// Sessions (strata's, /v1 only): kSessions GET /v1/sessions; kSession GET or
// DELETE /v1/sessions/{id}; kSessionAction POST /v1/sessions/{id}/{fork,
// rollback, push, pop} (a JSON body if any).
enum class Route {
  kCompletions,
  kChat,
  kApplyTemplate,
  kTokenize,
  kDetokenize,
  kModels,
  kModel,
  kHealth,
  kMetrics,
  kWebAsset,
  kSessions,
  kSession,
  kSessionAction
};

// The route a path names, if any (the method is not checked).
std::optional<Route> RouteOfPath(const std::string& path);

struct GateOptions {
  std::string bound_host;                  // the address the server listens on
  std::vector<std::string> allowed_hosts;  // more Host values; "*": any
  std::vector<std::string> cors_origins;   // origins allowed cross-site; "*": any
  std::string api_key;                     // "" : no key needed
  std::vector<std::string> more_api_keys;  // further keys accepted (each its own session namespace)
};

class RequestGate {
 public:
  explicit RequestGate(const GateOptions& options);

  struct Verdict {
    std::optional<Route> route;                // set when the request may proceed
    std::optional<http::HttpResponse> answer;  // set otherwise: the response to send
  };
  Verdict Judge(const http::HttpRequestHead& head) const;

  // The CORS headers a response to head carries (none without an allowed Origin).
  std::vector<http::HttpHeader> CorsHeaders(const http::HttpRequestHead& head) const;
  // The API key head authorizes with ("" without keys); REQUIRES: Judge let it through.
  std::string KeyOf(const http::HttpRequestHead& head) const;
  // An error response to head, with its CORS headers.
  http::HttpResponse Reply(const ApiError& error, const http::HttpRequestHead& head) const;

 private:
  std::optional<ApiError> CheckHost(const http::HttpRequestHead& head) const;
  std::optional<ApiError> CheckOrigin(const http::HttpRequestHead& head) const;
  bool Authorized(const http::HttpRequestHead& head) const;
  bool OriginAllowed(std::string_view origin) const;

  GateOptions options_;
  bool any_host_ = false;                   // Host is not checked
  std::vector<std::string> allowed_hosts_;  // lower case, no port, no brackets
};

}  // namespace strata::server
