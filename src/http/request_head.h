// Reading a request head with Beast's parser under HttpLimits, and turning
// it into an HttpRequestHead. Shared by the connections and the fuzz target,
// so that what is fuzzed is what serves.
//
// Thread-safety: functions of their arguments.
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "http/http_limits.h"
#include "http/http_message.h"

namespace strata::http {

using RequestParser = boost::beast::http::request_parser<boost::beast::http::buffer_body>;

// Limits for reading the head: its size. The body limit is set by LimitBody,
// after the handler admitted the head, so that the key is judged first.
void PrepareHeadParser(RequestParser* parser, const HttpLimits& limits);

// The head of a parser that has read one. REQUIRES: parser->is_header_done().
HttpRequestHead HeadOf(const RequestParser& parser);

// The status to answer a failed head read with: 431 (too large), 400
// (malformed), or 0 (the connection closed, was reset or timed out: no answer).
int StatusOfHeadError(const boost::system::error_code& ec);

// 431 if the head has more fields than the limit, else 0.
int CheckHeadFields(const HttpRequestHead& head, const HttpLimits& limits);

// Once the head is admitted: 413 if its declared body is over the limit,
// else 0 — and then the parser enforces the limit on the body as it comes
// (chunked included).
int LimitBody(RequestParser* parser, const HttpLimits& limits);

}  // namespace strata::http
