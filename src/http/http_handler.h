// HttpHandler: what the application behind an HttpServer implements. The
// server calls it in two steps so that a request can be refused from its head
// alone — before any byte of its body is read or decompressed (authentication,
// routing, content type) — and answers through an HttpExchange, now or later,
// from any thread.
//
// Thread-safety: the server calls these from its I/O threads, concurrently
// for different connections; implementations must be thread-safe and must
// not block for long (no waiting on the engine: answer through the exchange).
#pragma once

#include <memory>
#include <optional>
#include <string_view>

#include "http/http_exchange.h"
#include "http/http_message.h"

namespace strata::http {

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // The head of a request is complete and nothing of its body has been read.
  // Returns the response to send instead of reading the body (the connection
  // is then closed if a body was announced), or nullopt to read the body
  // (within HttpLimits) and call Handle.
  virtual std::optional<HttpResponse> Admit(const HttpRequestHead& head) = 0;

  // The whole request; answer it through exchange (exactly one response).
  virtual void Handle(HttpRequest request, std::shared_ptr<HttpExchange> exchange) = 0;

  // A response for an error the HTTP layer found itself: 400 malformed
  // request, 408 body too slow, 413 body too large, 415 unsupported
  // Content-Encoding, 431 head too large, 503 too many connections.
  // head is null when the request head could not be read.
  virtual HttpResponse Error(int status, std::string_view message, const HttpRequestHead* head) = 0;

  // Called once for every response whose head was sent (for metrics).
  virtual void Responded(const HttpRequestHead* head, int status) = 0;
};

}  // namespace strata::http
