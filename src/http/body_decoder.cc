#include "http/body_decoder.h"

#include <zlib.h>

#include <algorithm>

#include "http/http_message.h"

namespace strata::http {
namespace {

class IdentityDecoder : public BodyDecoder {
 public:
  explicit IdentityDecoder(size_t max) : max_(max) {}
  Result Feed(std::string_view in, std::string* out) override {
    if (in.size() > max_ - out->size()) return Result::kTooLarge;
    out->append(in);
    return Result::kOk;
  }
  Result Finish() override { return Result::kOk; }

 private:
  size_t max_;
};

// zlib inflate, with the output bounded: each call inflates into at most the
// space left under the limit (plus one byte to tell "exactly full" from "more").
class InflateDecoder : public BodyDecoder {
 public:
  InflateDecoder(size_t max, int window_bits) : max_(max) {
    ok_ = inflateInit2(&z_, window_bits) == Z_OK;
  }
  ~InflateDecoder() override {
    if (ok_) inflateEnd(&z_);
  }

  Result Feed(std::string_view in, std::string* out) override {
    if (!ok_) return Result::kCorrupt;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    unsigned char buf[16384];
    while (z_.avail_in > 0 && !ended_) {
      z_.next_out = buf;
      z_.avail_out = sizeof(buf);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return Result::kCorrupt;
      const size_t n = sizeof(buf) - z_.avail_out;
      if (n > max_ - out->size()) return Result::kTooLarge;
      out->append(reinterpret_cast<const char*>(buf), n);
      if (rc == Z_STREAM_END) ended_ = true;
      if (rc == Z_BUF_ERROR && n == 0) break;  // needs more input
    }
    // Bytes after the end of the compressed stream are not part of any body.
    if (ended_ && z_.avail_in > 0) return Result::kCorrupt;
    return Result::kOk;
  }

  Result Finish() override { return ended_ ? Result::kOk : Result::kCorrupt; }

 private:
  z_stream z_{};
  size_t max_;
  bool ok_ = false;
  bool ended_ = false;
};

}  // namespace

std::unique_ptr<BodyDecoder> BodyDecoder::Create(std::string_view encoding, size_t max_decoded_bytes) {
  if (encoding.empty() || EqualsIgnoreCase(encoding, "identity"))
    return std::make_unique<IdentityDecoder>(max_decoded_bytes);
  // 15 + 16: gzip wrapper only; 15: zlib wrapper (RFC 9110's "deflate").
  if (EqualsIgnoreCase(encoding, "gzip") || EqualsIgnoreCase(encoding, "x-gzip"))
    return std::make_unique<InflateDecoder>(max_decoded_bytes, 15 + 16);
  if (EqualsIgnoreCase(encoding, "deflate")) return std::make_unique<InflateDecoder>(max_decoded_bytes, 15);
  return nullptr;
}

}  // namespace strata::http
