// Access log: one line per answered request — method, path, status, prompt
// and completion tokens, and milliseconds from the complete request head to
// the end of the response — as text or as one JSON object per line.
//
//   text: POST /v1/completions 200 prompt_tokens=5 completion_tokens=16 ms=12.3
//   json: {"method":"POST","path":"/v1/completions","status":200,"prompt_tokens":5,"completion_tokens":16,"ms":12.3}
//
// Method and path are the client's bytes: anything but printable ASCII, and
// the space, '"', '%' and '\', is written as %XX, so a line can never be
// split or forged and the JSON is always valid. Requests that generate nothing count 0 tokens; a client
// gone before a whole response was sent is status 499 (nginx's convention).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace strata::server {

enum class LogFormat { kText, kJson };

// "text" or "json"; false for anything else.
bool ParseLogFormat(std::string_view name, LogFormat* out);

struct AccessRecord {
  std::string_view method;  // "-" when the request head could not be read
  std::string_view path;
  int status = 0;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double ms = 0;
};

// The record's line, without a newline.
std::string AccessLine(const AccessRecord& r, LogFormat format);

}  // namespace strata::server
