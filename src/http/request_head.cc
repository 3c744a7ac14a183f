#include "http/request_head.h"

#include <boost/beast/http/error.hpp>

#include <limits>

namespace strata::http {

namespace bhttp = boost::beast::http;

void PrepareHeadParser(RequestParser* parser, const HttpLimits& limits) {
  parser->header_limit(static_cast<uint32_t>(limits.max_header_bytes));
  parser->body_limit(std::numeric_limits<uint64_t>::max());
}

HttpRequestHead HeadOf(const RequestParser& parser) {
  const auto& msg = parser.get();
  HttpRequestHead head;
  head.method = std::string(msg.method_string());
  head.target = std::string(msg.target());
  head.path = head.target.substr(0, head.target.find('?'));
  head.version = static_cast<int>(msg.version());
  for (const auto& field : msg) head.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  head.has_body = parser.chunked() || (parser.content_length() && *parser.content_length() > 0);
  head.received = std::chrono::steady_clock::now();
  return head;
}

int StatusOfHeadError(const boost::system::error_code& ec) {
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) return 431;
  // Beast's parse errors, but not a message the client stopped sending halfway.
  if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
      ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message)
    return 400;
  return 0;
}

int CheckHeadFields(const HttpRequestHead& head, const HttpLimits& limits) {
  return head.headers.size() > limits.max_header_fields ? 431 : 0;
}

int LimitBody(RequestParser* parser, const HttpLimits& limits) {
  if (parser->content_length() && *parser->content_length() > limits.max_body_bytes) return 413;
  parser->body_limit(limits.max_body_bytes);
  return 0;
}

}  // namespace strata::http
