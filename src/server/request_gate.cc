#include "server/request_gate.h"

#include <fmt/format.h>

#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace strata::server {
namespace {

using http::HttpRequestHead;
using http::HttpResponse;

// Compares without an early exit, so response time does not leak the key.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The host name of a Host header value: without port or IPv6 brackets, lower case.
std::string HostName(std::string_view host) {
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? Lower(host) : Lower(host.substr(1, close - 1));
  }
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos)
    host = host.substr(0, colon);
  return Lower(host);
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

bool IsWildcardHost(const std::string& host) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  return host.empty() || (!ec && address.is_unspecified());
}

// The media type of a Content-Type value, lower case, without parameters.
std::string MediaType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
  while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
  return Lower(t);
}

struct RouteInfo {
  Route route;
  const char* methods;  // the methods it takes, ", "-separated
  bool json_body;
};

bool TakesMethod(const RouteInfo& r, std::string_view method) {
  std::string_view list = r.methods;
  while (!list.empty()) {
    const size_t comma = list.find(", ");
    if (list.substr(0, comma) == method) return true;
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 2);
  }
  return false;
}

// POST /v1/sessions/{id}/ACTION or GET/DELETE /v1/sessions/{id}; the id is judged later.
std::optional<RouteInfo> SessionRoute(const std::string& path) {
  constexpr std::string_view kPrefix = "/v1/sessions";
  if (path == kPrefix) return RouteInfo{Route::kSessions, "GET", false};
  if (!path.starts_with("/v1/sessions/")) return std::nullopt;
  const std::string_view rest = std::string_view(path).substr(kPrefix.size() + 1);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return RouteInfo{Route::kSession, "GET, DELETE", false};
  const std::string_view action = rest.substr(slash + 1);
  if (action == "fork" || action == "rollback" || action == "push" || action == "pop")
    return RouteInfo{Route::kSessionAction, "POST", true};
  return std::nullopt;
}


std::optional<RouteInfo> FindRoute(const std::string& path) {
  if (path == "/v1/completions" || path == "/completions") return RouteInfo{Route::kCompletions, "POST", true};
  if (path == "/v1/chat/completions" || path == "/chat/completions") return RouteInfo{Route::kChat, "POST", true};
  if (path == "/apply-template") return RouteInfo{Route::kApplyTemplate, "POST", true};
  if (path == "/tokenize") return RouteInfo{Route::kTokenize, "POST", true};
  if (path == "/detokenize") return RouteInfo{Route::kDetokenize, "POST", true};
  if (path == "/v1/models" || path == "/models") return RouteInfo{Route::kModels, "GET", false};
  if (path.starts_with("/v1/models/") || path.starts_with("/models/")) return RouteInfo{Route::kModel, "GET", false};
  if (path == "/health") return RouteInfo{Route::kHealth, "GET", false};
  if (path == "/metrics") return RouteInfo{Route::kMetrics, "GET", false};
  if (std::optional<RouteInfo> session = SessionRoute(path)) return session;
  if (path.starts_with('/') && path.find('/', 1) == std::string::npos) return RouteInfo{Route::kWebAsset, "GET", false};
  return std::nullopt;
}

}  // namespace

std::optional<Route> RouteOfPath(const std::string& path) {
  const std::optional<RouteInfo> info = FindRoute(path);
  return info ? std::optional<Route>(info->route) : std::nullopt;
}

RequestGate::RequestGate(const GateOptions& options) : options_(options) {
  const std::string bound = HostName(options_.bound_host);
  for (const std::string& h : options_.allowed_hosts) {
    if (h == "*") any_host_ = true;
    allowed_hosts_.push_back(HostName(h));
  }
  if (IsWildcardHost(bound)) {
    any_host_ = any_host_ || options_.allowed_hosts.empty();
  } else {
    allowed_hosts_.push_back(bound);
  }
  if (IsLoopbackHost(bound) || IsWildcardHost(bound))
    for (const char* h : {"localhost", "127.0.0.1", "::1"}) allowed_hosts_.push_back(h);
}

std::optional<ApiError> RequestGate::CheckHost(const HttpRequestHead& head) const {
  if (any_host_) return std::nullopt;
  const std::optional<std::string_view> host = head.Header("Host");
  if (!host) {
    if (head.version < 11) return std::nullopt;  // HTTP/1.0 may omit it
    return ApiError::InvalidRequest("the request has no Host header");
  }
  const std::string name = HostName(*host);
  if (std::find(allowed_hosts_.begin(), allowed_hosts_.end(), name) != allowed_hosts_.end()) return std::nullopt;
  return ApiError{403, fmt::format("host '{}' is not allowed (start the server with --allowed-host)", name),
                  "invalid_request_error", "", "host_not_allowed"};
}

