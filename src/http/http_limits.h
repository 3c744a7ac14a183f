// HttpLimits: what one client may cost the server. Every limit is enforced
// by the HTTP layer before a handler sees the request, so that a request the
// server will refuse costs a bounded amount of memory and time.
//
// Thread-safety: a value.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace strata::http {

struct HttpLimits {
  // Request line plus header fields, in bytes: more is answered 431.
  size_t max_header_bytes = 16 * 1024;
  // Header fields per request: more is answered 431.
  size_t max_header_fields = 100;
  // Body bytes after decoding (Content-Encoding) and, separately, as received
  // (Content-Length or the sum of chunks): more is answered 413 as soon as the
  // limit is passed, before the rest is read.
  size_t max_body_bytes = 1 << 20;
  // Open connections; a connection beyond this gets 503 and is closed.
  size_t max_connections = 4096;
  // The whole request head must arrive within this time of the server starting
  // to wait for it (a new connection, or the end of the previous response on a
  // kept-alive one); else the connection is closed. A trickling client cannot
  // extend it.
  std::chrono::milliseconds head_timeout{10'000};
  // The whole body must arrive within this time of its head (else 408, closed).
  std::chrono::milliseconds body_timeout{30'000};
  // Each write must complete within this time (a client that stops reading a
  // stream is dropped and its request cancelled).
  std::chrono::milliseconds write_timeout{30'000};
  // Bytes queued for a client that reads slower than the response is produced;
  // beyond this the client is dropped.
  size_t max_pending_write_bytes = 8 << 20;
};

}  // namespace strata::http
