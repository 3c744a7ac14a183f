// HTTP messages as the HTTP layer hands them to a handler and takes them back:
// plain data, independent of the library that parses the bytes.
//
// Thread-safety: values; safe to copy and move between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::http {

struct HttpHeader {
  std::string name;
  std::string value;
};

// Case-insensitive ASCII comparison (header names, tokens such as "gzip").
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// A request line and its header fields: everything known before the body.
struct HttpRequestHead {
  std::string method;   // "GET", "POST", ... as sent
  std::string target;   // "/v1/models?x=1"
  std::string path;     // target up to '?'
  int version = 11;     // 10 or 11
  std::vector<HttpHeader> headers;  // in arrival order
  bool has_body = false;            // Content-Length > 0 or chunked
  std::chrono::steady_clock::time_point received{};  // when the head was complete (for access logs)

  // The first field named `name` (case-insensitive), if any.
  std::optional<std::string_view> Header(std::string_view name) const;
};

struct HttpRequest {
  HttpRequestHead head;
  std::string body;  // decoded (Content-Encoding removed), at most the server's body limit
};

struct HttpResponse {
  int status = 200;
  std::vector<HttpHeader> headers;  // Content-Type and any others; Content-Length/Connection are added
  std::string body;

  static HttpResponse Json(int status, std::string body) {
    return HttpResponse{status, {{"Content-Type", "application/json"}}, std::move(body)};
  }
  HttpResponse& With(std::string name, std::string value) {
    headers.push_back({std::move(name), std::move(value)});
    return *this;
  }
};

// The standard reason phrase of a status ("Not Found"); "Unknown" otherwise.
std::string_view ReasonPhrase(int status);

}  // namespace strata::http
