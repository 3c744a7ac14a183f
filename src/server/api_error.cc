#include "server/api_error.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace strata::server {

ApiError ApiError::InvalidRequest(std::string message, std::string param, std::string code) {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

ApiError ApiError::FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return InvalidRequest(s.message());
    case StatusCode::kOutOfRange:
      return InvalidRequest(s.message(), "", "context_length_exceeded");
    case StatusCode::kResourceExhausted:
      return ApiError{429, fmt::format("{}; retry later", s.message()), "rate_limit_error", "", "queue_full"};
    case StatusCode::kUnavailable:
      return ApiError{503, fmt::format("{}; retry later", s.message()), "server_error", "", "unavailable"};
    case StatusCode::kCancelled:
      return ApiError{503, s.message(), "server_error", "", "unavailable"};
    default:
      return ApiError{500, s.ToString(), "server_error", "", "internal_error"};
  }
}

ApiError ApiError::ForHttpStatus(int http_status, const std::string& method, const std::string& path) {
  switch (http_status) {
    case 400:
      return InvalidRequest("malformed HTTP request");
    case 404:
      return ApiError{404, fmt::format("unknown endpoint ({} {})", method, path), "invalid_request_error", "",
                      "not_found"};
    case 405:
      return ApiError{405, fmt::format("method {} is not allowed on {}", method, path), "invalid_request_error", "",
                      "method_not_allowed"};
    case 403:
      return ApiError{403, "forbidden", "invalid_request_error", "", "forbidden"};
    case 408:
      return ApiError{408, "the request took too long to arrive", "invalid_request_error", "", "request_timeout"};
    case 413:
      return ApiError{413, "the request body is too large", "invalid_request_error", "", "request_too_large"};
    case 415:
      return ApiError{415, "unsupported media type", "invalid_request_error", "", "unsupported_media_type"};
    case 431:
      return ApiError{431, "the request head is too large", "invalid_request_error", "", "request_header_too_large"};
    case 503:
      return ApiError{503, "the server is busy; retry later", "server_error", "", "unavailable"};
    default:
      return ApiError{http_status, fmt::format("HTTP error {}", http_status),
                      http_status >= 500 ? "server_error" : "invalid_request_error", "", ""};
  }
}

std::string ApiError::ToJson() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  const nlohmann::json body = {
      {"error", {{"message", message}, {"type", type}, {"param", or_null(param)}, {"code", or_null(code)}}}};
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace strata::server
