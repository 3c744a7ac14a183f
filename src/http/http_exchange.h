// HttpExchange: one request's way back to its client. A handler answers with
// exactly one of Respond (a whole response) or StartStream + Write... + End (a
// chunked stream, e.g. server-sent events). Calls queue the bytes and return
// at once: the caller never waits on the socket. Writes go out in order; a
// client that reads too slowly, stops reading or disconnects ends the exchange
// and runs the abandon callback, after which further calls are ignored.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "http/http_message.h"

namespace strata::http {

class Connection;

struct StreamOptions {
  // Sent when nothing else was written for this long (0: never), so that a
  // client that has gone away is noticed by the failing write.
  std::chrono::milliseconds heartbeat{0};
  std::string heartbeat_bytes;
};

class HttpExchange {
 public:
  // The exchange of request number `request` on connection (HttpServer makes these).
  HttpExchange(std::weak_ptr<Connection> connection, uint64_t request);

  // The whole response. Content-Length and Connection are set by the server.
  void Respond(HttpResponse response);

  // Starts a chunked response with head's status and headers (its body is
  // ignored); Write sends body bytes, End finishes it.
  void StartStream(HttpResponse head, StreamOptions options = {});
  void Write(std::string bytes);
  void End();

  // Runs fn on this exchange's connection thread, serialized with the
  // connection's own work (e.g. to drain a queue that another thread fills).
  // Dropped if the connection is gone.
  void Post(std::function<void()> fn);

  // fn runs once, on the connection's thread, if the client goes away (or
  // the server drops the connection) before the response is complete.
  void OnAbandon(std::function<void()> fn);

 private:
  std::weak_ptr<Connection> connection_;
  uint64_t request_;
};

}  // namespace strata::http
