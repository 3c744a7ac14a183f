// BodyDecoder: removes a request's Content-Encoding (identity, gzip, deflate)
// as the body arrives, piece by piece, and refuses to produce more than a
// limit of decoded bytes — a small compressed body cannot grow into a large
// one in memory.
//
// Thread-safety: one decoder per request, used by one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace strata::http {

class BodyDecoder {
 public:
  enum class Result { kOk, kTooLarge, kCorrupt };

  // nullptr if encoding (a Content-Encoding value; "" = identity) is not one
  // of identity, gzip, x-gzip, deflate.
  static std::unique_ptr<BodyDecoder> Create(std::string_view encoding, size_t max_decoded_bytes);
  virtual ~BodyDecoder() = default;

  // Decodes in and appends to *out. kTooLarge as soon as *out would pass the limit.
  virtual Result Feed(std::string_view in, std::string* out) = 0;
  // The body is complete: kCorrupt if the compressed stream is unfinished.
  virtual Result Finish() = 0;
};

}  // namespace strata::http
