// libFuzzer target for what the HTTP front end does with a client's bytes
// before a handler runs: Beast's request parser under strata's limits (the
// same functions the connections use), the request gate (Host, Origin,
// route, key, content type) and the body decoder (chunked, gzip/deflate,
// bounded). Aborts on any broken property:
//   - a parsed head respects the limits (fields, bytes);
//   - a head the gate admits has a route, with the key (except /health and the
//     web page's static files) and a JSON type where needed;
//   - a decoded body never exceeds the body limit.
//   ./build-fuzz/http_head_fuzz -max_total_time=60
#include <boost/asio/buffer.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/body_decoder.h"
#include "http/request_head.h"
#include "server/request_gate.h"

namespace {

using namespace strata;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http_head_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

http::HttpLimits Limits() {
  http::HttpLimits l;
  l.max_header_bytes = 4096;
  l.max_header_fields = 32;
  l.max_body_bytes = 64 * 1024;
  return l;
}

const server::RequestGate& Gate() {
  static const server::RequestGate gate(
      server::GateOptions{"127.0.0.1", {"strata.lan"}, {"http://app.example"}, "sesame"});
  return gate;
}

// Feeds what is left of the input to the parser as the body, decoding it.
void ReadBody(http::RequestParser& parser, const http::HttpRequestHead& head, std::string_view rest,
              const http::HttpLimits& limits) {
  if (http::LimitBody(&parser, limits) != 0) return;
  auto decoder = http::BodyDecoder::Create(head.Header("Content-Encoding").value_or(""), limits.max_body_bytes);
  if (!decoder) return;
  std::string body;
  boost::system::error_code ec;
  char piece[1024];
  while (!parser.is_done()) {
    parser.get().body().data = piece;
    parser.get().body().size = sizeof(piece);
    const size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(used);
    if (ec == boost::beast::http::error::need_buffer) ec = {};
    if (ec) return;
    const size_t produced = sizeof(piece) - parser.get().body().size;
    if (decoder->Feed(std::string_view(piece, produced), &body) != http::BodyDecoder::Result::kOk) return;
    Check(body.size() <= limits.max_body_bytes, "decoded body within the limit");
    if (used == 0 && produced == 0) return;  // needs more input than there is
  }
  decoder->Finish();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const http::HttpLimits limits = Limits();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  http::RequestParser parser;
  http::PrepareHeadParser(&parser, limits);
  parser.eager(false);
  boost::system::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
  if (ec) {
    const int status = http::StatusOfHeadError(ec);
    Check(status == 0 || status == 400 || status == 431 || ec == boost::beast::http::error::need_more,
          "head errors map to a status");
    return 0;
  }
  if (!parser.is_header_done()) return 0;
  Check(used <= limits.max_header_bytes, "head within the byte limit");
  const http::HttpRequestHead head = http::HeadOf(parser);
  if (http::CheckHeadFields(head, limits) != 0) return 0;
  Check(head.headers.size() <= limits.max_header_fields, "fields within the limit");
  const server::RequestGate::Verdict v = Gate().Judge(head);
  Check(v.route.has_value() != v.answer.has_value(), "a verdict is a route or an answer");
  if (v.route) {
    const bool public_route = *v.route == server::Route::kHealth || *v.route == server::Route::kWebAsset;
    if (!public_route)
      Check(head.Header("Authorization") == std::optional<std::string_view>("Bearer sesame"), "admitted with the key");
    Check(head.method == "GET" || head.method == "POST", "admitted method");
    ReadBody(parser, head, input.substr(used), limits);
  } else {
    Check(v.answer->status >= 200 && v.answer->status < 600, "an answer has a status");
  }
  return 0;
}