bool RequestGate::OriginAllowed(std::string_view origin) const {
  return std::any_of(options_.cors_origins.begin(), options_.cors_origins.end(),
                     [&](const std::string& allowed) { return allowed == "*" || http::EqualsIgnoreCase(allowed, origin); });
}

std::optional<ApiError> RequestGate::CheckOrigin(const HttpRequestHead& head) const {
  const std::optional<std::string_view> origin = head.Header("Origin");
  if (!origin) return std::nullopt;  // not a browser's cross-origin request
  const std::optional<std::string_view> host = head.Header("Host");
  if (host && (http::EqualsIgnoreCase(*origin, fmt::format("http://{}", *host)) ||
               http::EqualsIgnoreCase(*origin, fmt::format("https://{}", *host))))
    return std::nullopt;  // same origin: the server's own page
  if (OriginAllowed(*origin)) return std::nullopt;
  return ApiError{403, "cross-origin requests are not allowed (start the server with --cors-origin)",
                  "invalid_request_error", "", "origin_not_allowed"};
}

std::vector<http::HttpHeader> RequestGate::CorsHeaders(const HttpRequestHead& head) const {
  const std::optional<std::string_view> origin = head.Header("Origin");
  if (!origin || !OriginAllowed(*origin)) return {};
  return {{"Access-Control-Allow-Origin", std::string(*origin)}, {"Vary", "Origin"}};
}

bool RequestGate::Authorized(const HttpRequestHead& head) const {
  return options_.api_key.empty() || !KeyOf(head).empty();
}

std::string RequestGate::KeyOf(const HttpRequestHead& head) const {
  const std::string_view sent = head.Header("Authorization").value_or("");
  std::string found;
  // Every key is compared (in constant time), so the time taken does not tell which matched.
  if (!options_.api_key.empty() && ConstantTimeEquals(sent, "Bearer " + options_.api_key)) found = options_.api_key;
  for (const std::string& key : options_.more_api_keys)
    if (ConstantTimeEquals(sent, "Bearer " + key)) found = key;
  return found;
}

HttpResponse RequestGate::Reply(const ApiError& error, const HttpRequestHead& head) const {
  HttpResponse r{error.http_status, CorsHeaders(head), error.ToJson()};
  r.With("Content-Type", "application/json");
  // A full queue or a busy server: the same request may succeed soon.
  if (error.http_status == 429 || (error.http_status == 503 && error.code == "unavailable")) r.With("Retry-After", "1");
  return r;
}

RequestGate::Verdict RequestGate::Judge(const HttpRequestHead& head) const {
  if (std::optional<ApiError> e = CheckHost(head)) return {std::nullopt, Reply(*e, head)};
  if (std::optional<ApiError> e = CheckOrigin(head)) return {std::nullopt, Reply(*e, head)};
  const std::optional<RouteInfo> route = FindRoute(head.path);
  if (!route) return {std::nullopt, Reply(ApiError::ForHttpStatus(404, head.method, head.path), head)};
  if (head.method == "OPTIONS") {  // a CORS preflight (CheckOrigin let its Origin through)
    HttpResponse r{204, CorsHeaders(head), ""};
    r.With("Access-Control-Allow-Methods", fmt::format("{}, OPTIONS", route->methods))
        .With("Access-Control-Allow-Headers", "Authorization, Content-Type")
        .With("Access-Control-Max-Age", "600");
    return {std::nullopt, std::move(r)};
  }
  if (!TakesMethod(*route, head.method)) {
    return {std::nullopt,
            Reply(ApiError::ForHttpStatus(405, head.method, head.path), head).With("Allow", route->methods)};
  }
  const bool public_route = route->route == Route::kHealth || route->route == Route::kWebAsset;
  if (!public_route && !Authorized(head)) {
    return {std::nullopt, Reply(ApiError{401, "missing or incorrect API key (send 'Authorization: Bearer <key>')",
                                         "invalid_request_error", "", "invalid_api_key"},
                                head)};
  }
  if (route->json_body && (route->route != Route::kSessionAction || head.has_body)) {
    const std::string type = MediaType(head.Header("Content-Type").value_or(""));
    if (type != "application/json" && type != "application/x-www-form-urlencoded") {
      return {std::nullopt, Reply(ApiError{415, "send the body as JSON with 'Content-Type: application/json'",
                                           "invalid_request_error", "", "unsupported_media_type"},
                                  head)};
    }
  }
  return {route->route, std::nullopt};
}

}  // namespace strata::server
