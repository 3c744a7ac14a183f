// HttpServer: an event-driven HTTP/1.1 server (Boost.Beast over Asio). A few
// I/O threads serve every connection; an idle or slow connection costs its
// buffers, not a thread. It enforces HttpLimits (head deadline, header and
// body caps including chunked and compressed bodies, connection cap),
// supports keep-alive and pipelining (requests on one connection are answered
// in order), `Expect: 100-continue`, and gzip/deflate request bodies. It
// never serves byte ranges.
//
// Thread-safety: Create/Bind/Run from one thread; StopAccepting, CloseAll and
// connections() from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "http/http_handler.h"
#include "http/http_limits.h"

namespace strata::http {

class HttpServer {
 public:
  // REQUIRES: handler outlives the server.
  HttpServer(HttpHandler* handler, HttpLimits limits, int io_threads);
  ~HttpServer();

  // Binds and listens on host:port (port 0: any free port); *bound_port gets
  // the port. kIOError if it cannot (address in use, unknown host).
  [[nodiscard]] Status Bind(const std::string& host, int port, int* bound_port);

  // Serves on the I/O threads and the calling thread until StopAccepting was
  // called and every connection is closed. REQUIRES: Bind succeeded.
  void Run();

  // Stops accepting and closes every connection that has no request in
  // progress (idle, or still sending its head or body); the others close
  // once their response is complete. Idempotent.
  void StopAccepting();

  // Closes every connection now; requests in progress see their exchange
  // abandoned. Idempotent.
  void CloseAll();

  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::http
