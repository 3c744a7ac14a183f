// ApiError: an error as an OpenAI-compatible client expects it — an HTTP
// status plus the body {"error": {"message", "type", "param", "code"}}.
//
// Thread-safety: a value; safe to copy between threads.
#pragma once

#include <string>

#include "core/status.h"

namespace strata::server {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending request field; "" renders as null
  std::string code;   // a machine-readable reason; "" renders as null

  static ApiError InvalidRequest(std::string message, std::string param = "", std::string code = "");
  // Maps an internal Status to the status a client should see:
  //   kInvalidArgument -> 400
  //   kOutOfRange      -> 400 context_length_exceeded (the request can never fit)
  //   kResourceExhausted -> 429 queue_full (the engine uses it for a full queue only)
  //   kUnavailable     -> 503 unavailable (e.g. the KV cache cannot hold it now)
  //   kCancelled       -> 503
  //   anything else    -> 500
  static ApiError FromStatus(const Status& s);
  // The canonical error for a bare HTTP status that no handler explained
  // (404 unknown path, 413 body too large, ...).
  static ApiError ForHttpStatus(int http_status, const std::string& method, const std::string& path);

  // {"error": {...}} as compact JSON (invalid UTF-8 in the message is replaced).
  std::string ToJson() const;
};

}  // namespace strata::server
